"""What leaves a node in a message: never a cell value, never a file path (DESIGN §11).

The node's refusals and failures are stored at the coordinator and shown to the analyst;
the servicer sends every one of them through the node's Disclosure filter. Driven at the
node's domain layer with real certificates and the real sample data on disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from party_node.servicer import status_to_pb
from tests.consortium import Consortium, running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]


def exact_sum() -> Any:
    return jobspec.from_dict(
        {
            "protocol": "sum",
            "helpers": ["helper"],
            "privacy": {"exact": True},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )


def propose(consortium: Consortium, node: Node, job_id: str, s: Any = None) -> Any:
    pki = consortium.lc.pki_dir
    signed = jobspec.sign(s or exact_sum(), (pki / "analyst.key").read_bytes(), 1)
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=signed,
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(pki / "analyst.crt").read_text(),
            bit_length=64,
            decimals=2,
        ),
    )


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=50) as c:
        yield c


def with_orders_file(consortium: Consortium, path: Path) -> Node:
    base = consortium.party_config("grocery")
    ds = tuple(
        dataclasses.replace(d, source=SourceSpec("csv", path=str(path)))
        if d.name == "orders"
        else d
        for d in base.datasets
    )
    return consortium.node("grocery", datasets=ds)


def test_a_csv_without_its_header_line_is_refused_without_its_first_row_or_path(
    consortium: Consortium, tmp_path: Path
) -> None:
    lines = Path(consortium.lc.data.orders).read_text().splitlines()
    first_row = lines[1]
    headless = tmp_path / "secret-dir" / "orders_no_header.csv"
    headless.parent.mkdir()
    headless.write_text("\n".join(lines[1:]) + "\n")
    node = with_orders_file(consortium, headless)

    job = propose(consortium, node, "nohead1")
    sent = status_to_pb(job, node.disclosure)

    assert (job.state, sent.reason_code) == ("rejected", "data_out_of_schema")
    assert str(headless) in job.reason or "orders" in job.reason  # the node keeps the detail
    for cell in first_row.split(","):
        assert cell not in sent.reason, sent.reason
    assert "secret-dir" not in sent.reason and str(tmp_path) not in sent.reason
    assert "node's log" in sent.reason


def test_no_path_of_the_node_leaves_in_any_reason(consortium: Consortium, tmp_path: Path) -> None:
    missing = tmp_path / "hidden" / "gone.csv"
    node = with_orders_file(consortium, missing)

    job = propose(consortium, node, "gone1")
    sent = status_to_pb(job, node.disclosure)

    assert job.state == "rejected"
    assert "hidden" not in sent.reason and "gone.csv" not in sent.reason, sent.reason
    err = node.disclosure.error(
        __import__("ensnif_mpc.errors", fromlist=["InvalidArgument"]).InvalidArgument(
            f"cannot use {missing} or {tmp_path}/other/x.db"
        )
    )
    assert str(tmp_path) not in err.message and "<path>" in err.message
    assert err.reason == "invalid_argument"

"""δ is added up per dataset in the node's ledger and capped by the policy's max_delta.

A pure ε-DP (discrete Laplace) job spends its sampler's δ at every dataset it reads. With
max_delta = 1.5 × that δ, the first job is approved and reserves its δ; the second, which
would take the dataset past its cap, is refused with budget_exhausted (naming δ) before
anything runs, and reserves nothing; `ensnif budget show --json` reports the δ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import Consortium, running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]
EPSILON, DELTA = 1.0, 1e-10


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=300) as c:
        yield c


def grocery(consortium: Consortium) -> Node:
    base = consortium.party_config("grocery")
    ds = tuple(
        dataclasses.replace(d, privacy=dataclasses.replace(d.privacy, max_delta=1.5 * DELTA))
        for d in base.datasets
    )
    return consortium.node("grocery", datasets=ds)


def ask(consortium: Consortium, node: Node, job_id: str) -> Any:
    pki = consortium.lc.pki_dir
    s = jobspec.from_dict(
        {
            "protocol": "count",
            "helpers": ["helper"],
            "privacy": {"mechanism": "laplace", "epsilon": EPSILON, "delta": DELTA},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=jobspec.sign(s, (pki / "analyst.key").read_bytes(), 1),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(pki / "analyst.crt").read_text(),
            bit_length=160,
            decimals=2,
            release=dp.laplace_plan(EPSILON, DELTA, [(1e9, 1)], 3, 1),
        ),
    )


def test_a_job_whose_delta_would_pass_max_delta_is_refused_before_it_runs(
    consortium: Consortium,
) -> None:
    node = grocery(consortium)

    first = ask(consortium, node, "delta1")
    second = ask(consortium, node, "delta2")

    assert first.state == "approved", first.reason
    assert (second.state, second.reason_code) == ("rejected", "budget_exhausted")
    assert "δ = 1e-10" in second.reason and "max_delta 1.5e-10" in second.reason
    assert node.ledger.state_of("delta2") == {}
    (orders,) = [line for line in node.ledger.show() if line.dataset == "orders"]
    assert orders.delta_reserved == Fraction(DELTA) and orders.delta_cap == Fraction(1.5 * DELTA)
    assert orders.reserved == dp.laplace_plan(EPSILON, DELTA, [(1e9, 1)], 3, 1).charge()

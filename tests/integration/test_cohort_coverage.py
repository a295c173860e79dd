"""The minimum cohort holds for every number a job opens: each
histogram bin, and this owner's side of a join after its value filter. Exact releases
(which the sample owner allows) are refused by the node's own rule; and for the protocols
that hold the rule on the joint counts inside MPC (the group-by family, the histogram,
the private joins: tests/protocols/test_joint_cohort.py), every release carries the
owner's min_cohort to its worker, and a DP release is neither withheld at the node nor
charged more whatever its cohorts (the marker is post-processing of the noisy counts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import Consortium, running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=300) as c:
        yield c


def grocery(consortium: Consortium) -> Node:
    base = consortium.party_config("grocery")
    ds = tuple(dataclasses.replace(d, policy=AccessPolicy(min_cohort=5)) for d in base.datasets)
    return consortium.node("grocery", datasets=ds)


def propose(
    consortium: Consortium, node: Node, job_id: str, raw: dict[str, Any], release: Any = None
) -> Any:
    pki = consortium.lc.pki_dir
    privacy = {"exact": True} if release is None else {"rho": release.rho}
    s = jobspec.from_dict({"helpers": ["helper"], "privacy": privacy, **raw})
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=jobspec.sign(s, (pki / "analyst.key").read_bytes(), 1),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(pki / "analyst.crt").read_text(),
            bit_length=96 if release is None else 160,
            decimals=2,
            **({} if release is None else {"release": release}),
        ),
    )


def top(consortium: Consortium) -> float:
    return float(pd.read_csv(consortium.lc.data.orders)["basket_total"].max())  # type: ignore[union-attr]


def test_a_histogram_bin_holding_one_row_is_not_answered_exactly(consortium: Consortium) -> None:
    node = grocery(consortium)
    values = {"party": "grocery", "dataset": "orders", "column": "basket_total"}
    other = {"party": "logistics", "dataset": "deliveries", "column": "fee"}

    def histogram(job_id: str, edges: list[float]) -> Any:
        raw = {"protocol": "histogram", "params": {"edges": edges}, "inputs": [values, other]}
        return propose(consortium, node, job_id, raw)

    lonely = histogram("hist1", [0.0, top(consortium), 500.0])  # the top bin: the maximum
    wide = histogram("hist2", [0.0, 50.0, 500.0])

    assert (lonely.state, lonely.reason_code) == ("rejected", "cohort_too_small")
    assert wide.state == "approved", wide.reason


def test_a_join_filtered_to_one_row_is_not_answered_exactly(consortium: Consortium) -> None:
    node = grocery(consortium)

    def join(job_id: str, low: float) -> Any:
        raw = {
            "protocol": "intersection_sum",
            "params": {"min": low},
            "inputs": [
                {
                    "party": "grocery",
                    "dataset": "orders",
                    "key": "customer_id",
                    "value": "basket_total",
                },
                {"party": "logistics", "dataset": "deliveries", "key": "customer_id"},
            ],
        }
        return propose(consortium, node, job_id, raw)

    one = join("join1", top(consortium))
    many = join("join2", 1.0)

    assert (one.state, one.reason_code) == ("rejected", "cohort_too_small")
    assert many.state == "approved", many.reason


def test_the_owner_s_min_cohort_goes_to_the_mpc_and_a_dp_release_costs_the_same(
    consortium: Consortium,
) -> None:
    """The lonely top bin (one row) and a wide one, exact and DP: every approved job's
    worker gets min_cohort 5 to input; the DP jobs are not withheld at the node, and each
    is charged its ρ alone, lonely or not (no per-owner noisy count, no ρ/10)."""
    node = grocery(consortium)
    values = {"party": "grocery", "dataset": "orders", "column": "basket_total"}
    other = {"party": "logistics", "dataset": "deliveries", "column": "fee"}
    plan = dp.plan(0.1, [(1e9, 2)], 3, 1)

    def histogram(job_id: str, edges: list[float], release: Any = None) -> Any:
        raw = {"protocol": "histogram", "params": {"edges": edges}, "inputs": [values, other]}
        return propose(consortium, node, job_id, raw, release)

    exact = histogram("hist3", [0.0, 50.0, 500.0])
    lonely = histogram("dph1", [0.0, top(consortium), 500.0], plan)
    wide = histogram("dph2", [0.0, 50.0, 500.0], plan)

    assert (exact.state, lonely.state, wide.state) == ("approved",) * 3, lonely.reason
    for job in (exact, lonely, wide):
        assert job.data["input"]["min_cohort"] == 5
        assert job.data["input"]["withheld"] is False
    reserved = {line.dataset: line.reserved for line in node.ledger.show()}
    assert reserved["orders"] == 2 * Fraction(0.1)  # ρ each: the same for lonely and wide

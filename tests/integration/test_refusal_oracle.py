"""Refusals are no oracle: what an analyst observes of a DP job does
not depend on the data.

The attack of the issue: an owner allows only DP answers and sets a minimum cohort and a
rows-per-person rule; an analyst asks DP counts with a moving filter (``min``) and binary
searches on whatever the node answers, to find the largest value of a column for free.
Played here against real nodes' domain layer (real certificates, data on disk, SQLite
store, ledger) over two datasets that differ in their largest values: every observable
(state, reason code, reason, the charge) is the same sequence for both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from party_node.servicer import status_to_pb
from tests.consortium import Consortium, running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]
STEPS = 15


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=300) as c:
        yield c


def dp_only_owner(consortium: Consortium, orders: Path, person: bool = True) -> Node:
    """Grocery allowing only DP answers, min_cohort 5, a person with at most 2 rows (or,
    without ``person``, no person rule)."""
    base = consortium.party_config("grocery")
    ds = tuple(
        dataclasses.replace(
            d,
            source=SourceSpec("csv", path=str(orders)),
            privacy=dataclasses.replace(
                d.privacy,
                exact_protocols=(),
                person_column="customer_id" if person else "",
                rows_per_person=2,
            ),
            policy=AccessPolicy(min_cohort=5),
        )
        for d in base.datasets
    )
    return consortium.node("grocery", datasets=ds)


def ask(consortium: Consortium, node: Node, job_id: str, low: float) -> Any:
    pki = consortium.lc.pki_dir
    s = jobspec.from_dict(
        {
            "protocol": "count",
            "helpers": ["helper"],
            "params": {"min": low},
            "privacy": {"rho": 0.1},
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
            release=dp.plan(0.1, [(1e9, 1)], 3, 1),
        ),
    )


def binary_search(consortium: Consortium, node: Node, tag: str) -> list[tuple[Any, ...]]:
    """The analyst's search for the largest basket: a selection [mid, ∞) refused as too
    small holds 1 to 4 rows (the largest value is at least mid); one admitted near the top
    is empty (the largest value is below mid)."""
    lo, hi, seen = 100.0, 500.0, []
    for step in range(STEPS):
        mid = round((lo + hi) / 2, 2)
        job = ask(consortium, node, f"{tag}{step}", mid)
        sent = status_to_pb(job, node.disclosure)  # what the coordinator stores and shows
        charged = {line.dataset: line.reserved for line in node.ledger.show() if line.reserved}
        seen.append((job.state, sent.reason_code, sent.reason, sorted(charged.items())))
        if job.state == "approved":
            hi = mid
        else:
            lo = mid
        node.abort(COORDINATOR, job.job_id, "the analyst only watches")  # nothing runs
    return seen


@pytest.mark.parametrize("person", [True, False], ids=["person_rule", "cohort_only"])
def test_the_binary_search_attack_sees_the_same_answers_whatever_the_data(
    consortium: Consortium, tmp_path: Path, person: bool
) -> None:
    sample = Path(consortium.lc.data.orders)  # type: ignore[union-attr]
    other = tmp_path / "orders-other.csv"
    frame = pd.read_csv(sample, dtype=str)
    top = frame["basket_total"].astype(float).nlargest(3).index
    frame.loc[top, "basket_total"] = ["150.00", "151.00", "152.00"]  # a lower maximum
    frame.to_csv(other, index=False)
    assert float(pd.read_csv(sample)["basket_total"].max()) > 200
    assert pd.read_csv(sample)["customer_id"].value_counts().max() > 2  # the person rule bites

    first = binary_search(consortium, dp_only_owner(consortium, sample, person), "a")
    second = binary_search(consortium, dp_only_owner(consortium, other, person), "b")

    assert first == second
    assert {s[:3] for s in first} == {("approved", "", "")}  # no refusal says anything


def test_a_job_whose_rows_were_withheld_is_charged_as_if_answered(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = dp_only_owner(consortium, Path(consortium.lc.data.orders))  # type: ignore[union-attr]
    second = float(pd.read_csv(consortium.lc.data.orders)["basket_total"].nlargest(2).min())  # type: ignore[union-attr]
    monkeypatch.setattr(dp, "sample_shares", lambda sigma, n: [0] * n)  # noise 0: see the rule

    tiny = ask(consortium, node, "tiny1", second)  # two rows: below min_cohort 5
    wide = ask(consortium, node, "wide1", 0.0)

    assert (tiny.state, wide.state) == ("approved", "approved")
    assert tiny.data["input"]["withheld"] is True
    assert wide.data["input"]["withheld"] is False
    assert node.ledger.state_of("tiny1") == node.ledger.state_of("wide1") == {"orders": "reserved"}
    cost = Fraction(0.1) * Fraction(11, 10)  # ρ, and the noisy cohort count's ρ/10
    reserved = {line.dataset: line.reserved for line in node.ledger.show()}
    assert reserved["orders"] == 2 * cost

"""Group discovery at the node: an owner with more labels than the public slots is withheld
without telling, on a noisy count of its labels, and charged as if answered.

Real node domain layer (certificates, the sample data on disk, SQLite store, ledger), as
``test_refusal_oracle``; the noise of the rule is set to 0 to see the rule itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from party_node.node import Node, Proposal
from party_node.servicer import status_to_pb
from protocols.registry import catalog
from tests.consortium import Consortium, running_consortium

ORDER = ["grocery", "logistics", "helper"]
RHO = 0.5


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=300) as c:
        yield c


def propose(consortium: Consortium, node: Node, job_id: str, max_groups: int) -> Any:
    from tests.integration.test_refusal_oracle import COORDINATOR

    pki = consortium.lc.pki_dir
    params = {"max_groups": max_groups}
    spec = jobspec.from_dict(
        {
            "protocol": "group_discovery",
            "helpers": ["helper"],
            "params": params,
            "privacy": {"rho": RHO},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "group": "zip"},
                {"party": "logistics", "dataset": "deliveries", "group": "zip"},
            ],
        }
    )
    owner = consortium.party_config("grocery").datasets[0].privacy.rows_per_person
    other = consortium.party_config("logistics").datasets[0].privacy.rows_per_person
    blocks = catalog()["group_discovery"].dp_sensitivity([(owner, 0), (other, 0)], params)
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=jobspec.sign(spec, (pki / "analyst.key").read_bytes(), 1),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(pki / "analyst.crt").read_text(),
            bit_length=160,
            decimals=0,
            release=dp.plan(RHO, blocks, 3, 1),
        ),
    )


def test_an_owner_with_more_labels_than_slots_is_withheld_silently_and_charged_as_answered(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = consortium.node("grocery")
    labels = pd.read_csv(consortium.lc.data.orders, dtype=str)["zip"].nunique()  # type: ignore[union-attr]
    monkeypatch.setattr(dp, "sample_shares", lambda sigma, n: [0] * n)  # noise 0: see the rule

    narrow = propose(consortium, node, "narrow1", labels - 1)
    wide = propose(consortium, node, "wide1", 64)
    seen = [status_to_pb(j, node.disclosure) for j in (narrow, wide)]

    assert labels == 8
    assert (narrow.state, wide.state) == ("approved", "approved")
    assert [(s.reason_code, s.reason) for s in seen] == [("", ""), ("", "")]
    assert narrow.data["input"]["withheld"] is True
    assert wide.data["input"]["withheld"] is False
    cost = Fraction(RHO) * Fraction(11, 10)  # ρ, and the noisy label count's ρ/10
    assert {line.dataset: line.reserved for line in node.ledger.show()} == {"orders": 2 * cost}


def test_the_slot_rule_leaves_room_for_its_noise(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels within the slots but inside the margin (about 5σ of the rule's noise) are
    withheld too: only so does an owner with more labels than slots pass at most with
    probability δ."""
    node = consortium.node("grocery")
    monkeypatch.setattr(dp, "sample_shares", lambda sigma, n: [0] * n)

    job = propose(consortium, node, "close1", 10)  # 8 labels, 10 slots: within σ·√(2 ln 1/δ)

    assert job.state == "approved"
    assert job.data["input"]["withheld"] is True


def test_without_a_person_column_discovery_counting_fewer_groups_than_rows_is_refused_first(
    consortium: Consortium,
) -> None:
    """One person's rows could land in rows_per_person groups; with no person column the
    node cannot keep them to groups_per_person, so it refuses before reading data or
    reserving budget (the same refusal whatever the data)."""
    import dataclasses

    base = consortium.party_config("grocery")
    ds = tuple(
        dataclasses.replace(d, privacy=dataclasses.replace(d.privacy, person_column=""))
        for d in base.datasets
    )
    node = consortium.node("grocery", datasets=ds)

    job = propose(consortium, node, "noperson1", 64)
    sent = status_to_pb(job, node.disclosure)

    assert job.state == "rejected"
    assert sent.reason_code == "dp_unavailable"
    assert "person_column" in sent.reason
    assert not [line for line in node.ledger.show() if line.reserved]


def test_a_min_cohort_goes_to_the_mpc_for_the_joint_count_instead_of_withholding_rows(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group discovery thresholds the joint noisy counts inside MPC at the owners' largest
    min_cohort (post-processing of what it opens anyway): the node neither withholds its
    rows on its own count nor charges the cohort rule's ρ/10."""
    import dataclasses

    from ensnif_mpc.data.schema import AccessPolicy

    base = consortium.party_config("grocery")
    ds = tuple(dataclasses.replace(d, policy=AccessPolicy(min_cohort=5000)) for d in base.datasets)
    node = consortium.node("grocery", datasets=ds)
    monkeypatch.setattr(dp, "sample_shares", lambda sigma, n: [0] * n)

    job = propose(consortium, node, "joint1", 64)  # every zip has fewer than 5000 orders

    assert job.state == "approved"
    assert job.data["input"]["withheld"] is False
    assert job.data["input"]["min_cohort"] == 5000
    cost = Fraction(RHO) * Fraction(11, 10)  # ρ and the slot rule's ρ/10; no cohort charge
    assert {line.dataset: line.reserved for line in node.ledger.show()} == {"orders": cost}

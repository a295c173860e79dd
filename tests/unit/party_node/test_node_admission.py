"""Admission's pure checks: verdicts that name their rule, without threads, ports or budget.

The checks that read certificates and data run in tests/integration/test_node_*.py;
these are the ones decided from the proposal alone.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from ensnif_mpc.errors import InvalidArgument, PolicyViolation
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from ensnif_mpc.privacy.dp import EXACT
from ensnif_mpc.security.mpc_session import PeerBinding
from party_node import admission
from party_node.admission import Proposal
from party_node.states import NodeState
from party_node.store import NodeJob

ORDER = ["grocery", "logistics", "helper"]
SPEC = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "privacy": {"rho": 0.1},
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)


def _proposal(**changes) -> Proposal:
    base = Proposal("job1", SPEC, 0, ORDER, "", 64, 2, dp.plan(0.1, [(100.0, 1)], 3, 1))
    return dataclasses.replace(base, **changes)


def _approved_job() -> NodeJob:
    data = {"party_order": ORDER, "mpc_cert": "own"}
    return NodeJob("job1", NodeState.APPROVED, 0, data, 41000, "", "", {}, b"", 0)


def _peers(order=ORDER) -> list[PeerBinding]:
    return [PeerBinding(i, name, "127.0.0.1:1", "own", b"", "") for i, name in enumerate(order)]


def test_a_two_party_session_is_refused_with_the_coordinators_reason():
    two = dataclasses.replace(SPEC, helpers=())

    verdict = admission.review(
        _proposal(spec=two, party_order=ORDER[:2]),
        name="grocery",
        own={},
        ca_pem=b"",
        store=None,
    )

    assert verdict.refusal is not None
    assert verdict.refusal.reason == "not_enough_parties" and "t = 0" in verdict.refusal.message


def test_a_proposal_for_another_party_is_refused():
    verdict = admission.review(_proposal(), name="logistics", own={}, ca_pem=b"", store=None)

    assert isinstance(verdict.refusal, InvalidArgument)
    assert "party_order[0] is not 'logistics'" in verdict.refusal.message


def test_an_empty_release_plan_is_exact():
    assert admission.release_from_json("") is EXACT


def test_a_release_plan_round_trips_through_json():
    import json

    plan = dp.plan(0.1, [(100.0, 1)], 3, 1)

    assert admission.release_from_json(json.dumps(plan.to_dict())) == plan


def test_a_malformed_release_plan_is_an_invalid_argument():
    with pytest.raises(InvalidArgument, match="release plan"):
        admission.release_from_json("[1, 2]")


def test_an_exact_release_of_a_job_signed_for_dp_is_refused():
    with pytest.raises(PolicyViolation) as info:
        admission.check_release_request(_proposal(release=EXACT))

    assert info.value.reason == "release_mismatch"


def test_a_release_spending_another_rho_than_signed_is_refused():
    with pytest.raises(PolicyViolation, match="signed 0.1") as info:
        admission.check_release_request(_proposal(release=dp.plan(0.2, [(100.0, 1)], 3, 1)))

    assert info.value.reason == "release_mismatch"


def test_the_signed_release_passes():
    admission.check_release_request(_proposal())


def test_a_dp_job_charges_only_this_nodes_datasets():
    assert admission.charges(_proposal(), "grocery") == {"orders": Fraction(0.1)}
    assert admission.charges(_proposal(), "helper") == {}
    assert admission.charges(_proposal(release=EXACT), "grocery") == {}


def test_a_session_below_the_honest_majority_threshold_is_refused():
    with pytest.raises(PolicyViolation, match="honest-majority threshold 1 for 3 parties"):
        admission.check_session(_approved_job(), _peers(), 0, b"")


def test_a_session_in_another_party_order_is_refused():
    with pytest.raises(InvalidArgument, match="party order"):
        admission.check_session(_approved_job(), _peers(["logistics", "grocery", "helper"]), 1, b"")

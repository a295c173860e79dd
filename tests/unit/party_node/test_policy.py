"""The access-policy evaluator: every rule refuses with its own reason, and only narrows.

Property-based: for any policy and any request the evaluator either allows
(auto or manual) or raises an EnsnifError naming a known rule; it never crashes,
and loosening a policy never turns an allowed request into a refusal.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings, strategies as st

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.errors import EnsnifError, InvalidConfig, PolicyViolation, RateLimited
from party_node.policy import Request, evaluate

PROTOCOLS = ("count", "sum", "mean", "group_sum")
COLUMNS = ("basket", "zip", "customer", "minutes")
ANALYSTS = ("analyst", "auditor", "intern")
REASONS = {
    "protocol_not_allowed",
    "column_not_allowed",
    "recipient_not_allowed",
    "cohort_too_small",
    "rate_limited",
}

policies = st.builds(
    AccessPolicy,
    columns=st.lists(st.sampled_from(COLUMNS), unique=True).map(tuple),
    recipients=st.lists(st.sampled_from(ANALYSTS), unique=True).map(tuple),
    min_cohort=st.integers(0, 50),
    max_repeats=st.integers(0, 5),
    repeat_period_s=st.floats(1, 1e7),
    approval=st.sampled_from(("auto", "manual")),
)
requests = st.builds(
    Request,
    dataset=st.just("orders"),
    protocol=st.sampled_from(PROTOCOLS),
    columns=st.dictionaries(st.sampled_from(("value", "key", "group")), st.sampled_from(COLUMNS)),
    recipient=st.sampled_from(ANALYSTS),
    repeats=st.integers(0, 10),
    cohort=st.none() | st.integers(0, 100),
)
allowed = st.lists(st.sampled_from(PROTOCOLS), unique=True).map(tuple)


def outcome(protocols: tuple[str, ...], policy: AccessPolicy, req: Request) -> str:
    try:
        return "manual" if evaluate(protocols, policy, req).manual else "auto"
    except EnsnifError as err:
        return err.reason


@settings(max_examples=400, deadline=None)
@given(allowed, policies, requests)
def test_every_request_is_allowed_or_refused_by_a_named_rule(
    protocols: tuple[str, ...], policy: AccessPolicy, req: Request
) -> None:
    result = outcome(protocols, policy, req)
    assert result in REASONS | {"auto", "manual"}
    if result == "manual":
        assert policy.approval == "manual"


@settings(max_examples=300, deadline=None)
@given(allowed, policies, requests)
def test_loosening_any_rule_never_turns_an_allowed_request_into_a_refusal(
    protocols: tuple[str, ...], policy: AccessPolicy, req: Request
) -> None:
    before = outcome(protocols, policy, req)
    looser = [
        dataclasses.replace(policy, columns=()),
        dataclasses.replace(policy, recipients=()),
        dataclasses.replace(policy, min_cohort=0),
        dataclasses.replace(policy, max_repeats=0),
    ]
    for p in looser:
        after = outcome(tuple(PROTOCOLS), p, req)
        if before in ("auto", "manual"):
            assert after == before


def test_each_rule_refuses_with_its_reason_and_says_what_is_allowed() -> None:
    req = Request("orders", "sum", {"value": "basket"}, "analyst", repeats=0, cohort=20)
    with pytest.raises(PolicyViolation, match="allows only count; not 'sum'") as e:
        evaluate(("count",), AccessPolicy(), req)
    assert e.value.reason == "protocol_not_allowed"
    with pytest.raises(PolicyViolation, match="read only zip; this job reads basket") as e:
        evaluate(("sum",), AccessPolicy(columns=("zip",)), req)
    assert e.value.reason == "column_not_allowed"
    with pytest.raises(PolicyViolation, match="only to auditor; not to 'analyst'") as e:
        evaluate(("sum",), AccessPolicy(recipients=("auditor",)), req)
    assert e.value.reason == "recipient_not_allowed"
    with pytest.raises(PolicyViolation, match="at least 25 of its rows") as e:
        evaluate(("sum",), AccessPolicy(min_cohort=25), req)
    assert e.value.reason == "cohort_too_small"
    with pytest.raises(RateLimited, match="at most 2 times per day; it was asked 2 times") as e:
        evaluate(("sum",), AccessPolicy(max_repeats=2), dataclasses.replace(req, repeats=2))
    assert e.value.reason == "rate_limited"


def test_min_cohort_passes_an_aggregate_that_draws_on_none_of_the_rows() -> None:
    """An aggregate with none of this owner's rows says nothing about them."""
    req = Request("orders", "sum", {"value": "basket"}, "analyst", cohort=0)
    assert not evaluate(("sum",), AccessPolicy(min_cohort=10), req).manual


def test_manual_approval_is_asked_only_of_jobs_no_rule_refuses() -> None:
    req = Request("orders", "sum", {"value": "basket"}, "analyst")
    assert evaluate(("sum",), AccessPolicy(approval="manual"), req).manual
    with pytest.raises(PolicyViolation):
        evaluate(("count",), AccessPolicy(approval="manual"), req)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"approval": "sometimes"}, "approval"),
        ({"min_cohort": -1}, "negative"),
        ({"repeat_period_s": 0.0}, "repeat_period"),
        ({"repeat_period_s": float("nan")}, "repeat_period"),
    ],
)
def test_bad_policies_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        AccessPolicy(**kwargs)  # type: ignore[arg-type]

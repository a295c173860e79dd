"""The job state table: which transitions are allowed, which are refused, what is final."""

from __future__ import annotations

import itertools

import pytest

from ensnif_mpc.errors import InvalidTransition
from ensnif_mpc.jobs.jobstate import ALLOWED, LIVE, JobState, check_transition

S = JobState
FINAL_STATES = {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.REJECTED}
EXPECTED_EDGES = {
    (S.SUBMITTED, S.VALIDATED),
    (S.SUBMITTED, S.REJECTED),
    (S.VALIDATED, S.AWAITING_APPROVAL),
    (S.AWAITING_APPROVAL, S.APPROVED),
    (S.AWAITING_APPROVAL, S.REJECTED),
    (S.APPROVED, S.SCHEDULED),
    (S.SCHEDULED, S.RUNNING),
    (S.RUNNING, S.SUCCEEDED),
} | {(live, stop) for live in set(S) - FINAL_STATES for stop in (S.FAILED, S.CANCELLED)}
ALL_PAIRS = list(itertools.product(JobState, JobState))


def test_table_has_a_row_for_every_state():
    assert set(ALLOWED) == set(JobState)


def test_table_edges_are_exactly_the_documented_ones():
    edges = {(old, new) for old, targets in ALLOWED.items() for new in targets}

    assert edges == EXPECTED_EDGES


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED_EDGES))
def test_allowed_transition_passes(old, new):
    check_transition(old, new)  # does not raise


@pytest.mark.parametrize(("old", "new"), [pair for pair in ALL_PAIRS if pair not in EXPECTED_EDGES])
def test_refused_transition_raises_invalid_transition(old, new):
    with pytest.raises(InvalidTransition) as info:
        check_transition(old, new)

    assert old.value in info.value.message
    assert new.value in info.value.message


def test_final_states_are_exactly_the_four_terminal_ones():
    assert {s for s in JobState if s.final} == FINAL_STATES


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_state_has_no_exits(state):
    assert ALLOWED[state] == frozenset()


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_state_cannot_even_stay_put(state):
    with pytest.raises(InvalidTransition):
        check_transition(state, state)


@pytest.mark.parametrize("state", sorted(set(JobState) - FINAL_STATES))
def test_every_live_state_can_fail(state):
    check_transition(state, JobState.FAILED)


@pytest.mark.parametrize("state", sorted(set(JobState) - FINAL_STATES))
def test_every_live_state_can_be_cancelled(state):
    check_transition(state, JobState.CANCELLED)


def test_live_set_is_every_non_final_state():
    assert set(LIVE) == set(JobState) - FINAL_STATES


def test_happy_path_reaches_succeeded():
    path = [
        S.SUBMITTED,
        S.VALIDATED,
        S.AWAITING_APPROVAL,
        S.APPROVED,
        S.SCHEDULED,
        S.RUNNING,
        S.SUCCEEDED,
    ]

    for old, new in itertools.pairwise(path):
        check_transition(old, new)

    assert path[-1].final


def test_invalid_transition_is_a_failed_precondition():
    with pytest.raises(InvalidTransition) as info:
        check_transition(S.SUBMITTED, S.RUNNING)

    assert info.value.reason == "invalid_transition"
    assert info.value.code.name == "FAILED_PRECONDITION"

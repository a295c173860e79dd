"""The fault matrix (bench/faults.py), real processes: each fault ends the job in a defined state
within a bound, leaves no worker process behind, loses no job record, and settles each data
owner's budget charge once (committed if a worker started there, released otherwise).

The scenarios are those of ``bench/faults.py``, which prints their times; here they are
asserted, on one consortium with short limits (``fault_consortium``). Every job is a DP mean
(ρ = 0.05), so that budgets move. The tests run in this order on purpose: those that restart
a node come last (the coordinator reaches a restarted node only after gRPC's reconnect
backoff). The job that succeeds (after the coordinator's restart) ran with the workers'
silence watch at 10 s, which did not take its peers' ordinary pauses for a stall.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.faults import (
    PROPOSE_S,
    SILENCE_S,
    coordinator_restart_running,
    fault_consortium,
    party_killed,
    party_never_starts,
    stalled_link,
)
from ensnif_mpc.demo.localnet import NODES, LocalConsortium

pytestmark = pytest.mark.slow

COMMITTED = {"grocery": "committed", "logistics": "committed"}


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    consortium = fault_consortium(tmp_path_factory.mktemp("matrix"))
    try:
        yield consortium
    finally:
        consortium.stop()


@pytest.mark.timeout(90, func_only=True)  # the consortium's start has bounds of its own
def test_a_stalled_link_ends_the_job_with_peer_stalled_after_the_silence_limit(
    lc: LocalConsortium,
) -> None:
    r = stalled_link(lc)

    assert (r.state, r.reason_code) == ("failed", "peer_stalled"), r.reason
    assert SILENCE_S <= r.seconds < SILENCE_S + 10
    assert r.orphans == []
    assert r.budget == COMMITTED and r.ok, r.problems


@pytest.mark.timeout(120)
def test_a_job_running_when_the_coordinator_is_killed_succeeds_after_its_restart(
    lc: LocalConsortium,
) -> None:
    r = coordinator_restart_running(lc)

    assert r.state == "succeeded", r.reason
    assert r.seconds < 60
    assert r.orphans == []
    assert r.budget == COMMITTED and r.ok, r.problems  # also: no job record lost
    assert r.known_by == list(NODES)


@pytest.mark.timeout(120)
def test_a_party_killed_mid_job_fails_it_at_once_and_its_charge_is_spent_once(
    lc: LocalConsortium,
) -> None:
    r = party_killed(lc)

    # The job's reason is the first failure heard of: a survivor's lost link to the dead
    # party, or to a survivor that left before it.
    assert (r.state, r.reason_code) in {("failed", "peer_lost"), ("failed", "party_unreachable")}
    assert r.seconds < 15
    assert r.orphans == []
    assert r.budget == COMMITTED and r.ok, r.problems
    assert r.known_by == list(NODES)  # the restarted node kept its record


@pytest.mark.timeout(120)
def test_a_party_down_at_proposal_fails_the_job_and_gives_every_reservation_back(
    lc: LocalConsortium,
) -> None:
    r = party_never_starts(lc)

    assert (r.state, r.reason_code) == ("failed", "approval_timeout"), r.reason
    assert PROPOSE_S <= r.seconds < PROPOSE_S + 10
    assert r.orphans == []
    assert r.budget == {"grocery": "released", "logistics": "released"} and r.ok, r.problems

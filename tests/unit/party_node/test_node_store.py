"""The node's own store: proposals, the node transition table, live jobs and their ports."""

from __future__ import annotations

import dataclasses
import itertools
import threading

import pytest

from ensnif_mpc.audit import chain as audit
from ensnif_mpc.errors import InvalidTransition, UnknownJob
from party_node.store import NODE_ALLOWED, NODE_LIVE, NodeStore

DATA = {"spec": {"protocol": "sum"}, "order": ["grocery", "pharmacy", "helper"]}
STATES = sorted(NODE_ALLOWED)
EXPECTED_EDGES = {
    ("awaiting_approval", "approved"),
    ("awaiting_approval", "rejected"),
    ("awaiting_approval", "aborted"),
    ("approved", "starting"),
    ("approved", "failed"),
    ("approved", "aborted"),
    ("starting", "running"),
    ("starting", "failed"),
    ("starting", "aborted"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "aborted"),
}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state" / "node.db"


@pytest.fixture
def store(db_path):
    s = NodeStore(db_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One store for tests that are refused before touching the database."""
    s = NodeStore(tmp_path_factory.mktemp("node") / "node.db")
    yield s
    s.close()


def _create(store, job_id="job-1", state="approved", port=41000):
    return store.create(job_id, state, 0, DATA, port)


def test_node_table_edges_are_exactly_the_documented_ones():
    edges = {(old, new) for old, targets in NODE_ALLOWED.items() for new in targets}

    assert edges == EXPECTED_EDGES


def test_live_states_are_the_ones_with_exits():
    assert {s for s, targets in NODE_ALLOWED.items() if targets} == set(NODE_LIVE)


def test_create_makes_the_store_directory_and_returns_the_job(store, db_path):
    rec = _create(store)

    assert db_path.exists()
    assert (rec.job_id, rec.state, rec.party_index, rec.mpc_port) == ("job-1", "approved", 0, 41000)
    assert rec.data == DATA


def test_create_a_rejected_proposal_keeps_the_reason(store):
    store.create("job-1", "rejected", 2, DATA, 0, reason="policy", reason_code="policy_violation")

    rec = store.get("job-1")
    assert (rec.state, rec.reason, rec.reason_code) == ("rejected", "policy", "policy_violation")


def test_get_unknown_job_raises_unknown_job(store):
    with pytest.raises(UnknownJob, match="'ghost'"):
        store.get("ghost")


def test_find_unknown_job_returns_none(store):
    assert store.find("ghost") is None


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED_EDGES))
def test_allowed_transition_succeeds(store, old, new):
    _create(store, state=old)

    assert store.transition("job-1", old, new) is True
    assert store.get("job-1").state == new


@pytest.mark.parametrize(
    ("old", "new"),
    [p for p in itertools.product(STATES, STATES) if p not in EXPECTED_EDGES],
)
def test_refused_transition_raises_invalid_transition(shared_store, old, new):
    with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
        shared_store.transition("job-1", old, new)


def test_transition_from_an_unknown_state_is_refused(shared_store):
    with pytest.raises(InvalidTransition):
        shared_store.transition("job-1", "proposed", "approved")


def test_transition_is_conditional_on_the_old_state(store):
    _create(store)
    store.transition("job-1", "approved", "starting")

    assert store.transition("job-1", "approved", "aborted") is False
    assert store.get("job-1").state == "starting"


def test_transition_bumps_the_version_and_records_the_reason(store):
    _create(store)

    store.transition("job-1", "approved", "failed", reason="port busy", reason_code="unavailable")

    rec = store.get("job-1")
    assert rec.version == 1
    assert (rec.reason, rec.reason_code) == ("port busy", "unavailable")


def test_transition_writes_extra_fields(store):
    _create(store, state="running")

    store.transition("job-1", "running", "succeeded", sealed_share=b"\x01blob")

    assert store.get("job-1").sealed_share == b"\x01blob"


def test_set_progress_is_visible_and_bumps_the_version(store):
    _create(store)

    store.set_progress("job-1", {"phase": "input", "fraction": 0.5})

    rec = store.get("job-1")
    assert rec.progress == {"phase": "input", "fraction": 0.5}
    assert rec.version == 1


def test_live_lists_only_live_jobs(store):
    _create(store, "a", "approved", 41000)
    _create(store, "b", "running", 41001)
    _create(store, "c", "succeeded", 41002)
    store.create("d", "rejected", 0, DATA, 0)

    assert sorted(j.job_id for j in store.live()) == ["a", "b"]


def test_ports_in_use_are_those_of_live_jobs(store):
    _create(store, "a", "approved", 41000)
    _create(store, "b", "starting", 41001)
    _create(store, "c", "failed", 41002)

    assert store.ports_in_use() == {41000, 41001}


def test_a_finished_job_releases_its_port(store):
    _create(store, "a", "running", 41000)

    store.transition("a", "running", "succeeded")

    assert store.ports_in_use() == set()


def test_audit_chain_verifies(store):
    _create(store)
    store.transition("job-1", "approved", "starting")
    store.transition("job-1", "starting", "running")

    rows = store.audit_rows()

    assert audit.verify_chain(rows) == 3
    assert [r[2] for r in rows] == ["proposal_approved", "job_starting", "job_running"]


def test_a_reopened_store_sees_the_jobs(store, db_path):
    _create(store)
    store.close()

    assert _read_reopened(db_path, "job-1").state == "approved"


def _read_reopened(db_path, job_id):
    """The job as a fresh store over the same file reads it."""
    reopened = NodeStore(db_path)
    try:
        return reopened.get(job_id)
    finally:
        reopened.close()


def test_racing_transitions_have_exactly_one_winner(store):
    _create(store, state="running")
    n = 8
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def race(target: str) -> None:
        barrier.wait()
        won = store.transition("job-1", "running", target)
        with lock:
            results.append(won)

    threads = [
        threading.Thread(target=race, args=(t,))
        for t in ["succeeded", "failed", "aborted", "failed"] * 2
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(results) == n
    assert results.count(True) == 1


def test_states_are_written_as_their_plain_strings(store):
    from sqlalchemy import text

    from party_node.states import NodeState

    store.create("job-1", NodeState.APPROVED, 0, DATA, 41000)
    store.transition("job-1", NodeState.APPROVED, NodeState.STARTING)

    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT state, typeof(state) FROM node_jobs")).one()
    assert tuple(raw) == ("starting", "text")
    assert store.get("job-1").state is NodeState.STARTING


def test_the_state_table_covers_every_node_state():
    from party_node.states import NodeState

    assert set(NODE_ALLOWED) == set(NodeState)


def test_create_returns_what_a_read_gives_and_a_read_is_the_whole_row(store, db_path):
    created = _create(store, state="approved")
    assert store.get("job-1") == created

    store.transition("job-1", "approved", "starting", sealed_share=b"\x00sealed\xff")
    store.set_progress("job-1", {"phase": "connecting", "bytes": 12})
    store.close()
    read = _read_reopened(db_path, "job-1")

    assert read == dataclasses.replace(
        created,
        state="starting",
        sealed_share=b"\x00sealed\xff",
        progress={"phase": "connecting", "bytes": 12},
        version=2,
        updated_at=read.updated_at,
    )
    assert read.data == DATA and read.updated_at.tzinfo is not None
    assert read.updated_at >= created.updated_at


def test_a_decision_and_its_audit_record_commit_together_and_the_first_stands(store):
    from party_node.store import Approval

    first = Approval("job-1", "approved", "policy", "2026-12-03T10:00:00+00:00", "h", "s1", "")
    second = Approval("job-1", "rejected", "admin", "2026-12-03T10:00:01+00:00", "h", "s2", "no")

    assert store.add_approval(first, applied=True) is True
    assert store.add_approval(second) is False

    assert store.approval("job-1") == first
    events = [(event, details) for _, _, event, details, _, _ in store.audit_rows()]
    assert [e for e in events if e[0].startswith("approval_")] == [
        ("approval_approved", {"job": "job-1", "by": "policy", "reason": ""})
    ]
    assert store.unapplied_approvals() == []
    assert audit.verify_chain(store.audit_rows()) == 1

"""The job records the coordinator store keeps in memory (Store.get_job): a read after this
store's write shows the write, a read that may predate a write is not kept, a kept record
is served without SQL, and the number kept is bounded."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from coordinator import store as store_module
from coordinator.store import Store
from ensnif_mpc.jobs.jobstate import JobState
from tests.helpers import sum_spec

SPEC = sum_spec(("pharmacy", "sales", "amount"))
SIZING = {"bit_length": 64, "decimals": 2}


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/c.db")
    s.create_job("job1", SPEC, "alice", "pem", SIZING)
    yield s
    s.close()


def _selects(store: Store) -> list[str]:
    seen: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def note(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    return seen


def test_a_kept_record_is_served_without_sql(store):
    first = store.get_job("job1")
    selects = _selects(store)

    again = [store.get_job("job1") for _ in range(5)]

    assert selects == []
    assert all(rec == first for rec in again)


def test_every_write_is_seen_by_the_next_read(store):
    before = store.get_job("job1")

    store.transition("job1", JobState.SUBMITTED, JobState.VALIDATED)
    moved = store.get_job("job1")
    store.update_job("job1", session={"party_order": ["a", "b", "c"]})
    updated = store.get_job("job1")

    assert (before.state, moved.state) == (JobState.SUBMITTED, JobState.VALIDATED)
    assert moved.version == before.version + 1
    assert updated.session == {"party_order": ["a", "b", "c"]}
    assert updated.version == moved.version + 1


def test_a_write_keeps_the_record_it_wrote(store):
    store.get_job("job1")
    selects = _selects(store)

    store.transition("job1", JobState.SUBMITTED, JobState.VALIDATED)
    moved = store.get_job("job1")
    store.update_job("job1", session={"party_order": ["a", "b", "c"]})
    updated = store.get_job("job1")

    assert [s for s in selects if "FROM jobs" in s] == []  # both from the rows written
    assert (moved.state, updated.session) == (JobState.VALIDATED, {"party_order": ["a", "b", "c"]})
    fresh = Store(str(store.engine.url))  # the database says the same
    try:
        assert fresh.get_job("job1") == updated
    finally:
        fresh.close()


def test_an_earlier_write_arriving_late_never_replaces_a_later_one(store):
    with store.engine.connect() as conn:  # the row as the first write would return it
        first_row = conn.execute(store_module._JOB_BY_ID, {"b_id": "job1"}).first()
    store.transition("job1", JobState.SUBMITTED, JobState.VALIDATED)

    store._forget("job1", first_row)  # its thread reports after the later write's

    assert store.get_job("job1").state is JobState.VALIDATED


def test_a_read_that_may_predate_a_write_is_not_kept(store):
    generation = store._jobs_written
    stale = store.get_job("job1")  # read, and kept
    store.transition("job1", JobState.SUBMITTED, JobState.VALIDATED)  # forgets it

    store._keep(stale, generation)  # a slow reader's result arriving after the write

    assert store.get_job("job1").state is JobState.VALIDATED


def test_the_records_kept_are_bounded(store, monkeypatch):
    monkeypatch.setattr(store_module, "JOBS_KEPT", 3)
    for i in range(6):
        store.create_job(f"more{i}", SPEC, "alice", "pem", SIZING)
        store.get_job(f"more{i}")

    assert sorted(store._jobs) == ["more3", "more4", "more5"]
    assert store.get_job("more0").id == "more0"  # read again from the database

"""A running job's progress in the coordinator store (Store.set_progress): shown at once with
a version per update, written at most once per interval, and written with the job's next
state change; a second store on the same database (a restarted coordinator) sees what was
written, and never loses a state change or a share."""

from __future__ import annotations

import pytest

from coordinator.store import Store
from ensnif_mpc.jobs.jobstate import JobState
from tests.helpers import sum_spec

SPEC = sum_spec(("pharmacy", "sales", "amount"))


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/c.db"


@pytest.fixture
def store(url):
    s = Store(url)
    s.create_job("job1", SPEC, "alice", "pem", {"bit_length": 64, "decimals": 2})
    yield s
    s.close()


def _reopened(url):
    other = Store(url)
    try:
        return other.get_job("job1")
    finally:
        other.close()


def _p(phase):
    return {"grocery": {"state": "running", "phase": phase}}


def test_every_update_is_shown_at_once_with_its_own_version(store, url):
    versions = [store.get_job("job1").version]
    for phase in ("connecting", "preparing", "computing", "delivering"):
        store.set_progress("job1", _p(phase), write_every_s=60)
        rec = store.get_job("job1")
        assert rec.progress == _p(phase)
        versions.append(rec.version)
    assert versions == list(range(versions[0], versions[0] + 5))
    # only the first was written: a reader of the database alone sees that one
    assert _reopened(url).progress == _p("connecting")
    assert store.list_jobs()[0].progress == _p("delivering")


def test_the_state_change_writes_the_latest_progress(store, url):
    store.set_progress("job1", _p("connecting"), write_every_s=60)
    store.set_progress("job1", _p("computing"), write_every_s=60)
    before = store.get_job("job1").version
    assert store.transition("job1", JobState.SUBMITTED, JobState.CANCELLED)
    rec = store.get_job("job1")
    assert rec.progress == _p("computing") and rec.version == before + 1
    again = _reopened(url)
    assert again.progress == _p("computing") and again.version == before + 1
    assert again.state is JobState.CANCELLED
    events = [row[2] for row in store.audit_rows()]
    assert events == ["job_submitted", "job_state"]  # the change kept its audit record


def test_a_refused_state_change_keeps_the_unwritten_progress(store):
    store.set_progress("job1", _p("connecting"), write_every_s=60)
    store.set_progress("job1", _p("computing"), write_every_s=60)
    assert not store.transition("job1", JobState.RUNNING, JobState.SUCCEEDED)
    assert store.get_job("job1").progress == _p("computing")


def test_after_the_interval_the_next_update_is_written(store, url):
    store.set_progress("job1", _p("connecting"), write_every_s=0)
    store.set_progress("job1", _p("computing"), write_every_s=0)
    assert _reopened(url).progress == _p("computing")
    assert _reopened(url).version == store.get_job("job1").version


def test_a_direct_update_wins_over_older_unwritten_progress(store, url):
    store.set_progress("job1", _p("connecting"), write_every_s=60)
    store.set_progress("job1", _p("computing"), write_every_s=60)
    before = store.get_job("job1").version
    store.update_job("job1", progress=_p("waiting"))
    assert store.get_job("job1").progress == _p("waiting")
    assert _reopened(url).version == store.get_job("job1").version == before + 1

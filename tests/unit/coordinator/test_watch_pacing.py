"""WatchJob's pacing: a change of progress alone waits out the interval since the last
message (and is then sent with the latest progress), a state change is sent at once with the
progress heard so far, and the final state ends the stream.

The servicer runs on a real store (file SQLite) and hub; the caller's identity, which
TLS gives in service, is set here.
"""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from coordinator import servicer as servicer_module
from coordinator.handlers import Coordinator
from coordinator.servicer import CoordinatorServicer
from coordinator.store import Store
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.security.pki import Identity
from tests.helpers import sum_spec

WAIT_S = 10.0
SPEC = sum_spec()


class Context:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/c.db")
    s.create_job("job1", SPEC, "alice", "pem", {"bit_length": 64, "decimals": 2})
    s.transition("job1", JobState.SUBMITTED, JobState.VALIDATED)
    s.transition("job1", JobState.VALIDATED, JobState.AWAITING_APPROVAL)
    s.transition("job1", JobState.AWAITING_APPROVAL, JobState.APPROVED)
    s.transition("job1", JobState.APPROVED, JobState.SCHEDULED)
    s.transition("job1", JobState.SCHEDULED, JobState.RUNNING)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def analyst(monkeypatch):
    monkeypatch.setattr(servicer_module, "peer_identity", lambda _ctx: Identity("alice", "analyst"))


def watch(store: Store, hub: Hub, every_s: float) -> tuple[queue.Queue[Any], Context]:
    """Start WatchJob on a thread; each message's job arrives on the queue, then None."""
    scheduler = SimpleNamespace(nodes=None)
    coordinator = Coordinator(store, scheduler)  # type: ignore[arg-type]
    servicer = CoordinatorServicer(coordinator, hub, watch_poll_s=WAIT_S, progress_every_s=every_s)
    got: queue.Queue[Any] = queue.Queue()
    context = Context()
    request = SimpleNamespace(job_id="job1")

    def run() -> None:
        for msg in servicer.WatchJob(request, context):  # type: ignore[arg-type]
            got.put(msg.job)
        got.put(None)

    threading.Thread(target=run, daemon=True).start()
    return got, context


def progress(store: Store, hub: Hub, phase: str) -> None:
    store.set_progress("job1", {"grocery": {"state": "running", "phase": phase}}, 60)
    hub.notify("job1")


def phase_of(job: Any) -> str:
    return job.parties[0].progress.phase if job.parties else ""


def test_progress_alone_is_sent_once_the_interval_is_over_with_the_latest_progress(store):
    hub = Hub()
    got, context = watch(store, hub, every_s=0.1)
    first = got.get(timeout=WAIT_S)

    for phase in ("connecting", "computing", "sealing"):
        progress(store, hub, phase)
    paced = got.get(timeout=WAIT_S)

    while phase_of(paced) != "sealing":  # the latest arrives once the interval is over
        paced = got.get(timeout=WAIT_S)  # (queue.Empty here: it never came)

    assert first.state == paced.state
    context.active = False
    hub.notify("job1")


def test_a_state_change_is_sent_at_once_with_the_progress_heard_so_far(store):
    hub = Hub()
    got, _ = watch(store, hub, every_s=3600.0)  # progress alone would wait an hour
    first = got.get(timeout=WAIT_S)

    for phase in ("connecting", "computing", "sealing"):
        progress(store, hub, phase)
    store.transition("job1", JobState.RUNNING, JobState.SUCCEEDED)
    hub.notify("job1")
    final = got.get(timeout=WAIT_S)

    assert phase_of(first) == ""
    assert (final.state, phase_of(final)) == (
        servicer_module.convert.state_to_pb(JobState.SUCCEEDED),
        "sealing",
    )
    assert got.get(timeout=WAIT_S) is None  # the final state ended the stream

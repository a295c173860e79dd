"""One fault, one reason code: the coordinator reports a failed job's root cause.

A killed worker is reported by its node as ``worker_failed`` and by the survivors as
``peer_lost``, in whatever order the networks deliver; the job's reason must not depend
on that order. The scheduler's follow loop is driven here with fake nodes whose reports
arrive in a chosen order and at chosen times.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from coordinator import root_cause
from coordinator.node_client import NodeCallFailed, NodeJobState, NodeStatus
from coordinator.scheduler import Scheduler
from ensnif_mpc.errors import Unavailable
from ensnif_mpc.jobs.jobstate import JobState

ORDER = ["grocery", "logistics", "helper"]


def status(state: NodeJobState, code: str = "", reason: str = "") -> NodeStatus:
    return NodeStatus(state, "", 0.0, "", 0, reason, code, b"", b"")


RUNNING = status(NodeJobState.RUNNING)


@dataclass
class FakeStore:
    state: JobState = JobState.RUNNING
    reason: str = ""
    code: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_job(self, job_id: str) -> Any:
        order = SimpleNamespace(party_order=ORDER)
        return SimpleNamespace(id=job_id, state=self.state, reason=self.reason, spec=order)

    def transition(self, job_id: str, old: JobState, new: JobState, reason: str, code: str):
        with self.lock:
            if self.state != old:
                return False
            self.state, self.reason, self.code = new, reason, code
            return True

    def update_job(self, job_id: str, **fields: Any) -> None:
        pass

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        pass

    def get_party(self, name: str) -> None:
        return None

    def get_shares(self, job_id: str) -> dict[str, Any]:
        return {}

    def share_parties(self, job_id: str) -> set[str]:
        return set()


class FakeNodes:
    """Each party's Watch stream: (seconds after the start, status) pairs; None as a status
    makes the node unreachable from then on."""

    def __init__(self, script: dict[str, list[tuple[float, NodeStatus | None]]]) -> None:
        self.script = script
        self.t0 = time.monotonic()
        self.gone: set[str] = set()  # a node that went away stays away, as a killed one does

    def watch(self, party: str, job_id: str) -> Iterator[NodeStatus]:
        if party in self.gone:
            raise NodeCallFailed(party, "UNAVAILABLE", Unavailable("gone"))
        for at, st in self.script.get(party, []):
            time.sleep(max(0.0, self.t0 + at - time.monotonic()))
            if st is None:
                self.gone.add(party)
                raise NodeCallFailed(party, "UNAVAILABLE", Unavailable("gone"))
            yield st
        time.sleep(30)  # a live stream with nothing more to say

    def abort(self, party: str, job_id: str, reason: str) -> None:
        pass


def follow(script: dict[str, list[tuple[float, NodeStatus | None]]]) -> tuple[str, str, float]:
    store = FakeStore()
    scheduler = Scheduler(store, FakeNodes(script), lambda _: None, node_lost_grace_s=1.0)  # type: ignore[arg-type]
    job = SimpleNamespace(
        id="j1",
        session={"party_order": ORDER},
        progress={},
        created_at=dt.datetime.now(dt.UTC),
        spec=SimpleNamespace(party_order=ORDER),
    )
    t = time.monotonic()
    scheduler._follow(job)  # type: ignore[arg-type]
    return store.code, store.reason, time.monotonic() - t


KILLED_WORKER = status(NodeJobState.FAILED, "worker_failed", "worker exited with code -9")
LOST = status(NodeJobState.FAILED, "peer_lost", "lost the MPC connection to party 1")


@pytest.mark.parametrize("first", ["survivor", "killed"])
def test_a_killed_worker_is_worker_failed_whichever_report_comes_first(first: str) -> None:
    killed_at, lost_at = (0.6, 0.1) if first == "survivor" else (0.1, 0.3)
    script = {
        "grocery": [(0.0, RUNNING), (lost_at, LOST)],
        "logistics": [(0.0, RUNNING), (killed_at, KILLED_WORKER)],
        "helper": [(0.0, RUNNING), (lost_at + 0.05, LOST)],
    }

    code, reason, _ = follow(script)

    assert code == "worker_failed"
    assert reason.startswith("logistics:")


def test_a_killed_node_is_named_unreachable_rather_than_its_peers_peer_lost() -> None:
    """The node cannot report; its peers see a closed link (peer_lost); the coordinator's
    watch of the node gives up within settle_s and names it: that is the reason."""
    script = {
        "grocery": [(0.0, RUNNING), (0.1, LOST)],
        "logistics": [(0.0, RUNNING), (0.05, None)],  # the node is gone
        "helper": [(0.0, RUNNING), (0.15, LOST)],
    }

    code, reason, took = follow(script)

    assert code == "party_unreachable" and "logistics" in reason
    assert took < 5


def test_when_every_party_ended_the_job_ends_without_waiting_the_settling_time() -> None:
    lost_both = {p: [(0.0, RUNNING), (0.1, LOST)] for p in ORDER}

    code, _, took = follow(lost_both)

    assert code == "peer_lost" and took < 1.5


@pytest.mark.parametrize(
    "codes", list(itertools.permutations(["peer_lost", "worker_failed", "party_unreachable"]))
)
def test_the_verdict_is_the_best_ranked_report_whatever_the_order(codes: tuple[str, ...]) -> None:
    reports = root_cause.Reports()
    for code in codes:
        reports.add(f"x: {code}", code)

    assert reports.verdict() == ("x: worker_failed", "worker_failed")
    assert reports.has_cause


def test_first_of_a_rank_wins() -> None:
    reports = root_cause.Reports()
    reports.add("a: lost 2", "peer_lost")
    reports.add("b: lost 0", "peer_lost")

    assert reports.verdict() == ("a: lost 2", "peer_lost") and not reports.has_cause

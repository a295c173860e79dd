"""Faults with real processes: a node killed mid-job, a cancelled job, a coordinator restart.

Every wait is bounded. A worker is held with SIGSTOP where a test needs the job to
be still running at the moment of the fault, so the outcome does not depend on speed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ensnif_mpc import errors
from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from tests.consortium import make_consortium
from tests.e2e.conftest import worker_pids
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=1000, connect_timeout_s=8)]


def hold_worker(lc: LocalConsortium, job_id: str, party: str) -> int:
    """Freeze one party's worker once it runs (it has armed its die-with-parent signal and
    written its first status), so the job cannot finish before the fault."""
    status = lc.root / "state" / party / "jobs" / job_id / "status.json"
    found = wait_for(
        lambda: status.exists() and worker_pids(job_id, party),
        30,
        f"a running worker of {party} for job {job_id}",
        interval=0.01,
    )
    os.kill(found[0], signal.SIGSTOP)
    return found[0]


def spec(lc: LocalConsortium, name: str = "revenue-sum.toml") -> jobspec.JobSpec:
    return jobspec.load(lc.root / "jobs" / name)


def test_killed_node_fails_the_job_for_everyone_and_leaves_no_worker(lc: LocalConsortium) -> None:
    with lc.client() as c:
        job = c.submit(spec(lc))
        hold_worker(lc, job.id, "logistics")
        lc.kill("logistics")
        started = time.monotonic()
        final = c.wait(job.id, timeout_s=60)
        took = time.monotonic() - started

    assert state_name(final) == "failed"
    assert "logistics" in final.reason
    assert took < 45
    wait_for(lambda: not worker_pids(job.id), 20, lambda: f"no worker left: {worker_pids(job.id)}")
    lc.restart("logistics")
    lc.wait_ready(60)


def test_cancel_stops_every_worker(lc: LocalConsortium) -> None:
    with lc.client() as c:
        job = c.submit(spec(lc, "ticket-mean.toml"))
        hold_worker(lc, job.id, "grocery")
        cancelled = c.cancel(job.id)
        final = c.wait(job.id, timeout_s=30)

    assert state_name(cancelled) == "cancelled" and state_name(final) == "cancelled"
    wait_for(lambda: not worker_pids(job.id), 20, lambda: f"no worker left: {worker_pids(job.id)}")


def test_job_and_result_survive_a_coordinator_restart(lc: LocalConsortium) -> None:
    s = spec(lc)
    with lc.client() as c:
        before = {j.id for j in c.jobs(1000)}
        job = c.submit(s)
    lc.restart("coordinator")

    with lc.client() as c:
        wait_for(
            lambda: _try(lambda: c.job(job.id)),
            30,
            "the restarted coordinator knowing the job",
            interval=0.2,
        )
        final = c.wait(job.id, timeout_s=90)
        values = c.result(job.id)
        after = {j.id for j in c.jobs(1000)}

    assert state_name(final) == "succeeded", final.reason
    assert float(values["sum"]) == pytest.approx(plaintext_answer(lc, s)["sum"], abs=1e-9)
    assert before | {job.id} <= after


def test_result_fetched_after_a_restart_that_followed_success(lc: LocalConsortium) -> None:
    s = spec(lc, "big-tickets-count.toml")
    with lc.client() as c:
        job = c.submit(s)
        c.wait(job.id, timeout_s=90)
    lc.restart("coordinator")

    with lc.client() as c:
        values = wait_for(
            lambda: _try(lambda: c.result(job.id)),
            30,
            "the result from the restarted coordinator",
            interval=0.2,
        )

    assert float(values["count"]) == plaintext_answer(lc, s)["count"]


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except errors.Unavailable:
        return None


def test_no_daemon_outlives_its_consortium(tmp_path: Path) -> None:
    lc = make_consortium(tmp_path / "short", mode="subprocess", rows=200).lc
    pids = [m.proc.pid for m in lc.members.values() if m.proc is not None]

    killed = lc.stop()

    assert killed == []
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in pids)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True

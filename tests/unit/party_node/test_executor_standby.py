"""Pre-started workers (protocols/standby.py, party_node.executor.Executor): a job handed to
a standby runs the real worker in that process, each standby serves one job, and a standby
that died while idle is never handed one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ensnif_mpc.jobs.worker_session import EXIT_BAD_SESSION, LOG_FILE
from party_node.executor import Executor
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def job_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    return d  # no session.json: the worker ends with EXIT_BAD_SESSION, as a cold one does


@pytest.fixture
def executor():
    ex = Executor(standby=1)
    yield ex
    ex.close()


def test_a_job_runs_in_the_standby_and_the_next_in_a_fresh_one(tmp_path, executor):
    executor.warm()
    idle = [p.pid for p, _ in executor._idle]
    assert len(idle) == 1

    first = executor.launch(job_dir(tmp_path, "a"))
    assert first.pid == idle[0] and executor.launched_warm == 1
    assert first.wait(timeout=60) == EXIT_BAD_SESSION
    # The standby became the job's worker: the worker's own log, in the job's directory.
    assert "unreadable session" in (tmp_path / "a" / LOG_FILE).read_text()
    assert (tmp_path / "a" / "worker.out").exists()

    # A new standby replaced it (never the same process twice).
    [(replacement, _)] = executor._idle
    assert replacement.pid != first.pid
    second = executor.launch(job_dir(tmp_path, "b"))
    assert second.pid == replacement.pid
    assert second.wait(timeout=60) == EXIT_BAD_SESSION


def test_cold_start_gives_the_same_exit(tmp_path):
    handle = Executor(standby=0).launch(job_dir(tmp_path, "c"))
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    assert "unreadable session" in (tmp_path / "c" / LOG_FILE).read_text()


def test_a_standby_that_died_while_idle_is_not_handed_a_job(tmp_path, executor):
    executor.warm()
    [(dead, _)] = executor._idle
    os.killpg(dead.pid, signal.SIGKILL)
    wait_for(lambda: dead.poll() is not None, timeout=10, what="the standby to die")

    handle = executor.launch(job_dir(tmp_path, "d"))

    assert handle.pid != dead.pid
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION


def test_a_standby_started_under_another_environment_is_retired(tmp_path, executor, monkeypatch):
    executor.warm()
    [(old, _)] = executor._idle
    monkeypatch.setenv("ENSNIF_PEER_SILENCE_SECONDS", "7")

    handle = executor.launch(job_dir(tmp_path, "e"))

    assert handle.pid != old.pid and executor.launched_warm in (0, 1)
    assert old.wait(timeout=30) == 0  # its stdin closed without a job: it exits cleanly
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION


def test_close_ends_idle_standbys(executor):
    executor.warm()
    [(proc, _)] = executor._idle
    time.sleep(0.1)
    executor.close()
    assert proc.poll() is not None

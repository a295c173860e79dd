"""The pre-started fork server (protocols/standby.py, party_node.executor.Executor): each job
runs the real worker in a fresh child forked from one server that imported once, no child is
ever handed a second job, a server or an idle pre-forked child that died while idle is never
handed one, and a worker's end is pushed to the node."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from ensnif_mpc.jobs.worker_session import EXIT_BAD_SESSION, LOG_FILE, SESSION_FILE
from party_node.executor import Executor
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def job_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    return d  # no session.json: the worker ends with EXIT_BAD_SESSION, as a cold one does


@pytest.fixture(scope="module")
def executor():
    """One server for the module's tests (each starts costs an import of everything)."""
    ex = Executor(standby=1)
    ex.warm()
    assert ex.server is not None
    assert ex.server.ready.wait(120), "the fork server never finished its imports"
    yield ex
    ex.close()


def test_the_server_holds_one_thread_before_it_forks(executor):
    # A fork copies only the calling thread: an import that started threads would leave
    # every child with locks held by threads that do not exist there.
    assert len(os.listdir(f"/proc/{executor.server.proc.pid}/task")) == 1


def test_each_job_runs_in_its_own_child_of_the_one_server(tmp_path, executor):
    server = executor.server.proc.pid
    before = executor.launched_warm

    first = executor.launch(job_dir(tmp_path, "a"))
    second = executor.launch(job_dir(tmp_path, "b"))

    assert executor.launched_warm == before + 2
    assert len({first.pid, second.pid, server}) == 3
    assert executor.server.proc.pid == server  # the server itself never runs a job
    assert first.wait(timeout=60) == EXIT_BAD_SESSION
    assert second.wait(timeout=60) == EXIT_BAD_SESSION
    # The child became the job's worker: the worker's own log, in the job's directory.
    assert "unreadable session" in (tmp_path / "a" / LOG_FILE).read_text()
    assert (tmp_path / "b" / "worker.out").exists()


def test_a_workers_end_is_pushed_to_the_node(tmp_path, executor):
    ended = threading.Event()
    executor.on_exit = ended.set
    try:
        handle = executor.launch(job_dir(tmp_path, "p"))
        assert ended.wait(60), "no exit report"
        assert handle.poll() == EXIT_BAD_SESSION
    finally:
        executor.on_exit = lambda: None


def blocked_job_dir(root: Path, name: str) -> Path:
    """A job whose worker blocks reading its session (a FIFO nobody writes): a live worker."""
    d = job_dir(root, name)
    os.mkfifo(d / SESSION_FILE)
    return d


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True


def test_a_forked_worker_is_stopped_by_its_handle(tmp_path, executor):
    handle = executor.launch(blocked_job_dir(tmp_path, "t"))
    assert handle.poll() is None

    handle.terminate(grace_s=5)

    assert handle.wait(timeout=10) == -signal.SIGTERM


def test_a_forked_worker_dies_with_its_server(tmp_path):
    ex = Executor(standby=1)
    try:
        handle = ex.launch(blocked_job_dir(tmp_path, "k"))
        server = ex.server
        os.killpg(server.proc.pid, signal.SIGKILL)

        assert handle.wait(timeout=10) == -signal.SIGKILL  # the node hears of it
        wait_for(lambda: _gone(handle.pid), timeout=10, what="the orphaned worker to die")
    finally:
        ex.close()


def test_cold_start_gives_the_same_exit(tmp_path):
    handle = Executor(standby=0).launch(job_dir(tmp_path, "c"))
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    assert "unreadable session" in (tmp_path / "c" / LOG_FILE).read_text()


def test_a_server_that_died_while_idle_is_not_handed_a_job(tmp_path, executor):
    dead = executor.server
    os.killpg(dead.proc.pid, signal.SIGKILL)
    wait_for(lambda: not dead.alive, timeout=10, what="the server to die")

    handle = executor.launch(job_dir(tmp_path, "d"))

    assert executor.server is not dead and executor.server.alive
    assert handle.pid != dead.proc.pid
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    assert executor.server.ready.wait(120)


def test_a_server_started_under_another_environment_is_retired(tmp_path, executor, monkeypatch):
    old = executor.server
    monkeypatch.setenv("ENSNIF_PEER_SILENCE_SECONDS", "7")

    handle = executor.launch(job_dir(tmp_path, "e"))

    assert executor.server is not old
    assert old.proc.wait(timeout=30) == 0  # its stdin closed: it exits cleanly
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    monkeypatch.undo()
    executor.warm()  # back under the first environment: a fresh server again
    assert executor.server.ready.wait(120)


def test_close_ends_the_server():
    ex = Executor(standby=1)
    ex.warm()
    server = ex.server
    ex.close()
    assert server.proc.poll() is not None


def _children_of(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(c) for c in text.split()}


def _idle_child(server_pid: int) -> int:
    """The server's one child while no job runs: the idle pre-forked one."""
    found: list[int] = []

    def one() -> bool:
        found[:] = [p for p in _children_of(server_pid) if not _gone(p)]
        return len(found) == 1

    wait_for(one, timeout=30, what="the server's idle child")
    return found[0]


def test_a_job_goes_to_the_child_forked_before_it_arrived(tmp_path, executor):
    server = executor.server.proc.pid
    idle = _idle_child(server)
    # Idle: detached in its own session, its output nowhere near the server's report pipe,
    # and in no job's directory.
    assert os.getsid(idle) == idle
    assert os.readlink(f"/proc/{idle}/fd/1") == os.devnull

    handle = executor.launch(job_dir(tmp_path, "i"))

    assert handle.pid == idle
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    assert "unreadable session" in (tmp_path / "i" / LOG_FILE).read_text()
    # Once no job runs, the next idle child is forked: a fresh process, never this one.
    assert _idle_child(server) != idle


def test_an_idle_child_that_died_is_never_handed_a_job(tmp_path, executor):
    server = executor.server.proc.pid
    idle = _idle_child(server)
    os.kill(idle, signal.SIGKILL)
    wait_for(lambda: idle not in _children_of(server), timeout=10, what="the idle child reaped")

    handle = executor.launch(job_dir(tmp_path, "x"))

    assert handle.pid != idle
    assert handle.wait(timeout=60) == EXIT_BAD_SESSION
    assert executor.server.proc.pid == server  # the server itself carried on


def test_a_job_is_handed_to_the_ready_server_from_any_thread(tmp_path, executor):
    server = executor.server
    handed: list[tuple[Path, object]] = []

    def hand(name: str) -> None:
        d = job_dir(tmp_path, name)
        handed.append((d, executor.launch_warm(d)))

    threads = [threading.Thread(target=hand, args=(n,)) for n in ("w1", "w2", "w3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert executor.server is server  # handing over never starts or replaces a server
    assert len({h.pid for _, h in handed}) == 3
    for d, h in handed:  # each handle is its own directory's worker, whatever the order
        assert h.directory == d
        assert h.wait(timeout=60) == EXIT_BAD_SESSION
        assert "unreadable session" in (d / LOG_FILE).read_text()


def test_without_a_ready_server_a_job_is_not_handed_over(tmp_path, executor, monkeypatch):
    assert Executor(standby=0).launch_warm(job_dir(tmp_path, "n0")) is None
    monkeypatch.setenv("ENSNIF_PEER_SILENCE_SECONDS", "9")  # the server's env is stale now
    assert executor.launch_warm(job_dir(tmp_path, "n1")) is None


_SLOW_EXIT = """
import os, sys, time
from protocols import standby

def job(directory):
    fd = int(os.environ[standby.DONE_FD_ENV])
    os.write(fd, b"done\\n")
    time.sleep(1.5)  # a worker whose process takes long to go after its result is written
    return 0

standby._run_job = job
sys.exit(standby.serve())
"""


def test_a_worker_that_said_done_is_reported_before_its_process_ends(tmp_path):
    """The server's ``done PID`` line comes as soon as the worker writes ``done`` on its
    pipe, well before ``exit PID 0``: the node delivers on the first."""
    import subprocess
    import sys
    import time

    server = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXIT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert server.stdout.readline() == b"ready\n"
        server.stdin.write(f"{job_dir(tmp_path, 'slow')}\n".encode())
        server.stdin.flush()
        word, pid = server.stdout.readline().split()
        assert word == b"started"
        t0 = time.monotonic()
        assert server.stdout.readline().split() == [b"done", pid]
        said = time.monotonic() - t0
        assert server.stdout.readline().split() == [b"exit", pid, b"0"]
        ended = time.monotonic() - t0
        assert said < 1.0 <= ended  # done came first, the exit after the job's 1.5 s
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def test_a_handle_whose_worker_said_done_polls_as_exited_ok(tmp_path):
    from party_node.executor import ForkedHandle

    handle = ForkedHandle(12345, tmp_path)
    assert handle.poll() is None
    handle.finished()
    assert handle.poll() == 0
    handle.ended(-signal.SIGKILL)  # the process's own end after it: the share stands
    assert handle.poll() == 0

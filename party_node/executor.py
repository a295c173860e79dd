"""Launching job workers: a Workspace owns each job's directory, an Executor starts a worker
process and returns a JobHandle (poll / terminate / wait) - the launcher/handle split.

Workers die with their node (``ensnif_mpc.procs``): the kernel sends SIGKILL when
the launching thread exits, so a node killed with SIGKILL leaves no worker behind.
Processes are therefore started on one long-lived thread of the node (its job monitor).
A worker forked by the node's pre-started fork server (protocols/standby.py) dies with
that server, which dies with the monitor thread that started it; handing a job to that
server is only a line on its pipe, so any thread may do it (the Start call does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ensnif_mpc.procs import child_env

log = logging.getLogger(__name__)


class Workspace:
    """``<state_dir>/jobs/<job_id>/``: session, input, TLS material, status, log, result."""

    def __init__(self, root: Path) -> None:
        self.root = root / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not (job_id.isascii() and job_id.isalnum()) or len(job_id) > 64:
            raise ValueError(f"unsafe job id {job_id[:64]!r}")
        return self.root / job_id

    def create(self, job_id: str) -> Path:
        p = self.path(job_id)
        p.mkdir(mode=0o700, parents=True, exist_ok=True)
        return p

    def scrub_secrets(self, job_id: str) -> None:
        """After a job ends, its MPC key is no longer needed (the data was never copied here);
        nor are a partitioned job's other sessions' copies of the key and their partial
        shares (protocols/partitions.py)."""
        p = self.path(job_id)
        shutil.rmtree(p / ".config", ignore_errors=True)
        for sibling in p.glob("part[0-9]*"):
            shutil.rmtree(sibling / ".config", ignore_errors=True)
            with contextlib.suppress(OSError):
                (sibling / "partials.json").unlink()


class JobHandle:
    """A worker started as the node's own child (a cold start)."""

    def __init__(self, proc: subprocess.Popen[bytes], directory: Path) -> None:
        self.proc = proc
        self.directory = directory

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self, grace_s: float = 2.0) -> None:
        """SIGTERM the worker's process group, SIGKILL after the grace period."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout=timeout)


class ForkedHandle(JobHandle):
    """A worker forked by the fork server: the server reaps it and pushes its exit status
    (``exit PID RC``), which :meth:`poll` and :meth:`wait` read; no polling of the process.

    A worker that said ``done`` (its result and last status written) polls as exited with
    0 at once: its share is complete and its MPC session over (the result is written after
    MPyC's shutdown barrier), so the node delivers it without waiting for the process to be
    torn down and reaped."""

    def __init__(self, pid: int, directory: Path) -> None:
        self._pid = pid
        self.directory = directory
        self._code: int | None = None
        self._done = False
        self._ended = threading.Event()

    @property
    def pid(self) -> int:
        return self._pid

    def ended(self, code: int) -> None:
        if self._code is None:
            self._code = code
        self._ended.set()

    def finished(self) -> None:
        """The worker said its result is written (``done PID``)."""
        self._done = True

    def poll(self) -> int | None:
        # Done stands whatever the process's own end (wait() gives that): its share is whole.
        return 0 if self._done else self._code

    def terminate(self, grace_s: float = 2.0) -> None:
        """SIGTERM the worker's process group, SIGKILL after the grace period."""
        if self._code is not None:
            return
        self._signal(signal.SIGTERM)
        if not self._ended.wait(grace_s):
            self._signal(signal.SIGKILL)
            self._ended.wait(5)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self._pid, sig)
        except ProcessLookupError:  # not yet its own group leader (just forked)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"worker {self._pid}", timeout or 0.0)
        assert self._code is not None
        return self._code


class ForkServer:
    """One ``python -m protocols.standby`` process (imports done, no job in it) and the
    thread that reads its reports. :meth:`fork` hands it a job directory and returns the
    forked worker's handle; the server's ``exit`` reports end the handles (and call
    ``on_exit``, so the node's monitor learns of a job's end at once)."""

    def __init__(self, python: str, env: dict[str, str], on_exit: Callable[[], None]) -> None:
        self.env = env  # the node's environment it was started under (without the parent pid)
        self.proc = subprocess.Popen(
            [python, "-m", "protocols.standby"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env(env),
        )
        self._on_exit = on_exit
        self._started: queue.Queue[ForkedHandle | None] = queue.Queue()
        self._handles: dict[int, ForkedHandle] = {}
        self._waiting: list[Path] = []  # directories sent, in order, awaiting "started"
        self._lock = threading.Lock()
        self._forking = threading.Lock()  # one hand-off at a time: replies come in order
        self._eof = threading.Event()
        self.ready = threading.Event()  # its imports are done
        assert self.proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,), name="fork-server", daemon=True
        )
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self._eof.is_set()

    @property
    def running(self) -> int:
        with self._lock:
            return sum(1 for h in self._handles.values() if h.poll() is None)

    def fork(self, directory: Path, timeout_s: float = 30.0) -> ForkedHandle | None:
        """The worker forked for ``directory``, or None if the server is gone or does not
        answer (the caller starts the worker cold)."""
        with self._forking:
            if not self.alive or self.proc.stdin is None:
                return None
            with self._lock:
                self._waiting.append(directory)
            try:
                self.proc.stdin.write(f"{directory}\n".encode())
                self.proc.stdin.flush()
                handle = self._started.get(timeout=timeout_s)
            except (OSError, ValueError, queue.Empty):
                handle = None
            if handle is None:  # no answer: this server is broken; it must not get another
                self.kill()
            return handle

    def _read(self, out: IO[bytes]) -> None:
        try:
            for raw in out:
                word, *rest = raw.decode().split()
                if word == "ready":
                    self.ready.set()
                elif word == "started":
                    pid = int(rest[0])
                    with self._lock:
                        handle = ForkedHandle(pid, self._waiting.pop(0))
                        self._handles[pid] = handle
                    self._started.put(handle)
                elif word == "done":
                    with self._lock:
                        finished = self._handles.get(int(rest[0]))
                    if finished is not None:
                        finished.finished()
                        self._on_exit()
                elif word == "exit":
                    with self._lock:
                        ended = self._handles.pop(int(rest[0]), None)
                    if ended is not None:
                        ended.ended(int(rest[1]))
                        self._on_exit()
        except (OSError, ValueError, IndexError):
            log.exception("fork server %d: unreadable report", self.proc.pid)
        finally:
            self._eof.set()
            # The server is gone: its children were killed with it (pdeathsig).
            with self._lock:
                orphans, self._handles = list(self._handles.values()), {}
            for handle in orphans:
                handle.ended(-signal.SIGKILL)
            self._started.put(None)
            if orphans:
                self._on_exit()

    def retire(self) -> None:
        """No more jobs: the server exits once its running children have ended."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin:
                self.proc.stdin.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.retire()

    def reaped(self) -> bool:
        """True once the server process has exited and been waited for."""
        return self.proc.poll() is not None

    def close(self, grace_s: float = 2.0) -> None:
        self.retire()
        try:
            self.proc.wait(timeout=grace_s if not self.running else 0.1)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)


class Executor:
    """Starts a job's worker in its own process group: forked by the node's pre-started
    fork server when there is one (``python -m protocols.standby``: imports done once, no
    job in it; see its docstring), else ``python -m protocols.worker JOB_DIR`` from cold.

    ``standby`` > 0 keeps a fork server ready (0: always cold). It is started by
    :meth:`warm` and :meth:`launch`, both called on the node's job-monitor thread: a child
    dies with the thread that started it (``ensnif_mpc.procs``). A server that died while
    idle is replaced, never handed a job; one started under another environment is
    retired (it ends once its running workers have) and replaced. :meth:`launch_warm`
    hands a job to a ready server from any thread. Each forked worker
    serves exactly one job. ``on_exit`` is called (on another thread) when a worker ends,
    so the node need not poll for it.
    """

    def __init__(self, python: str = sys.executable, standby: int = 0) -> None:
        self.python = python
        self.standby = max(0, standby)
        self.on_exit: Callable[[], None] = lambda: None
        self._server: ForkServer | None = None
        self._retired: list[ForkServer] = []
        self.launched_warm = 0  # jobs forked by the server (for tests and operators)

    def _env(self) -> dict[str, str]:
        return child_env(self._base_env())

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}

    @property
    def server(self) -> ForkServer | None:
        """The current fork server (None when cold, or before :meth:`warm`)."""
        return self._server

    def warm(self) -> None:
        """Replace a fork server that died or whose environment is stale; reap retired ones."""
        self._retired = [s for s in self._retired if not s.reaped()]
        if self.standby <= 0:
            return
        current = self._server
        if current is not None and current.alive and current.env == self._base_env():
            return
        if current is not None:  # dead, or started under another environment
            current.retire()
            self._retired.append(current)
        self._server = ForkServer(self.python, self._base_env(), lambda: self.on_exit())

    def close(self) -> None:
        """End the fork servers (the node is stopping)."""
        servers = [*self._retired, *([self._server] if self._server else [])]
        self._server, self._retired = None, []
        for server in servers:
            server.close()

    def launch_warm(self, directory: Path) -> JobHandle | None:
        """Hand the job to the running fork server, from any thread; None when there is no
        ready one under the node's current environment (then :meth:`launch`, on the
        monitor thread, starts it: a process dies with the thread that started it, so only
        that long-lived thread starts servers and cold workers)."""
        server = self._server
        if server is None or not server.alive or not server.ready.is_set():
            return None
        if server.env != self._base_env():
            return None
        handle = server.fork(directory)
        if handle is not None:
            self.launched_warm += 1
        return handle

    def launch(self, directory: Path) -> JobHandle:
        self.warm()
        handle: JobHandle | None = None
        if self._server is not None:
            handle = self._server.fork(directory)
            if handle is not None:
                self.launched_warm += 1
        if handle is None:
            handle = self._cold(directory)
        self.warm()  # a server that failed to answer is replaced for the next job
        return handle

    def _cold(self, directory: Path) -> JobHandle:
        out = (directory / "worker.out").open("ab")
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "protocols.worker", str(directory)],
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._env(),
            )
        finally:
            out.close()
        # Push its end too: a thread waits for it (the monitor's poll then finds it ended).
        threading.Thread(
            target=lambda: (proc.wait(), self.on_exit()), name="worker-wait", daemon=True
        ).start()
        return JobHandle(proc, directory)

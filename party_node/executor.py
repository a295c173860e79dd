"""Launching job workers: a Workspace owns each job's directory, an Executor starts a worker
process and returns a JobHandle (poll / terminate / wait) - the launcher/handle split.

Workers die with their node (``ensnif_mpc.procs``): the kernel sends SIGKILL when
the launching thread exits, so a node killed with SIGKILL leaves no worker behind.
Launches therefore happen on one long-lived thread of the node (its job monitor).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ensnif_mpc.procs import child_env


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
        """After a job ends, its MPC key is no longer needed (the data was never copied here)."""
        p = self.path(job_id)
        shutil.rmtree(p / ".config", ignore_errors=True)


class JobHandle:
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


class Executor:
    """Starts a job's worker in its own process group: a pre-started standby when one is
    ready (``python -m protocols.standby``: imports done, no job in it yet; see its
    docstring), else ``python -m protocols.worker JOB_DIR`` from cold.

    ``standby`` is how many idle standbys to keep (0: always cold). Standbys are started by
    :meth:`warm` and :meth:`launch`, both called on the node's job-monitor thread: a child
    dies with the thread that started it (``ensnif_mpc.procs``). A standby that died while
    idle is dropped and replaced, never handed a job; each one serves exactly one job.
    """

    def __init__(self, python: str = sys.executable, standby: int = 0) -> None:
        self.python = python
        self.standby = max(0, standby)
        # Each idle standby with the environment it was started with (without the parent pid).
        self._idle: list[tuple[subprocess.Popen[bytes], dict[str, str]]] = []
        self.launched_warm = 0  # jobs handed to a standby (for tests and operators)

    def _env(self) -> dict[str, str]:
        return child_env(self._base_env())

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}

    def warm(self) -> None:
        """Drop standbys that died while idle; start new ones up to ``standby``."""
        self._idle = [(p, env) for p, env in self._idle if p.poll() is None]
        while len(self._idle) < self.standby:
            proc = subprocess.Popen(
                [self.python, "-m", "protocols.standby"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=self._env(),
            )
            self._idle.append((proc, self._base_env()))

    def close(self) -> None:
        """End the idle standbys (the node is stopping)."""
        idle, self._idle = self._idle, []
        for proc, _ in idle:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def launch(self, directory: Path) -> JobHandle:
        handle = self._hand_over(directory)
        if handle is None:
            handle = self._cold(directory)
        self.warm()
        return handle

    def _hand_over(self, directory: Path) -> JobHandle | None:
        while self._idle:
            proc, env = self._idle.pop(0)
            if proc.poll() is not None or proc.stdin is None:
                continue  # died while idle: never handed a job
            if env != self._base_env():  # the node's environment changed since: start afresh
                self._retire(proc)
                continue
            try:
                proc.stdin.write(f"{directory}\n".encode())
                proc.stdin.close()
            except OSError:  # it died between the check and the write
                continue
            self.launched_warm += 1
            return JobHandle(proc, directory)
        return None

    @staticmethod
    def _retire(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()  # it exits without a job

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
        return JobHandle(proc, directory)

"""Launching job workers: a Workspace owns each job's directory, an Executor starts a worker
process and returns a JobHandle (poll / terminate / wait) - the launcher/handle split.

Workers die with their node (``ensnif_mpc.procs``): the kernel sends SIGKILL when
the launching thread exits, so a node killed with SIGKILL leaves no worker behind.
Launches therefore happen on one long-lived thread of the node (its job monitor).
"""

from __future__ import annotations

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
    """Starts ``python -m protocols.worker JOB_DIR`` in its own process group."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    def launch(self, directory: Path) -> JobHandle:
        out = (directory / "worker.out").open("ab")
        try:
            env = child_env({k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})
            proc = subprocess.Popen(
                [self.python, "-m", "protocols.worker", str(directory)],
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        finally:
            out.close()
        return JobHandle(proc, directory)

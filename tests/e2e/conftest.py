"""End-to-end: the real ``ensnif`` CLI against a coordinator and three nodes, each a process.

The consortium is the shared one (tests/consortium.py) run as subprocesses; a module
states its own options with ``pytest.mark.consortium(...)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from ensnif_mpc.demo.localnet import LocalConsortium
from tests.consortium import Consortium
from tests.helpers import job_worker_pids


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(lc: LocalConsortium, *args: str, timeout: float = 120) -> CliResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    env["ENSNIF_PROFILE"] = str(lc.profile)
    proc = subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        cwd=lc.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def worker_pids(job_id: str, party: str | None = None) -> list[int]:
    """Live worker processes of a job (optionally only one party's): tests/helpers.py."""
    return job_worker_pids(job_id, party)


@pytest.fixture(scope="module")
def consortium_defaults() -> dict[str, Any]:
    return {"mode": "subprocess", "rows": 1500}


@pytest.fixture(scope="module")
def lc(consortium: Consortium) -> LocalConsortium:
    """The module's consortium as the CLI and the fault helpers see it: its daemons."""
    return consortium.lc

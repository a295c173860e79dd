"""End-to-end: the real ``ensnif`` CLI against a coordinator and three nodes, each a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.demo.localnet import LocalConsortium


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
    """Live worker processes of a job (optionally only one party's), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[1][0]
        except OSError:
            continue
        ours = "protocols.worker" in cmd and f"jobs/{job_id}" in cmd and state != "Z"
        if ours and (party is None or f"/{party}/jobs/" in cmd):
            pids.append(int(entry.name))
    return pids


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def start_consortium(root: Path, **kw: Any) -> LocalConsortium:
    lc = LocalConsortium(root, **kw).setup()
    try:
        lc.start(timeout_s=60)
    except Exception:
        lc.stop()
        raise
    return lc


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    consortium = start_consortium(tmp_path_factory.mktemp("e2e"), rows=1500)
    try:
        yield consortium
    finally:
        consortium.stop()

"""The tests' one wait, one way to issue a consortium's certificates, and one small job.

Light on imports (no server, no MPyC): the protocol harness and the unit tests use it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.security import pki

T = TypeVar("T")


def sum_spec(
    second: tuple[str, str, str] = ("logistics", "deliveries", "fee"), **extra: object
) -> jobspec.JobSpec:
    """A small sum over grocery's basket totals and one other owner's
    column (party, dataset, column), with the helper: the job a store or a stream test
    needs when the job itself is not what it tests."""
    party, dataset, column = second
    return jobspec.from_dict(
        {
            "name": "total",
            "protocol": "sum",
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": party, "dataset": dataset, "column": column},
            ],
            "helpers": ["helper"],
            **extra,
        }
    )


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    After ``timeout`` seconds, fail with ``what`` (the event waited for; a callable is
    called then, for diagnostics such as a log's tail). A test that something did NOT
    happen waits here for the event that would have shown it, never on a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"not within {timeout:g} s: {described}")
        time.sleep(interval)


def issue_pki(directory: Path, members: Mapping[str, str]) -> dict[str, pki.CertFiles]:
    """A new consortium CA in ``directory`` and one certificate per member (name → role)."""
    pki.init_ca(directory)
    return {name: pki.issue(directory, name, role) for name, role in members.items()}


def job_worker_pids(job_id: str, party: str | None = None) -> list[int]:
    """Live worker processes of a job (optionally only one party's), from /proc.

    A worker runs in its job's directory (``<state>/jobs/<job_id>``): a cold start is
    ``python -m protocols.worker JOB_DIR``, a pre-started one ``python -m protocols.standby``
    that moved there when the node handed it the job (protocols/standby.py), so the working
    directory, not the command line, says which job a worker serves."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "protocols.worker" not in cmd and "protocols.standby" not in cmd:
                continue
            state = (entry / "stat").read_text().split(") ")[1][0]
            cwd = str((entry / "cwd").readlink())
        except (OSError, IndexError):
            continue
        if state == "Z" or not cwd.endswith(f"/jobs/{job_id}"):
            continue
        if party is None or f"/{party}/jobs/" in cwd:
            pids.append(int(entry.name))
    return pids

"""One job run on this machine the way the party nodes run it: a real worker process per party.

For ``ensnif program check`` (a member tries its program before submitting it): a
throw-away consortium PKI, one job directory per party written as a node writes it
(a per-job MPC certificate bound to the party's key, the ``.config/`` MPyC reads, the
owner's data as a CSV file declared with types and bounds, ``session.json`` and, for a
member program, its files under ``program/``), the workers
(``python -m protocols.worker JOB_DIR``) over TLS on loopback, and the analyst's side:
unseal every party's share and interpolate. Nothing here imports MPyC.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.jobs import member_program
from ensnif_mpc.jobs.checks import honest_majority_threshold
from ensnif_mpc.jobs.worker_session import (
    LOG_FILE,
    RESULT_FILE,
    WorkerSession,
    WorkerStatus,
)
from ensnif_mpc.procs import child_env
from ensnif_mpc.results.shares import PartyShares, combine
from ensnif_mpc.security import mpc_session, pki, sealing

JOB_ID = "localcheck"


@dataclass(frozen=True)
class LocalOwner:
    """One data owner's table: columns as declared, their values, and the roles they fill."""

    columns: tuple[Column, ...]
    data: Mapping[str, np.ndarray]
    roles: Mapping[str, str]
    role_lists: Mapping[str, list[str]] = field(default_factory=dict)  # e.g. features


@dataclass(frozen=True)
class LocalResult:
    ok: bool
    outputs: dict[str, Fraction]
    statuses: list[WorkerStatus | None]
    reason: str = ""  # the first failing party's reason code
    message: str = ""


def run(
    root: Path,
    owners: Sequence[LocalOwner | None],
    *,
    protocol: str,
    params: Mapping[str, Any],
    bit_length: int,
    decimals: int,
    program: member_program.Bundle | None = None,
    release: Mapping[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> LocalResult:
    """Run one job with ``owners`` (``None``: a compute-only party) under ``root``: exact,
    or noised as ``release`` (a ``ReleasePlan`` as a dict) says."""
    n = len(owners)
    names = [f"party{i}" for i in range(n)]
    pki.init_ca(root / "pki")
    issued = {m: pki.issue(root / "pki", m, "party") for m in names}
    analyst = pki.issue(root / "pki", "analyst", "analyst")
    keys = [issued[m].key.read_bytes() for m in names]
    creds = [mpc_session.mint(JOB_ID, i, keys[i]) for i in range(n)]
    ports = _free_ports(n)
    peers = [
        mpc_session.PeerBinding(
            index=i,
            party=names[i],
            mpc_address=f"127.0.0.1:{ports[i]}",
            mpc_cert_pem=creds[i].cert_pem,
            binding_signature=creds[i].binding_signature,
            party_cert_pem=issued[names[i]].cert.read_text(),
        )
        for i in range(n)
    ]
    dirs = []
    for i, owner in enumerate(owners):
        directory = root / names[i] / JOB_ID
        directory.mkdir(parents=True)
        mpc_session.write_config(directory, i, creds[i], peers)
        extra: dict[str, Any] = {}
        if program is not None:
            program.write(directory / member_program.JOB_DIR)
            extra["program"] = program.digest
        WorkerSession(
            job_id=JOB_ID,
            protocol=protocol,
            params=dict(params),
            index=i,
            threshold=honest_majority_threshold(n),
            addresses=[p.mpc_address for p in peers],
            owners=[k for k, o in enumerate(owners) if o is not None],
            bit_length=bit_length,
            decimals=decimals,
            analyst_cert_pem=analyst.cert.read_text(),
            input_roles=[dict(o.roles) for o in owners if o is not None],
            input_role_lists=[dict(o.role_lists) for o in owners if o is not None],
            extra=extra,
            release=dict(release or {}),
            **(_input(owner, directory) if owner is not None else {}),
        ).write(directory)
        dirs.append(directory)
    codes = _launch_and_wait(dirs, timeout_s)
    statuses = [WorkerStatus.read(d) for d in dirs]
    if any(c != 0 for c in codes):
        failed = next(
            (s for s in statuses if s is not None and s.phase == "failed"), None
        ) or WorkerStatus("failed", message="a worker exited without a status")
        return LocalResult(False, {}, statuses, failed.reason_code, failed.message)
    parts = [
        PartyShares.from_bytes(
            sealing.unseal(
                analyst.key.read_bytes(), (d / RESULT_FILE).read_bytes(), JOB_ID.encode()
            )
        )
        for d in dirs
    ]
    return LocalResult(True, combine(parts), statuses)


def _input(owner: LocalOwner, directory: Path) -> dict[str, Any]:
    import pandas as pd

    path = directory / "data.csv"
    pd.DataFrame({c.name: owner.data[c.name] for c in owner.columns}).to_csv(path, index=False)
    return {
        "source": SourceSpec(kind="csv", path=str(path)).to_dict(),
        "dataset_columns": [asdict(c) for c in owner.columns],
        "roles": dict(owner.roles),
        "role_lists": dict(owner.role_lists),
    }


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _launch_and_wait(dirs: list[Path], timeout_s: float) -> list[int]:
    procs = []
    try:
        for d in dirs:
            with (d / "worker.out").open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "protocols.worker", str(d)],
                        cwd=d,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=child_env(),
                    )
                )
        deadline = time.monotonic() + timeout_s
        failed_at = 0.0  # a failed worker's peers notice its closed links within seconds
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                return [int(c) for c in codes if c is not None]
            now = time.monotonic()
            if not failed_at and any(c not in (None, 0) for c in codes):
                failed_at = now
            if now > deadline or (failed_at and now - failed_at > 5):
                return [-1 if c is None else int(c) for c in codes]
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def log_tail(root: Path, lines: int = 20) -> str:
    """The workers' logs' last lines (for a check that failed)."""
    out = []
    for log in sorted(root.glob(f"party*/{JOB_ID}/{LOG_FILE}")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out += [f"{log.parent.parent.name}: {line}" for line in tail]
    return "\n".join(out)

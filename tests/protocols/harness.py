"""Runs a protocol the way the party nodes do: one real worker process per MPyC party.

Each party gets a job directory exactly as ``party_node.node.Node.propose``/``start``
write it: a per-job MPC certificate bound to the party's consortium key, the
``.config/`` MPyC reads, the owner's dataset file (CSV or Parquet, declared
with types and bounds) and ``session.json`` naming it. The
workers (``python -m protocols.worker JOB_DIR``) talk TLS over loopback; the
analyst then unseals every ``result.sealed`` and interpolates the shares. The workers are
forked from one pre-imported process per test process (``tests/protocols/forkserver.py``),
which runs the same ``protocols.worker.main`` without paying its imports per worker.

MPyC is never imported here: importing it parses ``sys.argv``, so only the worker
subprocesses run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.validation import honest_majority_threshold, sizing_for
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.jobs.checks import grid_bound, sum_bits
from ensnif_mpc.jobs.protocol import GRID_ROLES, OwnerSize
from ensnif_mpc.jobs.worker_session import (
    ARTIFACTS_FILE,
    LOG_FILE,
    RESULT_FILE,
    WorkerSession,
    WorkerStatus,
)
from ensnif_mpc.procs import child_env
from ensnif_mpc.results import envelope
from ensnif_mpc.results.shares import PartyShares, combine
from ensnif_mpc.security import mpc_session, sealing
from party_node.datasets import scaled_integers
from protocols import registry
from tests.helpers import issue_pki, wait_for
from tests.protocols import forkserver

PHASES = ("starting", "connecting", "preparing", "computing", "delivering", "done")
WORKER = [sys.executable, "-m", "protocols.worker"]
# A worker that connects like the real one, then stalls inside the program (see its docstring).
STALLED_WORKER = [sys.executable, str(Path(__file__).with_name("stalled_worker.py"))]


# -- data ----------------------------------------------------------------------
def draw(
    rng: np.random.Generator, rows: int, lower: float, upper: float, decimals: int
) -> np.ndarray:
    """``rows`` values in [lower, upper] with ``decimals`` decimals (float64, as a node loads)."""
    scale = 10**decimals
    ints = rng.integers(round(lower * scale), round(upper * scale), size=rows, endpoint=True)
    return ints / scale


def exact(values: np.ndarray, decimals: int) -> np.ndarray:
    """The same column as exact fractions (object array), for a reference free of float rounding."""
    return np.array(
        [Fraction(int(v), 10**decimals) for v in scaled_integers(values, decimals)], dtype=object
    )


def exact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Filter bounds as the decimals the analyst wrote (``0.29`` is 29/100, not its float)."""
    return {k: Fraction(repr(v)) if isinstance(v, float) else v for k, v in params.items()}


@dataclass(frozen=True)
class OwnerTable:
    """One data owner's dataset as a node declares it, and the roles its columns play."""

    data: Mapping[str, np.ndarray]  # column name -> values (declared unit; str or int keys)
    columns: tuple[Column, ...]
    roles: Mapping[str, str]  # role -> column name
    fmt: str = "csv"  # csv | parquet | sqlite (a SQL source through SQLAlchemy)
    clamp: bool = False
    lists: Mapping[str, Sequence[str]] = field(default_factory=dict)  # role -> its columns

    @property
    def rows(self) -> int:
        return len(next(iter(self.data.values())))

    def role_values(self) -> dict[str, np.ndarray]:
        """Each role's values: a column, or rows × columns for a role given a list."""
        out = {role: np.asarray(self.data[name]) for role, name in self.roles.items()}
        for role, names in self.lists.items():
            out[role] = np.column_stack([np.asarray(self.data[n]) for n in names])
        return out

    def grid_bounds(self, decimals: int) -> dict[str, tuple[int, ...]]:
        """Each grid role's columns' declared bounds on the integer grid (the catalog's)."""
        declared = {c.name: c for c in self.columns}
        named = {**{r: [n] for r, n in self.roles.items()}, **dict(self.lists)}
        return {
            role: tuple(grid_bound(declared[n].abs_bound, decimals) for n in names)
            for role, names in named.items()
            if role in GRID_ROLES
        }

    def write(self, directory: Path) -> SourceSpec:
        import pandas as pd

        frame = pd.DataFrame({name: self.data[name] for name in self.data})
        path = directory / f"data.{self.fmt}"
        if self.fmt == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(path)) as db:
                frame.to_sql("data", db, index=False)
            return SourceSpec(kind="sql", url=f"sqlite:///{path}", table="data")
        if self.fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return SourceSpec(kind=self.fmt, path=str(path))


Owner = np.ndarray | OwnerTable | None


def as_table(
    owner: np.ndarray | OwnerTable, lower: float, upper: float, decimals: int
) -> OwnerTable:
    """A bare column becomes a one-column dataset in the ``value`` role."""
    if isinstance(owner, OwnerTable):
        return owner
    kind = "float" if decimals else "int"
    values = owner if decimals else np.asarray(owner).astype(np.int64)
    return OwnerTable({"x": values}, (Column("x", kind, lower, upper, decimals),), {"value": "x"})


# -- consortium and sessions -----------------------------------------------------
@dataclass(frozen=True)
class Consortium:
    party_key_pems: list[bytes]
    analyst_cert_pem: str
    analyst_key_pem: bytes
    party_cert_pems: list[str]


def make_consortium(root: Path, n_parties: int) -> Consortium:
    issued = issue_pki(
        root / "pki", {**{f"party{i}": "party" for i in range(n_parties)}, "analyst": "analyst"}
    )
    parties = [issued[f"party{i}"] for i in range(n_parties)]
    analyst = issued["analyst"]
    return Consortium(
        party_key_pems=[p.key.read_bytes() for p in parties],
        party_cert_pems=[p.cert.read_text() for p in parties],
        analyst_cert_pem=analyst.cert.read_text(),
        analyst_key_pem=analyst.key.read_bytes(),
    )


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports, free a moment ago (all held at once, so never the same twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def bit_length_for(
    tables: Sequence[OwnerTable | None], decimals: int, protocol: str | None = None
) -> int:
    """The session size the coordinator would fix from the catalog (rows and declared
    bounds, and the magnitude ``protocol`` declares it reaches)."""
    plain = _bit_length_for(tables, decimals)
    definition = registry.get(protocol) if protocol else None
    if definition is None or definition.sizing is None:
        return plain
    sizes = [OwnerSize(t.rows, t.grid_bounds(decimals)) for t in tables if t is not None]
    return max(plain, sum_bits(max(definition.sizing(sizes, {}), 1)))


def _bit_length_for(tables: Sequence[OwnerTable | None], decimals: int) -> int:
    columns = []
    rows = []
    for t in tables:
        if t is None:
            continue
        rows.append(t.rows)
        if "value" in t.roles:
            col = next(c for c in t.columns if c.name == t.roles["value"])
            columns.append((t.rows, col.abs_bound, decimals))
    if not columns:
        return sizing_for([(r, 1.0, 0) for r in rows], 0).bit_length
    return sizing_for(columns, decimals).bit_length


def write_sessions(
    root: Path,
    consortium: Consortium,
    *,
    job_id: str,
    protocol: str,
    owner_values: Sequence[Owner],
    params: Mapping[str, Any],
    decimals: int,
    bit_length: int | None = None,
    lower: float = 0.0,
    upper: float = 0.0,
    release: Mapping[str, Any] | None = None,
    artifacts: Sequence[Sequence[Mapping[str, Any]]] | None = None,
) -> list[Path]:
    """One job directory per party, as the party nodes write them; ``None`` marks a helper.

    ``artifacts``: per party, its shares of the artifacts the job takes as input (the
    records an earlier run's workers kept, as a node would hand them back)."""
    assert job_id.isalnum()
    tables = [None if o is None else as_table(o, lower, upper, decimals) for o in owner_values]
    if bit_length is None:
        bit_length = bit_length_for(tables, decimals, protocol)
    n = len(owner_values)
    ports = free_ports(n)
    creds = [mpc_session.mint(job_id, i, consortium.party_key_pems[i]) for i in range(n)]
    peers = [
        mpc_session.PeerBinding(
            index=i,
            party=f"party{i}",
            mpc_address=f"127.0.0.1:{ports[i]}",
            mpc_cert_pem=creds[i].cert_pem,
            binding_signature=creds[i].binding_signature,
            party_cert_pem=consortium.party_cert_pems[i],
        )
        for i in range(n)
    ]
    owners = [i for i, t in enumerate(tables) if t is not None]
    input_roles = [dict(t.roles) for t in tables if t is not None]
    input_role_lists = [{r: list(c) for r, c in t.lists.items()} for t in tables if t is not None]
    dirs = []
    for i, table in enumerate(tables):
        directory = root / f"party{i}" / job_id
        directory.mkdir(parents=True)
        mpc_session.write_config(directory, i, creds[i], peers)
        mine: dict[str, Any] = {}
        if table is not None:
            mine = {
                "source": table.write(directory).to_dict(),
                "dataset_columns": [vars(c) for c in table.columns],
                "clamp": table.clamp,
                "roles": dict(table.roles),
                "role_lists": {r: list(c) for r, c in table.lists.items()},
            }
        WorkerSession(
            job_id=job_id,
            protocol=protocol,
            params=dict(params),
            index=i,
            threshold=honest_majority_threshold(n),
            addresses=[p.mpc_address for p in peers],
            owners=owners,
            bit_length=bit_length,
            decimals=decimals,
            analyst_cert_pem=consortium.analyst_cert_pem,
            input_roles=input_roles,
            input_role_lists=input_role_lists,
            release=dict(release or {}),
            party_names=[p.party for p in peers],
            party_cert_pems=[p.party_cert_pem for p in peers],
            artifacts=[dict(a) for a in (artifacts[i] if artifacts else [])],
            **mine,
        ).write(directory)
        dirs.append(directory)
    return dirs


def sessions_with_minimums(
    root: Path,
    protocol: str,
    tables: Sequence[OwnerTable],
    params: Mapping[str, Any],
    minimums: Sequence[int],
    *,
    job_id: str,
    decimals: int = 0,
    release: Mapping[str, Any] | None = None,
) -> tuple[Any, list[Path]]:
    """(consortium, party directories) of one job over two owners and a helper, with each
    owner's ``min_cohort`` in its worker's session as its node writes it (the joint
    minimum cohort's input, ``protocols/joint_cohort.py``)."""
    from ensnif_mpc.jobs.worker_session import SESSION_FILE
    from ensnif_mpc.privacy import dp

    consortium = make_consortium(root, len(tables) + 1)
    owners = [as_table(t, 0, 0, decimals) for t in tables]
    bits = bit_length_for([*owners, None], decimals, protocol)
    if release is not None:
        bits += dp.ReleasePlan.from_dict(dict(release)).headroom_bits()
    dirs = write_sessions(
        root,
        consortium,
        job_id=job_id,
        protocol=protocol,
        owner_values=[*owners, None],
        params=dict(params),
        decimals=decimals,
        bit_length=bits,
        release=release,
    )
    for directory, minimum in zip(dirs, minimums, strict=False):
        session = json.loads((directory / SESSION_FILE).read_text())
        (directory / SESSION_FILE).write_text(json.dumps({**session, "min_cohort": minimum}))
    return consortium, dirs


# -- worker processes ------------------------------------------------------------
def status_of(directory: Path) -> WorkerStatus | None:
    return WorkerStatus.read(directory)


class Workers:
    """The worker processes of one job; every one still alive is SIGKILLed on exit."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.phases: dict[int, list[str]] = {i: [] for i in range(len(dirs))}

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def start(self, index: int, command: list[str] = WORKER) -> None:
        directory = self.dirs[index]
        env = child_env({k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})
        if command == WORKER and forkserver.ENABLED:  # the same worker, its imports paid once
            self.procs[index] = forkserver.spawn(  # type: ignore[assignment]
                directory, directory.parent, directory / "worker.out", env
            )
            return
        with (directory / "worker.out").open("ab") as out:
            self.procs[index] = subprocess.Popen(
                [*command, str(directory)],
                cwd=directory.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def start_all(self) -> None:
        for i in range(len(self.dirs)):
            self.start(i)

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(timeout=10)

    def _observe(self) -> None:
        for i, directory in enumerate(self.dirs):
            status = status_of(directory)
            seen = self.phases[i]
            if status is not None and (not seen or seen[-1] != status.phase):
                seen.append(status.phase)

    def wait_until(self, predicate: Callable[[Workers], bool], timeout: float, what: str) -> None:
        """Poll statuses until ``predicate(self)`` holds; fail with the workers' logs otherwise."""

        def reached() -> bool:
            self._observe()
            return predicate(self)

        wait_for(reached, timeout, lambda: f"{what}\n{self.diagnose()}", interval=0.02)

    def wait(self, indices: Sequence[int] | None = None, timeout: float = 40.0) -> dict[int, int]:
        """Wait for the given workers (default: all started) to exit; their exit codes."""
        chosen = list(self.procs) if indices is None else list(indices)
        self.wait_until(
            lambda w: all(w.procs[i].poll() is not None for i in chosen),
            timeout,
            f"exit of workers {chosen}",
        )
        self._observe()
        return {i: self.procs[i].returncode for i in chosen}

    def running(self, index: int) -> bool:
        return self.procs[index].poll() is None

    def diagnose(self) -> str:
        lines = []
        for i, directory in enumerate(self.dirs):
            proc = self.procs.get(i)
            code = None if proc is None else proc.poll()
            lines.append(f"party {i}: exit {code}, status {status_of(directory)}")
            for name in (LOG_FILE, "worker.out"):
                path = directory / name
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-15:]
                    lines += [f"  {name}: {line}" for line in tail]
        return "\n".join(lines)


# -- the analyst's side ------------------------------------------------------------
def unseal_all(dirs: Sequence[Path], consortium: Consortium, job_id: str) -> list[PartyShares]:
    return open_parts(dirs, consortium.analyst_key_pem, envelope.ANALYST, job_id)


def open_parts(
    dirs: Sequence[Path], key_pem: bytes, recipient: str, job_id: str
) -> list[PartyShares]:
    """Every party's part for ``recipient`` (an envelope key), unsealed with ``key_pem``;
    empty when the parties delivered nothing to that recipient."""
    parts = []
    for d in dirs:
        sealed = envelope.part_for((d / RESULT_FILE).read_bytes(), recipient)
        if sealed is None:
            continue
        aad = envelope.associated(job_id, recipient)
        parts.append(PartyShares.from_bytes(sealing.unseal(key_pem, sealed, aad)))
    return parts


def kept_artifacts(dirs: Sequence[Path]) -> list[list[dict[str, Any]]]:
    """Per party, the artifact shares its worker kept (what its node would store)."""
    out = []
    for d in dirs:
        path = d / ARTIFACTS_FILE
        out.append(json.loads(path.read_text()) if path.exists() else [])
    return out


def combine_artifacts(kept: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Fraction]:
    """Open every artifact from all parties' shares (a test's privilege: no party can),
    element by element, named ``name[i]`` as a reveal would name them."""
    from ensnif_mpc.results.artifacts import ArtifactShare
    from ensnif_mpc.results.shares import OutputShare

    if not kept or not kept[0]:
        return {}
    records = [[ArtifactShare.from_dict(dict(a)) for a in party] for party in kept]
    values: dict[str, Fraction] = {}
    for k, first in enumerate(records[0]):
        names = (
            [first.name]
            if not first.shape
            else [f"{first.name}[{','.join(map(str, i))}]" for i in np.ndindex(*first.shape)]
        )
        parts = [
            PartyShares(
                job_id=first.job_id,
                x=party[k].x,
                modulus=first.modulus,
                threshold=first.threshold,
                outputs=tuple(
                    OutputShare(n, s, first.kind, first.frac_bits)
                    for n, s in zip(names, party[k].shares, strict=True)
                ),
            )
            for party in records
        ]
        values.update(combine(parts))
    return values


@dataclass
class RunResult:
    outputs: dict[str, Fraction]
    parts: list[PartyShares]
    statuses: list[WorkerStatus]
    exit_codes: dict[int, int]
    phases: dict[int, list[str]]
    bit_length: int
    dirs: list[Path] = field(default_factory=list)
    # Outputs opened to a named party, by MPC party index (each combined with its key).
    party_outputs: dict[int, dict[str, Fraction]] = field(default_factory=dict)
    # Per party, the artifact shares its worker kept; and every artifact opened from them.
    kept: list[list[dict[str, Any]]] = field(default_factory=list)
    artifacts: dict[str, Fraction] = field(default_factory=dict)
    consortium: Consortium | None = None  # the run's PKI (every member's key)


def _headroom(release: Mapping[str, Any] | None) -> int:
    from ensnif_mpc.privacy.dp import ReleasePlan

    return ReleasePlan.from_dict(dict(release)).headroom_bits() if release else 0


def run_parties(
    tmp_path: Path,
    protocol: str,
    owner_values: Sequence[Owner],
    params: Mapping[str, Any] | None = None,
    *,
    decimals: int = 0,
    lower: float = 0.0,
    upper: float = 0.0,
    job_id: str = "job1",
    timeout: float = 40.0,
    release: Mapping[str, Any] | None = None,
    artifacts: Sequence[Sequence[Mapping[str, Any]]] | None = None,
) -> RunResult:
    """Run ``protocol`` with one worker per entry of ``owner_values`` (``None``: a helper).

    ``owner_values`` holds each owner's column in its declared unit, within
    [lower, upper] with at most ``decimals`` decimals. Returns the analyst's
    reconstruction (exact fractions), the shares, and what each worker reported.
    """
    root = tmp_path / job_id
    consortium = make_consortium(root, len(owner_values))
    tables = [None if o is None else as_table(o, lower, upper, decimals) for o in owner_values]
    bit_length = bit_length_for(tables, decimals, protocol) + _headroom(release)
    dirs = write_sessions(
        root,
        consortium,
        job_id=job_id,
        protocol=protocol,
        owner_values=tables,
        params=params or {},
        decimals=decimals,
        bit_length=bit_length,
        release=release,
        artifacts=artifacts,
    )
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=timeout)
        if any(codes.values()):
            raise AssertionError(f"workers failed: {codes}\n{workers.diagnose()}")
        phases = workers.phases
    parts = unseal_all(dirs, consortium, job_id)
    statuses = [status_of(d) for d in dirs]
    assert all(s is not None for s in statuses)
    party_outputs = {}
    for i, key_pem in enumerate(consortium.party_key_pems):
        mine = open_parts(dirs, key_pem, envelope.member(f"party{i}"), job_id)
        if mine:
            party_outputs[i] = combine(mine)
    kept = kept_artifacts(dirs)
    return RunResult(
        outputs=registry.finalize(protocol, combine(parts)),
        party_outputs=party_outputs,
        kept=kept,
        artifacts=combine_artifacts(kept),
        consortium=consortium,
        parts=parts,
        statuses=statuses,  # type: ignore[arg-type]
        exit_codes=codes,
        phases=phases,
        bit_length=bit_length,
        dirs=dirs,
    )

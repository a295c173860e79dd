"""The private-join table: intersection_sum at N distinct keys a side as
(a) pandas, (b) the raw MPyC program of the tagged-helper route (bench/raw_join_fast.py),
(c) the Ensnif protocol under the test harness — three real worker processes
(``python -m protocols.worker``) with per-job certificates over TLS, the owners reading
their CSV through the node's data layer, output shares sealed to the analyst and combined —
and, at the smallest size, (d) the same job on the PRF route (``join_path = prf-shuffle``);
then the same for join_group_by (B's minutes by B's zip, 8 zips, over the keys whose A-side
basket total exceeds 150): pandas, the raw MPyC aligned join (``"protocol":
"join_group_by"`` in raw_join_fast.py) and the protocol on its aligned tagged-helper route.
Every answer is checked against pandas. Bytes per key: all parties' bytes sent over
(keys of A + keys of B). Peak memory: each worker's VmHWM, sampled every 0.1 s. Rounds:
each party's send bursts after a wait (protocols/transport_stats.py), the most over the
parties, for the protocol (its worker status) and the raw program (counted the same way).

    python bench/join_fast.py [--keys 33000 330000 1000000] [--rows-per-key 3]
                              [--only intersection_sum|join_group_by] [--no-raw]
                              [--profile DIR]

``--profile DIR`` runs every worker under cProfile (DIR/<protocol>-<keys>-party<i>.prof).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from ensnif_mpc.data.schema import Column  # noqa: E402
from ensnif_mpc.data.sources import SourceSpec  # noqa: E402
from ensnif_mpc.results.shares import combine  # noqa: E402
from protocols import registry  # noqa: E402
from tests.protocols import forkserver, harness  # noqa: E402

SIZES = (33_000, 330_000, 1_000_000)
ZIPS = ("10115", "10243", "20095", "22767", "50667", "60311", "80331", "99999")
GROUP_PARAMS: dict[str, Any] = {"groups": list(ZIPS), "threshold": 150.0}
QUICK = (33_000,)
DECIMALS = 2


@dataclass(frozen=True)
class CsvTable(harness.OwnerTable):
    """An owner's table already written as CSV: sessions link to it instead of rewriting."""

    path: Path = Path()

    def write(self, directory: Path) -> SourceSpec:
        link = directory / "data.csv"
        os.symlink(self.path, link)
        return SourceSpec(kind="csv", path=str(link))


@dataclass
class Row:
    keys: int
    rows_per_owner: int
    pandas_s: float = math.nan
    raw_s: float = math.nan
    ensnif_s: float = math.nan
    prf_s: float = math.nan
    raw_bytes: int = 0
    ensnif_bytes: int = 0
    prf_bytes: int = 0
    raw_mb: list[float] = field(default_factory=list)
    ensnif_mb: list[float] = field(default_factory=list)
    prf_mb: list[float] = field(default_factory=list)
    raw_cpu: list[float] = field(default_factory=list)  # CPU seconds per party
    ensnif_cpu: list[float] = field(default_factory=list)
    prf_cpu: list[float] = field(default_factory=list)
    raw_rounds: int = 0  # the most rounds of any party
    ensnif_rounds: int = 0
    problems: list[str] = field(default_factory=list)


def generate(root: Path, keys: int, per_key: int, seed: int) -> tuple[CsvTable, CsvTable]:
    """A: ``keys`` distinct customers, ``per_key`` orders each (basket 1.00–200.00);
    B: ``keys`` distinct customers, half of them A's, one delivery row each."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    ids = rng.permutation(2 * keys)
    a_keys = np.repeat(ids[:keys], per_key)
    basket = rng.integers(100, 20_001, size=len(a_keys)) / 100
    b_keys = ids[keys // 2 : keys // 2 + keys]
    zips = rng.choice(np.array(ZIPS, dtype=object), size=keys)
    minutes = rng.integers(5, 240, size=keys)
    key_col = Column("customer", "int", 0, 10**8)
    tables = []
    for name, data, columns, roles in (
        (
            "a",
            {"customer": a_keys, "basket": basket},
            (key_col, Column("basket", "float", 0, 500, DECIMALS)),
            {"key": "customer", "value": "basket"},
        ),
        (
            "b",
            {"customer": b_keys, "zip": zips, "minutes": minutes},
            (key_col, Column("zip", "string"), Column("minutes", "int", 0, 300)),
            {"key": "customer"},
        ),
    ):
        path = root / f"{name}.csv"
        pacsv.write_csv(pa.table(data), path)
        tables.append(CsvTable(data, columns, roles, path=path))
    return tables[0], tables[1]


def pandas_answer(a: CsvTable, b: CsvTable) -> tuple[float, dict[str, float]]:
    import pandas as pd

    t = time.perf_counter()
    fa = pd.read_csv(a.path, engine="pyarrow")
    fb = pd.read_csv(b.path, engine="pyarrow")
    hit = fa[fa["customer"].isin(fb["customer"].unique())]
    total = float(hit["basket"].sum())
    answer = {
        "keys": float(hit["customer"].nunique()),
        "rows": float(len(hit)),
        "sum": total,
        "mean": total / len(hit) if len(hit) else math.nan,
    }
    return time.perf_counter() - t, answer


def pandas_group_by(a: CsvTable, b: CsvTable) -> tuple[float, dict[str, float]]:
    import pandas as pd

    t = time.perf_counter()
    fa = pd.read_csv(a.path, engine="pyarrow")
    fb = pd.read_csv(b.path, engine="pyarrow", dtype={"zip": str})
    totals = fa.groupby("customer")["basket"].sum().round(DECIMALS)
    keep = totals.index[totals > GROUP_PARAMS["threshold"]]
    hit = fb[fb["customer"].isin(keep) & fb["zip"].isin(GROUP_PARAMS["groups"])]
    by = hit.groupby("zip")["minutes"].agg(["count", "sum"])
    answer: dict[str, float] = {}
    for g in GROUP_PARAMS["groups"]:
        answer[f"count[{g}]"] = float(by["count"].get(g, 0))
        answer[f"sum[{g}]"] = float(by["sum"].get(g, 0))
    return time.perf_counter() - t, answer


def for_group_by(a: CsvTable, b: CsvTable) -> tuple[CsvTable, CsvTable]:
    """The same files with the group-by's roles (A's basket as the thresholded filter)."""
    import dataclasses

    return (
        dataclasses.replace(a, roles={"key": "customer", "filter": "basket"}),
        dataclasses.replace(b, roles={"key": "customer", "group": "zip", "value": "minutes"}),
    )


def _peak_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Job:
    wall: float
    outputs: dict[str, float]
    bytes_sent: int
    max_rss_mb: list[float]
    cpu: list[float]
    rounds: int = 0


PROFILE: Path | None = None  # --profile: where each worker's cProfile output goes
RAW = True  # --no-raw: skip the raw MPyC baseline
WORKER_M = ["-m", "protocols.worker"]


def ensnif(
    root: Path,
    a: CsvTable,
    b: CsvTable,
    params: dict[str, Any],
    timeout_s: float,
    protocol: str = "intersection_sum",
) -> Job:
    """The protocol as the nodes run it; wall time from starting the workers to the
    analyst's combined result."""
    job_id = "bench" + str(len(list(root.glob("bench*"))))
    consortium = harness.make_consortium(root / job_id, 3)
    bits = harness.bit_length_for([a, b, None], DECIMALS)
    dirs = harness.write_sessions(
        root / job_id,
        consortium,
        job_id=job_id,
        protocol=protocol,
        owner_values=[a, b, None],
        params=params,
        decimals=DECIMALS,
        bit_length=bits,
    )
    peaks = [0.0, 0.0, 0.0]
    forkserver.warm()  # the zygote's imports, paid once before the timer (a node's standby)
    t = time.perf_counter()
    with harness.Workers(dirs) as workers:
        for i in range(len(dirs)):
            if PROFILE is None:
                workers.start(i)
            else:
                out = PROFILE / f"{protocol}-{root.name}-{job_id}-party{i}.prof"
                workers.start(i, [sys.executable, "-m", "cProfile", "-o", str(out), *WORKER_M])
        deadline = t + timeout_s
        while any(p.poll() is None for p in workers.procs.values()):
            for i, p in workers.procs.items():
                if p.poll() is None:
                    peaks[i] = max(peaks[i], _peak_mb(p.pid))
            if time.perf_counter() > deadline:
                raise TimeoutError(f"workers did not finish in {timeout_s:.0f} s")
            time.sleep(0.1)
        codes = {i: p.returncode for i, p in workers.procs.items()}
        if any(codes.values()):
            raise RuntimeError(f"workers failed: {codes}\n{workers.diagnose()}")
        parts = harness.unseal_all(dirs, consortium, job_id)
        values = registry.finalize(protocol, combine(parts))
    wall = time.perf_counter() - t
    statuses = [s for s in (harness.status_of(d) for d in dirs) if s is not None]
    return Job(
        wall,
        {k: float(v) for k, v in values.items()},
        sum(s.bytes_sent for s in statuses),
        peaks,
        [s.cpu_seconds for s in statuses],
        max((s.rounds for s in statuses), default=0),
    )


def agrees(got: dict[str, float], want: dict[str, float], what: str) -> list[str]:
    out = []
    for name, w in want.items():
        g = got.get(name, math.nan)
        if not (
            math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-6) or (math.isnan(g) and math.isnan(w))
        ):
            out.append(f"{what}: {name} = {g!r}, pandas {w!r}")
    return out


def measure(keys: int, per_key: int, prf_up_to: int, timeout_s: float) -> Row:
    from raw import run as run_raw

    row = Row(keys, keys * per_key)
    with tempfile.TemporaryDirectory(prefix="ensnif-join-") as tmp:
        root = Path(tmp)
        a, b = generate(root, keys, per_key, seed=keys)
        row.pandas_s, want = pandas_answer(a, b)
        job = {
            "decimals": DECIMALS,
            "owners": [
                {"file": str(a.path), "key": "customer", "value": "basket"},
                {"file": str(b.path), "key": "customer"},
            ],
        }
        try:
            if not RAW:
                raise RuntimeError("skipped (--no-raw)")
            raw = run_raw(root / "raw", "raw_join_fast.py", job, timeout_s)
            row.raw_s, row.raw_bytes, row.raw_mb = raw.wall, sum(raw.bytes_sent), raw.max_rss_mb
            row.raw_cpu, row.raw_rounds = raw.cpu_per_party, int(raw.outputs.get("mpc_rounds", 0))
            row.problems += agrees(raw.outputs, want, "raw")
        except (RuntimeError, TimeoutError) as exc:
            row.problems.append(f"raw failed: {exc}")
        shutil.rmtree(root / "raw", ignore_errors=True)
        try:
            job = ensnif(root, a, b, {}, timeout_s)
            row.ensnif_s, row.ensnif_bytes, row.ensnif_mb = job.wall, job.bytes_sent, job.max_rss_mb
            row.ensnif_cpu, row.ensnif_rounds = job.cpu, job.rounds
            row.problems += agrees(job.outputs, want, "ensnif")
        except (RuntimeError, TimeoutError) as exc:
            row.problems.append(f"ensnif failed: {exc}")
        if keys <= prf_up_to:
            try:
                job = ensnif(root, a, b, {"join_path": "prf-shuffle"}, timeout_s)
                row.prf_s, row.prf_bytes, row.prf_mb = job.wall, job.bytes_sent, job.max_rss_mb
                row.prf_cpu = job.cpu
                row.problems += agrees(job.outputs, want, "prf route")
            except (RuntimeError, TimeoutError) as exc:
                row.problems.append(f"prf route failed: {exc}")
    return row


def measure_group_by(keys: int, per_key: int, prf_up_to: int, timeout_s: float) -> Row:
    from raw import run as run_raw

    row = Row(keys, keys * per_key)
    with tempfile.TemporaryDirectory(prefix="ensnif-join-") as tmp:
        root = Path(tmp)
        a, b = for_group_by(*generate(root, keys, per_key, seed=keys))
        row.pandas_s, want = pandas_group_by(a, b)
        job = {
            "protocol": "join_group_by",
            "decimals": DECIMALS,
            "bit_length": harness.bit_length_for([a, b, None], DECIMALS),  # the ring's size
            "params": GROUP_PARAMS,
            "owners": [
                {"file": str(a.path), "key": "customer", "value": "basket"},
                {"file": str(b.path), "key": "customer", "group": "zip", "value": "minutes"},
            ],
        }
        try:
            if not RAW:
                raise RuntimeError("skipped (--no-raw)")
            raw = run_raw(root / "raw", "raw_join_fast.py", job, timeout_s)
            row.raw_s, row.raw_bytes, row.raw_mb = raw.wall, sum(raw.bytes_sent), raw.max_rss_mb
            row.raw_cpu, row.raw_rounds = raw.cpu_per_party, int(raw.outputs.get("mpc_rounds", 0))
            row.problems += agrees(raw.outputs, want, "raw")
        except (RuntimeError, TimeoutError) as exc:
            row.problems.append(f"raw failed: {exc}")
        shutil.rmtree(root / "raw", ignore_errors=True)
        for params, what in (({}, "ensnif"), ({"join_path": "prf-shuffle"}, "prf route")):
            if what == "prf route" and keys > prf_up_to:
                continue
            try:
                job_run = ensnif(root, a, b, {**GROUP_PARAMS, **params}, timeout_s, "join_group_by")
            except (RuntimeError, TimeoutError) as exc:
                row.problems.append(f"{what} failed: {exc}")
                continue
            got = {k: v for k, v in job_run.outputs.items() if k in want}
            row.problems += agrees(got, want, what)
            if what == "ensnif":
                row.ensnif_s, row.ensnif_bytes = job_run.wall, job_run.bytes_sent
                row.ensnif_mb, row.ensnif_cpu = job_run.max_rss_mb, job_run.cpu
                row.ensnif_rounds = job_run.rounds
            else:
                row.prf_s, row.prf_bytes = job_run.wall, job_run.bytes_sent
                row.prf_mb, row.prf_cpu = job_run.max_rss_mb, job_run.cpu
    return row


def print_table(rows: list[Row], title: str = "intersection_sum, tagged-helper route") -> None:
    def per_key(sent: int, r: Row) -> str:
        return f"{sent / (2 * r.keys):.0f}" if sent else "-"

    def mb(values: list[float]) -> str:
        return "/".join(f"{v:.0f}" for v in values) if values else "-"

    def cpu(values: list[float]) -> str:
        return "/".join(f"{v:.1f}" for v in values) if values else "-"

    def s(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.2f}"

    head = (
        f"{'keys/side':>10} {'rows/A':>9} {'pandas s':>8} {'raw s':>7} {'ensnif s':>8} "
        f"{'e/raw':>5} {'e/pd':>6} {'B/key':>6} {'raw B/key':>9} {'peak MB A/B/H':>15} "
        f"{'prf s':>7} {'prf B/key':>9} {'raw CPU A/B/H':>14} {'ensnif CPU A/B/H':>16} "
        f"{'prf CPU A/B/H':>14} {'rounds e/raw':>12}"
    )
    print(f"\n{title} (3 parties, TLS, loopback)")
    print(head)
    for r in rows:
        ratio_raw = r.ensnif_s / r.raw_s if r.raw_s == r.raw_s and r.raw_s else math.nan
        ratio_pd = r.ensnif_s / r.pandas_s if r.pandas_s else math.nan
        print(
            f"{r.keys:>10,} {r.rows_per_owner:>9,} {s(r.pandas_s):>8} {s(r.raw_s):>7} "
            f"{s(r.ensnif_s):>8} {s(ratio_raw):>5} {s(ratio_pd):>6} "
            f"{per_key(r.ensnif_bytes, r):>6} {per_key(r.raw_bytes, r):>9} "
            f"{mb(r.ensnif_mb):>15} {s(r.prf_s):>7} {per_key(r.prf_bytes, r):>9} "
            f"{cpu(r.raw_cpu):>14} {cpu(r.ensnif_cpu):>16} {cpu(r.prf_cpu):>14} "
            f"{f'{r.ensnif_rounds}/{r.raw_rounds}':>12}"
        )
        for p in r.problems:
            print(f"   ! {p[:400]}")
    print(
        "wall seconds on this (shared, loaded) machine; CPU seconds per party: the raw "
        "program's include Python start and imports, the workers' do not (the harness forks "
        "them from a pre-imported process, as a node's standby; ENSNIF_TEST_FORK=0 or "
        "--profile starts them cold); e = ensnif, pd = pandas, B/key = bytes sent by all "
        "parties over the keys of both sides; prf = the same job with join_path = "
        "prf-shuffle; rounds = the most send bursts after a wait of any party (loopback: a "
        "lower bound of the depth)"
    )


def run(
    sizes: tuple[int, ...],
    per_key: int,
    prf_up_to: int,
    timeout_s: float,
    only: str | None = None,
) -> list[Row]:
    every = []
    tables = (
        ("intersection_sum", measure, "intersection_sum, tagged-helper route"),
        ("join_group_by", measure_group_by, "join_group_by, aligned tagged-helper route"),
    )
    for protocol, how, title in tables:
        if only not in (None, protocol):
            continue
        rows = []
        for keys in sizes:
            print(f"== {protocol}: {keys:,} distinct keys a side", flush=True)
            row = how(keys, per_key, prf_up_to, timeout_s)
            print(
                f"   pandas {row.pandas_s:.2f} s, raw {row.raw_s:.2f} s, "
                f"ensnif {row.ensnif_s:.2f} s"
                + (f", prf route {row.prf_s:.2f} s" if row.prf_s == row.prf_s else ""),
                flush=True,
            )
            rows.append(row)
        print_table(rows, title)
        every += rows
    return every


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--rows-per-key", type=int, default=3, help="A's rows per key")
    ap.add_argument("--prf-up-to", type=int, default=33_000, help="also the PRF route up to")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--only", choices=("intersection_sum", "join_group_by"), default=None)
    ap.add_argument("--no-raw", action="store_true", help="skip the raw MPyC baseline")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile every worker here")
    args = ap.parse_args()
    global PROFILE, RAW
    RAW = not args.no_raw
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE = args.profile.resolve()
    rows = run(tuple(args.keys), args.rows_per_key, args.prf_up_to, args.timeout, args.only)
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

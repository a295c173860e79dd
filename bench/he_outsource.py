"""Outsourced datasets (docs/homomorphic.md, "Outsourced datasets"): the sum and per-bin
counts and sums of N outsourced values (BFV at the helper) joined with a live owner's N
values in a three-party MPC job, against the same job with both columns at live owners.

Prints, in one run: (a) plaintext numpy over both columns, (b) a minimal hand-written
TenSEAL script (encrypt, add the chunks, decrypt; no masking, no MPC), (c) the Ensnif
flow (tests/protocols/he_outsourced_run.py: three real MPyC processes, the owner's client
in this process): the owner's one-off encryption, the helper's masking, the owner's
decrypt-share-seal, the MPC conversion, the whole job's wall time, and the same job over
live owners only. "extra" is (c) minus the live job: the price of an owner with no node.
Every answer is checked against numpy.

    python bench/he_outsource.py [--rows 100000] [--bins 8] [--repeat 3]

The rows → ridge case (after the totals; ``--no-ridge`` skips it, ``--ridge-only`` runs it
alone; ``make bench`` calls ``report`` only, see bench/run.py): the horizontal ridge regression
with one live owner and one outsourced owner of ``--ridge-rows`` × ``--features`` rows each
(default 100,000 × 10), through the real worker (tests/protocols/he_rows_run.py: the
outsourced rows converted from BFV row by row, their Gram computed in MPC), against
scikit-learn's Ridge on the same rows and the same job with both owners live
(tests/protocols/harness.py). Prints the time split (helper masking, owner's client, MPC),
the bytes (stored, the masked batch, the sealed shares, what each party sent), every
worker's CPU seconds and peak RSS, and the load average.

    python bench/he_outsource.py --ridge-only [--ridge-rows 100000] [--features 10]

The join case (``--join-only`` runs it alone, ``--no-join`` skips it): intersection_sum on the
PRF route with a live first side (``--join-rows`` rows of baskets over customer ids, several
per customer) and an outsourced second side (``--join-rows`` distinct customer ids encrypted
as key limbs, about half of them the live side's), against pandas and the same job with
both sides live (tests/protocols/harness.py), with the same time split, CPU seconds per
party and the load average.

    python bench/he_outsource.py --join-only [--join-rows 10000]

``--join-protocol join_group_by | join_correlation | join_moments`` runs that join instead
(the outsourced second side one row per key: its key, an int group code 1–4 and its value
for the group-by, its value for the others; groups 1–3 listed), checked against the same
job with both sides live (equal outputs; r within 1e-6) and pandas' matched count.

    python bench/he_outsource.py --join-only --join-protocol join_group_by [--join-rows 10000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from ensnif_mpc.he import bfv  # noqa: E402
from tests.protocols.he_outsourced_run import DECIMALS, partials, run  # noqa: E402

ROWS = 100_000
QUICK_ROWS = 20_000
RIDGE_ROWS = 100_000
JOIN_ROWS = 10_000
JOIN_PROTOCOL = "intersection_sum"
OTHER_JOINS = ("join_group_by", "join_correlation", "join_moments")
GROUPS = ["1", "2", "3"]


def edges_for(bins: int) -> tuple[float, ...]:
    return tuple(float(e) for e in np.linspace(0.0, 1000.0, bins + 1))


def draw(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out: np.ndarray = rng.integers(0, 100_000, size=rows, endpoint=True) / 10**DECIMALS
    return out


def numpy_answer(values: np.ndarray, edges: tuple[float, ...]) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    answer = [int(v) for v in partials(values, edges)]
    return time.perf_counter() - t0, answer


def raw_tenseal(values: np.ndarray, edges: tuple[float, ...]) -> tuple[float, float, list[int]]:
    """The hand-written minimum: encrypt every series, add its chunks, decrypt, sum slots.
    Returns (encrypt seconds, add + decrypt seconds, the answer)."""
    ctx = bfv.new_secret_context()
    grid = np.rint(values * 10**DECIMALS).astype(np.int64)
    index = np.searchsorted(np.rint(np.array(edges[:-1]) * 10**DECIMALS), grid, side="right") - 1
    index = np.minimum(index, len(edges) - 2)
    series = [grid]
    for b in range(len(edges) - 1):
        member = (index == b).astype(np.int64)
        series += [member, member * grid]
    n = bfv.POLY_DEGREE
    t0 = time.perf_counter()
    import tenseal as ts

    padded = [np.pad(s, (0, -len(s) % n)) for s in series]  # whole ciphertexts of n slots
    encrypted = [
        [ts.bfv_vector(ctx, s[i : i + n].tolist()) for i in range(0, len(s), n)] for s in padded
    ]
    t1 = time.perf_counter()
    answer = []
    for chunks in encrypted:
        total = chunks[0]
        for c in chunks[1:]:
            total += c
        answer.append(int(np.asarray(total.decrypt(), dtype=object).sum()))
    return t1 - t0, time.perf_counter() - t1, answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=ROWS, help="outsourced rows (and live rows)")
    ap.add_argument("--bins", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each job (best shown)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, one run")
    ap.add_argument("--ridge-only", action="store_true", help="only the rows → ridge case")
    ap.add_argument("--no-ridge", action="store_true", help="skip the rows → ridge case")
    ap.add_argument("--ridge-rows", type=int, default=RIDGE_ROWS, help="rows per owner")
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--join-only", action="store_true", help="only the outsourced join case")
    ap.add_argument("--no-join", action="store_true", help="skip the outsourced join case")
    ap.add_argument("--join-rows", type=int, default=JOIN_ROWS, help="rows per side")
    ap.add_argument(
        "--join-protocol", default="intersection_sum", choices=(JOIN_PROTOCOL, *OTHER_JOINS)
    )
    args = ap.parse_args()
    code = 0
    if args.join_only:
        rows = QUICK_ROWS // 10 if args.quick else args.join_rows
        if args.join_protocol != JOIN_PROTOCOL:
            return other_join_report(args.join_protocol, rows)
        return join_report(rows)
    if not args.ridge_only:
        code |= report(
            QUICK_ROWS if args.quick else args.rows, args.bins, 1 if args.quick else args.repeat
        )
    if not args.no_ridge:
        rows = QUICK_ROWS if args.quick else args.ridge_rows
        code |= ridge_report(rows, args.features)
    if not (args.no_join or args.ridge_only):
        code |= join_report(QUICK_ROWS // 10 if args.quick else args.join_rows)
    return code


def report(rows: int, bins: int, repeat: int) -> int:
    edges = edges_for(bins)
    live, outsourced = draw(rows, 1), draw(rows, 2)
    plain_s, want = numpy_answer(np.concatenate([live, outsourced]), edges)
    raw_enc, raw_eval, raw_answer = raw_tenseal(outsourced, edges)
    problems = []
    if [a + b for a, b in zip(raw_answer, partials(live, edges), strict=True)] != want:
        problems.append("raw TenSEAL answer differs from numpy")
    ours, base = [], []
    with tempfile.TemporaryDirectory(prefix="ensnif-he-outsource-") as tmp:
        for i in range(repeat):
            got = run(Path(tmp) / f"he{i}", live, outsourced, edges)
            if got.totals != want:
                problems.append(f"run {i}: outsourced job differs from numpy")
            ours.append(got)
            alone = run(Path(tmp) / f"live{i}", live, outsourced, edges, mode="live")
            if alone.totals != want:
                problems.append(f"run {i}: live job differs from numpy")
            base.append(alone)
        size = sum(p.stat().st_size for p in (Path(tmp) / "he0" / "probe" / "dataset").rglob("*"))
    best, live_best = min(ours, key=lambda r: r.wall_s), min(base, key=lambda r: r.wall_s)
    helper = best.timing.get(2, {})
    series = 1 + 2 * bins
    print(f"== outsourced datasets: {rows:,} outsourced + {rows:,} live values, {bins} bins")
    print(f"   outputs: sum + per-bin count and sum = {series}; ciphertexts of 8192 slots")
    print(f"   (a) plaintext numpy                          {plain_s * 1e3:10.1f} ms")
    print(f"   (b) raw TenSEAL: encrypt {raw_enc:.2f} s, add+decrypt {raw_eval:.2f} s")
    print(f"   (c) owner's encryption (one-off)             {best.encrypt_s:10.2f} s")
    print(
        f"       stored at the helper                     {size / 1e6:10.1f} MB "
        f"({size / rows / 1e3:.1f} kB per row)"
    )
    print(f"       helper accepts it (verify, sum, one-off)  {best.accept_s:10.2f} s")
    print(f"       helper per job: load sums, mask, flood   {helper.get('helper_mask', 0):10.2f} s")
    print(f"       owner's client: decrypt, share, seal     {best.owner_s:10.2f} s")
    mpc_s = helper.get("conversion", 0) + helper.get("live_and_open", 0)
    print(f"       MPC after connecting: conversion, live input, open {mpc_s:6.2f} s")
    live_mpc = live_best.timing.get(2, {}).get("live_and_open", 0)
    print(f"       the same in the live-only job              {live_mpc:10.2f} s")
    print(f"       whole job, outsourced (best of {repeat})      {best.wall_s:10.2f} s")
    print(f"       same job, both owners live (best of {repeat}) {live_best.wall_s:10.2f} s")
    print(
        f"       extra for the outsourced owner           {best.wall_s - live_best.wall_s:10.2f} s"
        "   (goal ≤ 3 s)"
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"       peak RSS of a party process              {peak:10.0f} MB")
    for p in problems:
        print(f"   PROBLEM: {p}")
    return 1 if problems else 0


def _ridge_tables(rows: int, features: int, seed: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    from ensnif_mpc.data.schema import Column
    from tests.protocols.harness import OwnerTable
    from tests.protocols.he_rows_run import OutsourcedTable

    rng = np.random.default_rng(seed)
    names = [f"x{j}" for j in range(features)]
    beta = np.linspace(-2.0, 2.0, features)
    x = np.round(rng.uniform(-10.0, 10.0, size=(rows, features)), DECIMALS)
    y = np.clip(np.round(3.0 + x @ beta + rng.normal(0, 2.0, rows), DECIMALS), -500.0, 500.0)
    columns = tuple(Column(n, "float", -10.0, 10.0, DECIMALS) for n in names)
    columns += (Column("y", "float", -500.0, 500.0, DECIMALS),)
    data = {**{n: x[:, j] for j, n in enumerate(names)}, "y": y}
    args = (data, columns, {"label": "y"})
    live = OwnerTable(*args, lists={"features": names})
    return live, OutsourcedTable(*args, lists={"features": names}), x, y


def ridge_report(rows: int, features: int, ridge: float = 5.0) -> int:
    """The rows → ridge case: one live owner and one outsourced, ``rows`` × ``features``
    each, exact release, against scikit-learn and the same job with both owners live."""
    import os

    from sklearn.linear_model import Ridge

    from tests.protocols.harness import run_parties
    from tests.protocols.he_rows_run import run as run_outsourced

    live, outsourced, x_a, y_a = _ridge_tables(rows, features, 21)
    _, other, x_b, y_b = _ridge_tables(rows, features, 22)
    outsourced = type(outsourced)(other.data, other.columns, other.roles, lists=other.lists)
    x, y = np.vstack([x_a, x_b]), np.concatenate([y_a, y_b])
    t0 = time.perf_counter()
    model = Ridge(alpha=ridge).fit(x, y)
    plain_s = time.perf_counter() - t0
    want = np.array([model.intercept_, *model.coef_])
    params = {"ridge": ridge}
    problems = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ensnif-he-ridge-") as tmp:
        got = run_outsourced(
            Path(tmp), "linear_regression", live, outsourced, params,
            decimals=DECIMALS, job_id="benchrows", timeout=1800.0,
        )  # fmt: skip
        t0 = time.perf_counter()
        base = run_parties(
            Path(tmp), "linear_regression", [live, live_copy(other), None], params,
            decimals=DECIMALS, job_id="benchlive", timeout=1800.0,
        )  # fmt: skip
        base_wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    for name, run_outputs in (("outsourced", got.outputs), ("live", base.outputs)):
        coefs = np.array([float(run_outputs[f"coef[{j}]"]) for j in range(features + 1)])
        err = float(np.max(np.abs(coefs - want) / np.maximum(1.0, np.abs(want))))
        if err > 1e-6:
            problems.append(f"{name} ridge coefficients differ from scikit-learn's ({err:.2e})")
        print(f"   {name} job: max relative coefficient error vs scikit-learn {err:.1e}")
    print(
        f"== outsourced rows → horizontal ridge (λ = {ridge}): {rows:,} live + {rows:,} "
        f"outsourced rows × {features} features, exact release"
    )
    print(f"   load average before / after: {load[0]:.1f} / {load_after[0]:.1f} (2 cores)")
    print(f"   (a) scikit-learn Ridge on all rows           {plain_s * 1e3:10.1f} ms")
    print(f"   (c) owner's encryption (one-off, {features + 1} columns) {got.encrypt_s:10.2f} s")
    print(f"       stored at the helper                     {got.stored_bytes / 1e6:10.1f} MB")
    print(f"       helper: verify, mask, flood every row    {got.helper_mask_s:10.2f} s")
    print(
        f"       owner's client: decrypt, share, seal     {got.owner_s:10.2f} s "
        f"(CPU {got.owner_cpu_s:.2f} s)"
    )
    print(f"       masked batch to the owner                {got.batch_bytes / 1e6:10.1f} MB")
    print(f"       sealed shares back (all parties)         {got.sealed_bytes / 1e6:10.1f} MB")
    print(f"       MPC after the owner answered             {got.mpc_s:10.2f} s")
    print(f"       whole job, outsourced                    {got.wall_s:10.2f} s")
    print(f"       same job, both owners live               {base_wall:10.2f} s")
    for i in sorted(got.cpu_s):
        live_cpu = base.statuses[i].cpu_seconds
        print(
            f"       party {i}: CPU {got.cpu_s[i]:7.2f} s (live job {live_cpu:6.2f} s), "
            f"sent {got.bytes_sent[i] / 1e6:7.1f} MB, peak RSS {got.peak_rss_mb[i]:6.0f} MB"
        )
    for p in problems:
        print(f"   PROBLEM: {p}")
    return 1 if problems else 0


def _join_tables(rows: int, seed: int) -> tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray]:
    from ensnif_mpc.data.schema import Column
    from tests.protocols.harness import OwnerTable
    from tests.protocols.he_rows_run import OutsourcedTable

    rng = np.random.default_rng(seed)
    customers = max(1, rows // 2)
    cust = rng.integers(0, customers, size=rows) * 13 + 10**9  # ids far beyond 2^17
    amount = rng.integers(0, 100_000, size=rows) / 100
    key = Column("cust", "int", 0, 2 * 10**9)
    live = OwnerTable(
        {"cust": cust, "amount": amount},
        (key, Column("amount", "float", 0.0, 1000.0, DECIMALS)),
        {"key": "cust", "value": "amount"},
    )
    ids = rng.permutation(np.arange(0, 2 * customers) * 13 + 10**9)[:rows]
    outsourced = OutsourcedTable({"cust": ids}, (key,), {"key": "cust"}, keys=("cust",))
    return live, outsourced, cust, amount, ids


def join_report(rows: int) -> int:
    """The outsourced join case: intersection_sum, a live first side and an outsourced
    second side of ``rows`` rows each, exact release, PRF route, against pandas and the same
    job with both sides live."""
    import os
    from fractions import Fraction

    import pandas as pd

    from tests.protocols.harness import OwnerTable, run_parties
    from tests.protocols.he_rows_run import run as run_outsourced

    live, outsourced, cust, amount, ids = _join_tables(rows, 31)
    t0 = time.perf_counter()
    frame = pd.DataFrame({"cust": cust, "cents": np.rint(amount * 100).astype(np.int64)})
    hit = frame[frame["cust"].isin(pd.Series(ids))]
    want = {
        "keys": Fraction(int(hit["cust"].nunique())),
        "rows": Fraction(len(hit)),
        "sum": Fraction(int(hit["cents"].sum()), 100),
    }
    plain_s = time.perf_counter() - t0
    params = {"join_path": "prf-shuffle"}
    as_live = OwnerTable(outsourced.data, outsourced.columns, outsourced.roles)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ensnif-he-join-") as tmp:
        got = run_outsourced(
            Path(tmp), "intersection_sum", live, outsourced, params,
            decimals=DECIMALS, job_id="benchjoin", timeout=1800.0,
        )  # fmt: skip
        t0 = time.perf_counter()
        base = run_parties(
            Path(tmp), "intersection_sum", [live, as_live, None], params,
            decimals=DECIMALS, job_id="benchjoinlive", timeout=1800.0,
        )  # fmt: skip
        base_wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    problems = [
        f"{name}: {k} differs from pandas"
        for name, out in (("outsourced", got.outputs), ("live", base.outputs))
        for k in want
        if out[k] != want[k]
    ]
    print(
        f"== outsourced join: intersection_sum, {rows:,} live rows ({int(want['keys']):,} "
        f"matching keys) and {rows:,} outsourced keys, exact release, PRF route"
    )
    print(f"   load average before / after: {load[0]:.1f} / {load_after[0]:.1f} (2 cores)")
    print(f"   (a) pandas isin + sums                        {plain_s * 1e3:10.1f} ms")
    print(f"   (c) owner's encryption (one-off, 8 key limbs)  {got.encrypt_s:10.2f} s")
    print(f"       stored at the helper                      {got.stored_bytes / 1e6:10.1f} MB")
    print(f"       helper: verify, mask, flood every limb     {got.helper_mask_s:10.2f} s")
    print(
        f"       owner's client: decrypt, share, seal      {got.owner_s:10.2f} s "
        f"(CPU {got.owner_cpu_s:.2f} s)"
    )
    print(f"       masked batch to the owner                 {got.batch_bytes / 1e6:10.1f} MB")
    print(f"       sealed shares back (all parties)          {got.sealed_bytes / 1e6:10.1f} MB")
    print(f"       MPC after the owner answered              {got.mpc_s:10.2f} s")
    print(f"       whole job, outsourced                     {got.wall_s:10.2f} s")
    print(f"       same job, both sides live                 {base_wall:10.2f} s")
    for i in sorted(got.cpu_s):
        live_cpu = base.statuses[i].cpu_seconds
        print(
            f"       party {i}: CPU {got.cpu_s[i]:7.2f} s (live job {live_cpu:6.2f} s), "
            f"sent {got.bytes_sent[i] / 1e6:7.1f} MB, peak RSS {got.peak_rss_mb[i]:6.0f} MB"
        )
    for p in problems:
        print(f"   PROBLEM: {p}")
    return 1 if problems else 0


def _other_tables(protocol: str, rows: int, seed: int) -> tuple[Any, Any, int]:
    """A live first side (``rows`` rows over rows/2 customers, several per customer) and
    an outsourced second side (``rows`` distinct customers, about half the live side's);
    returns them and pandas' number of matched keys."""
    from ensnif_mpc.data.schema import Column
    from tests.protocols.harness import OwnerTable
    from tests.protocols.he_rows_run import OutsourcedTable

    live, _, cust, amount, ids = _join_tables(rows, seed)
    rng = np.random.default_rng(seed + 1)
    key = Column("cust", "int", 0, 2 * 10**9)
    value = Column("amount", "float", 0.0, 1000.0, DECIMALS)
    out_amount = rng.integers(0, 100_000, size=len(ids)) / 100
    if protocol == "join_group_by":
        live = OwnerTable({"cust": cust}, (key,), {"key": "cust"})
        data = {"cust": ids, "grp": rng.integers(1, 5, size=len(ids)), "amount": out_amount}
        columns = (key, Column("grp", "int", 0, 9), value)
        roles = {"key": "cust", "group": "grp", "value": "amount"}
    else:
        data, columns, roles = {"cust": ids, "amount": out_amount}, (key, value), live.roles
    outsourced = OutsourcedTable(data, columns, roles, keys=("cust",))
    return live, outsourced, len(set(cust.tolist()) & set(ids.tolist()))


def other_join_report(protocol: str, rows: int) -> int:
    """``--join-protocol``: join_group_by, join_correlation or join_moments with an
    outsourced second side against the same job with both sides live (exact, PRF route)."""
    import os

    from tests.protocols.harness import run_parties
    from tests.protocols.he_rows_run import run as run_outsourced

    live, outsourced, matched = _other_tables(protocol, rows, 37)
    params: dict[str, Any] = {"join_path": "prf-shuffle"}
    if protocol == "join_group_by":
        params["groups"] = GROUPS
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ensnif-he-join-") as tmp:
        got = run_outsourced(
            Path(tmp), protocol, live, outsourced, params,
            decimals=DECIMALS, job_id="benchjoin", timeout=1800.0,
        )  # fmt: skip
        t0 = time.perf_counter()
        base = run_parties(
            Path(tmp), protocol, [live, live_copy(outsourced), None], params,
            decimals=DECIMALS, job_id="benchjoinlive", timeout=1800.0,
        )  # fmt: skip
        base_wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    problems = []
    for k, v in base.outputs.items():
        mine = got.outputs.get(k)
        if k == "r":
            same = mine is not None and abs(float(mine) - float(v)) < 1e-6
        else:
            same = mine == v or (isinstance(v, float) and np.isnan(v) and np.isnan(mine))
        if not same:
            problems.append(f"{k}: outsourced {mine} vs live {v}")
    counted = None
    if protocol == "join_group_by":
        counted = sum(int(got.outputs[f"count[{g}]"]) for g in GROUPS)
    if protocol != "join_group_by" and int(got.outputs["pairs"]) != matched:
        problems.append(f"pairs {got.outputs['pairs']} vs pandas {matched}")
    print(
        f"== outsourced join: {protocol}, {rows:,} live rows and {rows:,} outsourced rows "
        f"({matched:,} matching keys), exact release, PRF route"
    )
    if counted is not None:
        print(f"   matched rows in the listed groups: {counted:,}")
    print(f"   load average before / after: {load[0]:.1f} / {load_after[0]:.1f} (2 cores)")
    print(f"   owner's encryption (one-off)                  {got.encrypt_s:10.2f} s")
    print(f"   helper: verify, mask, flood                   {got.helper_mask_s:10.2f} s")
    print(
        f"   owner's client: decrypt, share, seal          {got.owner_s:10.2f} s "
        f"(CPU {got.owner_cpu_s:.2f} s)"
    )
    print(f"   masked batch to the owner                     {got.batch_bytes / 1e6:10.1f} MB")
    print(f"   MPC after the owner answered                  {got.mpc_s:10.2f} s")
    print(f"   whole job, outsourced                         {got.wall_s:10.2f} s")
    print(f"   same job, both sides live                     {base_wall:10.2f} s")
    for i in sorted(got.cpu_s):
        print(
            f"   party {i}: CPU {got.cpu_s[i]:7.2f} s (live job "
            f"{base.statuses[i].cpu_seconds:6.2f} s), sent {got.bytes_sent[i] / 1e6:7.1f} MB, "
            f"peak RSS {got.peak_rss_mb[i]:6.0f} MB"
        )
    for p in problems:
        print(f"   PROBLEM: {p}")
    return 1 if problems else 0


def live_copy(table: Any) -> Any:
    """The outsourced owner's table as a live owner's (the baseline job)."""
    from tests.protocols.harness import OwnerTable

    return OwnerTable(table.data, table.columns, table.roles, lists=table.lists)


if __name__ == "__main__":
    sys.exit(main())

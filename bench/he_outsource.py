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
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from ensnif_mpc.he import bfv  # noqa: E402
from tests.protocols.he_outsourced_run import DECIMALS, partials, run  # noqa: E402

ROWS = 100_000
QUICK_ROWS = 20_000


def edges_for(bins: int) -> tuple[float, ...]:
    return tuple(float(e) for e in np.linspace(0.0, 1000.0, bins + 1))


def draw(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 100_000, size=rows, endpoint=True) / 10**DECIMALS


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
    args = ap.parse_args()
    return report(
        QUICK_ROWS if args.quick else args.rows, args.bins, 1 if args.quick else args.repeat
    )


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


if __name__ == "__main__":
    sys.exit(main())

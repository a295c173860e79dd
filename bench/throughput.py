"""Throughput programs (protocols/ports/throughput.py, after SCALE-MAMBA's mult_demo): secure
multiplications, comparisons and random bits per second, three parties over TLS on loopback.

For each kind, two batch sizes n1 < n2 run (a) in numpy, (b) as a minimal raw MPyC program
with the same secure type (bench/raw_throughput.py), (c) as the Ensnif program under the
test harness (three real ``python -m protocols.worker`` processes with per-job certificates,
output shares sealed to the analyst and combined). The rate is (n2 − n1) / (t2 − t1): the
fixed cost of a run (process start, TLS connection, sealing) cancels out and is printed
separately as the time of the n1 run. Every answer is checked against the reference.

    python bench/throughput.py [--sizes 20000 200000] [--kinds mul lt bits]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from protocols.ports.throughput import pairs  # noqa: E402
from tests.protocols import harness  # noqa: E402

VALUES = np.arange(1, 38)
SIZES: dict[str, tuple[int, ...]] = {
    "mul": (20_000, 200_000),
    "lt": (2_000, 20_000),
    "bits": (20_000, 200_000),
}
QUICK: dict[str, tuple[int, ...]] = {
    "mul": (2_000, 20_000),
    "lt": (500, 5_000),
    "bits": (2_000, 20_000),
}


def numpy_rate(kind: str, n: int) -> float:
    t = time.perf_counter()
    ia, ib = pairs(len(VALUES), n)
    a, b = VALUES[ia], VALUES[ib]
    if kind == "bits":
        bits = np.random.default_rng().integers(0, 2, n)
        _ = int((bits * bits - bits).sum())
    else:
        _ = int((a * b).sum()) if kind == "mul" else int((a < b).sum())
    return n / max(time.perf_counter() - t, 1e-9)


def expected(kind: str, n: int) -> int:
    if kind == "bits":
        return 0
    ia, ib = pairs(len(VALUES), n)
    a, b = VALUES[ia].astype(object), VALUES[ib].astype(object)
    return int(sum(a * b)) if kind == "mul" else int((VALUES[ia] < VALUES[ib]).sum())


def ours(work: Path, kind: str, n: int) -> tuple[float, int]:
    t = time.perf_counter()
    run = harness.run_parties(
        work,
        "throughput",
        [VALUES, None, None],
        {"kind": kind, "n": n},
        lower=0,
        upper=100,
        job_id=f"{kind}{n}",
        timeout=1800,
    )
    return time.perf_counter() - t, int(run.outputs["result"])


def raw(work: Path, kind: str, n: int) -> tuple[float, int, list[int]]:
    import raw as rawrun

    bits = harness.bit_length_for([harness.as_table(VALUES, 0, 100, 0), None, None], 0)
    r = rawrun.run(
        work / f"raw-{kind}{n}",
        "raw_throughput.py",
        {"kind": kind, "n": n, "bit_length": bits},
        1800,
    )
    return r.wall, int(r.outputs["result"]), r.bytes_sent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--sizes", nargs=2, type=int, metavar=("N1", "N2"), help="for every kind")
    args = ap.parse_args()
    sizes = {k: tuple(args.sizes) for k in SIZES} if args.sizes else SIZES
    return 0 if run(args.kinds, sizes) else 1


def run(kinds: list[str], sizes: dict[str, tuple[int, ...]] = SIZES) -> bool:  # noqa: B006
    """Print the table (batch sizes n1, n2 per kind); False if any answer was wrong."""
    problems = []
    print("== throughput programs (3 parties, TLS on loopback): operations per second")
    print(
        f"{'kind':5} {'n1→n2':>16} {'numpy/s':>12} {'raw MPyC/s':>12} {'ensnif/s':>12} "
        f"{'ensnif/raw':>10} {'fixed raw':>9} {'fixed ours':>10} {'raw B/op':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="ensnif-throughput-") as tmp:
        work = Path(tmp)
        for kind in kinds:
            n1, n2 = sizes[kind]
            times: dict[str, list[float]] = {"raw": [], "ours": []}
            sent: list[list[int]] = []
            for n in (n1, n2):
                want = expected(kind, n)
                rt, rv, rb = raw(work, kind, n)
                ot, ov = ours(work, kind, n)
                times["raw"].append(rt)
                times["ours"].append(ot)
                sent.append(rb)
                for who, got in (("raw", rv), ("ensnif", ov)):
                    if got != want:
                        problems.append(f"{kind} n={n}: {who} gave {got}, want {want}")
            rate = {k: (n2 - n1) / max(v[1] - v[0], 1e-9) for k, v in times.items()}
            per_op = (sum(sent[1]) - sum(sent[0])) / (n2 - n1)
            print(
                f"{kind:5} {f'{n1:,}→{n2:,}':>16} {numpy_rate(kind, n2):12,.0f} "
                f"{rate['raw']:12,.0f} {rate['ours']:12,.0f} {rate['ours'] / rate['raw']:10.2f} "
                f"{times['raw'][0]:8.2f}s {times['ours'][0]:9.2f}s {per_op:8.0f}",
                flush=True,
            )
    for p in problems:
        print("PROBLEM:", p)
    return not problems


if __name__ == "__main__":
    sys.exit(main())

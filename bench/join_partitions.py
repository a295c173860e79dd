"""Parallel sessions for a big private join, measured raw (issue 15's goal 4; not wired into
the orchestration): intersection_sum at N distinct keys a side split into k disjoint
partitions by a keyed hash of the join key, each partition one raw MPyC session of the
tagged-helper route (bench/raw_join_fast.py, three processes over TLS), the k sessions at
once. Prints, per k, the wall time until the last session ends, the CPU seconds summed over
every process of every session and per party, the bytes, and checks that the partitions'
answers add up to pandas' (they are sums over disjoint key sets).

The partition of a key is the keyed hash HMAC-SHA256_P(key) mod k under a key P the two
owners share and the helper never holds (here one fixed per run; in a job it would be drawn
fresh like the tag key). Each partition's sizes and match count are then what the helper
learns of a session: a split of the totals by a function it cannot evaluate, which it can
simulate from the totals (a multinomial split), so k sessions reveal what one session does.

    python bench/join_partitions.py [--keys 330000] [--k 1 2 4]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import math
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402


def partition_of(key_bytes: bytes, k: int, secret: bytes) -> int:
    return int.from_bytes(hmac.new(secret, key_bytes, hashlib.sha256).digest()[:8], "big") % k


def split(path: Path, k: int, secret: bytes, out: Path) -> list[Path]:
    """The owner's CSV as k files by the keyed hash of its key column (the first)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    keys = table.column("customer").to_pylist()
    parts = np.array([partition_of(str(key).encode(), k, secret) for key in keys])
    paths = []
    for p in range(k):
        target = out / f"{path.stem}.{p}.csv"
        pacsv.write_csv(table.filter(pa.array(parts == p)), target)
        paths.append(target)
    return paths


def main() -> int:
    import join_fast
    from raw import run as run_raw

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=330_000)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    problems = 0
    with tempfile.TemporaryDirectory(prefix="ensnif-partitions-") as tmp:
        root = Path(tmp)
        a, b = join_fast.generate(root, args.keys, 3, seed=args.keys)
        _, want = join_fast.pandas_answer(a, b)
        print(f"intersection_sum at {args.keys:,} keys a side as k raw sessions at once")
        print(
            f"{'k':>3} {'wall s':>8} {'CPU s all':>10} {'CPU s A/B/H (sum over sessions)':>32} "
            f"{'B/key':>6} ok"
        )
        for k in args.k:
            secret = secrets.token_bytes(32)
            work = root / f"k{k}"
            work.mkdir()
            files = [split(t.path, k, secret, work) for t in (a, b)]
            jobs = [
                {
                    "decimals": join_fast.DECIMALS,
                    "owners": [
                        {"file": str(files[0][p]), "key": "customer", "value": "basket"},
                        {"file": str(files[1][p]), "key": "customer"},
                    ],
                }
                for p in range(k)
            ]
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=k) as pool:
                futures = [
                    pool.submit(run_raw, work / f"s{p}", "raw_join_fast.py", job, args.timeout)
                    for p, job in enumerate(jobs)
                ]
                runs = [f.result() for f in futures]
            wall = time.perf_counter() - start
            per_party = np.sum([r.cpu_per_party for r in runs], axis=0)
            sent = sum(sum(r.bytes_sent) for r in runs)
            got = {
                name: sum(float(r.outputs[name]) for r in runs) for name in ("keys", "rows", "sum")
            }
            ok = all(math.isclose(got[n], want[n], rel_tol=1e-9, abs_tol=1e-6) for n in got)
            problems += not ok
            print(
                f"{k:>3} {wall:>8.2f} {per_party.sum():>10.2f} "
                f"{'/'.join(f'{v:.1f}' for v in per_party):>32} {sent / (2 * args.keys):>6.0f} "
                f"{'✓' if ok else f'✗ {got} != {want}'}",
                flush=True,
            )
    print(
        "wall: until the last session ends; CPU: every process of every session, Python start "
        "and imports included (each session is three fresh processes)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The two slot layouts for encrypted linear scoring, measured (docs/homomorphic.md, "Packing").

- ``column``: one ciphertext per feature, the rows in the slots (4096 rows a batch at
  N = 8192). z = Σ_j w_j·ct_j + b: plaintext-scalar products and additions only, no
  rotation, so no Galois keys; the public context holds relinearization keys only.
- ``row``: one ciphertext per row, the features in the slots. w·x is TenSEAL's ``dot``:
  a slot-wise product, then log2(slots) rotations to sum, so the context carries Galois
  keys (tens of MB).
- ``blocked`` (only with ``--layouts blocked``: it takes minutes): 128 rows a ciphertext in
  blocks of 32 slots, w·x by TenSEAL's vector-matrix product against a block-diagonal
  matrix (public-key context: TenSEAL's ``mm`` needs an encryptor at the evaluator).

Each layout runs in its own process, so its peak memory (VmHWM) is its own. Printed per
layout: rows/s at the model owner (deserialize and evaluate), ciphertext bytes per row,
the public context's size, the owner's peak RSS, the error against numpy.

    python bench/he_packing.py [--rows 8192] [--layouts column row]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = {"column": 8192, "row": 64, "blocked": 128}  # the slow layouts on fewer rows
FEATURES = 20


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measure(layout: str, rows: int) -> dict[str, Any]:
    import tenseal as ts

    from ensnif_mpc.he import ckks, scoring

    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (rows, FEATURES))
    w = rng.normal(0, 0.25, FEATURES)
    ref = x @ w + 0.1
    params = ckks.LOGISTIC  # the same modulus chain as logistic scoring
    if layout == "column":
        ctx = ckks.new_context(params)
        public = ckks.public_bytes(ctx)
        digest = ckks.context_hash(public)
        model = scoring.Model("m", "linear", tuple(w), 0.1, (-1.0, 1.0))
        plan = scoring.batches(rows, params.slots)
        batches = [ckks.encrypt_columns(ctx, digest, x[s : s + n].T) for s, n in plan]
        sent = sum(len(b) for blobs in batches for b in blobs)
        t = time.perf_counter()
        owner = ckks.load_public(public, params=params)
        kernel = scoring.Kernel(owner, params)  # the logistic set's chain, a linear model
        outs = [
            scoring.evaluate(model, None, owner, digest, blobs, n, kernel)
            for blobs, (_, n) in zip(batches, plan, strict=True)
        ]
        seconds = time.perf_counter() - t
        got = np.concatenate(
            [v[:n] for v, (_, n) in zip(ckks.decrypt(ctx, digest, outs), plan, strict=True)]
        )
    else:
        symmetric = layout == "row"
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
            encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC
            if symmetric
            else ts.ENCRYPTION_TYPE.ASYMMETRIC,
            n_threads=1,
        )
        ctx.global_scale = float(2**params.scale_bits)
        ctx.generate_relin_keys()
        ctx.generate_galois_keys()
        public = ctx.serialize(
            save_public_key=not symmetric,
            save_secret_key=False,
            save_galois_keys=True,
            save_relin_keys=True,
        )
        if layout == "row":
            blobs = [ts.ckks_vector(ctx, r).serialize() for r in x]
            sent = sum(map(len, blobs))
            t = time.perf_counter()
            owner = ts.context_from(public, n_threads=1)
            outs = [ts.ckks_vector_from(owner, b).dot(w.tolist()).serialize() for b in blobs]
            seconds = time.perf_counter() - t
            got = np.array([ts.ckks_vector_from(ctx, o).decrypt()[0] for o in outs])
        else:
            block, per = 32, params.slots // 32
            padded = np.zeros((rows, block))
            padded[:, :FEATURES] = x
            matrix = np.zeros((per * block, per))
            for i in range(per):
                matrix[i * block : i * block + FEATURES, i] = w
            blobs = [
                ts.ckks_vector(ctx, padded[s : s + per].ravel()).serialize()
                for s in range(0, rows, per)
            ]
            sent = sum(map(len, blobs))
            t = time.perf_counter()
            owner = ts.context_from(public, n_threads=1)
            outs = [
                ts.ckks_vector_from(owner, b).matmul(matrix.tolist()).serialize() for b in blobs
            ]
            seconds = time.perf_counter() - t
            got = np.concatenate([np.array(ts.ckks_vector_from(ctx, o).decrypt()) for o in outs])
            got = got[:rows]
            ref = x @ w
    return {
        "layout": layout,
        "rows": rows,
        "owner_rows_per_s": rows / seconds,
        "bytes_per_row": sent / rows,
        "context_bytes": len(public),
        "galois_keys": layout != "column",
        "peak_rss_mb": _peak_mb(),
        "max_error": float(np.max(np.abs(got - ref))),
    }


def run(layouts: list[str], rows: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for layout in layouts:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", layout, "--rows", str(rows[layout])],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE.parent,
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print("\nPacking for encrypted scoring (20 features, CKKS N=8192, owner side, 1 thread)")
    print(
        f"{'layout':<8} {'rows':>6} {'rows/s at owner':>16} {'B/row':>9} "
        f"{'context':>10} {'Galois':>6} {'peak RSS':>9} {'max err':>9}"
    )
    for r in results:
        print(
            f"{r['layout']:<8} {r['rows']:>6} {r['owner_rows_per_s']:>16,.0f} "
            f"{r['bytes_per_row']:>9,.0f} {r['context_bytes'] / 1e6:>8.1f}MB "
            f"{'yes' if r['galois_keys'] else 'no':>6} {r['peak_rss_mb']:>7.0f}MB "
            f"{r['max_error']:>9.1e}"
        )
    by = {r["layout"]: r for r in results}
    if "column" in by and "row" in by:
        c, w = by["column"], by["row"]
        print(
            f"column / row: {c['owner_rows_per_s'] / w['owner_rows_per_s']:,.0f}x the rows/s, "
            f"{w['bytes_per_row'] / c['bytes_per_row']:,.0f}x fewer bytes per row, "
            f"{w['context_bytes'] / c['context_bytes']:,.0f}x smaller context"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layouts", nargs="+", default=["column", "row"])
    ap.add_argument("--rows", type=int, help="rows for every layout (default per layout)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(HERE.parent))
        print(json.dumps(_measure(args.child, args.rows or ROWS[args.child])))
        return 0
    rows = {k: args.rows or v for k, v in ROWS.items()}
    print_table(run(args.layouts, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

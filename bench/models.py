"""Models benchmark: horizontal ridge regression, ROWS rows per owner × D features, two
owners and a helper (three parties over TLS on loopback), exact release.

Prints, for the same rows: (a) numpy (the closed form on all rows together, and
scikit-learn's Ridge), (b) a minimal raw MPyC program with the same secure types
(bench/raw_regression.py), (c) the Ensnif protocol (``linear_regression``) under the test
harness: three real ``python -m protocols.worker`` processes with per-job certificates,
each reading its own parquet file, shares sealed to the analyst and combined, timed from
starting the workers to the combined result (the owners' files and the certificates are
prepared first and timed apart, ``bench/models_job.py``), with CPU seconds and rounds per
party. Every answer
is checked against numpy's; nothing about speed is asserted.

    python bench/models.py [--rows 1000000] [--features 10]
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

from ensnif_mpc.data.schema import Column  # noqa: E402
from tests.protocols import harness  # noqa: E402

DECIMALS = 2
X_BOUND, Y_BOUND = 10.0, 400.0
RIDGE = 1.0
ROWS, QUICK_ROWS, FEATURES = 1_000_000, 20_000, 10


def rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = np.round(rng.uniform(-X_BOUND, X_BOUND, size=(n, d)), DECIMALS)
    beta = np.linspace(-3, 3, d)
    y = np.clip(np.round(5 + x @ beta + rng.normal(0, 4, n), DECIMALS), -Y_BOUND, Y_BOUND)
    return np.column_stack([x, y])


def owner(z: np.ndarray, d: int) -> harness.OwnerTable:
    names = [f"x{j}" for j in range(d)]
    data = {n: z[:, j] for j, n in enumerate(names)} | {"y": z[:, d]}
    columns = tuple(Column(n, "float", -X_BOUND, X_BOUND, DECIMALS) for n in names)
    columns += (Column("y", "float", -Y_BOUND, Y_BOUND, DECIMALS),)
    return harness.OwnerTable(
        data, columns, {"label": "y"}, fmt="parquet", lists={"features": names}
    )


def numpy_fit(z: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    design = np.column_stack([np.ones(len(z)), z[:, :d]])
    gram = design.T @ design + np.diag([0.0, *[RIDGE] * d])
    beta = np.linalg.solve(gram, design.T @ z[:, d])
    return time.perf_counter() - t, beta


def run(n: int, d: int) -> bool:
    import models_job
    import raw as rawrun
    from sklearn.linear_model import Ridge

    print(f"== models: horizontal ridge regression, {n:,} rows per owner × {d} features, 3 parties")
    rng = np.random.default_rng(1)
    a, b = rows(rng, n, d), rows(rng, n, d)
    both = np.vstack([a, b])
    t_np, beta = numpy_fit(both, d)
    t = time.perf_counter()
    Ridge(alpha=RIDGE).fit(both[:, :d], both[:, d])
    t_sk = time.perf_counter() - t
    problems = []
    with tempfile.TemporaryDirectory(prefix="ensnif-models-") as tmp:
        work = Path(tmp)
        tables = [owner(a, d), owner(b, d), None]
        bits = harness.bit_length_for(tables, DECIMALS, "linear_regression")
        files = []
        for i, table in enumerate(tables[:2]):
            (work / f"data{i}").mkdir()
            files.append(table.write(work / f"data{i}").path)
        grid = [int(np.ceil(X_BOUND * 10**DECIMALS))] * d + [int(np.ceil(Y_BOUND * 10**DECIMALS))]
        job = {
            "d": d,
            "decimals": DECIMALS,
            "bit_length": bits,
            "ridge": RIDGE,
            "rows": 2 * n,
            "bounds": grid,
            "files": files,
            "columns": [*(f"x{j}" for j in range(d)), "y"],
        }
        raw_run = rawrun.run(work / "raw", "raw_regression.py", job, 1800)
        ours = models_job.run(
            work / "ours",
            "linear_regression",
            tables,
            {"ridge": RIDGE},
            decimals=DECIMALS,
            job_id="ridge",
            timeout=1800,
        )
        t_ours = ours.job
    got = np.array([float(ours.outputs[f"coef[{j}]"]) for j in range(d + 1)])
    raw_got = np.array([raw_run.outputs[f"coef[{j + 1}]"] for j in range(d)])
    err, raw_err = np.max(np.abs(got - beta)), np.max(np.abs(raw_got - beta[1:]))
    if err > 1e-5:
        problems.append(f"ensnif coefficients off by {err:.2e}")
    if raw_err > 1e-5:
        problems.append(f"raw coefficients off by {raw_err:.2e}")
    print(f"{'':10} {'wall s':>8} {'vs numpy':>9} {'vs raw':>7}  notes")
    print(
        f"{'numpy':10} {t_np:8.3f} {1:9.1f} {'':>7}  closed form (scikit-learn Ridge {t_sk:.3f} s)"
    )
    print(
        f"{'raw MPyC':10} {raw_run.wall:8.2f} {raw_run.wall / t_np:9.1f} {1:7.1f}  "
        f"bytes sent {raw_run.bytes_sent}"
    )
    print(
        f"{'ensnif':10} {t_ours:8.2f} {t_ours / t_np:9.1f} {t_ours / raw_run.wall:7.1f}  "
        f"{ours.summary()}; max |Δβ| vs numpy {err:.1e}"
    )
    for p in problems:
        print(f"PROBLEM: {p}")
    return not problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=ROWS, help="rows per owner")
    ap.add_argument("--features", type=int, default=FEATURES)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows per owner")
    args = ap.parse_args()
    return 0 if run(QUICK_ROWS if args.quick else args.rows, args.features) else 1


if __name__ == "__main__":
    raise SystemExit(main())

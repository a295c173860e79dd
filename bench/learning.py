"""Iterative models benchmark: logistic regression (exact and DP) and k-means (exact), two
owners and a helper (three parties over TLS on loopback).

For the same rows: (a) scikit-learn (LogisticRegression, KMeans from the same initial
centroids), (b) a minimal raw MPyC program with the same secure types and core functions
(bench/raw_learning.py), (c) the Ensnif protocol under the test harness: three real
``python -m protocols.worker`` processes with per-job certificates, each reading its own
parquet file, shares sealed to the analyst and combined, timed from starting the workers
to the combined result (the owners' files and certificates are prepared first and timed
apart, ``bench/models_job.py``). Prints wall time, CPU seconds and rounds per party, the ratios,
bytes sent per party, and accuracy/log-loss (logistic) or the largest centroid distance
(k-means) against scikit-learn. Nothing about speed is asserted.

    python bench/learning.py [--quick] [--only logistic|logistic_dp|kmeans]
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
from ensnif_mpc.privacy import dp  # noqa: E402
from protocols.registry import OwnerBounds, catalog  # noqa: E402
from tests.protocols import harness  # noqa: E402

LOWER, UPPER, DECIMALS = -50.0, 120.0, 2
# (rows per owner, features, steps or iterations): the sizes of the issue, and --quick ones.
SIZES = {
    "logistic": (5_000, 10, 10),
    "logistic_dp": (1_000_000, 10, 20),
    "kmeans": (100_000, 5, 10),
}
QUICK = {"logistic": (1_000, 10, 10), "logistic_dp": (100_000, 10, 20), "kmeans": (1_000, 5, 3)}
K = 5


def logistic_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = np.round(rng.uniform(LOWER, UPPER, (n, d)), DECIMALS)
    w = np.linspace(-0.06, 0.06, d)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-((x - 35) @ w)))).astype(np.int64)
    return np.column_stack([x, y])


def cluster_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    centers = np.random.default_rng(0).uniform(-20, 90, (K, d))
    x = centers[rng.integers(0, K, n)] + rng.normal(0, 5, (n, d))
    return np.column_stack([np.round(np.clip(x, LOWER, UPPER), DECIMALS), np.zeros(n)])


def owner(z: np.ndarray, d: int, labelled: bool) -> harness.OwnerTable:
    names = [f"x{j}" for j in range(d)]
    data = {n: z[:, j] for j, n in enumerate(names)} | {"y": z[:, d].astype(np.int64)}
    columns = tuple(Column(n, "float", LOWER, UPPER, DECIMALS) for n in names)
    columns += (Column("y", "int", 0, 1),)
    roles = {"label": "y"} if labelled else {}
    return harness.OwnerTable(data, columns, roles, fmt="parquet", lists={"features": names})


def scikit(
    case: str, x: np.ndarray, y: np.ndarray, steps: int, start: np.ndarray
) -> tuple[float, object]:
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    t = time.perf_counter()
    if case == "kmeans":
        model: object = KMeans(
            K, init=start, n_init=1, max_iter=steps, algorithm="lloyd", tol=0
        ).fit(x)
    else:
        model = LogisticRegression().fit(x, y)
    return time.perf_counter() - t, model


def run_case(case: str, n: int, d: int, steps: int) -> bool:
    import models_job
    import raw as rawrun
    from sklearn.metrics import log_loss

    from protocols.models import logistic as lr

    rng = np.random.default_rng(7)
    make = cluster_rows if case == "kmeans" else logistic_rows
    a, b = make(rng, n, d), make(rng, n, d)
    both = np.vstack([a, b])
    x, y = both[:, :d], both[:, d].astype(int)
    box = {"lower": [LOWER] * d, "upper": [UPPER] * d}
    start = x[:: max(1, len(x) // K)][:K]
    protocol = "kmeans" if case == "kmeans" else "logistic_regression"
    if case == "kmeans":
        params = {**box, "k": K, "iterations": steps, "initial": start.ravel().tolist()}
    else:
        params = {**box, "steps": steps} | ({"learning_rate": 4.0} if case == "logistic_dp" else {})
    release = None
    if case == "logistic_dp":
        blocks = catalog()[protocol].dp_sensitivity([OwnerBounds(1)] * 2, params)  # type: ignore[misc]
        release = dp.plan(1.0, blocks, 3, 1).to_dict()
    print(f"== {case}: {n:,} rows per owner × {d} features, {steps} steps, 3 parties")
    t_sk, model = scikit(case, x, y, steps, start)
    problems = []
    with tempfile.TemporaryDirectory(prefix="ensnif-learning-") as tmp:
        work = Path(tmp)
        tables = [owner(a, d, case != "kmeans"), owner(b, d, case != "kmeans"), None]
        files = []
        for i, table in enumerate(tables[:2]):
            (work / f"data{i}").mkdir()
            files.append(table.write(work / f"data{i}").path)
        job = {
            "mode": case,
            "d": d,
            "sizes": [n, n],
            "files": files,
            "steps": steps,
            "iterations": steps,
            "learning_rate": 4.0,
            "initial": start.ravel().tolist(),
            **box,
        }
        raw_run = rawrun.run(work / "raw", "raw_learning.py", job, 3600)
        ours = models_job.run(
            work / "ours",
            protocol,
            tables,
            params,
            decimals=DECIMALS,
            job_id=case.replace("_", ""),
            timeout=3600,
            release=release,
        )
        t_ours = ours.job
    if case == "kmeans":
        got = np.array(
            [[float(ours.outputs[f"centroid[{j},{i}]"]) for i in range(d)] for j in range(K)]
        )
        gap = float(np.max(np.abs(got - model.cluster_centers_)))  # type: ignore[attr-defined]
        quality = f"max |centroid − scikit-learn| {gap:.2e}"
        if gap > (UPPER - LOWER) / 2**12:
            problems.append(f"centroids off scikit-learn's by {gap:.2e}")
    else:
        coef = np.array([float(ours.outputs[f"coef[{j}]"]) for j in range(d)])
        p = lr.predict_proba(coef, float(ours.outputs["intercept"]), x)
        acc, sk_acc = float(((p > 0.5) == y).mean()), float(model.score(x, y))  # type: ignore[attr-defined]
        loss = log_loss(y, p)
        sk_loss = log_loss(y, model.predict_proba(x)[:, 1])  # type: ignore[attr-defined]
        quality = f"accuracy {acc:.4f} vs {sk_acc:.4f}, log-loss {loss:.4f} vs {sk_loss:.4f}"
        if abs(acc - sk_acc) > (0.01 if case == "logistic" else 0.03):
            problems.append(f"accuracy {acc:.4f} vs scikit-learn's {sk_acc:.4f}")
    print(f"{'':12} {'wall s':>8} {'vs sklearn':>10} {'vs raw':>7}  notes")
    print(f"{'scikit-learn':12} {t_sk:8.3f} {1:10.1f} {'':>7}")
    print(
        f"{'raw MPyC':12} {raw_run.wall:8.2f} {raw_run.wall / t_sk:10.1f} {1:7.1f}  "
        f"bytes sent {raw_run.bytes_sent}"
    )
    print(
        f"{'ensnif':12} {t_ours:8.2f} {t_ours / t_sk:10.1f} {t_ours / raw_run.wall:7.1f}  "
        f"{ours.summary()}; {quality}"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return not problems


def run(quick: bool, only: str | None = None) -> bool:
    sizes = QUICK if quick else SIZES
    ok = True
    for case, (n, d, steps) in sizes.items():
        if only in (None, case):
            ok = run_case(case, n, d, steps) and ok
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (see QUICK)")
    ap.add_argument("--only", choices=sorted(SIZES), help="one case")
    ap.add_argument("--rows", type=int, help="rows per owner (with --only)")
    ap.add_argument("--features", type=int, help="features (with --only)")
    args = ap.parse_args()
    if (args.rows or args.features) and args.only:
        n, d, steps = (QUICK if args.quick else SIZES)[args.only]
        return 0 if run_case(args.only, args.rows or n, args.features or d, steps) else 1
    return 0 if run(args.quick, args.only) else 1


if __name__ == "__main__":
    raise SystemExit(main())

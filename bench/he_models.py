"""Models over an outsourced owner's rows (docs/homomorphic.md, "Models over outsourced
rows"): k-means (exact and DP) and the DP logistic regression with one live owner and one
outsourced owner of ``--rows`` rows each, against the same job with both owners live and
scikit-learn on the same rows, in one run.

Ours: tests/protocols/he_rows_run.py (three real MPyC processes, real TenSEAL BFV, the
owner's client in this process): the outsourced rows converted from BFV row by row, then
k-means' iterations all in MPyC (exact) or its rows assigned in MPC to the public centroids
(DP), or their clipped gradients computed in MPC each step (DP logistic). Live:
tests/protocols/harness.py run_parties, both owners live (k-means exact then takes the
two-owner dealer route, DP the owners' local sums). Every answer is checked: the exact
centroids against scikit-learn's KMeans from the same start within the grid, the DP runs'
accuracy next to scikit-learn's. Prints wall seconds, the owner's and the MPC's share, each
worker's CPU seconds, and the load average.

    python bench/he_models.py [--rows 2000] [--features 2] [--steps 10] [--iterations 5]
        [--cases kme,kmd,lgd]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from ensnif_mpc.data.schema import Column  # noqa: E402
from ensnif_mpc.privacy import dp  # noqa: E402
from protocols.models import logistic as lr  # noqa: E402
from protocols.registry import OwnerBounds, catalog  # noqa: E402
from tests.protocols.harness import OwnerTable, run_parties  # noqa: E402
from tests.protocols.he_rows_run import OutsourcedTable, run  # noqa: E402

LOWER, UPPER, DECIMALS = -50.0, 120.0, 2


def _table(x: np.ndarray, y: np.ndarray | None, kind: type[OwnerTable] = OwnerTable) -> Any:
    names = [f"x{j}" for j in range(x.shape[1])]
    data = {n: x[:, j] for j, n in enumerate(names)}
    columns = tuple(Column(n, "float", LOWER, UPPER, DECIMALS) for n in names)
    roles = {}
    if y is not None:
        data["y"] = y.astype(np.int64)
        columns += (Column("y", "int", 0, 1),)
        roles = {"label": "y"}
    return kind(data, columns, roles, lists={"features": names})


def _data(rows: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.uniform(LOWER + 20, UPPER - 20, (5, d))
    x = np.round(np.clip(centers[rng.integers(0, 5, 2 * rows)] + rng.normal(0, 6, (2 * rows, d)),
                         LOWER, UPPER), DECIMALS)  # fmt: skip
    w = rng.choice([-1, 1], d) * rng.uniform(0.03, 0.07, d)
    y = (rng.uniform(size=2 * rows) < 1 / (1 + np.exp(-((x - 35) @ w)))).astype(int)
    return x, y, centers


def _plan(protocol: str, params: dict, rho: float) -> dict:
    blocks = catalog()[protocol].dp_sensitivity([OwnerBounds(1)] * 2, params)
    return dp.plan(rho, blocks, 3, 1).to_dict()


def _line(name: str, seconds: float, extra: str = "") -> None:
    print(f"  {name:<34} {seconds:8.2f} s  {extra}")


def _cpu(cpu: dict[int, float] | list[Any]) -> str:
    if isinstance(cpu, dict):
        return "CPU/party " + "/".join(f"{cpu[k]:.1f}" for k in sorted(cpu))
    return "CPU/party " + "/".join(f"{s.cpu_seconds:.1f}" for s in cpu if s is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2000, help="rows per owner")
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="DP logistic steps")
    ap.add_argument("--iterations", type=int, default=5, help="k-means iterations")
    ap.add_argument("--cases", default="kme,kmd,lgd", help="which of kme,kmd,lgd to run")
    args = ap.parse_args()
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    n, d = args.rows, args.features
    x, y, _ = _data(n, d)
    start = x[:: max(1, (2 * n) // 5)][:5]
    box = {"lower": [LOWER] * d, "upper": [UPPER] * d}
    km = {**box, "k": 5, "iterations": args.iterations, "initial": start.ravel().tolist()}
    lg = {**box, "steps": args.steps, "clip": 1.0}
    print(f"load average {os.getloadavg()}; {n} rows per owner × {d} features")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        sk = KMeans(5, init=start, n_init=1, max_iter=args.iterations, algorithm="lloyd",
                    tol=0).fit(x)  # fmt: skip
        sk_km = time.perf_counter() - t0
        t0 = time.perf_counter()
        sk_lr = LogisticRegression().fit(x, y)
        sk_lr_s = time.perf_counter() - t0
        lg_plan = _plan("logistic_regression", lg, 1.0)
        cases = (
            ("k-means exact", "kmeans", km, None, False),
            ("k-means DP ρ=1", "kmeans", km, _plan("kmeans", km, 1.0), False),
            ("logistic DP ρ=1", "logistic_regression", lg, lg_plan, True),
        )  # fmt: skip
        for name, protocol, params, release, label in cases:
            code = f"{protocol[0]}{'g' if label else 'm'}{'d' if release else 'e'}"
            if code not in args.cases.split(","):  # kme, kmd, lgd
                continue
            print(name)
            first = _table(x[:n], y[:n] if label else None)
            second = x[n:], (y[n:] if label else None)
            tag = f"{protocol[:3]}{'d' if release else 'e'}"
            hosted = _table(*second, OutsourcedTable)
            ours = run(
                root, protocol, first, hosted, params, decimals=DECIMALS, release=release,
                job_id=f"o{tag}", timeout=3000.0,
            )  # fmt: skip
            _line("ours (outsourced owner)", ours.wall_s,
                  f"owner's client {ours.owner_s:.2f} s, MPC {ours.mpc_s:.2f} s, "
                  f"{_cpu(ours.cpu_s)}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
            t0 = time.perf_counter()
            both = run_parties(
                root, protocol, [first, _table(*second), None], params, decimals=DECIMALS,
                release=release, job_id=f"l{tag}", timeout=3000.0,
            )  # fmt: skip
            _line("same job, both owners live", time.perf_counter() - t0,
                  f"{_cpu(both.statuses)}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
            if protocol == "kmeans" and release is None:
                got = np.array([[float(ours.outputs[f"centroid[{j},{i}]"]) for i in range(d)]
                                for j in range(5)])  # fmt: skip
                err = float(np.abs(got - sk.cluster_centers_).max())
                _line("scikit-learn KMeans", sk_km, f"max |ours − sklearn| = {err:.2e}")
            elif protocol == "kmeans":
                errs = []
                for out in (ours.outputs, both.outputs):
                    got = np.array([float(out[f"centroid[{i}]"]) for i in range(5 * d)])
                    errs.append(float(np.abs(got.reshape(5, d) - sk.cluster_centers_).max()))
                _line("scikit-learn KMeans", sk_km,
                      f"max |DP − sklearn|: ours {errs[0]:.2f}, live {errs[1]:.2f}")  # fmt: skip
            else:
                accs = []
                for out in (ours.outputs, both.outputs):
                    coef = np.array([float(out[f"coef[{j}]"]) for j in range(d)])
                    p = lr.predict_proba(coef, float(out["intercept"]), x)
                    accs.append(float(((p > 0.5) == y).mean()))
                _line("scikit-learn LogisticRegression", sk_lr_s,
                      f"accuracy DP ours {accs[0]:.3f}, live {accs[1]:.3f}, "
                      f"sklearn {sk_lr.score(x, y):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

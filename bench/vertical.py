"""Models benchmark, vertical: ridge regression across a private join (``join_regression``),
ROWS rows per owner (one per customer id, OVERLAP of them shared), DA features at the
first owner, DB features and the label at the second; two owners and a helper (three
parties over TLS on loopback, the tagged-helper route), exact release.

Prints, for the same rows: (a) numpy (pandas inner join, then the closed form) and
scikit-learn's Ridge on the joined rows, (b) a minimal raw MPyC program with the same
secure types and the same arithmetic after the join but with public keys, i.e. no private
join (bench/raw_vertical.py), (c) the Ensnif protocol under the test harness: three real
``python -m protocols.worker`` processes, each owner reading its own parquet file, shares
sealed to the analyst and combined. Every answer is checked against numpy's; nothing about
speed is asserted.

    python bench/vertical.py [--rows 100000] [--quick]
    python bench/vertical.py --logistic [--rows 10000] [--quick]

``--logistic``: logistic regression across the same kind of join (``join_logistic``),
exact and DP, next to scikit-learn's LogisticRegression on the joined rows.
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
ROWS, QUICK_ROWS, DA, DB = 100_000, 10_000, 5, 5
OVERLAP = 0.8


def owners(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """(keys A, X_A, keys B, X_B, y): y depends on both owners' features of its key."""
    shared = int(n * OVERLAP)
    ids = rng.permutation(3 * n)
    keys_a = ids[:n]
    keys_b = np.concatenate([keys_a[:shared], ids[n : 2 * n - shared]])
    keys_b = keys_b[rng.permutation(n)]
    x_a = np.round(rng.uniform(-X_BOUND, X_BOUND, size=(n, DA)), DECIMALS)
    x_b = np.round(rng.uniform(-X_BOUND, X_BOUND, size=(n, DB)), DECIMALS)
    by_key = dict(zip(keys_a.tolist(), range(n), strict=True))
    mate = np.array([by_key.get(k, -1) for k in keys_b.tolist()])
    other = np.where(mate[:, None] >= 0, x_a[np.maximum(mate, 0)], 0.0)
    beta = np.linspace(-3, 3, DA + DB)
    y = 5 + np.column_stack([other, x_b]) @ beta + rng.normal(0, 4, n)
    return keys_a, x_a, keys_b, x_b, np.clip(np.round(y, DECIMALS), -Y_BOUND, Y_BOUND)


def table(keys: np.ndarray, x: np.ndarray, prefix: str, y: np.ndarray | None) -> harness.OwnerTable:
    names = [f"{prefix}{j}" for j in range(x.shape[1])]
    data = {"key": keys} | {n: x[:, j] for j, n in enumerate(names)}
    columns = (Column("key", "int", 0, 10**9),)
    columns += tuple(Column(n, "float", -X_BOUND, X_BOUND, DECIMALS) for n in names)
    roles = {"key": "key"}
    if y is not None:
        data["y"] = y
        columns += (Column("y", "float", -Y_BOUND, Y_BOUND, DECIMALS),)
        roles["label"] = "y"
    return harness.OwnerTable(data, columns, roles, fmt="parquet", lists={"features": names})


def numpy_fit(keys_a, x_a, keys_b, x_b, y) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    t = time.perf_counter()
    a = pd.DataFrame(x_a, index=keys_a)
    b = pd.DataFrame(np.column_stack([x_b, y]), index=keys_b).add_prefix("b")
    z = a.join(b, how="inner").to_numpy()
    design = np.column_stack([np.ones(len(z)), z[:, :-1]])
    gram = design.T @ design + np.diag([0.0, *[RIDGE] * (DA + DB)])
    beta = np.linalg.solve(gram, design.T @ z[:, -1])
    return time.perf_counter() - t, beta, z[:, :-1], z[:, -1]


def run(n: int) -> bool:
    import models_job
    import raw as rawrun
    from sklearn.linear_model import Ridge

    d = DA + DB
    print(
        f"== models: vertical ridge regression across a private join, {n:,} rows per owner, "
        f"{DA} + {DB} features, {OVERLAP:.0%} of the keys shared, 3 parties"
    )
    rng = np.random.default_rng(2)
    keys_a, x_a, keys_b, x_b, y = owners(rng, n)
    t_np, beta, x_joined, y_joined = numpy_fit(keys_a, x_a, keys_b, x_b, y)
    t = time.perf_counter()
    Ridge(alpha=RIDGE).fit(x_joined, y_joined)
    t_sk = time.perf_counter() - t
    problems = []
    with tempfile.TemporaryDirectory(prefix="ensnif-vertical-") as tmp:
        work = Path(tmp)
        tables = [table(keys_a, x_a, "a", None), table(keys_b, x_b, "b", y), None]
        bits = harness.bit_length_for(tables, DECIMALS, "join_regression")
        files = []
        for i, t_i in enumerate(tables[:2]):
            assert t_i is not None
            (work / f"data{i}").mkdir()
            files.append(t_i.write(work / f"data{i}").path)
        grid_x, grid_y = int(np.ceil(X_BOUND * 10**DECIMALS)), int(np.ceil(Y_BOUND * 10**DECIMALS))
        job = {
            "da": DA,
            "db": DB,
            "decimals": DECIMALS,
            "bit_length": bits,
            "ridge": RIDGE,
            "bounds": [grid_x] * d + [grid_y],
            "files": files,
            "columns": [[f"a{j}" for j in range(DA)], [*(f"b{j}" for j in range(DB)), "y"]],
        }
        raw_run = rawrun.run(work / "raw", "raw_vertical.py", job, 1800)
        ours = models_job.run(
            work / "ours",
            "join_regression",
            tables,
            {"ridge": RIDGE, "per_key": "mean"},
            decimals=DECIMALS,
            job_id="vridge",
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
        f"{'numpy':10} {t_np:8.3f} {1:9.1f} {'':>7}  pandas join + closed form "
        f"({len(y_joined):,} matched keys; scikit-learn Ridge {t_sk:.3f} s)"
    )
    print(
        f"{'raw MPyC':10} {raw_run.wall:8.2f} {raw_run.wall / t_np:9.1f} {1:7.1f}  "
        f"public keys (no private join), bytes sent {raw_run.bytes_sent}"
    )
    print(
        f"{'ensnif':10} {t_ours:8.2f} {t_ours / t_np:9.1f} {t_ours / raw_run.wall:7.1f}  "
        f"{ours.summary()}, bit length {bits}, "
        f"max |Δβ| vs numpy {err:.1e}"
    )
    for p in problems:
        print(f"PROBLEM: {p}")
    return not problems


LOGISTIC_ROWS, QUICK_LOGISTIC_ROWS = 10_000, 2_000
LOGISTIC_STEPS, DP_STEPS, DP_RHO = 10, 20, 1.0


def logistic_run(n: int) -> bool:
    """join_logistic on the same kind of join (n rows per owner, DA + DB features, a 0/1
    label at B drawn from a logistic model of both owners' features): scikit-learn's
    LogisticRegression on the pandas join, then the Ensnif job exact (Newton steps in MPC)
    and DP (noisy gradient descent in MPC, ρ = DP_RHO). No raw MPyC program: the
    horizontal one (bench/raw_learning.py) is the hand-written baseline of the fit."""
    import models_job
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.models import logistic
    from protocols.registry import catalog

    d = DA + DB
    print(
        f"== models: vertical logistic regression across a private join, {n:,} rows per "
        f"owner, {DA} + {DB} features, {OVERLAP:.0%} of the keys shared, 3 parties"
    )
    rng = np.random.default_rng(3)
    keys_a, x_a, keys_b, x_b, score = owners(rng, n)
    late = (rng.uniform(size=n) < 1 / (1 + np.exp(-(score - 5) / 8))).astype(np.int64)
    t = time.perf_counter()
    a = pd.DataFrame(x_a, index=keys_a)
    b = pd.DataFrame(np.column_stack([x_b, late]), index=keys_b).add_prefix("b")
    z = a.join(b, how="inner").to_numpy()
    x, y = z[:, :-1], z[:, -1]
    sk = LogisticRegression(max_iter=1000).fit(x, y)
    t_sk = time.perf_counter() - t
    box = {"lower": [-X_BOUND] * d, "upper": [X_BOUND] * d}
    tables = [table(keys_a, x_a, "a", None), label_table(keys_b, x_b, late), None]
    params = {**box, "steps": LOGISTIC_STEPS}
    dp_params = {**box, "steps": DP_STEPS, "learning_rate": 4.0}
    sensitivity = catalog()["join_logistic"].dp_sensitivity
    assert sensitivity is not None
    blocks = sensitivity([OwnerBounds(1)] * 2, dp_params)
    release = dp.plan(DP_RHO, blocks, 3, 1).to_dict()
    problems = []
    with tempfile.TemporaryDirectory(prefix="ensnif-vlogistic-") as tmp:
        exact = models_job.run(
            Path(tmp) / "exact",
            "join_logistic",
            tables,
            params,
            decimals=DECIMALS,
            job_id="vlogexact",
            timeout=1800,
        )
        noisy = models_job.run(
            Path(tmp) / "dp",
            "join_logistic",
            tables,
            dp_params,
            decimals=DECIMALS,
            job_id="vlogdp",
            timeout=1800,
            release=release,
        )
    print(f"{'':10} {'wall s':>8} {'vs sk':>7} {'accuracy':>9}  notes")
    print(
        f"{'sklearn':10} {t_sk:8.3f} {1:7.1f} {sk.score(x, y):9.3f}  pandas join + "
        f"LogisticRegression ({len(y):,} matched keys)"
    )
    for name, run_, steps in (("exact", exact, LOGISTIC_STEPS), ("dp", noisy, DP_STEPS)):
        coef = np.array([float(run_.outputs[f"coef[{j}]"]) for j in range(d)])
        p = logistic.predict_proba(coef, float(run_.outputs["intercept"]), x)
        accuracy = float(((p > 0.5) == y).mean())
        if name == "exact" and abs(accuracy - sk.score(x, y)) > 0.01:
            problems.append(f"exact accuracy {accuracy:.3f} vs scikit-learn {sk.score(x, y):.3f}")
        what = "Newton steps" if name == "exact" else f"noisy gradient steps, ρ = {DP_RHO:g}"
        print(
            f"{'ensnif ' + name:10} {run_.job:8.2f} {run_.job / t_sk:7.1f} {accuracy:9.3f}  "
            f"{steps} {what}; {run_.summary()}"
        )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return not problems


def label_table(keys: np.ndarray, x: np.ndarray, late: np.ndarray) -> harness.OwnerTable:
    """B's table for the logistic case: its features and the 0/1 label."""
    base = table(keys, x, "b", None)
    return harness.OwnerTable(
        {**base.data, "late": late},
        (*base.columns, Column("late", "int", 0, 1)),
        {**base.roles, "label": "late"},
        fmt="parquet",
        lists=base.lists,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=ROWS, help="rows per owner")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows per owner")
    ap.add_argument(
        "--logistic",
        action="store_true",
        help=f"the join_logistic case instead ({LOGISTIC_ROWS:,} rows per owner, quick "
        f"{QUICK_LOGISTIC_ROWS:,}; --rows overrides)",
    )
    args = ap.parse_args()
    if args.logistic:
        rows = QUICK_LOGISTIC_ROWS if args.quick else LOGISTIC_ROWS
        return 0 if logistic_run(rows if args.rows == ROWS else args.rows) else 1
    return 0 if run(QUICK_ROWS if args.quick else args.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

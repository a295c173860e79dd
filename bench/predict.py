"""Predict benchmark: scoring ROWS rows × D features with a logistic model kept
secret-shared (the artifact a ``logistic_regression`` job kept with ``keep = "artifact"``),
scores opened to the row owner only; three parties over TLS on loopback.

Prints, for the same rows and weights: (a) numpy (the same clamped cubic in the clear),
(b) a minimal raw MPyC program with the same secure type (bench/raw_predict.py), (c) the
Ensnif ``predict`` job under the test harness (three real worker processes, the artifact
shares handed in as a node would, scores sealed to the row owner). The training job that
makes the artifact is run first and not timed. Every answer is checked against numpy's;
nothing about speed is asserted.

    python bench/predict.py [--rows 10000] [--features 10] [--quick]
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
BOUND = 10.0
ROWS, QUICK_ROWS, FEATURES, TRAIN_ROWS = 10_000, 2_000, 10, 400


def owner(x: np.ndarray, y: np.ndarray) -> harness.OwnerTable:
    names = [f"x{j}" for j in range(x.shape[1])]
    data = {n: x[:, j] for j, n in enumerate(names)} | {"y": y.astype(np.int64)}
    columns = tuple(Column(n, "float", -BOUND, BOUND, DECIMALS) for n in names)
    columns += (Column("y", "int", 0, 1),)
    return harness.OwnerTable(
        data, columns, {"label": "y"}, fmt="parquet", lists={"features": names}
    )


def run(n: int, d: int) -> bool:
    import raw as rawrun

    from protocols.models import logistic, predict

    print(f"== predict: logistic model kept secret-shared, {n:,} rows × {d} features, 3 parties")
    rng = np.random.default_rng(2)
    beta = np.linspace(-0.4, 0.4, d)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.round(rng.uniform(-BOUND, BOUND, (m, d)), DECIMALS)
        y = (rng.uniform(size=m) < 1 / (1 + np.exp(-(x @ beta)))).astype(int)
        return x, y

    (xt, yt), (x, y) = draw(TRAIN_ROWS), draw(n)
    params = {"lower": [-BOUND] * d, "upper": [BOUND] * d, "steps": 6, "keep": "artifact"}
    ref = logistic.reference([{"features": xt, "label": yt}], params)
    coef = np.array([ref[f"coef[{j}]"] for j in range(d)])
    t = time.perf_counter()
    want = predict.scores("logistic", ref["intercept"], coef, x)
    t_np = time.perf_counter() - t
    problems = []
    with tempfile.TemporaryDirectory(prefix="ensnif-predict-") as tmp:
        work = Path(tmp)
        trained = harness.run_parties(
            work / "train",
            "logistic_regression",
            [owner(xt, yt), None, None],
            params,
            decimals=DECIMALS,
            job_id="train",
            timeout=1800,
        )
        table = owner(x, y)
        (work / "data").mkdir()
        job = {
            "rows": n,
            "d": d,
            "file": table.write(work / "data").path,
            "columns": [f"x{j}" for j in range(d)],
            "weights": [ref["intercept"], *coef.tolist()],
        }
        raw_run = rawrun.run(work / "raw", "raw_predict.py", job, 1800)
        t = time.perf_counter()
        ours = harness.run_parties(
            work / "ours",
            "predict",
            [table, None, None],
            {},
            decimals=DECIMALS,
            job_id="score",
            artifacts=trained.kept,
            timeout=1800,
        )
        t_ours = time.perf_counter() - t
    got = np.array([float(ours.party_outputs[0][f"score[{i}]"]) for i in range(n)])
    err = float(np.max(np.abs(got - want)))
    raw_err = abs(raw_run.outputs["score_sum"] - float(want.sum())) / n
    if err > 1e-3:
        problems.append(f"ensnif scores off by {err:.2e}")
    if raw_err > 1e-3:
        problems.append(f"raw scores off by {raw_err:.2e} on average")
    cpu = [round(s.cpu_seconds, 2) for s in ours.statuses]
    sent = [s.bytes_sent for s in ours.statuses]
    print(f"{'':10} {'wall s':>8} {'vs numpy':>9} {'vs raw':>7}  notes")
    print(f"{'numpy':10} {t_np:8.4f} {1:9.1f} {'':>7}  the same clamped cubic in the clear")
    print(
        f"{'raw MPyC':10} {raw_run.wall:8.2f} {raw_run.wall / t_np:9.0f} {1:7.1f}  "
        f"bytes sent {raw_run.bytes_sent}"
    )
    print(
        f"{'ensnif':10} {t_ours:8.2f} {t_ours / t_np:9.0f} {t_ours / raw_run.wall:7.1f}  "
        f"cpu per party {cpu}, bytes sent {sent}, max |Δscore| vs numpy {err:.1e}"
    )
    for p in problems:
        print(f"PROBLEM: {p}")
    return not problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--features", type=int, default=FEATURES)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    args = ap.parse_args()
    return 0 if run(QUICK_ROWS if args.quick else args.rows, args.features) else 1


if __name__ == "__main__":
    raise SystemExit(main())

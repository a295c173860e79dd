"""Logistic regression and k-means with three real MPyC worker processes, against the same
computation in the clear and against scikit-learn on the same rows.

Tolerances: exact runs are compared with the float64 mirror within their fixed-point error
(weights at 2^-24, centroids at 2^-20 of the box); with scikit-learn on the rows' own units,
by accuracy (logistic: within 2 points) and by the box grid's quantization (k-means). DP
runs: every opened noisy block is checked against the exact statistic recomputed in the
clear along the same public trajectory, within 6σ of the plan's noise (and the DP
logistic model's accuracy against scikit-learn's within 3 points at ρ = 50).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from protocols.models import kmeans as km, logistic as lr
from protocols.registry import OwnerBounds, catalog
from tests.protocols.harness import OwnerTable, run_parties

pytestmark = pytest.mark.slow

LOWER, UPPER = -50.0, 120.0


def _owner(x: np.ndarray, y: np.ndarray | None = None) -> OwnerTable:
    d = x.shape[1]
    names = [f"x{j}" for j in range(d)]
    data = {n: np.round(x[:, j], 2) for j, n in enumerate(names)}
    columns = [Column(n, "float", LOWER, UPPER, 2) for n in names]
    roles = {}
    if y is not None:
        data["y"] = y.astype(np.int64)
        columns.append(Column("y", "int", 0, 1))
        roles["label"] = "y"
    return OwnerTable(data, tuple(columns), roles, lists={"features": names})


def _logistic_rows(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.round(rng.uniform(LOWER, UPPER, (n, d)), 2)
    w = rng.choice([-1, 1], d) * rng.uniform(0.03, 0.07, d)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-((x - 35) @ w)))).astype(int)
    return x, y


def _plan(protocol: str, params: dict, rho: float, owners: int = 2) -> dict:
    blocks = catalog()[protocol].dp_sensitivity([OwnerBounds(1)] * owners, params)
    return dp.plan(rho, blocks, 3, 1).to_dict()


def _box(d: int) -> dict:
    return {"lower": [LOWER] * d, "upper": [UPPER] * d}


def _coefficients(outputs: dict, d: int) -> tuple[np.ndarray, float]:
    return np.array([float(outputs[f"coef[{j}]"]) for j in range(d)]), float(outputs["intercept"])


def test_exact_logistic_regression_matches_its_mirror_and_scikit_learn(tmp_path):
    rng = np.random.default_rng(11)
    x, y = _logistic_rows(rng, 300, 3)
    params = {**_box(3), "steps": 8}
    owners = [_owner(x[:170], y[:170]), _owner(x[170:], y[170:]), None]

    run = run_parties(tmp_path, "logistic_regression", owners, params, decimals=2, timeout=300)

    coef, intercept = _coefficients(run.outputs, 3)
    want = lr.reference([{"features": x, "label": y}], params)
    assert np.allclose(coef, [want[f"coef[{j}]"] for j in range(3)], atol=1e-6)
    assert intercept == pytest.approx(want["intercept"], abs=1e-5)
    sk = LogisticRegression().fit(x, y)
    ours = lr.predict_proba(coef, intercept, x)
    assert abs(((ours > 0.5) == y).mean() - sk.score(x, y)) <= 0.02
    assert log_loss(y, ours) <= log_loss(y, sk.predict_proba(x)[:, 1]) + 0.02


def test_dp_logistic_regression_opens_only_its_noisy_rounds(tmp_path, monkeypatch):
    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")
    rng = np.random.default_rng(12)
    x, y = _logistic_rows(rng, 600, 2)
    params = {**_box(2), "steps": 6, "learning_rate": 4.0}
    release = _plan("logistic_regression", params, rho=50.0)
    owners = [_owner(x[:350], y[:350]), _owner(x[350:], y[350:]), None]

    run = run_parties(
        tmp_path, "logistic_regression", owners, params, decimals=2, release=release, timeout=300
    )

    plan = dp.ReleasePlan.from_dict(release)
    sd = [plan.block_sd(b) for b in plan.blocks]
    out = run.outputs
    assert abs(float(out["count[0]"]) - 600) <= 6 * sd[0]
    a, w = lr.design_matrix(x, np.array([LOWER] * 2), np.array([UPPER] * 2)), np.zeros(3)
    for t in range(6):  # the public trajectory, replayed in the clear
        noisy = np.array([float(out[f"gradient{t}[{i}]"]) for i in range(3)])
        exact = lr.clipped_gradient_sum(a, y.astype(float), w, 1.0).astype(float)
        assert np.all(np.abs(noisy - exact) <= 6 * sd[t + 1])
        w = lr.descent_step(w, noisy, float(out["count[0]"]), 1.0, 4.0)
    coef, intercept = _coefficients(out, 2)
    want_coef, want_intercept = lr.to_raw(w, np.array([LOWER] * 2), np.array([UPPER] * 2))
    assert np.allclose(coef, want_coef, atol=1e-6)
    assert intercept == pytest.approx(want_intercept, abs=1e-6)
    sk = LogisticRegression().fit(x, y)
    assert abs(((lr.predict_proba(coef, intercept, x) > 0.5) == y).mean() - sk.score(x, y)) <= 0.03
    # What each party opened: the count and the steps' gradients, nothing else.
    for directory in run.dirs:
        sizes = [
            int(line.split()[1])
            for line in (directory / "openings.log").read_text().split("\n")
            if line
        ]
        assert sizes == [1] + [3] * 6


def _clusters(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = np.array([[-20.0, 0.0], [40.0, 90.0], [100.0, 10.0]])
    x = centers[rng.integers(0, 3, n)] + rng.normal(0, 6, (n, 2))
    return np.round(np.clip(x, LOWER, UPPER), 2)


def test_exact_kmeans_matches_its_mirror_and_scikit_learn_from_the_same_start(tmp_path):
    rng = np.random.default_rng(13)
    x = _clusters(rng, 90)
    start = np.array([[0.0, 0.0], [50.0, 50.0], [90.0, 0.0]])
    params = {**_box(2), "k": 3, "iterations": 4, "initial": start.ravel().tolist()}

    run = run_parties(
        tmp_path, "kmeans", [_owner(x[:50]), _owner(x[50:]), None], params, decimals=2, timeout=300
    )

    got = np.array([[float(run.outputs[f"centroid[{j},{i}]"]) for i in range(2)] for j in range(3)])
    sizes = [int(run.outputs[f"size[{j}]"]) for j in range(3)]
    want = km.reference([{"features": x}], params)
    assert np.allclose(
        got.ravel(), [want[f"centroid[{j},{i}]"] for j in range(3) for i in range(2)], atol=5e-4
    )
    sk = KMeans(3, init=start, n_init=1, max_iter=4, algorithm="lloyd", tol=0).fit(x)
    quantum = (UPPER - LOWER) / 2**km.FK  # the box grid the rows are mapped onto
    assert np.allclose(got, sk.cluster_centers_, atol=quantum)
    assert sizes == np.bincount(sk.labels_, minlength=3).tolist()


def test_dp_kmeans_noises_counts_and_sums_each_iteration(tmp_path):
    rng = np.random.default_rng(14)
    x = _clusters(rng, 400)
    start = np.array([[0.0, 0.0], [50.0, 50.0], [90.0, 0.0]])
    params = {**_box(2), "k": 3, "iterations": 3, "initial": start.ravel().tolist()}
    release = _plan("kmeans", params, rho=50.0)

    run = run_parties(
        tmp_path,
        "kmeans",
        [_owner(x[:200]), _owner(x[200:]), None],
        params,
        decimals=2,
        release=release,
        timeout=300,
    )

    plan = dp.ReleasePlan.from_dict(release)
    sd = [plan.block_sd(b) for b in plan.blocks]
    lower, upper = np.array([LOWER] * 2), np.array([UPPER] * 2)
    g = km.box_grid(x, lower, upper, km.FK)
    c = np.asarray(km.to_grid(start, lower, upper, km.FK), dtype=float)
    for t in range(3):  # the public trajectory, replayed in the clear
        counts, sums = km.local_stats(g, c)
        noisy_n = np.array([float(run.outputs[f"count{t}[{j}]"]) for j in range(3)])
        noisy_s = np.array([float(run.outputs[f"sum{t}[{j}]"]) for j in range(6)])
        assert np.all(np.abs(noisy_n - counts.astype(float)) <= 6 * sd[2 * t])
        assert np.all(np.abs(noisy_s - sums.astype(float)) <= 6 * sd[2 * t + 1])
        c = km.noisy_centroids(noisy_n, noisy_s, c)
    got = np.array([float(run.outputs[f"centroid[{j}]"]) for j in range(6)]).reshape(3, 2)
    assert np.allclose(got, lower + c / 2**km.FK * (upper - lower), atol=1e-6)
    # The last step's centroids against the exact means of the same (public) assignment:
    # |(s + e_s)/(n + e_n) − s/n| ≤ (6σ_s + |s/n|·6σ_n) / (n − 6σ_n).
    n = counts.astype(float).reshape(3, 1)
    mean = sums.astype(float).reshape(3, 2) / n
    bound = (6 * sd[-1] + np.abs(mean) * 6 * sd[-2]) / (n - 6 * sd[-2])
    assert np.all(np.abs(c - mean) <= bound)


def test_a_label_outside_zero_and_one_fails_without_quoting_it(tmp_path):
    rng = np.random.default_rng(15)
    x, y = _logistic_rows(rng, 20, 2)
    y[3] = 1
    bad = _owner(x, y)
    data = dict(bad.data)
    data["y"] = np.where(np.arange(20) == 3, 2, data["y"])
    columns = tuple(c if c.name != "y" else Column("y", "int", 0, 2) for c in bad.columns)
    owners = [OwnerTable(data, columns, bad.roles, lists=bad.lists), _owner(x, y), None]

    with pytest.raises(AssertionError, match="workers failed") as failure:
        run_parties(tmp_path, "logistic_regression", owners, _box(2), decimals=2, timeout=120)
    assert "other than 0 or 1" in str(failure.value)

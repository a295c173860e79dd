"""k-means with an outsourced owner (protocols/he_kmeans.py) through the real worker
(tests/protocols/he_rows_run.py: three MPyC processes, real TenSEAL BFV, the owner's client
in this process), exact and DP, against the plaintext mirror on all rows and scikit-learn's
KMeans from the same initial centroids."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from protocols.models import kmeans as km
from protocols.registry import OwnerBounds, catalog
from tests.protocols.harness import OwnerTable
from tests.protocols.he_rows_run import OutsourcedTable, run

pytestmark = pytest.mark.slow

LOWER, UPPER, DECIMALS = -50.0, 120.0, 2
START = np.array([[0.0, 0.0], [50.0, 50.0], [90.0, 0.0]])
BOX = {"lower": [LOWER] * 2, "upper": [UPPER] * 2}
QUANTUM = (UPPER - LOWER) / 2**km.FK  # the box grid the rows are mapped onto


def _clusters(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = np.array([[-20.0, 0.0], [40.0, 90.0], [100.0, 10.0]])
    x = centers[rng.integers(0, 3, n)] + rng.normal(0, 6, (n, 2))
    return np.round(np.clip(x, LOWER, UPPER), DECIMALS)


def _table(x: np.ndarray, kind: type[OwnerTable] = OwnerTable) -> OwnerTable:
    names = [f"x{j}" for j in range(x.shape[1])]
    columns = tuple(Column(n, "float", LOWER, UPPER, DECIMALS) for n in names)
    return kind({n: x[:, j] for j, n in enumerate(names)}, columns, {}, lists={"features": names})


def _centroids(outputs: dict, name: str = "centroid[{j},{i}]") -> np.ndarray:
    return np.array([[float(outputs[name.format(j=j, i=i)]) for i in range(2)] for j in range(3)])


@pytest.mark.timeout(900)
def test_outsourced_rows_train_the_exact_kmeans_as_scikit_learn(tmp_path):
    rng = np.random.default_rng(2041)
    x = _clusters(rng, 240)
    params = {**BOX, "k": 3, "iterations": 4, "initial": START.ravel().tolist()}

    got = run(
        tmp_path, "kmeans", _table(x[:100]), _table(x[100:], OutsourcedTable), params,
        decimals=DECIMALS, job_id="hekmeans", timeout=600.0,
    )  # fmt: skip

    centroids = _centroids(got.outputs)
    sizes = [int(got.outputs[f"size[{j}]"]) for j in range(3)]
    want = km.reference([{"features": x}], params)
    # The outsourced rows reach the box grid by a probabilistic truncation in MPC (within
    # one grid unit, not the live owner's half unit of rint): a centroid moves by at most
    # one unit of the grid, QUANTUM, from the mirror's; the sizes are exact (clusters far
    # apart, no row within a unit of a boundary).
    mirror = np.array([[want[f"centroid[{j},{i}]"] for i in range(2)] for j in range(3)])
    assert np.allclose(centroids, mirror, atol=QUANTUM)
    sk = KMeans(3, init=START, n_init=1, max_iter=4, algorithm="lloyd", tol=0).fit(x)
    assert np.allclose(centroids, sk.cluster_centers_, atol=2 * QUANTUM)
    assert sizes == np.bincount(sk.labels_, minlength=3).tolist()
    assert sizes == [int(want[f"size[{j}]"]) for j in range(3)]


@pytest.mark.timeout(900)
def test_outsourced_rows_are_assigned_in_mpc_for_the_dp_kmeans(tmp_path):
    rng = np.random.default_rng(2042)
    x = _clusters(rng, 300)
    params = {**BOX, "k": 3, "iterations": 3, "initial": START.ravel().tolist()}
    blocks = catalog()["kmeans"].dp_sensitivity([OwnerBounds(1)] * 2, params)
    release = dp.plan(50.0, blocks, 3, 1).to_dict()

    got = run(
        tmp_path, "kmeans", _table(x[:120]), _table(x[120:], OutsourcedTable), params,
        decimals=DECIMALS, release=release, job_id="hekmdp", timeout=600.0,
    )  # fmt: skip

    plan = dp.ReleasePlan.from_dict(release)
    sd = [plan.block_sd(b) for b in plan.blocks]
    lower, upper = np.array(BOX["lower"]), np.array(BOX["upper"])
    g = km.box_grid(x, lower, upper, km.FK)
    c = np.asarray(km.to_grid(START, lower, upper, km.FK), dtype=float)
    outsourced = len(x) - 120
    for t in range(3):  # the public trajectory, replayed in the clear on all rows
        counts, sums = km.local_stats(g, c)
        noisy_n = np.array([float(got.outputs[f"count{t}[{j}]"]) for j in range(3)])
        noisy_s = np.array([float(got.outputs[f"sum{t}[{j}]"]) for j in range(6)])
        # counts: the noise only (no row near a boundary); sums: the noise plus at most one
        # grid unit per outsourced row (its truncation onto the grid in MPC)
        assert np.all(np.abs(noisy_n - counts.astype(float)) <= 6 * sd[2 * t])
        assert np.all(np.abs(noisy_s - sums.astype(float)) <= 6 * sd[2 * t + 1] + outsourced)
        c = km.noisy_centroids(noisy_n, noisy_s, c)
    published = np.array([float(got.outputs[f"centroid[{j}]"]) for j in range(6)])
    assert np.allclose(published.reshape(3, 2), lower + c / 2**km.FK * (upper - lower), atol=1e-6)
    sk = KMeans(3, init=START, n_init=1, max_iter=3, algorithm="lloyd", tol=0).fit(x)
    # against scikit-learn: the last step's noise on a mean, |(s + e_s)/(n + e_n) − s/n|
    # ≤ (6σ_s + |s/n|·6σ_n)/(n − 6σ_n) grid units, plus the grids' two units
    n = np.bincount(sk.labels_, minlength=3).astype(float).reshape(3, 1)
    mean = (sk.cluster_centers_ - lower) / (upper - lower) * 2**km.FK
    bound = (6 * sd[-1] + np.abs(mean) * 6 * sd[-2]) / (n - 6 * sd[-2]) + 2
    assert np.all(np.abs(c - mean) <= bound)

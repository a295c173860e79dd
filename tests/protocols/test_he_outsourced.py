"""An outsourced dataset joins an MPC job: three real MPyC processes, real TenSEAL BFV, the
owner's client decrypting only masked values and sealing an additive share to each party.
Here: the wrap correction, a DP release, the rows path and an absent owner. The exact
totals of the same job through a real helper node and the owner's real `serve` client are
checked in tests/integration/test_outsource_upload.py; bench/he_outsource.py checks them at
100,000 rows."""

from __future__ import annotations

import numpy as np
import pytest

from ensnif_mpc.he import bfv
from ensnif_mpc.privacy import dp
from protocols.he_outsourced import PLAIN_MODULUS
from tests.protocols.harness import OwnerTable
from tests.protocols.he_outsourced_run import DECIMALS, run, run_wrap
from tests.protocols.he_rows_run import OutsourcedTable, column

pytestmark = pytest.mark.slow

EDGES = (0.0, 100.0, 250.0, 500.0, 1000.0)


def _numpy_answer(values: np.ndarray) -> list[int]:
    grid = np.rint(values * 10**DECIMALS).astype(np.int64)
    lows = (np.array(EDGES[:-1]) * 10**DECIMALS).astype(np.int64)
    index = np.searchsorted(lows, grid, side="right") - 1
    counts = np.bincount(index, minlength=4)
    sums = np.bincount(index, weights=grid, minlength=4).astype(np.int64)
    return [int(grid.sum()), *(int(v) for pair in zip(counts, sums, strict=True) for v in pair)]


def test_the_conversion_module_uses_the_bfv_plain_modulus():
    assert PLAIN_MODULUS == bfv.T


def test_the_mpc_undoes_a_wrap_modulo_t_either_way(tmp_path):
    """d = M − R lies in (−t, t); the true value is d, d − t or d + t. Uniform masks wrap
    with probability about |S|/t, so the job test above almost never takes these branches."""
    t, values = PLAIN_MODULUS, [-12345, 0, 987654321, -(2**40)]
    d = [values[0] + t, values[1], values[2] - t, values[3] + t, 7]

    assert run_wrap(tmp_path, d) == [values[0], 0, values[2], values[3], 7]


def test_an_owner_that_never_comes_online_ends_the_job_owner_offline(tmp_path):
    values = np.arange(100, dtype=np.float64)

    result = run(tmp_path, values, values, EDGES, owner_online=False, window_s=1.0)

    assert result.reason == "owner_offline"
    assert not (tmp_path / "probe" / "sealed.json").exists()


def test_a_dp_release_is_within_the_noise_the_calibration_states(tmp_path):
    """ρ = 0.5 zCDP over the 9 outputs; a person (one row) moves the sum and one bin's sum
    by at most 100,000 on the grid and one bin's count by 1. Each of the 9 noisy outputs is
    within 6 σ of numpy's exact value (all 9 inside: probability > 1 − 2e-8)."""
    rng = np.random.default_rng(9)
    live = rng.integers(0, 100_000, size=2_000, endpoint=True) / 100
    outsourced = rng.integers(0, 100_000, size=9_000, endpoint=True) / 100
    bound = 1000 * 10**DECIMALS
    cal = dp.calibrate(0.5, float(np.sqrt(2 * bound**2 + 1)), parties=3, threshold=1, dims=9)

    result = run(tmp_path, live, outsourced, EDGES, sigma_share=cal.sigma_share)

    error = np.array(result.totals) - np.array(_numpy_answer(np.concatenate([live, outsourced])))
    assert np.all(np.abs(error) <= 6 * cal.sigma_total)
    assert np.any(error != 0)  # noise was added


def test_outsourced_rows_train_with_a_live_owners_column_exactly(tmp_path):
    """Vertically split rows: the outsourced column x at the helper, a live owner's y of the
    same rows; the MPC's Σx, Σx² and Σxy (a regression's sufficient statistics) equal
    numpy's on the integer grid."""
    rng = np.random.default_rng(13)
    x = rng.integers(0, 100_000, size=10_000, endpoint=True) / 100
    y = rng.integers(0, 100_000, size=10_000, endpoint=True) / 100

    result = run(tmp_path, y, x, EDGES, mode="rows")

    gx = np.rint(x * 100).astype(object)
    gy = np.rint(y * 100).astype(object)
    assert result.totals == [int(gx.sum()), int(gx @ gx), int(gx @ gy)]


# -- the real worker: registry programs with one outsourced owner (tests/protocols/he_rows_run)

FEATURES = ["x1", "x2", "x3"]
X_BOUND, Y_BOUND = 10.0, 200.0
TRUE = np.array([3.0, 1.5, -2.0, 0.5])
HIST_EDGES = [0.0, 100.0, 250.0, 500.0, 1000.0]


def _regression_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.round(rng.uniform(-X_BOUND, X_BOUND, size=(n, 3)), DECIMALS)
    y = np.clip(np.round(TRUE[0] + x @ TRUE[1:] + rng.normal(0, 2.0, n), DECIMALS), -200, 200)
    return np.column_stack([x, y])


def _table(rows: np.ndarray, kind: type[OwnerTable] = OwnerTable) -> OwnerTable:
    data = {name: rows[:, j] for j, name in enumerate([*FEATURES, "y"])}
    columns = tuple(column(n, -X_BOUND, X_BOUND, DECIMALS) for n in FEATURES)
    columns += (column("y", -Y_BOUND, Y_BOUND, DECIMALS),)
    return kind(data, columns, {"label": "y"}, lists={"features": FEATURES})


def _amounts(values: np.ndarray, outsourced: bool = False) -> OwnerTable:
    columns = (column("amount", 0.0, 1000.0, DECIMALS),)
    if outsourced:
        bins = {"amount": HIST_EDGES}
        return OutsourcedTable({"amount": values}, columns, {"value": "amount"}, bins=bins)
    return OwnerTable({"amount": values}, columns, {"value": "amount"})


RNG = np.random.default_rng(2027)
LIVE_ROWS, OUT_ROWS = _regression_rows(RNG, 400), _regression_rows(RNG, 700)
LIVE_AMOUNTS = RNG.integers(0, 100_000, size=500, endpoint=True) / 100
OUT_AMOUNTS = RNG.integers(0, 100_000, size=900, endpoint=True) / 100


def _histogram_plan(rho: float):
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from protocols.registry import catalog

    bounds = {"value": (100_000,)}
    blocks = catalog()["histogram"].dp_sensitivity(
        [OwnerBounds(1, bounds), OwnerBounds(1, bounds)], {"edges": HIST_EDGES}
    )
    return dp.plan(rho, blocks, 3, 1)


# One job at a time: two jobs' workers started at once from the harness's threads left the
# DP histogram's parties waiting in its noising step on this loaded machine (not understood
# yet; each alone passes), so the fixtures run them one after the other.
@pytest.fixture(scope="module")
def ridge_run(tmp_path_factory: pytest.TempPathFactory):
    """The ridge regression over a live owner's rows and an outsourced owner's converted
    rows, through the real worker."""
    from tests.protocols.he_rows_run import run as run_worker

    return run_worker(
        tmp_path_factory.mktemp("he-ridge"), "linear_regression", _table(LIVE_ROWS),
        _table(OUT_ROWS, OutsourcedTable), {"ridge": 5.0}, decimals=DECIMALS,
        job_id="herows", timeout=300.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def histogram_dp_run(tmp_path_factory: pytest.TempPathFactory):
    """A DP histogram with an outsourced owner (the exact one runs through the coordinator
    in tests/integration/test_outsourced_jobs.py)."""
    from tests.protocols.he_rows_run import run as run_worker

    return run_worker(
        tmp_path_factory.mktemp("he-hist"), "histogram", _amounts(LIVE_AMOUNTS),
        _amounts(OUT_AMOUNTS, outsourced=True), {"edges": HIST_EDGES}, decimals=DECIMALS,
        job_id="hehistdp", timeout=300.0, release=_histogram_plan(0.5).to_dict(),
    )  # fmt: skip


# A loaded two-core machine: more than the default 240 s (about 40 s at a load of 25).
@pytest.mark.timeout(600)
def test_outsourced_rows_train_the_ridge_regression_as_scikit_learn_does(ridge_run):
    """The live owner's 400 rows and the outsourced owner's 700 (converted from BFV row by
    row, their Gram computed in MPC): coefficients within 1e-6 of scikit-learn's Ridge on
    all 1,100 rows (the fixed-point solve's error is far below; see test_regression.py)."""
    from sklearn.linear_model import Ridge

    every = np.vstack([LIVE_ROWS, OUT_ROWS])
    model = Ridge(alpha=5.0).fit(every[:, :3], every[:, 3])
    out = ridge_run.outputs

    got = np.array([float(out[f"coef[{j}]"]) for j in range(4)])
    np.testing.assert_allclose(got, [model.intercept_, *model.coef_], rtol=1e-6, atol=1e-6)
    assert ridge_run.helper_mask_s > 0  # the holder converted under encryption


def _numpy_histogram(values: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=HIST_EDGES)  # the last bin closed, as ours
    return counts


@pytest.mark.timeout(600)
def test_an_outsourced_dp_histogram_is_within_six_sigma_of_numpy_s(histogram_dp_run):
    run = histogram_dp_run
    want = _numpy_histogram(np.concatenate([LIVE_AMOUNTS, OUT_AMOUNTS]))
    sigmas = {p.name: p.noise_sd for p in run.parts[0].outputs}

    got = np.array([float(run.outputs[f"count[{i}]"]) for i in range(4)])
    assert all(sigmas[f"count[{i}]"] > 0 for i in range(4))
    assert np.all(np.abs(got - want) <= 6 * np.array([sigmas[f"count[{i}]"] for i in range(4)]))
    assert np.any(got != want)  # noise was added


@pytest.mark.timeout(600)
def test_the_outsourced_owner_s_signed_min_cohort_withholds_a_small_bin(tmp_path):
    """An exact histogram where the outsourced owner signed a min_cohort between the
    smallest joint bin count and the others (the live owner sets none): the holder inputs
    it inside MPC, that bin opens as 0 with its marker set, the others equal numpy."""
    from ensnif_mpc.results.shares import combine
    from tests.protocols.he_rows_run import run as run_worker

    live = LIVE_AMOUNTS[LIVE_AMOUNTS < 900]
    out = OUT_AMOUNTS[OUT_AMOUNTS < 520]  # the top bin [500, 1000] keeps few rows
    want = _numpy_histogram(np.concatenate([live, out]))
    small = int(np.argmin(want))
    k = int(want[small]) + 1
    assert all(want[i] >= k for i in range(4) if i != small)
    got = run_worker(
        tmp_path, "histogram", _amounts(live), _amounts(out, outsourced=True),
        {"edges": HIST_EDGES}, decimals=DECIMALS, job_id="hehistmc", timeout=300.0,
        policy={"min_cohort": k},
    )  # fmt: skip
    raw = combine(got.parts)
    assert [int(raw[f"withheld[{i}]"]) for i in range(4)] == [int(i == small) for i in range(4)]
    assert raw[f"count[{small}]"] == 0
    assert [int(raw[f"count[{i}]"]) for i in range(4) if i != small] == [
        int(want[i]) for i in range(4) if i != small
    ]

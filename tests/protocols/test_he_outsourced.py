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
from tests.protocols.he_outsourced_run import DECIMALS, run, run_wrap

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

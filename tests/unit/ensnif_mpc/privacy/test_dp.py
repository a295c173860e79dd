"""DP calibration, accounting and the discrete Gaussian sampler (statistical tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.privacy import dp


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("rho", [0.001, 0.05, 0.5, 2.0])
@pytest.mark.parametrize("sensitivity", [1, 37, 50_000])
def test_calibrated_rho_never_exceeds_the_target(n: int, rho: float, sensitivity: int) -> None:
    t = (n - 1) // 2
    cal = dp.calibrate(rho, sensitivity, n, t)
    assert cal.honest == n - t
    assert cal.sigma_share >= dp.MIN_SIGMA_SHARE
    assert dp.kls_rho(sensitivity, cal.sigma_share, n - t, 1) <= rho
    # Not wildly over-noised either: within 1 % of the central Gaussian's scale (or the floor).
    central = sensitivity / math.sqrt(2 * rho)
    assert cal.sigma_guaranteed <= max(central * 1.01, dp.MIN_SIGMA_SHARE * math.sqrt(n - t))


def test_central_sigma_matches_the_closed_form() -> None:
    assert dp.central_sigma(0.5, 10) == pytest.approx(10.0, rel=1e-6)
    assert dp.central_sigma(0.02, 3) == pytest.approx(3 / math.sqrt(0.04), rel=1e-6)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "0.1"])
def test_bad_rho_is_refused(bad) -> None:
    with pytest.raises(InvalidJobSpec, match="privacy.rho"):
        dp.check_rho(bad)


def _pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    weights = np.exp(-(support.astype(float) ** 2) / (2 * sigma**2))
    full = np.exp(-(np.arange(-60 * int(sigma) - 60, 60 * int(sigma) + 61) ** 2) / (2 * sigma**2))
    return weights / full.sum()


def _chi_square_p(samples: np.ndarray, sigma: float) -> float:
    from scipy import stats

    edge = int(math.ceil(3 * sigma))
    support = np.arange(-edge, edge + 1)
    observed = np.array([(samples == k).sum() for k in support] + [(np.abs(samples) > edge).sum()])
    probs = _pmf(sigma, support)
    expected = np.append(probs, 1 - probs.sum()) * samples.size
    return float(stats.chisquare(observed, expected).pvalue)


def test_sampler_matches_the_exact_discrete_gaussian_pmf_and_a_wrong_scale_is_caught() -> None:
    sigma = 3.0
    samples = np.array(dp.sample_shares(sigma, 40_000))
    assert _chi_square_p(samples, sigma) > 1e-3
    assert abs(samples.mean()) < 0.1 and samples.var() == pytest.approx(sigma**2, rel=0.05)
    # Negative control: the same samples do not pass as a 10 % wider distribution.
    assert _chi_square_p(samples, sigma * 1.1) < 1e-6


def test_confidence_interval_of_the_summed_noise() -> None:
    cal = dp.calibrate(0.5, 10, 3, 1)
    assert cal.sigma_total == pytest.approx(cal.sigma_share * math.sqrt(3))
    assert cal.interval(0.95) == pytest.approx(1.959964 * cal.sigma_total, rel=1e-5)


def _sum_pmf(sigma: float, parties: int, support: np.ndarray) -> np.ndarray:
    """Exact pmf of the sum of ``parties`` independent discrete Gaussians (by convolution)."""
    reach = int(12 * sigma) + 2
    grid = np.arange(-reach, reach + 1)
    one = np.exp(-(grid.astype(float) ** 2) / (2 * sigma**2))
    one /= one.sum()
    total = one
    for _ in range(parties - 1):
        total = np.convolve(total, one)
    offset = (len(total) - 1) // 2
    return total[support + offset]


def test_summed_noise_shares_match_the_convolved_pmf_and_a_wrong_count_is_caught() -> None:
    from scipy import stats

    sigma, parties, draws = 2.5, 3, 30_000
    shares = np.array(dp.sample_shares(sigma, parties * draws)).reshape(parties, draws)
    total = shares.sum(axis=0)

    def p_value(n_parties: int) -> float:
        edge = int(3 * sigma * math.sqrt(n_parties))
        support = np.arange(-edge, edge + 1)
        probs = _sum_pmf(sigma, n_parties, support)
        observed = [(total == k).sum() for k in support] + [(np.abs(total) > edge).sum()]
        expected = np.append(probs, 1 - probs.sum()) * draws
        return float(stats.chisquare(observed, expected).pvalue)

    assert p_value(parties) > 1e-3
    assert total.var() == pytest.approx(parties * sigma**2, rel=0.05)
    # Negative control: the same sums are not the sum of two parties' shares.
    assert p_value(parties - 1) < 1e-6


def test_a_scale_beyond_the_64_bit_sampler_is_refused_not_clipped() -> None:
    """OpenDP's i64 sampler saturates at ±2^63: such a release must be refused."""
    import pytest

    from ensnif_mpc.errors import FailedPrecondition
    from ensnif_mpc.privacy import dp

    with pytest.raises(FailedPrecondition, match="64-bit sampler") as info:
        dp.plan(0.1, [(1e22, 1)], 3, 1)
    assert info.value.reason == "dp_unavailable"
    with pytest.raises(ValueError, match="exact range"):
        dp.sample_shares(1e22, 1)
    assert dp.plan(0.1, [(1e15, 1)], 3, 1).blocks[0].sigma_share < dp.MAX_SIGMA_SHARE

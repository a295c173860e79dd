"""The DP quantile's last step is not biased toward the middle of its grid.

The analyst's side takes the quantile of noisy grid counts. Against numpy's
inverted-CDF quantile of the rows, over 200 noise draws from the release's own sampler
(OpenDP's discrete Gaussian) on a 201-point grid where most points are empty: reading
negative counts as 0 (what the finalize did) pulls the median far up; summing the noisy
counts as they are, with an isotonic fit of the cumulative, stays near the truth.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ensnif_mpc.privacy import dp
from protocols import statistics

GRID = np.arange(0, 201)


def _names(counts: np.ndarray) -> dict[str, Fraction]:
    return {f"count[{g}]@q=1/2": Fraction(int(c)) for g, c in zip(GRID, counts, strict=True)}


def _negatives_as_zero(counts: np.ndarray) -> float:
    """The earlier finalize: negative counts read as 0, then the first crossing of q·N."""
    kept = np.maximum(counts, 0)
    cumulative = np.cumsum(kept)
    return float(GRID[np.argmax(cumulative >= 0.5 * cumulative[-1])])


@pytest.mark.parametrize("sd", [20.0, 60.0])
def test_the_dp_median_of_skewed_data_is_unbiased_where_negatives_as_zero_was_not(sd):
    rng = np.random.default_rng(0)
    rows = np.clip(rng.gamma(2.0, 30.0, 6000), 0, 200).round()
    counts = np.bincount(rows.astype(int), minlength=GRID.size)
    truth = float(np.quantile(rows, 0.5, method="inverted_cdf"))
    draws = [counts + np.array(dp.sample_shares(sd, GRID.size)) for _ in range(200)]

    ours = np.array([float(statistics.quantile_from_counts(_names(d))) for d in draws])
    before = np.array([_negatives_as_zero(d) for d in draws])

    spread = ours.std()
    assert abs(ours.mean() - truth) < 0.5 * spread  # within a fraction of its own noise
    assert before.mean() - truth > 1.5 * before.std()  # the bias the old step had
    exact = statistics.quantile_from_counts(_names(counts))
    assert float(exact) == truth  # no noise: numpy's inverted-CDF quantile exactly

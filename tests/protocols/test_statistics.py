"""Statistics run by three real MPyC workers (two owners + a helper) against the reference.

The references are the registry's own, evaluated on the same decimals as exact
fractions. Minimum, maximum, histogram counts and quantiles are exact. Variance and
standard deviation divide and take a square root in fixed point: their relative
error is below about 2^-30 (``statistics.moment_sizes``), so they are compared
with a relative tolerance of 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocols import registry
from tests.protocols.harness import draw, exact, exact_params, run_parties

pytestmark = pytest.mark.slow

LOWER, UPPER, DECIMALS = -50.0, 120.0, 2
SPREAD_TOLERANCE = 1e-6  # fixed point: relative error below 2^-30, see moment_sizes


def owners(seed: int, rows=(600, 1800)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [draw(rng, r, LOWER, UPPER, DECIMALS) for r in rows]


def reference(protocol: str, values, params, decimals: int = DECIMALS) -> dict[str, float]:
    tables = [{"value": exact(v, decimals)} for v in values if v is not None]
    return registry.get(protocol).reference(tables, exact_params(params))


def run(tmp_path, protocol, values, params=None, decimals=DECIMALS, lower=LOWER, upper=UPPER, **kw):
    return run_parties(
        tmp_path, protocol, values, params or {}, decimals=decimals, lower=lower, upper=upper, **kw
    )


@pytest.mark.parametrize("protocol", ["variance", "stdev"])
def test_spread_matches_the_reference_within_the_fixed_point_tolerance(tmp_path, protocol):
    values = owners(21)
    params = {"min": -12.5, "max": 80.25}

    got = run(tmp_path, protocol, [values[0], values[1], None], params)

    want = reference(protocol, values, params)[protocol]
    assert set(got.outputs) == {protocol}
    assert float(got.outputs[protocol]) == pytest.approx(want, rel=SPREAD_TOLERANCE)


def test_stdev_of_wide_values_beyond_64_bits_keeps_its_precision(tmp_path):
    # Values near 2^50 on the integer scale (1e9 with 6 decimals): N·Q near 2^128, while the
    # spread is a small fraction of the mean, so N·Q − S² cancels most of it (exactly, in MPC).
    rng = np.random.default_rng(22)
    values = [draw(rng, 20000, 5e8, 1e9, 6), draw(rng, 20, 5e8, 1e9, 6)]

    got = run(tmp_path, "stdev", [values[0], None, values[1]], decimals=6, lower=5e8, upper=1e9)

    assert got.bit_length > 64
    want = reference("stdev", values, {}, decimals=6)["stdev"]
    assert float(got.outputs["stdev"]) == pytest.approx(want, rel=SPREAD_TOLERANCE)


def test_variance_of_constant_values_is_exactly_zero_and_of_one_row_is_nan(tmp_path):
    constant = [np.full(50, 7.25), np.full(30, 7.25)]
    single = [np.array([3.5, 99.0]), np.array([100.0])]

    flat = run(tmp_path, "variance", [constant[0], constant[1], None], job_id="flat")
    one = run(tmp_path, "variance", [single[0], single[1], None], {"max": 10}, job_id="one")

    assert flat.outputs["variance"] == 0
    assert math.isnan(reference("variance", single, {"max": 10})["variance"])
    assert math.isnan(one.outputs["variance"])


def test_minmax_is_exact_and_an_owner_without_kept_rows_does_not_count(tmp_path):
    rng = np.random.default_rng(23)
    low = draw(rng, 400, -50.0, -0.01, DECIMALS)  # every row below the filter's min
    high = draw(rng, 900, 0.0, 120.0, DECIMALS)
    params = {"min": 0.0}

    got = run(tmp_path, "minmax", [low, high, None], params)

    want = reference("minmax", [low, high], params)
    assert set(got.outputs) == {"min", "max"}
    assert float(got.outputs["min"]) == want["min"] and float(got.outputs["max"]) == want["max"]


def test_minmax_of_no_kept_rows_is_nan(tmp_path):
    values = owners(24, rows=(50, 80))

    got = run(tmp_path, "minmax", [values[0], values[1], None], {"min": 121.0})

    assert math.isnan(got.outputs["min"]) and math.isnan(got.outputs["max"])


def test_histogram_counts_are_exact_with_edges_on_decimal_values(tmp_path):
    values = owners(25)
    values[0][:3] = [-12.5, 119.99, 0.29]  # rows exactly on edges, the last edge included
    values[1][:2] = [120.0, 119.99]  # beyond the last edge: not counted; on it: counted
    edges = [-50.0, -12.5, 0.0, 0.29, 33.33, 80.0, 119.99]

    got = run(tmp_path, "histogram", [values[0], None, values[1]], {"edges": edges})

    want = reference("histogram", values, {"edges": edges})
    assert {k: float(v) for k, v in got.outputs.items()} == want
    assert sum(want.values()) < sum(len(v) for v in values)  # the row at 120 is left out


def test_quantile_on_a_grid_finer_than_the_data_matches_the_reference(tmp_path):
    # The grid has three decimals, the data two: its value is then formed in fixed point.
    values = owners(26)
    params = {"q": 0.3, "lower": -40.005, "upper": 100.0, "step": 0.25}

    got = run(tmp_path, "quantile", [values[0], values[1], None], params)

    want = reference("quantile", values, params)["quantile"]
    assert float(got.outputs["quantile"]) == pytest.approx(want, rel=1e-12)


def test_quantile_of_integers_on_a_step_one_grid_is_numpys_inverted_cdf(tmp_path):
    rng = np.random.default_rng(27)
    values = [rng.integers(-20, 60, size=n).astype(np.float64) for n in (301, 700)]
    params = {"q": 0.9, "lower": -20, "upper": 59, "step": 1}

    got = run(tmp_path, "quantile", [values[0], values[1], None], params, 0, lower=-20, upper=60)

    want = np.quantile(np.concatenate(values), 0.9, method="inverted_cdf")
    assert got.outputs["quantile"] == want


def test_median_of_a_single_owner_with_two_helpers(tmp_path):
    values = owners(28, rows=(999,))
    params = {"lower": -50, "upper": 120, "step": 0.5}

    got = run(tmp_path, "quantile", [values[0], None, None], params)

    assert float(got.outputs["quantile"]) == reference("quantile", values, params)["quantile"]


def test_quantile_of_no_rows_is_nan(tmp_path):
    empty = np.array([], dtype=np.float64)

    got = run(tmp_path, "quantile", [empty, empty, None], {"lower": 0, "upper": 10, "step": 1})

    assert math.isnan(got.outputs["quantile"])

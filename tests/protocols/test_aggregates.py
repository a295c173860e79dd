"""count, sum and mean run by real MPyC workers (1 and 3 parties) against the plaintext reference.

The reference is the registry's own, evaluated on the same decimals as exact
fractions, so count and sum must match to the last bit; the mean is computed
in fixed point and matches within a tolerance derived from its fractional bits.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ensnif_mpc.jobs.worker_session import WorkerSession
from protocols.registry import catalog
from tests.protocols.harness import draw, exact, exact_params, run_parties

PROTOCOLS = {k: v for k, v in catalog().items() if v.family == "aggregates"}

# One data owner with integers; three owners of different sizes with two decimals.
# Both have negative lower bounds and use the min/max filter.
CASES = {
    1: dict(rows=(2500,), lower=-1000.0, upper=1000.0, decimals=0, params={"min": -250}),
    3: dict(
        rows=(600, 1800, 4500),
        lower=-50.0,
        upper=120.0,
        decimals=2,
        params={"min": -12.5, "max": 80.25},
    ),
}


def reference(protocol: str, values, params, decimals: int) -> float:
    definition = PROTOCOLS[protocol]
    (name,) = definition.outputs
    tables = [{"value": exact(v, decimals)} for v in values]
    return definition.reference(tables, exact_params(params))[name]


def assert_mean_close(got: Fraction, want: float, frac_bits: int) -> None:
    # MPyC divides as sum * (1/count) with the reciprocal on frac_bits >= 32 fractional bits
    # (mean_frac_bits: max(32, bit_length + 4)); its relative error is about count * 2**-f,
    # below 1e-7 for the few thousand rows used here, so a relative 1e-6 is a safe bound.
    assert frac_bits >= 32
    assert float(got) == pytest.approx(want, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("n_parties", sorted(CASES), ids=lambda n: f"{n}party")
@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_protocol_matches_plaintext_reference(tmp_path, protocol, n_parties):
    case = CASES[n_parties]
    rng = np.random.default_rng(100 + n_parties)
    values = [draw(rng, r, case["lower"], case["upper"], case["decimals"]) for r in case["rows"]]

    run = run_parties(
        tmp_path,
        protocol,
        values,
        case["params"],
        decimals=case["decimals"],
        lower=case["lower"],
        upper=case["upper"],
    )

    want = reference(protocol, values, case["params"], case["decimals"])
    (name,) = PROTOCOLS[protocol].outputs
    assert set(run.outputs) == {name}
    if protocol == "mean":
        assert_mean_close(run.outputs[name], want, run.parts[0].outputs[0].frac_bits)
    else:
        assert float(run.outputs[name]) == want


@pytest.mark.slow
def test_compute_only_helper_feeds_nothing_and_the_result_is_right(tmp_path):
    rng = np.random.default_rng(11)
    values = [draw(rng, 1500, -30.0, 30.0, 1), None, draw(rng, 800, -30.0, 30.0, 1)]
    params = {"max": 12.5}

    run = run_parties(tmp_path, "sum", values, params, decimals=1, lower=-30.0, upper=30.0)

    helper = run.dirs[1]
    assert not WorkerSession.read(helper).has_input
    assert not list(helper.glob("data.*"))  # no dataset written for the helper
    assert run.statuses[1].phase == "done"
    kept = [v for v in values if v is not None]
    assert float(run.outputs["sum"]) == reference("sum", kept, params, 1)


@pytest.mark.slow
def test_result_shares_are_rerandomized_but_reconstruct_the_same_value(tmp_path):
    rng = np.random.default_rng(12)
    values = [draw(rng, r, -5.0, 5.0, 0) for r in (300, 700, 1100)]

    first = run_parties(tmp_path, "count", values, lower=-5.0, upper=5.0, job_id="first")
    second = run_parties(tmp_path, "count", values, lower=-5.0, upper=5.0, job_id="second")

    assert first.outputs == second.outputs == {"count": 2100}
    for a, b in zip(first.parts, second.parts, strict=True):
        assert a.x == b.x
        assert a.outputs[0].share != b.outputs[0].share, f"party {a.x - 1} sent the same share"


# -- edge cases that were bugs once --------------------------------------------------


def test_filter_bound_between_grid_points_keeps_only_rows_within_it(tmp_path):
    values = [np.arange(-5, 6, dtype=np.float64)]
    params = {"max": 2.7}

    run = run_parties(tmp_path, "count", values, params, decimals=0, lower=-5.0, upper=5.0)

    assert float(run.outputs["count"]) == reference("count", values, params, 0) == 8.0


def test_sum_beyond_int64_is_exact(tmp_path):
    values = [draw(np.random.default_rng(13), 20000, 5e8, 1e9, 6)]

    run = run_parties(tmp_path, "sum", values, decimals=6, lower=5e8, upper=1e9)

    assert run.bit_length > 64
    assert float(run.outputs["sum"]) == reference("sum", values, {}, 6)


def test_mean_of_no_kept_rows_is_not_a_number(tmp_path):
    values = [np.arange(-5, 6, dtype=np.float64)]
    params = {"min": 7}

    run = run_parties(tmp_path, "mean", values, params, decimals=0, lower=-5.0, upper=5.0)

    assert math.isnan(reference("mean", values, params, 0))
    assert math.isnan(float(run.outputs["mean"]))


def test_mean_of_many_rows_is_accurate_to_one_part_per_million(tmp_path):
    values = [draw(np.random.default_rng(14), 2_000_000, 0.0, 1.0, 0)]

    run = run_parties(tmp_path, "mean", values, decimals=0, lower=0.0, upper=1.0)

    want = PROTOCOLS["mean"].reference([{"value": v} for v in values], {})[
        "mean"
    ]  # exact: sums of 0/1 floats
    assert float(run.outputs["mean"]) == pytest.approx(want, rel=1e-6)

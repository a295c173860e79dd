"""The statistics and group-by families: declarations, parameter checks, references vs pandas.

No MPC here: the references and the owners' local steps (binning, grid counts, the
per-group layout) are plain numpy, checked against pandas and numpy on the same data.
"""

from __future__ import annotations

import importlib
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from protocols import grouped, registry, statistics

STATISTICS = ("variance", "stdev", "minmax", "histogram", "quantile")
GROUP_BY = ("group_count", "group_sum", "group_mean", "group_by")

# Two owners: [1, 5, 10] and [20]; and a column with decimals for the exact checks.
COLS = [{"value": np.array([1.0, 5.0, 10.0])}, {"value": np.array([20.0])}]


def spec(protocol: str, **params) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "inputs": [{"party": "grocery", "dataset": "orders", "column": "total"}],
            "helpers": ["helper"],
            "params": params,
        }
    )


def check(protocol: str, **params) -> None:
    """What the coordinator runs: types and defaults, then the protocol's own checks."""
    definition = registry.get(protocol)
    definition.check_params(params)
    if definition.check_spec is not None:
        definition.check_spec(spec(protocol, **params))


def tables(values: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [{"value": v} for v in values]


# -- declarations --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STATISTICS + GROUP_BY)
def test_every_protocol_is_declared_with_a_program_leakage_and_reference(name):
    d = registry.get(name)
    module, func = d.program.split(":")

    assert d.family == ("statistics" if name in STATISTICS else "group-by")
    family = "protocols.statistics" if name in STATISTICS else "protocols.grouped"
    assert module == family or module.startswith(family + ".")
    assert callable(getattr(importlib.import_module(module), func))
    assert callable(getattr(statistics if name in STATISTICS else grouped, func))
    assert d.leakage and d.summary and d.outputs
    assert callable(d.reference)


@pytest.mark.parametrize("name", GROUP_BY)
def test_group_protocols_say_that_unlisted_groups_are_ignored(name):
    assert "unlisted groups are ignored" in registry.get(name).leakage


def test_group_count_takes_no_value_column_and_the_others_need_one():
    assert [r.name for r in registry.get("group_count").roles_at(0)] == ["group"]
    for name in ("group_sum", "group_mean", "group_by"):
        assert {r.name for r in registry.get(name).roles_at(0)} == {"group", "value"}

    with pytest.raises(InvalidJobSpec, match=r"inputs\[0\]\.column: protocol 'group_sum' needs"):
        registry.get("group_sum").check_roles(0, {"group": "zip"})


def test_quantile_defaults_to_the_median():
    params = registry.get("quantile").check_params({"lower": 0, "upper": 10, "step": 1})

    assert params["q"] == 0.5


# -- parameter checks ----------------------------------------------------------------------------


def test_histogram_requires_edges():
    with pytest.raises(InvalidJobSpec, match=r"params\.edges: required by protocol 'histogram'"):
        check("histogram")


@pytest.mark.parametrize("edges", [[], "0,10", [0, "10"], [0, math.inf]])
def test_histogram_refuses_edges_that_are_not_a_list_of_numbers(edges):
    with pytest.raises(InvalidJobSpec, match=r"params\.edges: expected a non-empty list"):
        check("histogram", edges=edges)


def test_histogram_needs_two_edges():
    with pytest.raises(InvalidJobSpec, match=r"params\.edges: give at least two bin edges"):
        check("histogram", edges=[5])


@pytest.mark.parametrize("edges", [[0, 10, 10, 20], [0, 10, 5]])
def test_histogram_refuses_edges_that_do_not_strictly_increase(edges):
    with pytest.raises(InvalidJobSpec, match=r"params\.edges: must be strictly increasing"):
        check("histogram", edges=edges)


def test_histogram_refuses_more_than_the_maximum_bins():
    with pytest.raises(InvalidJobSpec, match=r"params\.edges: at most 4096 bins \(4097 given\)"):
        check("histogram", edges=list(range(4098)))


def test_histogram_accepts_decimal_edges_closer_than_float_noise():
    check("histogram", edges=[0.1, 0.2, 0.30000000000000004, 0.3000000000000001])


@pytest.mark.parametrize("missing", ["lower", "upper", "step"])
def test_quantile_requires_its_grid(missing):
    params = {"lower": 0, "upper": 10, "step": 1}
    del params[missing]

    with pytest.raises(InvalidJobSpec, match=rf"params\.{missing}: required"):
        check("quantile", **params)


@pytest.mark.parametrize("q", [0, 1, -0.5, 1.5])
def test_quantile_refuses_q_outside_the_open_unit_interval(q):
    with pytest.raises(InvalidJobSpec, match=r"params\.q: must be strictly between 0 and 1"):
        check("quantile", q=q, lower=0, upper=10, step=1)


@pytest.mark.parametrize("step", [0, -1])
def test_quantile_refuses_a_step_that_is_not_positive(step):
    with pytest.raises(InvalidJobSpec, match=r"params\.step: must be positive"):
        check("quantile", lower=0, upper=10, step=step)


def test_quantile_refuses_an_empty_range():
    with pytest.raises(InvalidJobSpec, match=r"params\.upper \(5\) must be greater than"):
        check("quantile", lower=5, upper=5, step=1)


def test_quantile_refuses_a_grid_too_fine_and_names_a_coarse_enough_step():
    with pytest.raises(InvalidJobSpec, match=r"10001 points.*at most 4096.*at least 0\.244"):
        check("quantile", lower=0, upper=1000, step=0.1)

    check("quantile", lower=0, upper=1000, step=0.2443)  # 4094 points: accepted


def test_quantile_grid_of_exactly_the_maximum_is_accepted():
    grid = statistics.check_grid({"lower": 0, "upper": 4095, "step": 1})

    assert grid.points == statistics.MAX_BINS


def test_quantile_grid_uses_the_exact_decimals():
    grid = statistics.check_grid({"lower": 0.1, "upper": 0.3, "step": 0.1, "q": 0.3})

    assert grid.points == 3  # (0.3 − 0.1) / 0.1 is 1.9999999999999998 in floats
    assert grid.q == Fraction(3, 10)
    assert grid.index(Fraction(3, 10)) == 2


def test_groups_are_required_and_must_be_distinct_labels():
    with pytest.raises(InvalidJobSpec, match=r"params\.groups: required"):
        check("group_by")
    with pytest.raises(InvalidJobSpec, match=r"params\.groups: expected a non-empty list"):
        check("group_by", groups=["10115", 10115])
    with pytest.raises(InvalidJobSpec, match=r"params\.groups: expected a non-empty list"):
        check("group_mean", groups=[1.5])

    check("group_count", groups=["10115", 80331])


@pytest.mark.parametrize("name", ["variance", "stdev", "minmax"])
def test_spread_and_extremes_take_the_row_filter(name):
    with pytest.raises(InvalidJobSpec, match=r"params\.min \(10\) is greater than params\.max"):
        check(name, min=10, max=5)


# -- references against pandas and numpy --------------------------------------------------------


@pytest.fixture
def drawn():
    rng = np.random.default_rng(3)
    return [rng.integers(-5000, 12000, size=n) / 100 for n in (40, 300, 1)]


def test_variance_and_stdev_references_match_pandas(drawn):
    frame = pd.Series(np.concatenate(drawn))
    params = {"min": -20.0, "max": 90.5}
    kept = frame[(frame >= -20.0) & (frame <= 90.5)]

    var = registry.get("variance").reference(tables(drawn), params)["variance"]
    sd = registry.get("stdev").reference(tables(drawn), params)["stdev"]

    assert var == pytest.approx(kept.var(ddof=1), rel=1e-12)
    assert sd == pytest.approx(kept.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("name", ["variance", "stdev"])
def test_spread_of_fewer_than_two_rows_is_not_a_number(name):
    one = registry.get(name).reference(COLS, {"min": 15})
    none = registry.get(name).reference(COLS, {"min": 100})

    assert math.isnan(one[name]) and math.isnan(none[name])


def test_spread_reference_is_exact_on_decimals():
    # Three values with decimals whose float squares would round: variance is exactly 0.01.
    values = [{"value": np.array([0.1, 0.2, 0.3])}]

    assert registry.get("variance").reference(values, {}) == {"variance": 0.01}


def test_minmax_reference_matches_numpy_and_ignores_empty_owners(drawn):
    got = registry.get("minmax").reference(tables(drawn) + [{"value": np.array([])}], {})
    everything = np.concatenate(drawn)

    assert got == {"min": everything.min(), "max": everything.max()}


def test_minmax_reference_of_no_rows_is_not_a_number():
    got = registry.get("minmax").reference(COLS, {"min": 100})

    assert math.isnan(got["min"]) and math.isnan(got["max"])


def test_histogram_reference_matches_numpy_histogram(drawn):
    # numpy's bins are [e_i, e_(i+1)) with the last one closed, as the protocol's.
    edges = [-50.0, -12.5, 0.0, 0.01, 33.33, 80.0, 119.99]
    everything = np.concatenate(drawn)
    everything = np.append(everything, [119.99, -50.0, 120.0, -50.01])  # both ends and beyond

    got = registry.get("histogram").reference([{"value": everything}], {"edges": edges})
    want, _ = np.histogram(everything, bins=edges)

    assert list(got.values()) == want.astype(float).tolist()
    assert list(got) == [f"count[{i}]" for i in range(len(edges) - 1)]


def test_owner_binning_matches_the_reference_on_distinct_values(drawn):
    everything = np.concatenate(drawn)
    keys, counts = np.unique(everything, return_counts=True)
    edges = [-40, -0.29, 0.29, 33.33, 100]

    local = statistics.bin_counts(keys, counts, edges, decimals=2)
    want = registry.get("histogram").reference([{"value": everything}], {"edges": edges})

    assert local.tolist() == [int(v) for v in want.values()]


def test_owner_binning_compares_decimal_edges_exactly():
    # 0.29 * 100 is 28.999999999999996 in floats; the row 0.29 belongs to the bin starting there.
    keys, counts = np.array([0.28, 0.29, 0.3]), np.array([1, 2, 4])

    assert statistics.bin_counts(keys, counts, [0, 0.29, 0.3], decimals=2).tolist() == [1, 6]


def rounded_down(values: np.ndarray, lower: float, step: float, points: int) -> np.ndarray:
    """numpy's view of the grid: values rounded down onto lower + j·step, clamped to the grid."""
    index = np.clip(np.floor(np.round((values - lower) / step, 9)), 0, points - 1)
    return lower + index * step


@pytest.mark.parametrize("q", [0.01, 0.25, 0.5, 0.9, 0.999])
def test_quantile_reference_matches_numpy_inverted_cdf_on_the_rounded_values(drawn, q):
    everything = np.concatenate(drawn)
    params = {"q": q, "lower": -30.0, "upper": 100.0, "step": 0.5}
    points = statistics.check_grid(params).points

    got = registry.get("quantile").reference(tables(drawn), params)["quantile"]
    on_grid = rounded_down(everything, -30.0, 0.5, points)
    want = np.quantile(on_grid, q, method="inverted_cdf")

    assert got == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.75])
def test_quantile_of_integers_on_a_step_one_grid_is_the_exact_quantile(q):
    values = np.random.default_rng(4).integers(-20, 60, size=501)

    got = registry.get("quantile").reference(
        [{"value": values}], {"q": q, "lower": -20, "upper": 59, "step": 1}
    )

    assert got["quantile"] == np.quantile(values, q, method="inverted_cdf")


def test_quantile_reference_of_no_rows_is_not_a_number():
    got = registry.get("quantile").reference(
        [{"value": np.array([])}], {"lower": 0, "upper": 1, "step": 1}
    )

    assert math.isnan(got["quantile"])


def test_owner_grid_counts_match_the_reference_rounding(drawn):
    everything = np.concatenate(drawn)
    keys, counts = np.unique(everything, return_counts=True)
    grid = statistics.check_grid({"lower": -30.005, "upper": 100, "step": 0.25})

    local = statistics.grid_counts(keys, counts, grid, decimals=2)
    want = np.bincount([grid.index(statistics.exact(v)) for v in everything], minlength=grid.points)

    assert local.tolist() == want.tolist()


def group_tables(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    zips = np.array(["10115", "10117", "20095", "80331"], dtype=object)
    return [
        {"group": rng.choice(zips, size=n), "value": rng.integers(-2000, 30000, size=n) / 100}
        for n in sizes
    ]


def test_group_references_match_pandas_groupby():
    owners = group_tables(np.random.default_rng(6), (200, 350))
    frame = pd.concat(pd.DataFrame(t) for t in owners)
    groups = ["10115", "20095", "99999"]  # 10117 and 80331 are not listed; 99999 has no row
    want = frame.groupby("group")["value"].agg(["count", "sum", "mean"])

    got = registry.get("group_by").reference(owners, {"groups": groups})

    for g in ("10115", "20095"):
        assert got[f"count[{g}]"] == want.loc[g, "count"]
        assert got[f"sum[{g}]"] == pytest.approx(want.loc[g, "sum"], rel=1e-12)
        assert got[f"mean[{g}]"] == pytest.approx(want.loc[g, "mean"], rel=1e-12)
    assert got["count[99999]"] == 0 and got["sum[99999]"] == 0
    assert math.isnan(got["mean[99999]"])
    assert len(got) == 9


def test_group_references_match_int_columns_by_their_text():
    owners = [{"group": np.array([7, 7, 8, 70]), "value": np.array([1.0, 2.0, 3.0, 4.0])}]

    got = registry.get("group_sum").reference(owners, {"groups": ["7", 70, "07"]})

    assert got == {"sum[7]": 3.0, "sum[70]": 4.0, "sum[07]": 0.0}


def test_owner_layout_on_the_public_groups_drops_unlisted_keys():
    keys = np.array(["10115", "10117", "99999"], dtype=object)
    counts, sums = np.array([3, 4, 5]), np.array([10**20, 7, 9], dtype=object)

    layout = grouped.per_group(keys, [counts, sums], ["20095", "10115", "99999"])

    assert layout.tolist() == [[0, 3, 5], [0, 10**20, 9]]


# -- finalize: the analyst's last step ----------------------------------------------------------


def test_finalize_replaces_flagged_outputs_with_nan():
    assert math.isnan(
        registry.finalize("variance", {"variance": Fraction(0), "few": Fraction(1)})["variance"]
    )
    assert registry.finalize("stdev", {"stdev": Fraction(3, 2), "few": Fraction(0)}) == {
        "stdev": Fraction(3, 2)
    }
    out = registry.finalize(
        "minmax", {"min": Fraction(9), "max": Fraction(-9), "empty": Fraction(1)}
    )
    assert math.isnan(out["min"]) and math.isnan(out["max"])
    assert math.isnan(
        registry.finalize("quantile", {"quantile": Fraction(0), "empty": Fraction(1)})["quantile"]
    )


def test_group_by_finalize_computes_exact_means_and_nan_for_empty_groups():
    values = {
        "count[a]": Fraction(3),
        "count[b]": Fraction(0),
        "sum[a]": Fraction(1),
        "sum[b]": Fraction(0),
    }

    out = registry.finalize("group_by", values)

    assert out["mean[a]"] == Fraction(1, 3)
    assert math.isnan(out["mean[b]"])
    assert list(out) == ["count[a]", "count[b]", "sum[a]", "sum[b]", "mean[a]", "mean[b]"]


def test_group_mean_finalize_keeps_only_the_means():
    values = {
        "mean[a]": Fraction(5, 2),
        "mean[b]": Fraction(0),
        "empty[a]": Fraction(0),
        "empty[b]": Fraction(1),
    }

    out = registry.finalize("group_mean", values)

    assert list(out) == ["mean[a]", "mean[b]"]
    assert out["mean[a]"] == Fraction(5, 2) and math.isnan(out["mean[b]"])


def test_moment_sizes_leave_room_for_the_exact_numerator():
    width_a, width_d, f = statistics.moment_sizes(40, 2)

    assert width_a == 120
    assert 2**width_d > 100 * 2**80  # D·10^d < 2^(2b)·10^d
    assert f == width_d + 32

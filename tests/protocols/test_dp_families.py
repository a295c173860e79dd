"""DP releases of the statistics, `group_mean` and the private joins, with real workers.

Every job runs with two owners and a helper (three MPyC worker processes) and a release
plan from the protocol's own sensitivity; the noise is added inside MPC before the
analyst opens anything. What the analyst opens is checked against the plaintext
(numpy/pandas) answer within 6σ of the noise the plan reports for that output (a false
alarm has probability below 2e-9 per output); what the analyst's side computes from it
(a variance, a ratio, a quantile, r) is then checked to be that post-processing, and
within the bounds the 6σ box implies for it. The jobs run two at a time, once per module.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp, withheld
from ensnif_mpc.results.shares import combine
from protocols import join, statistics
from protocols.registry import catalog
from tests.protocols.harness import OwnerTable, RunResult, draw, run_parties

pytestmark = pytest.mark.slow

SIGMAS = 6.0
DECIMALS = 1  # the aggregates' columns: [0, 100] with one decimal, B = 1000 on the grid
GROUPS = ["a", "b", "c"]


# -- data ----------------------------------------------------------------------------------------
rng = np.random.default_rng(20240611)
VALUES = [draw(rng, 2500, 0.0, 100.0, DECIMALS), draw(rng, 2000, 0.0, 100.0, DECIMALS)]


def _grouped(rows: int) -> OwnerTable:
    return OwnerTable(
        {"g": rng.choice([*GROUPS, "x"], rows).astype(object), "v": rng.integers(0, 40, rows)},
        (Column("g", "string"), Column("v", "int", 0, 40)),
        {"group": "g", "value": "v"},
    )


def _keyed(keys: np.ndarray, value: np.ndarray, other: dict[str, np.ndarray]) -> dict:
    return {"k": keys, "v": value, **other}


# Join data: customer ids with one to three rows each (so the per-key caps bite), 500 of them
# at both owners; the values follow a per-customer latent z, so the owners' values correlate.
# The correlation needs the 500 pairs for a tight check; the other joins take a slice.
KEYS_A = np.repeat(np.arange(0, 600), rng.integers(1, 4, 600))
KEYS_B = np.repeat(np.arange(100, 700), rng.integers(1, 3, 600))
LATENT = rng.uniform(0, 1, 700)
A_DATA = {
    "k": KEYS_A,
    "v": np.clip(np.rint(50 * LATENT[KEYS_A] + rng.normal(0, 3, KEYS_A.size)), 0, 50).astype(int),
    "f": rng.integers(0, 10, KEYS_A.size),
}
B_DATA = {
    "k": KEYS_B,
    "v": np.clip(np.rint(30 * LATENT[KEYS_B] + rng.normal(0, 2, KEYS_B.size)), 0, 30).astype(int),
    "g": rng.choice([*GROUPS, "x"], KEYS_B.size).astype(object),
}
SMALL_A = {role: v[KEYS_A < 250] for role, v in A_DATA.items()}  # 150 keys in common
SMALL_B = {role: v[KEYS_B < 250] for role, v in B_DATA.items()}
A_COLUMNS = (Column("k", "int", 0, 1000), Column("v", "int", 0, 50), Column("f", "int", 0, 10))
B_COLUMNS = (Column("k", "int", 0, 1000), Column("v", "int", 0, 30), Column("g", "string"))


def _a(data: dict = SMALL_A, **roles: str) -> OwnerTable:
    return OwnerTable(data, A_COLUMNS, roles)


def _b(data: dict = SMALL_B, **roles: str) -> OwnerTable:
    return OwnerTable(data, B_COLUMNS, roles)


# protocol: (owners, (rows per person, B) per owner as the coordinator derives them, params, ρ,
# run options). ρ is moderate where that already gives a tight check; minmax and the
# correlation need a large one for a tolerance narrower than the answer's own range.
JOBS: dict[str, tuple[list[Any], list[tuple[int, int]], dict[str, Any], float, dict]] = {
    "variance": ([*VALUES, None], [(1, 1000), (1, 1000)], {}, 3.0, {"decimals": DECIMALS}),
    "stdev": ([*VALUES, None], [(1, 1000), (1, 1000)], {"min": 10.0}, 3.0, {"decimals": DECIMALS}),
    "minmax": ([*VALUES, None], [(1, 1000), (1, 1000)], {}, 1e4, {"decimals": DECIMALS}),
    "histogram": (
        [*VALUES, None],
        [(1, 1000), (1, 1000)],
        {"edges": [0, 12.5, 50, 90, 100]},
        0.5,
        {"decimals": DECIMALS},
    ),
    "quantile": (
        [*VALUES, None],
        [(1, 1000), (1, 1000)],
        {"lower": 0, "upper": 100, "step": 12.5, "q": 0.3},
        1.0,
        {"decimals": DECIMALS},
    ),
    "group_mean": (
        [_grouped(1500), _grouped(1000), None],
        [(1, 40), (1, 40)],
        {"groups": GROUPS},
        1.0,
        {},
    ),
    "intersection_size": ([_a(key="k"), _b(key="k"), None], [(1, 0), (1, 0)], {}, 1.0, {}),
    "intersection_sum": (
        [_a(key="k", value="v"), _b(key="k"), None],
        [(1, 50), (1, 0)],
        {"max_rows_per_key": 2},
        1.0,
        {},
    ),
    "join_group_by": (
        [_a(key="k", filter="f"), _b(key="k", group="g", value="v"), None],
        [(1, 0), (1, 30)],
        {"groups": GROUPS, "threshold": 6, "max_rows_per_key": 2},
        1.0,
        {},
    ),
    "join_correlation": (
        [_a(A_DATA, key="k", value="v"), _b(B_DATA, key="k", value="v"), None],
        [(1, 50), (1, 30)],
        {"per_key": "sum", "max_rows_per_key": 2},
        200.0,
        {},
    ),
}


def _plan(protocol: str) -> dp.ReleasePlan:
    _, owners, params, rho, _ = JOBS[protocol]
    return dp.plan(rho, catalog()[protocol].dp_sensitivity(owners, params), 3, 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("dp_families")

    def run(protocol: str) -> RunResult:
        tables, _, params, _, options = JOBS[protocol]
        return run_parties(
            root,
            protocol,
            tables,
            params,
            job_id=protocol.replace("_", ""),
            release=_plan(protocol).to_dict(),
            timeout=180.0,
            lower=0.0,
            upper=100.0,
            **options,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(JOBS, pool.map(run, JOBS), strict=True))


def opened(run: RunResult) -> dict[str, Fraction]:
    """What the analyst opens, before the protocol's last step."""
    return combine(run.parts)


def sigmas(run: RunResult) -> dict[str, float]:
    """Each opened output's noise sd in its opened unit, as the plan fixed it (and the worker
    reported it)."""
    return {o.name: o.noise_sd / 10**o.decimals for o in run.parts[0].outputs}


def assert_near(got: dict[str, Fraction], want: dict[str, float], sd: dict[str, float]) -> None:
    for name, value in want.items():
        assert abs(float(got[name]) - value) <= SIGMAS * sd[name], (name, float(got[name]), value)


def assert_noise_matches_the_plan(run: RunResult, protocol: str) -> None:
    plan = _plan(protocol)
    # The minimum cohort's withheld markers are not noised (post-processing of the counts).
    reported = [o.noise_sd for o in run.parts[0].outputs if not withheld.is_marker(o.name)]
    assert reported == pytest.approx(plan.output_sigmas())
    assert len(reported) == plan.dims


def ratio_bounds(s: float, ds: float, c: float, dc: float) -> tuple[float, float]:
    """The range of (s ± ds) / (c ± dc) for positive s − ds and c − dc."""
    assert s - ds > 0 and c - dc > 0
    return (s - ds) / (c + dc), (s + ds) / (c - dc)


# -- statistics ----------------------------------------------------------------------------------


def _moments(values: list[np.ndarray], params: dict) -> tuple[float, float, float]:
    kept = np.concatenate(values)
    if params.get("min") is not None:
        kept = kept[kept >= params["min"]]
    return float(kept.size), float(kept.sum()), float((kept**2).sum())


@pytest.mark.parametrize("protocol", ["variance", "stdev"])
def test_spread_is_computed_from_noisy_count_sum_and_squares(runs, protocol):
    run, (_, _, params, _, _) = runs[protocol], JOBS[protocol]
    n, s, q = _moments(VALUES, params)
    raw, sd = opened(run), sigmas(run)
    squares_name = f"sumsq@decimals={2 * DECIMALS}"
    sd_q = sd[squares_name] / 10 ** (2 * DECIMALS)  # opened on the squared grid
    assert_noise_matches_the_plan(run, protocol)
    assert_near(raw, {"count": n, "sum": s}, sd)
    assert abs(float(raw[squares_name]) / 10 ** (2 * DECIMALS) - q) <= SIGMAS * sd_q

    got = run.outputs
    assert (got["count"], got["sum"]) == (raw["count"], raw["sum"])
    var = statistics.spread_from_moments(got["count"], got["sum"], got["sumsq"])
    assert got[protocol] == (var if protocol == "variance" else pytest.approx(math.sqrt(var)))
    # The variance over the 6σ box around (N, S, Q): Q/(N−1) − S²/(N(N−1)), each term monotone.
    e_n, e_s, e_q = SIGMAS * sd["count"], SIGMAS * sd["sum"], SIGMAS * sd_q
    high = (q + e_q) / (n - e_n - 1) - (s - e_s) ** 2 / ((n + e_n) * (n + e_n - 1))
    low = (q - e_q) / (n + e_n - 1) - (s + e_s) ** 2 / ((n - e_n) * (n - e_n - 1))
    kept = np.concatenate(VALUES)
    kept = kept[kept >= params.get("min", -math.inf)]
    want = float(np.var(kept, ddof=1) if protocol == "variance" else np.std(kept, ddof=1))
    bounds = (low, high) if protocol == "variance" else (math.sqrt(max(low, 0)), math.sqrt(high))
    assert bounds[0] <= float(got[protocol]) <= bounds[1]
    assert bounds[0] <= want <= bounds[1]
    assert bounds[1] - bounds[0] < 0.3 * want  # the check means something at this ρ


def test_minmax_releases_noisy_ends_of_the_whole_range(runs):
    run = runs["minmax"]
    want = catalog()["minmax"].reference([{"value": v} for v in VALUES], {})
    sd = sigmas(run)

    assert_noise_matches_the_plan(run, "minmax")
    assert set(opened(run)) == {"min", "max"}  # no exact emptiness bit
    assert_near(run.outputs, want, sd)
    assert SIGMAS * sd["min"] < 20  # ρ = 10⁴: the scale of the range (100) over √ρ
    assert sd["min"] > 0 and run.outputs != {k: Fraction(v) for k, v in want.items()}


def test_histogram_noises_every_bin(runs):
    run, (_, _, params, _, _) = runs["histogram"], JOBS["histogram"]
    want = catalog()["histogram"].reference([{"value": v} for v in VALUES], params)

    assert_noise_matches_the_plan(run, "histogram")
    assert_near(run.outputs, want, sigmas(run))
    assert sum(float(run.outputs[k]) != v for k, v in want.items()) >= 2


def test_quantile_is_taken_from_noisy_counts_per_grid_point(runs):
    run, (_, _, params, _, _) = runs["quantile"], JOBS["quantile"]
    grid = statistics.check_grid(params)
    counts = statistics.grid_counts(
        np.concatenate(VALUES), np.ones(sum(v.size for v in VALUES)), grid, DECIMALS
    )
    raw, sd = opened(run), sigmas(run)
    names = [f"count[{statistics.decimal_text(grid.value(j))}]@q=3/10" for j in range(grid.points)]

    assert_noise_matches_the_plan(run, "quantile")
    assert list(raw) == names
    assert_near(raw, dict(zip(names, map(float, counts), strict=True)), sd)
    assert run.outputs["quantile"] == statistics.quantile_from_counts(raw)
    # Each cumulative count is off by at most points·6σ, N too: the answer lies between the
    # plaintext quantiles at q ∓ 2·points·6σ / N.
    slack = 2 * grid.points * SIGMAS * max(sd.values()) / counts.sum()
    assert slack < 0.1
    tables = [{"value": v} for v in VALUES]
    low = catalog()["quantile"].reference(tables, {**params, "q": params["q"] - slack})
    high = catalog()["quantile"].reference(tables, {**params, "q": params["q"] + slack})
    assert low["quantile"] <= float(run.outputs["quantile"]) <= high["quantile"]


def test_group_mean_divides_noisy_sums_by_noisy_counts(runs):
    run, tables = runs["group_mean"], JOBS["group_mean"][0]
    frame = pd.concat([pd.DataFrame(t.data) for t in tables if t is not None])
    per_group = frame[frame["g"].isin(GROUPS)].groupby("g")["v"].agg(["count", "sum", "mean"])
    sd = sigmas(run)

    assert_noise_matches_the_plan(run, "group_mean")
    for g in GROUPS:
        want = per_group.loc[g]
        assert_near(run.outputs, {f"count[{g}]": want["count"], f"sum[{g}]": want["sum"]}, sd)
        mean = run.outputs[f"mean[{g}]"]
        assert mean == run.outputs[f"sum[{g}]"] / run.outputs[f"count[{g}]"]
        low, high = ratio_bounds(
            want["sum"], SIGMAS * sd[f"sum[{g}]"], want["count"], SIGMAS * sd[f"count[{g}]"]
        )
        assert low <= float(mean) <= high and low <= want["mean"] <= high


# -- private joins -------------------------------------------------------------------------------


def _capped_per_key(data: dict, cap: int) -> pd.DataFrame:
    """Per key: rows a = min(n, cap) and the sum s·a/n rounded half up (integers, pandas)."""
    per_key = pd.DataFrame(data).groupby("k")["v"].agg(n="count", s="sum")
    per_key["a"] = np.minimum(per_key["n"], cap)
    per_key["x"] = (2 * per_key["s"] * per_key["a"] + per_key["n"]) // (2 * per_key["n"])
    return per_key


def test_intersection_size_is_noised_for_the_analyst(runs):
    run = runs["intersection_size"]
    want = len(set(SMALL_A["k"]) & set(SMALL_B["k"]))

    assert_noise_matches_the_plan(run, "intersection_size")
    assert_near(run.outputs, {"count": want}, sigmas(run))


def test_intersection_sum_releases_capped_rows_and_sums(runs):
    run = runs["intersection_sum"]
    per_key = _capped_per_key(SMALL_A, cap=2)
    hit = per_key[per_key.index.isin(set(SMALL_B["k"]))]
    want = {"keys": len(hit), "rows": hit["a"].sum(), "sum": hit["x"].sum()}
    sd = sigmas(run)

    assert_noise_matches_the_plan(run, "intersection_sum")
    assert_near(run.outputs, want, sd)
    assert run.outputs["mean"] == run.outputs["sum"] / run.outputs["rows"]
    low, high = ratio_bounds(want["sum"], SIGMAS * sd["sum"], want["rows"], SIGMAS * sd["rows"])
    assert low <= float(run.outputs["mean"]) <= high
    assert (hit["n"] > 2).any()  # the cap changed the answer: rows differ from the exact ones


def test_join_group_by_releases_capped_counts_and_sums_per_group(runs):
    run, (_, _, params, _, _) = runs["join_group_by"], JOBS["join_group_by"]
    totals = pd.DataFrame(SMALL_A).groupby("k")["f"].sum()
    passing = set(totals[totals > params["threshold"]].index)
    b = pd.DataFrame(SMALL_B)
    b = b[b["g"].isin(GROUPS)]
    cells = b.groupby(["k", "g"])["v"].agg(n="count", s="sum").reset_index()
    cells["order"] = cells["g"].map(GROUPS.index)
    cells = cells.sort_values(["k", "order"])
    before = cells.groupby("k")["n"].cumsum() - cells["n"]  # rows the key has used up
    cells["a"] = np.clip(2 - before, 0, cells["n"])  # greedy in the listed groups' order
    cells["x"] = (2 * cells["s"] * cells["a"] + cells["n"]) // (2 * cells["n"])
    hit = cells[cells["k"].isin(passing)].groupby("g")[["a", "x"]].sum()
    want = {f"count[{g}]": hit.loc[g, "a"] for g in GROUPS}
    want |= {f"sum[{g}]": hit.loc[g, "x"] for g in GROUPS}

    assert_noise_matches_the_plan(run, "join_group_by")
    noised = [o.name for o in run.parts[0].outputs if not withheld.is_marker(o.name)]
    assert noised == list(want)  # counts, then sums: 2 blocks
    assert_near(run.outputs, want, sigmas(run))
    for g in GROUPS:
        assert run.outputs[f"mean[{g}]"] == run.outputs[f"sum[{g}]"] / run.outputs[f"count[{g}]"]


def test_join_correlation_is_computed_from_noisy_sufficient_statistics(runs):
    run = runs["join_correlation"]
    x = _capped_per_key(A_DATA, cap=2)["x"]
    y = _capped_per_key(B_DATA, cap=2)["x"]
    pairs = pd.concat([x, y], axis=1, join="inner").to_numpy(dtype=np.int64)
    xs, ys = pairs[:, 0], pairs[:, 1]
    exact = [len(pairs), xs.sum(), ys.sum(), xs @ xs, ys @ ys, xs @ ys]
    raw, sd = opened(run), sigmas(run)

    assert_noise_matches_the_plan(run, "join_correlation")
    assert_near(raw, dict(zip(join.MOMENTS, map(float, exact), strict=True)), sd)
    assert run.outputs["r"] == join.correlation_from_moments(raw)
    assert run.outputs["pairs"] == round(raw["pairs"])
    # First-order propagation of the 6σ box through r (the box is small at this ρ).
    r = np.corrcoef(xs, ys)[0, 1]
    point = dict(zip(join.MOMENTS, (Fraction(int(v)) for v in exact), strict=True))
    tolerance = 0.0
    for name in join.MOMENTS:
        step = Fraction(max(1, round(sd[name])))
        moved = join.correlation_from_moments({**point, name: point[name] + step})
        tolerance += abs(moved - r) / float(step) * SIGMAS * sd[name]
    assert 0 < tolerance < 0.3
    assert abs(float(run.outputs["r"]) - r) <= 1.5 * tolerance
    assert r > 0.5  # the data correlate, and the noisy answer says so

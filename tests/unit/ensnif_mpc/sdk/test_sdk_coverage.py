"""The analyst's intervals cover the truth about 95% of the time, under the real noise.

Generated data, its true statistic, and many releases of it: each adds noise drawn with the
node's own samplers (OpenDP's discrete Gaussian shares of ``dp.sample_shares``, three
parties; the plaintext reference of the MPC discrete Laplace sampler), calibrated by the
real release plan from the protocol's own sensitivity. Each release goes through the SDK's
``result.build`` as a job's combined shares do, and we count how often the interval holds
the truth. The tolerance is binomial: 4 standard deviations of a proportion over the trials.
Exact intervals are checked against their own law's exact coverage P(|Z| ≤ h) (a discrete
law reaches 95% only in steps, so it covers at least 95%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from ensnif_mpc.privacy import dlaplace, dp
from ensnif_mpc.sdk import result
from ensnif_mpc.sdk.intervals import Bounds
from ensnif_mpc.sdk.noise import NoiseLaw
from protocols import registry

TRIALS = 600
PARTIES, THRESHOLD = 3, 1
DECIMALS = 2
BOUNDS = Bounds(0.0, 100.0)  # the value column: [0, 100] with 2 decimals
B = 10_000  # its bound on the integer grid


def tolerance(p: float = 0.95, n: int = TRIALS) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)


def data(rows: int, seed: int = 7) -> np.ndarray:
    """Values on the grid (hundredths), skewed like basket totals."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.gamma(2.0, 1200.0, rows)), 0, B).astype(np.int64)


def release_noise(
    plan: dp.ReleasePlan, trials: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """(trials × outputs) noise on the grid as the nodes draw it, and each output's sd."""
    columns = []
    for b in plan.blocks:
        if plan.laplace:
            t = dlaplace.thresholds(b.epsilon, b.l1_sensitivity, b.digits, b.bits)
            z = dlaplace.reference_sample(t, b.bits, trials * b.dims, rng)
        else:
            shares = [dp.sample_shares(b.sigma_share, trials * b.dims) for _ in range(PARTIES)]
            z = np.sum(np.array(shares, dtype=np.int64), axis=0)
        columns.append(np.asarray(z).reshape(trials, b.dims))
    return np.concatenate(columns, axis=1), plan.output_sigmas()


def make_plan(protocol: str, params: dict[str, Any], mechanism: str, budget: float) -> Any:
    blocks = registry.get(protocol).dp_sensitivity([(1, B), (1, B)], params)
    if mechanism == "laplace":
        return dp.laplace_plan(budget, 1e-10, blocks, PARTIES, THRESHOLD)
    return dp.plan(budget, blocks, PARTIES, THRESHOLD)


def coverage(
    protocol: str,
    params: dict[str, Any],
    outputs: list[tuple[str, int, int]],  # (name, true value on the grid, grid scale 10^d)
    truth: dict[str, float],
    mechanism: str = "gaussian",
    budget: float = 0.05,
    trials: int = TRIALS,
) -> dict[str, tuple[float, str]]:
    """How often each answer's 95% interval holds its true value, and the interval's method."""
    plan = make_plan(protocol, params, mechanism, budget)
    rng = np.random.default_rng(11)
    noise, sds = release_noise(plan, trials, rng)
    assert noise.shape[1] == len(outputs)
    laws = {
        name: NoiseLaw(sd / scale, 1 / scale, mechanism, PARTIES)
        for (name, _, scale), sd in zip(outputs, sds, strict=True)
    }
    hits = dict.fromkeys(truth, 0)
    methods: dict[str, str] = {}
    for k in range(trials):
        combined = {
            name: Fraction(int(true + noise[k, j]), scale)
            for j, (name, true, scale) in enumerate(outputs)
        }
        answer = result.build(
            combined, protocol, laws, job_id=f"trial-{k}", mechanism=mechanism, bounds=BOUNDS
        )
        for name, value in truth.items():
            ci = answer.ci(name)
            methods[name] = ci.method
            hits[name] += ci.lower <= value <= ci.upper
    return {name: (hits[name] / trials, methods[name]) for name in truth}


def report(label: str, measured: dict[str, tuple[float, str]]) -> None:
    for name, (cov, method) in measured.items():
        print(f"coverage {label} {name}: {cov:.3f} ({method})")


def assert_near_95(measured: dict[str, tuple[float, str]], method: str) -> None:
    for name, (cov, got) in measured.items():
        assert got == method, name
        assert abs(cov - 0.95) <= tolerance(), f"{name}: coverage {cov:.3f}"


def test_a_dp_count_has_the_exact_coverage_of_its_noise_law() -> None:
    rows = 300
    measured = coverage("count", {}, [("count", rows, 1)], {"count": rows}, budget=0.02)
    report("count", measured)

    plan = make_plan("count", {}, "gaussian", 0.02)
    law = NoiseLaw(plan.output_sigmas()[0], 1.0, "gaussian", PARTIES)
    h = law.half_width()
    draws = law.draw(400_000, np.random.default_rng(3))
    exact = float(np.mean(np.abs(draws) <= h))  # P(|Z| ≤ h) of the law itself
    ((cov, method),) = measured.values()
    assert method == "exact" and exact >= 0.95
    assert abs(cov - exact) <= tolerance(exact)


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
def test_a_dp_mean_has_about_95_percent_coverage_by_simulation(mechanism: str) -> None:
    x = data(250)
    outputs = [("sum", int(x.sum()), 10**DECIMALS), ("count", x.size, 1)]
    budget = 0.05 if mechanism == "gaussian" else 0.3

    measured = coverage(
        "mean", {}, outputs, {"mean": x.mean() / 100}, mechanism=mechanism, budget=budget
    )

    report(f"mean/{mechanism}", measured)
    assert_near_95(measured, "simulation")


@pytest.mark.parametrize("protocol", ["variance", "stdev"])
def test_a_dp_spread_has_about_95_percent_coverage_by_simulation(protocol: str) -> None:
    x = data(2000)
    outputs = [
        ("count", x.size, 1),
        ("sum", int(x.sum()), 10**DECIMALS),
        (f"sumsq@decimals={2 * DECIMALS}", int((x * x).sum()), 1),
    ]
    var = float(np.var(x / 100, ddof=1))
    truth = {protocol: var if protocol == "variance" else math.sqrt(var)}

    measured = coverage(protocol, {}, outputs, truth, budget=0.5)

    report(protocol, measured)
    assert_near_95(measured, "simulation")


def test_a_dp_correlation_has_about_95_percent_coverage_and_stays_in_range() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.integers(0, B, n)
    y = np.clip(x // 2 + rng.integers(0, B // 2, n), 0, B)
    moments = [n, x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]
    names = ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy")
    outputs = [(name, int(v), 1) for name, v in zip(names, moments, strict=True)]
    r = float(np.corrcoef(x, y)[0, 1])

    measured = coverage("join_correlation", {}, outputs, {"r": r}, budget=2.0)

    report("correlation", measured)
    assert_near_95(measured, "simulation")


def test_a_dp_quantile_interval_covers_at_least_95_percent() -> None:
    """The quantile lives on a grid: its simulated interval is a set of grid points, and
    the draws add noise to counts already noised, so it errs wide (never narrow)."""
    x = data(400)
    params = {"lower": 0, "upper": 100, "step": 1, "q": 0.5}
    grid = np.arange(0, 101)
    index = np.clip(x // 100, 0, 100)
    counts = np.bincount(index, minlength=grid.size)
    outputs = [(f"count[{g}]@q=1/2", int(c), 1) for g, c in zip(grid, counts, strict=True)]
    rank = math.ceil(0.5 * x.size)
    truth = {"quantile": float(grid[np.sort(index)[rank - 1]])}

    measured = coverage("quantile", params, outputs, truth, budget=0.1, trials=300)

    report("quantile", measured)
    ((cov, method),) = measured.values()
    assert method == "simulation" and cov >= 0.95 - tolerance(n=300)


def answers(
    protocol: str, combined: dict[str, Fraction], laws: dict[str, NoiseLaw]
) -> result.Result:
    return result.build(combined, protocol, laws, job_id="j", bounds=BOUNDS)


Law = Callable[[float], NoiseLaw]
GAUSS: Law = lambda sd: NoiseLaw(sd, 1.0, "gaussian", PARTIES)  # noqa: E731


def test_a_mean_of_non_negative_values_is_never_negative_nor_its_interval() -> None:
    # Few rows and much noise: the noisy sum came out negative.
    combined = {"sum": Fraction(-35), "count": Fraction(4)}
    laws = {"sum": NoiseLaw(80.0, 0.01, "gaussian", 3), "count": GAUSS(3.0)}

    r = answers("mean", combined, laws)

    assert r.values["mean"] == 0.0 and r.exact_values["mean"] == 0
    assert r.ci("mean").lower >= 0.0 and r.ci("mean").upper <= 100.0
    assert r.values["sum"] == 0.0 and r.ci("sum").lower == 0.0


def test_counts_are_never_negative_and_their_interval_is_centred_on_the_noisy_value() -> None:
    r = answers("count", {"count": Fraction(-3)}, {"count": GAUSS(4.0)})

    h = GAUSS(4.0).half_width()
    assert r.values["count"] == 0.0
    assert r.ci("count").lower == 0.0 and r.ci("count").upper == pytest.approx(-3 + h)


def test_a_variance_is_never_negative_and_a_correlation_stays_in_range() -> None:
    spread = answers(
        "variance",
        {"count": Fraction(3), "sum": Fraction(30), "sumsq@decimals=4": Fraction(-5)},
        {"count": GAUSS(2.0), "sum": GAUSS(2.0), "sumsq@decimals=4": GAUSS(2.0)},
    )
    corr = answers(
        "join_correlation",
        dict(
            zip(
                ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy"),
                map(Fraction, (10, 10, 10, 20, 20, 30)),
                strict=True,
            )
        ),
        {name: GAUSS(1.0) for name in ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy")},
    )

    assert spread.values["variance"] == 0.0 and spread.ci("variance").lower >= 0.0
    assert spread.values["sumsq"] >= 0.0
    assert -1.0 <= corr.values["r"] <= 1.0
    assert -1.0 <= corr.ci("r").lower <= corr.ci("r").upper <= 1.0

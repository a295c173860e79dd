"""linear_regression's DP release on the analyst's side: the client solves the noisy
sufficient statistics, and each coefficient's 95% interval (the noise redrawn through the
same solve) holds the exact least-squares coefficient about 95% of the time.

Generated rows, their exact statistics on the grid, and many releases of them with the
nodes' own noise (OpenDP's discrete Gaussian shares, three parties) calibrated by the real
release plan from the protocol's sensitivity; each goes through ``result.build`` as a job's
combined shares do. The tolerance is binomial: 4 standard deviations over the trials.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy import dp
from ensnif_mpc.sdk import result
from ensnif_mpc.sdk.noise import NoiseLaw
from protocols import registry
from protocols.models import solve
from protocols.models.gram import triangle
from protocols.models.regression import CROSS
from tests.unit.ensnif_mpc.sdk.test_sdk_coverage import PARTIES, release_noise

TRIALS = 120
DECIMALS = 1
ROWS = 20_000


def _rows() -> np.ndarray:
    """x1, x2 in [−10, 10], y = 4 + 2·x1 − x2 + noise, all at one decimal."""
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(-10, 10, size=(ROWS, 2)), DECIMALS)
    y = np.round(np.clip(4 + 2 * x[:, 0] - x[:, 1] + rng.normal(0, 3, ROWS), -50, 50), 1)
    return np.column_stack([x, y])


def _outputs(z: np.ndarray) -> list[tuple[str, int, int]]:
    """(name, exact value on its grid, that grid's 10^d) in the release's order."""
    grid = np.rint(z * 10**DECIMALS).astype(np.int64).astype(object)
    gram = grid.T @ grid
    out = [("n", len(grid), 1)]
    out += [(f"sum[{j}]", int(grid[:, j].sum()), 10**DECIMALS) for j in range(3)]
    pairs = [p for p in triangle(3) if p[1] < 2] + [(0, 2), (1, 2), (2, 2)]
    out += [(f"{CROSS}{2 * DECIMALS}[{j},{col}]", int(gram[j, col]), 1) for j, col in pairs]
    return out


def _noise_plan(epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """TRIALS draws of the nodes' noise for the release plan at ``epsilon``, and each
    output's noise standard deviation."""
    bounds = {"features": (100, 100), "label": (500,)}
    blocks = registry.get("linear_regression").dp_sensitivity(
        [OwnerBounds(1, bounds), OwnerBounds(1, bounds)], {"ridge": 0.0}
    )
    plan = dp.plan(epsilon, blocks, PARTIES, 1)
    return release_noise(plan, TRIALS, np.random.default_rng(11))


def _release(
    outputs: list[tuple[str, int, int]], noise: np.ndarray, sds: np.ndarray, job_id: str
) -> result.Result:
    """One noisy release of ``outputs`` built as a job's combined shares are."""
    laws = {
        name: NoiseLaw(sd / scale, 1 / scale, "gaussian", PARTIES)
        for (name, _, scale), sd in zip(outputs, sds, strict=True)
    }
    combined = {
        name: Fraction(int(value + noise[i]), scale)
        for i, (name, value, scale) in enumerate(outputs)
    }
    return result.build(combined, "linear_regression", laws, job_id=job_id)


def test_coefficient_intervals_cover_the_exact_fit_about_95_percent_of_the_time():
    z = _rows()
    outputs = _outputs(z)
    noise, sds = _noise_plan(2.0)
    truth = solve.from_rows(z[:, :2], z[:, 2])["coef"]
    hits = np.zeros(3)
    for k in range(TRIALS):
        answer = _release(outputs, noise[k], sds, f"t{k}")
        for j in range(3):
            ci = answer.ci(f"coef[{j}]")
            assert ci.method == "simulation"
            hits[j] += ci.lower <= truth[j] <= ci.upper

    coverage = hits / TRIALS
    assert np.all(np.abs(coverage - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / TRIALS)), coverage


POPULATION = np.array([4.0, 2.0, -1.0])  # the generating model of _rows


def test_population_intervals_cover_the_generating_coefficients_about_95_percent():
    """Each trial a fresh sample of the population and a fresh DP release of it: the
    sampling-aware interval covers the generating β about 95% of the time, while the
    noise-only interval, which covers the exact fit on the rows, misses β far more often
    (at ε = 8 on 20,000 rows the sampling error is larger than the noise's)."""
    noise, sds = _noise_plan(8.0)
    rng = np.random.default_rng(5)
    hits, noise_only = np.zeros(3), np.zeros(3)
    for k in range(TRIALS):
        x = np.round(rng.uniform(-10, 10, size=(ROWS, 2)), DECIMALS)
        y = np.round(
            np.clip(x @ POPULATION[1:] + POPULATION[0] + rng.normal(0, 3, ROWS), -50, 50), 1
        )
        answer = _release(_outputs(np.column_stack([x, y])), noise[k], sds, f"p{k}")
        for j in range(3):
            ci = answer.population_ci(f"coef[{j}]")
            assert ci.method == "simulation"
            hits[j] += ci.lower <= POPULATION[j] <= ci.upper
            narrow = answer.ci(f"coef[{j}]")
            noise_only[j] += narrow.lower <= POPULATION[j] <= narrow.upper

    coverage = hits / TRIALS
    assert np.all(np.abs(coverage - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / TRIALS)), coverage
    assert np.all(noise_only / TRIALS < 0.8), noise_only / TRIALS


def test_an_exact_release_gives_the_classical_normal_interval():
    z = _rows()
    fit = solve.from_rows(z[:, :2], z[:, 2])
    values = {f"coef[{j}]": Fraction(float(c)) for j, c in enumerate(fit["coef"])}
    values |= {f"se2[{j}]": Fraction(float(v)) for j, v in enumerate(fit["se2"])}
    values["r2"] = Fraction(float(fit["r2"]))

    answer = result.build(values, "linear_regression", {}, job_id="exact")
    ci = answer.population_ci("coef[1]")

    half = 1.959963984540054 * math.sqrt(fit["se2"][1])
    assert ci.method == "normal"
    assert ci.lower == pytest.approx(fit["coef"][1] - half)
    assert ci.upper == pytest.approx(fit["coef"][1] + half)
    with pytest.raises(ValueError):
        answer.population_ci("r2")

"""Pure ε-DP (discrete Laplace sampled inside MPC) with real MPyC.

The sampler's distribution: a one-party MPyC runtime (``python -m protocols.dlaplace``)
draws thousands of noise values; a chi-square goodness-of-fit test against the exact
discrete Laplace pmf accepts them, and rejects draws made at a wrong scale (negative
control). The full release path: a three-party sum job through real workers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ensnif_mpc.privacy import dlaplace, dp
from ensnif_mpc.procs import child_env
from protocols.registry import catalog
from tests.protocols.harness import draw, run_parties

pytestmark = pytest.mark.slow

EPSILON, L1, SAMPLES = 0.5, 1.0, 3000
EPSILON_SUM = 0.001


def mpc_draw(l1: float, *draws: tuple[int, float], delta: float = dlaplace.DEFAULT_DELTA):
    """For each (count, ε), ``count`` noise values from the MPC sampler (one MPyC party,
    in a subprocess; all draws in one array comparison)."""
    args = [f"{count}:{epsilon}" for count, epsilon in draws]
    out = subprocess.run(
        [sys.executable, "-m", "protocols.dlaplace", str(l1), str(delta), *args],
        capture_output=True,
        check=True,
        env=child_env(),
        timeout=120,
    )
    return json.loads(out.stdout)


def chi_square_p(samples: np.ndarray, q: float) -> float:
    """Goodness of fit against the discrete Laplace with parameter q (bins ≥ 5 expected)."""
    from scipy import stats

    probs = dlaplace.pmf(q, np.arange(-200, 201))
    edge = int(np.max(np.nonzero(probs * samples.size >= 5)[0]) - 200)
    support = np.arange(-edge, edge + 1)
    observed = [(samples == k).sum() for k in support] + [(np.abs(samples) > edge).sum()]
    p = dlaplace.pmf(q, support)
    expected = np.append(p, 1 - p.sum()) * samples.size
    return float(stats.chisquare(np.array(observed), expected).pvalue)


@pytest.fixture(scope="module")
def drawn() -> dict:
    """The right scale and a wrong one (ε × 1.25), both through the MPC sampler."""
    right, wrong = mpc_draw(L1, (SAMPLES, EPSILON), (SAMPLES, EPSILON * 1.25))
    return {"right": right, "wrong": wrong}


def test_mpc_sampler_matches_the_exact_discrete_laplace(drawn: dict) -> None:
    samples = np.array(drawn["right"]["samples"])
    q = math.exp(-EPSILON / L1)

    p_value = chi_square_p(samples, q)

    print(f"chi-square p-value, MPC sampler vs exact pmf: {p_value:.4f}")
    assert p_value > 1e-4  # a false alarm once in 10,000 runs
    assert drawn["right"]["delta"] <= dlaplace.DEFAULT_DELTA  # the sampler error charged
    assert np.abs(samples).max() < 2 ** drawn["right"]["digits"]


def test_chi_square_rejects_draws_at_a_wrong_scale(drawn: dict) -> None:
    wrong = np.array(drawn["wrong"]["samples"])

    p_value = chi_square_p(wrong, math.exp(-EPSILON / L1))

    print(f"chi-square p-value, ε × 1.25 draws vs the ε pmf: {p_value:.3g}")
    assert p_value < 1e-6  # power 1 − 4e-6 at 3,000 draws (noncentrality 132, 19 d.o.f.)


def test_mpc_sampler_moments(drawn: dict) -> None:
    samples = np.array(drawn["right"]["samples"], dtype=float)
    sd = dlaplace.noise_sd(EPSILON, L1)
    # Mean 0 and variance 2q/(1 − q)²; 5 standard errors (Var of the sample variance:
    # (μ4 − σ⁴)/n, μ4 ≤ 6σ⁴ for the Laplace family).
    assert abs(samples.mean()) < 5 * sd / math.sqrt(samples.size)
    assert abs(samples.var() - sd**2) < 5 * sd**2 * math.sqrt(5 / samples.size)


def test_three_party_laplace_sum_releases_noise_of_the_declared_scale(
    tmp_path, monkeypatch
) -> None:
    """The full release path: noise sampled jointly by the three workers, added on shares,
    opened only by the analyst; no party opens anything (opening trace on)."""
    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")
    rng = np.random.default_rng(5)
    values = [draw(rng, 300, 0.0, 20.0, 0), draw(rng, 200, 0.0, 20.0, 0), None]
    blocks = catalog()["sum"].dp_sensitivity([(1, 20), (1, 20)], {})  # Δ₁ = 40
    # A small ε, so that the noise is 0 with probability (1 − q)/(1 + q) ≈ 1.25e-5 only.
    plan = dp.laplace_plan(EPSILON_SUM, dlaplace.DEFAULT_DELTA, blocks, 3, 1)

    run = run_parties(tmp_path, "sum", values, lower=0.0, upper=20.0, release=plan.to_dict())

    (block,) = plan.blocks
    want = sum(float(v.sum()) for v in values if v is not None)
    noise = float(run.outputs["sum"]) - want
    sd = dlaplace.noise_sd(EPSILON_SUM, 40.0)
    assert noise == int(noise) and 0 < abs(noise) < 2**block.digits  # integer, below 2^K
    assert abs(noise) <= 30 * sd  # P(|Z| > 30·sd) < e^-42: a miss is a bug, not bad luck
    assert all(o.noise_sd == pytest.approx(sd) for p in run.parts for o in p.outputs)
    assert not any((d / "openings.log").exists() for d in run.dirs)

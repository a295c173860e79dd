"""Empirical privacy audit of the pure ε-DP release (discrete Laplace sampled from bits).

Neighbouring datasets move the true answer by the L1 sensitivity Δ₁. The releases use
the plaintext reference of the MPC sampler (``dlaplace.reference_sample``: the same
digits, bits and exact thresholds, coin for coin; the MPC sampler's own draws are
checked against the same pmf in tests/protocols/test_dp_laplace.py). A threshold
attacker's ε lower bound (Clopper–Pearson, 99.9 %) must stay below the claimed ε, and
exceed it when the plan understates the sensitivity (the audit can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.privacy import dlaplace, dp
from tests.unit.ensnif_mpc.privacy.test_dp_audit import epsilon_lower_bound

EPSILON, L1, RUNS = 1.0, 4.0, 50_000


def releases(plan: dp.ReleasePlan, true_answer: float, seed: int) -> np.ndarray:
    (block,) = plan.blocks
    thresholds = dlaplace.thresholds(block.epsilon, block.l1_sensitivity, block.digits, block.bits)
    noise = dlaplace.reference_sample(thresholds, block.bits, RUNS, np.random.default_rng(seed))
    return true_answer + noise


def test_audit_lower_bound_stays_below_the_claimed_epsilon() -> None:
    plan = dp.laplace_plan(EPSILON, dlaplace.DEFAULT_DELTA, [(L1, 1)], 3, 1)

    bound = epsilon_lower_bound(releases(plan, 0, 1), releases(plan, L1, 2), plan.delta)

    print(f"Laplace audit: ε lower bound {bound:.3f} (claimed {EPSILON})")
    assert 0.8 < bound < EPSILON  # tight (pure DP is attained in the tails), never above


def test_audit_catches_an_understated_sensitivity() -> None:
    broken = dp.laplace_plan(EPSILON, dlaplace.DEFAULT_DELTA, [(L1 / 2, 1)], 3, 1)  # Δ₁/2

    bound = epsilon_lower_bound(releases(broken, 0, 3), releases(broken, L1, 4), broken.delta)

    print(f"Laplace audit, sensitivity understated twofold: ε lower bound {bound:.3f}")
    assert bound > EPSILON


def test_reference_sampler_matches_the_exact_pmf() -> None:
    from scipy import stats

    plan = dp.laplace_plan(EPSILON, dlaplace.DEFAULT_DELTA, [(L1, 1)], 3, 1)
    samples = releases(plan, 0, 5)
    q = dlaplace.parameter(EPSILON, L1)
    edge = 30  # expected count beyond ±30 is about 50,000·e^(−7.5)·0.25 ≈ 7
    support = np.arange(-edge, edge + 1)
    observed = np.append([(samples == k).sum() for k in support], (np.abs(samples) > edge).sum())
    p = dlaplace.pmf(q, support)
    expected = np.append(p, 1 - p.sum()) * samples.size

    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert samples.var() == pytest.approx(2 * q / (1 - q) ** 2, rel=0.05)
    assert abs(samples.mean()) < 5 * math.sqrt(samples.var() / samples.size)

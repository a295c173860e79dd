"""Empirical privacy audit of the distributed discrete Gaussian, as the parties run it.

Neighbouring datasets D and D' differ by one person, moving the true answer by the
sensitivity Δ. The release is answer + the noise of the m = n − t honest shares
only (a colluding party's share is known to the attacker and subtracted). From many
releases a threshold attacker's (ε, δ) lower bound is computed with Clopper–Pearson
intervals; it must stay below the ε that the calibrated ρ promises, and it must
exceed it when the sensitivity is understated (the audit can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.privacy import dp

RHO, DELTA_SENS, DELTA = 0.5, 40.0, 1e-5
PARTIES, THRESHOLD = 3, 1
RUNS = 50_000


def claimed_epsilon(rho: float, delta: float) -> float:
    """zCDP → (ε, δ)-DP (Bun & Steinke 2016, Prop. 1.3)."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def releases(true_answer: float, sigma_share: float, honest: int, runs: int) -> np.ndarray:
    noise = np.array(dp.sample_shares(sigma_share, honest * runs)).reshape(honest, runs)
    return true_answer + noise.sum(axis=0)


def epsilon_lower_bound(on_d: np.ndarray, on_d2: np.ndarray, delta: float) -> float:
    """Best threshold attacker: ε ≥ ln((P'[S] − δ) / P[S]) with 99.9 % Clopper–Pearson bounds."""
    from scipy.stats import beta

    runs = len(on_d)
    best = 0.0
    for cut in np.quantile(on_d2, np.linspace(0.05, 0.999, 60)):
        hits_d2 = int((on_d2 >= cut).sum())
        hits_d = int((on_d >= cut).sum())
        p2_low = beta.ppf(0.0005, hits_d2, runs - hits_d2 + 1) if hits_d2 else 0.0
        p_high = beta.ppf(0.9995, hits_d + 1, runs - hits_d) if hits_d < runs else 1.0
        if p2_low - delta > 0:
            best = max(best, math.log((p2_low - delta) / p_high))
    return best


@pytest.fixture(scope="module")
def calibrated() -> dp.ReleasePlan:
    return dp.plan(RHO, [(DELTA_SENS, 1)], PARTIES, THRESHOLD)


def test_audit_lower_bound_stays_below_the_claimed_epsilon(calibrated: dp.ReleasePlan) -> None:
    (block,) = calibrated.blocks
    honest = PARTIES - THRESHOLD
    on_d = releases(0.0, block.sigma_share, honest, RUNS)
    on_d2 = releases(DELTA_SENS, block.sigma_share, honest, RUNS)

    bound = epsilon_lower_bound(on_d, on_d2, DELTA)

    assert 0.3 < bound < claimed_epsilon(RHO, DELTA)  # informative, and within the promise


def test_audit_catches_an_understated_sensitivity(calibrated: dp.ReleasePlan) -> None:
    broken = dp.plan(RHO, [(DELTA_SENS / 8, 1)], PARTIES, THRESHOLD)  # noise for Δ/8
    (block,) = broken.blocks
    honest = PARTIES - THRESHOLD
    on_d = releases(0.0, block.sigma_share, honest, RUNS)
    on_d2 = releases(DELTA_SENS, block.sigma_share, honest, RUNS)  # the real change is Δ

    assert epsilon_lower_bound(on_d, on_d2, DELTA) > claimed_epsilon(RHO, DELTA)

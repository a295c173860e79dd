"""The law of the DP noise on one opened output, as the analyst's side knows it.

Every noisy output is an integer on its grid (step ``1/(2^f·10^d)`` in the output's unit)
plus integer noise whose law the release plan fixes:

- ``gaussian``: the sum of ``parties`` independent discrete Gaussians of scale σ_p (each
  party adds one share, see :mod:`ensnif_mpc.privacy.dp`); the opened output carries its
  total standard deviation σ_p·√parties;
- ``laplace``: one discrete Laplace, P(Z = z) ∝ q^|z|, drawn jointly inside MPC
  (:mod:`ensnif_mpc.privacy.dlaplace`); q follows from the standard deviation.

:meth:`NoiseLaw.half_width` is that law's exact central quantile (the smallest grid
multiple h with P(|Z| ≤ h) ≥ confidence); :meth:`NoiseLaw.draw` samples it, vectorised,
for the client's Monte Carlo intervals of derived numbers (by the inverse of the exact
CDF of the summed shares). The draws are for intervals
only (floating point, numpy's generator); no release ever uses them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ensnif_mpc.privacy import dlaplace

# Up to this total σ (in grid steps) the Gaussian quantile is computed from the exact pmf
# of the summed shares; beyond it the summed discrete Gaussians are a sampled normal density
# to far below one part in 10^30 (Poisson summation, σ_p ≥ 2), and the quantile is the
# normal one with a continuity correction: off by less than one grid step, if at all.
EXACT_PMF_MAX_SIGMA = 400.0


@dataclass(frozen=True)
class NoiseLaw:
    sd: float  # standard deviation of the total noise, in the output's unit
    step: float  # the output's grid step, in the output's unit
    mechanism: str = "gaussian"  # or "laplace"
    parties: int = 1  # Gaussian: how many parties added a share (σ_p = sd / √parties)

    @property
    def sd_grid(self) -> float:
        return self.sd / self.step

    def scaled(self, factor: float) -> NoiseLaw:
        """The same noise on an output divided by ``1 / factor`` (e.g. a sum of squares read
        on the squared grid)."""
        return NoiseLaw(self.sd * factor, self.step * factor, self.mechanism, self.parties)

    def half_width(self, confidence: float = 0.95) -> float:
        """The exact half-width of a central ``confidence`` interval of the noise."""
        if self.sd <= 0:
            return 0.0
        if self.mechanism == "laplace":
            return dlaplace.half_width(dlaplace.q_from_sd(self.sd_grid), confidence) * self.step
        return gaussian_sum_half_width(self.sd_grid, self.parties, confidence) * self.step

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws of the noise, in the output's unit."""
        if self.sd <= 0:
            return np.zeros(size)
        if self.mechanism == "laplace":
            grid = discrete_laplace(dlaplace.q_from_sd(self.sd_grid), size, rng)
        else:
            grid = summed_gaussian(self.sd_grid, self.parties, size, rng)
        return grid.astype(np.float64) * self.step


def _discrete_gaussian_pmf(sigma: float) -> np.ndarray:
    """P(Z = k) ∝ exp(−k²/2σ²) on k = −L..L with L = ⌈14σ⌉ + 1 (mass beyond < 10^-40)."""
    half = math.ceil(14 * sigma) + 1
    k = np.arange(-half, half + 1, dtype=np.float64)
    w: np.ndarray = np.exp(-(k * k) / (2 * sigma * sigma))
    return w / float(w.sum())


@functools.lru_cache(maxsize=128)
def summed_gaussian_pmf(sd_grid: float, parties: int) -> np.ndarray:
    """The exact pmf of Z₁ + … + Z_n on −L..L, Z_i discrete Gaussians of scale sd_grid/√n
    (symmetric: index len // 2 is 0)."""
    share = _discrete_gaussian_pmf(sd_grid / math.sqrt(max(1, parties)))
    pmf = share
    for _ in range(max(1, parties) - 1):
        pmf = np.convolve(pmf, share)
    pmf.setflags(write=False)
    return pmf


def gaussian_sum_half_width(sd_grid: float, parties: int, confidence: float) -> int:
    """Smallest integer h with P(|Z₁ + … + Z_n| ≤ h) ≥ confidence, Z_i discrete Gaussians
    of scale sd_grid/√n (the pmf convolved; the normal quantile beyond 400 steps)."""
    if sd_grid > EXACT_PMF_MAX_SIGMA:
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        return max(0, math.ceil(z * sd_grid - 0.5))
    pmf = summed_gaussian_pmf(sd_grid, parties)
    centre = len(pmf) // 2
    # P(|Z| ≤ h) for h = 0, 1, …: the centre plus both tails inwards.
    both = pmf[centre + 1 :] + pmf[centre - 1 :: -1][:centre]
    inner = pmf[centre] + np.concatenate(([0.0], np.cumsum(both)))
    reach = np.nonzero(inner >= confidence - 1e-12)[0]
    return int(reach[0]) if reach.size else centre


def summed_gaussian(
    sd_grid: float, parties: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws of the summed shares' noise on the grid: by the inverse of its exact CDF up to
    400 steps; beyond, a normal rounded to the grid, which is within 10^-6 of that law in
    total variation there (the summed discrete Gaussians are a sampled normal density)."""
    if sd_grid > EXACT_PMF_MAX_SIGMA:
        return np.rint(rng.normal(0.0, sd_grid, size)).astype(np.int64)
    pmf = summed_gaussian_pmf(sd_grid, parties)
    cdf = np.cumsum(pmf)
    index = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    out: np.ndarray = np.minimum(index, len(pmf) - 1).astype(np.int64) - len(pmf) // 2
    return out


def discrete_laplace(q: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Z = G₁ − G₂, G geometric with P(G = g) = (1 − q)·q^g (the mechanism's own law)."""
    if q <= 0:
        return np.zeros(size, dtype=np.int64)
    g: np.ndarray = rng.geometric(1 - q, size=(2, size)) - 1
    return np.asarray(g[0] - g[1], dtype=np.int64)

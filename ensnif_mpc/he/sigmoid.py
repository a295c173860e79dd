"""The sigmoid as an odd cubic, fitted to the model's declared logit range.

CKKS evaluates only additions and multiplications, so a logistic model's
σ(z) = 1 / (1 + e^-z) is replaced by p(z) = 1/2 + c1·z + c3·z³. σ − 1/2 is odd, so the
best polynomial on a symmetric interval [−R, R] is odd too; degree 3 fits in the three
rescalings of the logistic parameter set (ensnif_mpc/he/ckks.py) after the linear step.

The coefficients minimize the *maximum* error on [−R, R] (Lawson's iteratively
reweighted least squares, which converges to the minimax fit): the error the docs and the
catalog state is that maximum, measured on a grid of 200,001 points (between grid points
the error of a smooth fit moves by less than 1e-9 at these R). Outside [−R, R] the cubic
diverges (|p(z) − σ(z)| grows like |c3|·|z|³): a model owner declares R from its weights
and feature bounds (:func:`logit_range`), and the analyst's client refuses rows outside
the declared feature bounds, so z stays inside.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

GRID = 200_001  # where the stated maximum error is measured
FIT_POINTS = 4_001  # where the fit is computed


@dataclass(frozen=True)
class SigmoidPoly:
    radius: float  # the fit holds on [-radius, radius]
    c1: float
    c3: float
    max_error: float  # max |p(z) - σ(z)| on [-radius, radius]

    @property
    def coefficients(self) -> tuple[float, float, float, float]:
        """(c0, c1, c2, c3) of p(z) = c0 + c1 z + c2 z² + c3 z³."""
        return (0.5, self.c1, 0.0, self.c3)

    def __call__(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 0.5 + z * (self.c1 + self.c3 * z * z)

    def describe(self) -> str:
        return (
            f"0.5 + {self.c1:.6g}·z + {self.c3:.6g}·z³ on [-{self.radius:g}, {self.radius:g}], "
            f"max error {self.max_error:.3g}"
        )


def sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


@functools.lru_cache(maxsize=256)
def fit(low: float, high: float, iterations: int = 100) -> SigmoidPoly:
    """The minimax odd cubic on [-R, R], R = max(|low|, |high|) (the symmetric hull of the
    declared range; the stated error holds on all of it). Cached: a node fits it for the
    catalog and for every request (about 0.1 s each), and the fit depends on R only."""
    radius = float(max(abs(low), abs(high)))
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError("the logit range must be finite and not reduce to 0")
    z = np.linspace(-radius, radius, FIT_POINTS)
    basis = np.stack([z, z**3], axis=1)
    target = sigmoid(z) - 0.5
    weights = np.full(z.size, 1.0 / z.size)
    coef = np.zeros(2)
    for _ in range(iterations):  # Lawson: weight each point by its error, renormalize
        sw = np.sqrt(weights)
        coef = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)[0]
        err = np.abs(basis @ coef - target)
        weights = weights * err
        weights /= weights.sum()
    grid = np.linspace(-radius, radius, GRID)
    max_error = float(np.max(np.abs(grid * (coef[0] + coef[1] * grid**2) - sigmoid(grid) + 0.5)))
    return SigmoidPoly(radius, float(coef[0]), float(coef[1]), max_error)


def logit_range(
    weights: Sequence[float], bias: float, low: Sequence[float], high: Sequence[float]
) -> tuple[float, float]:
    """The range of z = w·x + b over the box low <= x <= high (per feature)."""
    w = np.asarray(weights, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    a, b = w * lo, w * hi
    return float(bias + np.minimum(a, b).sum()), float(bias + np.maximum(a, b).sum())

"""Fixed-point building blocks the trained models share: a public feature box, the polynomial
sigmoid, a matrix inverse by Newton–Schulz iteration, and moving shares between a secure
integer type and the secure fixed-point type over the same field.

Why explicit scales on secure integers instead of MPyC's fixed point: MPyC's fixed-point
product truncates every element (f random bits each, the cost of a logistic-regression
step). Here products are kept exact in a wide field and truncated only where the scale
would overflow, on the few d-element vectors, never on the n rows.

Nothing here imports MPyC: the runtime and the secure types come in as arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec

# -- the public feature box ---------------------------------------------------------------------


def feature_box(params: Mapping[str, Any], features: int | None = None) -> tuple[np.ndarray, ...]:
    """``params.lower`` and ``params.upper``: one bound per feature (the box every owner clamps
    its rows into and the models normalize from). Public, signed with the job, the same at
    every owner by construction; a node's declared bounds need not be."""
    lower = np.asarray(params["lower"], dtype=float)
    upper = np.asarray(params["upper"], dtype=float)
    if lower.shape != upper.shape or lower.ndim != 1:
        raise InvalidJobSpec("params.lower and params.upper: one bound per feature, alike")
    if features is not None and lower.size != features:
        raise InvalidJobSpec(
            f"params.lower/params.upper: {lower.size} bounds for {features} feature columns"
        )
    if np.any(upper <= lower):
        raise InvalidJobSpec("params.upper: every upper bound must exceed its lower bound")
    return lower, upper


def check_box(params: Mapping[str, Any]) -> None:
    """``check_spec`` helper: the box parameters are well formed (count checked at the node)."""
    feature_box(params)


def unit_grid(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, bits: int) -> np.ndarray:
    """Rows clamped into the box and mapped onto [−1, 1] with resolution 2^-bits, as integers
    (an owner's local step, exact and deterministic: every owner maps alike)."""
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    unit = np.clip((np.asarray(x, dtype=float) - mid) / half, -1.0, 1.0)
    out: np.ndarray = np.rint(unit * (1 << bits)).astype(np.int64)
    return out


def box_grid(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, bits: int) -> np.ndarray:
    """Rows clamped into the box and mapped onto [0, 1] with resolution 2^-bits, as integers."""
    unit = np.clip((np.asarray(x, dtype=float) - lower) / (upper - lower), 0.0, 1.0)
    out: np.ndarray = np.rint(unit * (1 << bits)).astype(np.int64)
    return out


# -- the sigmoid --------------------------------------------------------------------------------

# σ(z) ≈ 1/2 + C1·z + C3·z³: the least-squares odd cubic on [−8, 8]. Its largest error there
# is 0.114 (at |z| = 8), 0.02 on average; beyond 8 it bends the wrong way. Chosen over a
# piecewise-linear σ because it needs two products per row and no comparison (a comparison
# costs about one random bit per bit of the value, ten times a truncation), and over degree
# 5 because the fixed-Hessian steps (below) reach the same accuracy with it (measured in
# tests/protocols/test_models_learning.py against scikit-learn).
SIGMOID_RANGE = 8.0
SIGMOID_C1 = 0.15009364
SIGMOID_C3 = -0.00159204
SIGMOID_MAX_ERROR = 0.115


def sigmoid_poly(z: np.ndarray) -> np.ndarray:
    return 0.5 + SIGMOID_C1 * z + SIGMOID_C3 * z**3


# -- shares between types -----------------------------------------------------------------------


async def as_fixed(mpc: Any, secint_array: Any, frac_bits: int) -> Any:
    """The same shares read as fixed point with ``frac_bits`` fractional bits: a secure
    integer a of SecInt(L) becomes a / 2^frac_bits of SecFxp(L − frac_bits, frac_bits), whose
    field is the same (MPyC picks both from L + k + 2 bits). No communication."""
    bits = type(secint_array).sectype.bit_length
    fixed = mpc.SecFxp(bits - frac_bits, frac_bits)
    shares = await mpc.gather(secint_array)
    return fixed.array(shares, integral=False)


async def as_int(mpc: Any, sint: Any, fixed_array: Any) -> Any:
    """Back: a fixed-point value v becomes the secure integer v·2^f of ``sint``."""
    return sint.array(await mpc.gather(fixed_array))


def shift(mpc: Any, a: Any, bits: int) -> Any:
    """a / 2^bits (probabilistic rounding, error below one unit), for a secure integer array
    whose values stay below 2^(L−1) (L its bit length)."""
    if not getattr(a, "shape", None):
        return mpc.trunc(a, f=bits)
    return mpc.np_trunc(a, f=bits)


# -- the inverse --------------------------------------------------------------------------------


def newton_schulz_steps(condition: float, accuracy_bits: int) -> int:
    """Iterations of Y ← Y(2I − BY) from Y = I for a B with eigenvalues in [1/condition, 1]:
    the error I − BY squares each step, (1 − 1/condition)^(2^K) ≤ 2^-accuracy_bits. A public
    count from public sizes, so the run's length never depends on the data."""
    need = condition * accuracy_bits * math.log(2)
    return max(1, math.ceil(math.log2(need)))


def newton_schulz(mpc: Any, b: Any, frac_bits: int, steps: int) -> Any:
    """B⁻¹ for a secure symmetric d × d array B (scale 2^frac_bits, eigenvalues in (0, 1]),
    at the same scale: only products and truncations of d² elements (no reciprocal, no
    comparison, no data-dependent pivot)."""
    d = b.shape[0]
    two = np.eye(d, dtype=object) * (2 << frac_bits)
    y = type(b)(np.eye(d, dtype=object) * (1 << frac_bits))
    for _ in range(steps):
        by = shift(mpc, b @ y, frac_bits)
        y = shift(mpc, y @ (two - by), frac_bits)
    return y


def scaled_int(value: float, bits: int) -> int:
    """round(value · 2^bits) as an exact Python integer (a public constant on a scale)."""
    return round(value * (1 << bits)) if abs(value) < 2.0**60 else int(value) << bits


def public_vector(values: Sequence[float] | np.ndarray, bits: int) -> np.ndarray:
    return np.array([scaled_int(float(v), bits) for v in values], dtype=object)

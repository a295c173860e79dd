"""An owner's sufficient statistics for a linear model, exactly, in its own engine.

For the rows z = (x_1 … x_d, y) of one owner on the integer grid (value · 10^decimals),
the count n, the column sums Σz and the cross products Σ z_j·z_l (the upper triangle of
ZᵀZ) are what a horizontal regression needs from it. They are computed with numpy's
float64 matrix product (BLAS) and still exactly: each column is split into limbs of at
most 16 bits and the rows into chunks small enough that every partial sum of limb
products stays below 2^53, where float64 holds integers exactly; the chunks and limbs are
then added as Python integers. The limb count comes from the columns' declared bounds,
never from the data, so the time it takes does not depend on the values.

No MPyC here: the worker's program (``protocols.models.regression``) secret-shares the
results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.program import exact_column_sums

EXACT_BITS = 52  # float64 holds every integer of magnitude below 2^53
LIMB_BITS = 16


@dataclass(frozen=True)
class Moments:
    """n, Σz (one per column) and Σ z_j·z_l for j ≤ l, row-major over the upper triangle."""

    n: int
    sums: list[int]
    cross: list[int]


def triangle(width: int) -> list[tuple[int, int]]:
    """The (j, col), j ≤ col, of a width × width upper triangle, row by row."""
    return [(j, col) for j in range(width) for col in range(j, width)]


def _limbs(z: np.ndarray, bound_bits: int) -> list[np.ndarray]:
    """z = Σ_k limb_k · 2^(16k): every limb in [0, 2^16) but the last, which keeps the
    sign (|last| ≤ 2^(bound_bits − 16(L−1)))."""
    count = max(1, -(-(bound_bits + 1) // LIMB_BITS))
    out = []
    rest = z.astype(np.int64)
    for _ in range(count - 1):
        out.append(rest & ((1 << LIMB_BITS) - 1))
        rest = rest >> LIMB_BITS  # arithmetic shift: floor division, sign kept in the rest
    out.append(rest)
    return out


def _exact_gram(a: np.ndarray, bits: int) -> np.ndarray:
    """aᵀa exactly, for an integer matrix whose entries are below 2^bits in magnitude: one
    BLAS product per chunk of rows, each chunk's sums below 2^52."""
    rows = a.shape[0]
    chunk = 1 << max(0, EXACT_BITS - 2 * bits - 1)
    total = np.zeros((a.shape[1], a.shape[1]), dtype=object)
    for start in range(0, rows, chunk):
        part = np.asarray(a[start : start + chunk], dtype=np.float64)
        total = total + np.rint(part.T @ part).astype(np.int64).astype(object)
    return total


def moments(z: np.ndarray, bound_bits: int) -> Moments:
    """The owner's n, Σz and upper-triangle Σ z zᵀ, exactly (``z``: int64 rows × columns
    on the grid, every |value| below 2^bound_bits)."""
    rows, width = z.shape
    if rows == 0:
        return Moments(0, [0] * width, [0] * (width * (width + 1) // 2))
    limbs = _limbs(z, bound_bits)
    # All limbs side by side: one product gives every limb pair's block at once.
    top_bits = bound_bits - LIMB_BITS * (len(limbs) - 1) + 1
    bits = max(top_bits, LIMB_BITS if len(limbs) > 1 else 0)
    blocks = _exact_gram(np.hstack(limbs), bits)
    gram = np.zeros((width, width), dtype=object)
    for i in range(len(limbs)):
        for k in range(len(limbs)):
            block = blocks[i * width : (i + 1) * width, k * width : (k + 1) * width]
            gram = gram + block * (1 << (LIMB_BITS * (i + k)))
    sums = exact_column_sums(z)
    return Moments(rows, sums, [int(gram[j, col]) for j, col in triangle(width)])

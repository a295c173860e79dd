"""Port of SCALE-MAMBA's Programs/Local_test: matrix products with secret and public
operands, and Gaussian elimination, as array operations.

Who provides what: the first owner a matrix A (n × l, its value column read row-major),
the second a matrix B (l × m, the same way); the public matrices ``public_a`` (n × l) and
``public_b`` (l × m) are job parameters, row-major. Integer columns (decimals 0).

What is computed: A·public_b (secret × public), public_a·B (public × secret), A·B
(secret × secret), exactly in secure integers; and the reduced row echelon form of A by
Gauss–Jordan elimination in fixed point (32 fractional bits), without pivoting: A's
leading principal minors must not be zero (a zero pivot would need a data-dependent row
swap, which the original takes in the clear on a public matrix).

What is revealed: the four matrices, to the analyst only. What leaks: the owners' row
counts (n·l and l·m, public by the parameters anyway).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.program import Program, program

GE_FRAC_BITS = 32


def _shape(p: Program, name: str, rows: int, cols: int) -> np.ndarray:
    values = np.array(p.public(name), dtype=object)
    if values.size != rows * cols:
        raise ValueError(f"params.{name}: expected {rows}×{cols} = {rows * cols} numbers")
    return np.array([int(v) for v in values], dtype=np.int64).reshape(rows, cols)


def gauss_jordan(mpc: Any, a: Any, n: int) -> tuple[Any, list[Any]]:
    """Gauss–Jordan on a secure fixed-point n × l array, without pivoting: one reciprocal
    per pivot, and the whole matrix updated by one outer product per pivot (no
    per-element loop). Returns the reduced array and the n pivots (a[k, k] at step k, still
    secret), which a caller checks for a near-zero one where its matrix may be singular
    (``protocols.models.regression``); a zero pivot leaves the result meaningless."""
    pivots = []
    for k in range(n):
        pivot = a[k, k]
        pivots.append(pivot)
        row = a[k] * (1 / pivot)
        unit = np.zeros(n)
        unit[k] = 1.0
        col = a[:, k] - unit
        # Row i ≠ k loses a[i,k]·row; row k becomes row (a[k] − (a[k,k] − 1)·row = row).
        a = a - mpc.np_outer(col, row)
    return a, pivots


async def rref(p: Program, a: object, n: int) -> object:
    """Gauss–Jordan on a secure fixed-point n × l array (:func:`gauss_jordan`)."""
    return gauss_jordan(p.mpc, a, n)[0]


@program
async def local_test(p: Program) -> None:
    n, inner, m = (int(p.public(k)) for k in ("n", "l", "m"))
    sint = p.sint(2 * p.ctx.bit_length + (inner - 1).bit_length() + 8)
    a = (await p.input_from(0, sint)).reshape(n, inner)
    b = (await p.input_from(1, sint)).reshape(inner, m)
    public_a = _shape(p, "public_a", n, inner)
    public_b = _shape(p, "public_b", inner, m)
    p.reveal_to_analyst("SC", a @ public_b)
    p.reveal_to_analyst("CS", p.mpc.np_matmul(public_a, b))
    p.reveal_to_analyst("SS", a @ b)
    fixed = p.fixed(GE_FRAC_BITS)
    a_fixed = (await p.input_from(0, fixed)).reshape(n, inner)
    p.reveal_to_analyst("GE", await rref(p, a_fixed, n))

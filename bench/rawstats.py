"""The variance's fixed-point steps for the raw MPyC baseline, as in protocols/statistics.py
(normalize, an inverse square root by Newton's method, exact sizes), written out here so that
the baseline imports only MPyC and numpy, not Ensnif's data layer. The benchmark checks the
baseline's answer against the plaintext one, so a drift from the protocol would show."""

from __future__ import annotations

from typing import Any

import numpy as np


def moment_sizes(bit_length: int, decimals: int) -> tuple[int, int, int]:
    """(width of A = N·Q − S², width of D·10^d with D = N(N−1), fractional bits)."""
    width_a = 3 * bit_length
    width_d = ((1 << 2 * bit_length) * 10**decimals).bit_length()
    return width_a, width_d, width_d + 32


def shift_down(mpc: Any, a: Any, bits: int) -> Any:
    out = mpc.np_trunc(a, f=bits)
    out.integral = False
    return out


def normalize(mpc: Any, a: Any, width: int) -> tuple[Any, Any, Any, int]:
    """a = m·4^k with m in [1/4, 1): one bit decomposition and one np_find; returns
    (zero, m, 4^(K−k), K)."""
    f = type(a).sectype.frac_length
    bits = mpc.np_to_bits(a)
    top = np.flip(bits[..., f : f + width], axis=-1)
    big_k = (width + 1) // 2

    def powers(i: int) -> tuple[int, int, int]:
        k = (width - i + 1) // 2
        return 1 << 2 * (big_k - k), 1 << k, 1 << (big_k - k)

    def cs_f(b: Any, i: int) -> tuple[Any, ...]:
        return tuple(b * (y - x) + x for x, y in zip(powers(i), powers(i + 1), strict=True))

    zero, (four_down, _, _) = mpc.np_find(top, 1, e=None, cs_f=cs_f)
    return zero, shift_down(mpc, a * four_down, 2 * big_k), four_down, big_k


def rsqrt_mantissa(m: Any) -> Any:
    """1/sqrt(m) for m in [1/4, 1]: a linear start, then 4 Newton steps."""
    y = 2.13 - m * 1.215
    for _ in range(4):
        y = y * (1.5 - (m * 0.5) * (y * y))
    return y

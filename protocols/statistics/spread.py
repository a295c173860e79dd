"""Variance and standard deviation across owners: owners share (N, Σx, Σx²); the
division and the square root run in fixed point inside MPC (exact release), or the
client divides noisy sufficient statistics (DP release).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from protocols.aggregates import value_filter
from protocols.io import Context, SecureOutput
from protocols.registry import (
    BlockSpec,
    DpSensitivity,
    Finalize,
    Table,
    row_filter,
    sampler_safe,
)
from protocols.statistics.common import exact

# -- variance and standard deviation -------------------------------------------------------------


def normalize(mpc: Any, a: Any, width: int) -> tuple[Any, Any, Any, Any, Any, int]:
    """Split each entry of ``a`` (integral, in [0, 2^width)) as a = m·4^k with m in [1/4, 1).

    ``a`` is a secure fixed-point array with at least width + 4 integer bits. One bit
    decomposition, then one secure search for the leading bit whose result is any public
    function of its position: here the powers 4^(K−k), 2^k and 2^(K−k) with
    K = ceil(width / 2), which cost no further rounds (MPyC's ``np_find`` with ``cs_f``).
    Returns (zero, m, 4^(K−k), 2^k, 2^(K−k), K); where a = 0: zero = 1, m = 0, k = 0.
    """
    f = type(a).sectype.frac_length
    bits = mpc.np_to_bits(a)  # low to high; the f fractional bits of an integral a are 0
    top = np.flip(bits[..., f : f + width], axis=-1)  # integer bits, high to low
    big_k = (width + 1) // 2

    def powers(i: int) -> tuple[int, int, int]:
        k = (width - i + 1) // 2  # leading bit at position i from the top: a in [2^q, 2^(q+1))
        return 1 << 2 * (big_k - k), 1 << k, 1 << (big_k - k)

    def cs_f(b: Any, i: int) -> tuple[Any, ...]:
        return tuple(b * (y - x) + x for x, y in zip(powers(i), powers(i + 1), strict=True))

    zero, (four_down, two_up, two_down) = mpc.np_find(top, 1, e=None, cs_f=cs_f)
    m = shift_down(mpc, a * four_down, 2 * big_k)  # an exact integer product, then / 4^K
    return zero, m, four_down, two_up, two_down, big_k


def shift_down(mpc: Any, a: Any, bits: int) -> Any:
    """a / 2^bits for a secure fixed-point array (one truncation, rounding error < 2^-f)."""
    out = mpc.np_trunc(a, f=bits)
    out.integral = False  # np_trunc leaves it unset, which np_tolist refuses
    return out


def rsqrt_mantissa(m: Any) -> Any:
    """1/sqrt(m) for m in [1/4, 1]: a linear start (relative error < 0.087), then 4 Newton
    steps y ← y·(3 − m·y²)/2, each squaring the error (0.087 → 1.2e-2 → 2e-4 → 6e-8 → 6e-15)."""
    y = 2.13 - m * 1.215
    for _ in range(4):
        y = y * (1.5 - (m * 0.5) * (y * y))
    return y


def moment_sizes(bit_length: int, decimals: int) -> tuple[int, int, int]:
    """(width of A, width of D·10^decimals, fractional bits) for variance and stdev.

    The session's bit length bounds every owner's rows times its scaled bound:
    N, |S| < 2^(b−2) and Q ≤ Σ rows·bound² < 2^(2b−4), so A = N·Q − S² < 2^(3b) and
    D = N(N−1) < 2^(2b). Fractional bits: the last truncation of either result has an
    absolute error of about 2^-f, and a nonzero result is at least 1/D·10^-d, so
    f = width(D·10^d) + 32 keeps the relative error below about 2^-30 (1e-9); the
    Newton and rounding errors of the mantissas are far smaller.
    """
    width_a = 3 * bit_length
    width_d = ((1 << 2 * bit_length) * 10**decimals).bit_length()
    return width_a, width_d, width_d + 32


async def _moments(ctx: Context, sectype: Any) -> tuple[Any, Any]:
    """Secret-share every owner's (N, S, Q), add them; returns the secure scalars A and N(N−1)."""
    n, s, q = await _sums(ctx, sectype)
    return n * q - s * s, n * (n - 1)  # integral: exact, no truncation


async def _sums(ctx: Context, sectype: Any) -> list[Any]:
    """Secret-share every owner's (N, S, Q) and add them: three secure scalars."""
    mpc = ctx.mpc
    if ctx.local is not None:
        agg = ctx.local.aggregate(
            measures=[("count", None), ("sum", "value"), ("sumsq", "value")],
            where=value_filter(ctx.params),
        )
        local = np.array(
            [int(agg.values[k][0]) for k in ("count", "sum:value", "sumsq:value")], dtype=object
        )
    else:
        local = np.zeros(3, dtype=object)  # placeholder: only its shape is used
    ctx.progress("computing", 0.2)
    shared = mpc.input(sectype.array(local), senders=ctx.owners)
    totals: list[Any] = mpc.np_tolist(mpc.np_sum(mpc.np_stack(shared), axis=0))
    ctx.progress("computing", 0.4)
    return totals


def _moment_type(ctx: Context) -> tuple[Any, int, int]:
    width_a, width_d, f = moment_sizes(ctx.bit_length, ctx.decimals)
    return ctx.mpc.SecFxp(f + width_a + 6, f), width_a, width_d


SUMSQ = "sumsq@decimals="  # the name says which grid the opened sum of squares is on


async def _noisy_moments(ctx: Context) -> list[SecureOutput]:
    """The DP release of variance and stdev: N, S and Q as integers, for the analyst to divide.

    Q is on the square of the session's grid (10^(2·decimals)); the analyst's side does not
    know the session's decimals, so the output's name carries them. 2·bit_length bits hold
    Q (< 2^(2b−4) by the session's sizing) plus any noise within the plan's headroom.
    """
    secint = ctx.mpc.SecInt(2 * ctx.bit_length)
    n, s, q = await _sums(ctx, secint)
    return [
        SecureOutput("count", n, on_value_scale=False),
        SecureOutput("sum", s),
        SecureOutput(f"{SUMSQ}{2 * ctx.decimals}", q, on_value_scale=False),
    ]


async def variance(ctx: Context) -> list[SecureOutput]:
    if ctx.dp:
        return await _noisy_moments(ctx)
    mpc = ctx.mpc
    secfxp, _, width_d = _moment_type(ctx)
    a, d = await _moments(ctx, secfxp)
    # On the value scale: A / (D·10^d) = variance·10^d.
    zero, m, four_down, _, _, big_k = normalize(
        mpc, mpc.np_fromlist([d * 10**ctx.decimals]), width_d
    )
    y = rsqrt_mantissa(m + zero)  # an empty D gets m = 1: keeps y bounded
    inverse = shift_down(mpc, y * y * four_down, 2 * big_k)  # y²/4^k = 1/(D·10^d)
    ctx.progress("computing", 0.8)
    (few,) = mpc.np_tolist(zero)
    (inv,) = mpc.np_tolist(inverse)
    return [SecureOutput("variance", a * inv), SecureOutput("few", few, on_value_scale=False)]


async def stdev(ctx: Context) -> list[SecureOutput]:
    if ctx.dp:
        return await _noisy_moments(ctx)
    mpc = ctx.mpc
    secfxp, width_a, _ = _moment_type(ctx)
    a, d = await _moments(ctx, secfxp)
    zero, m, _, two_up, two_down, big_k = normalize(mpc, mpc.np_fromlist([a, d]), width_a)
    y = rsqrt_mantissa(m + zero)
    # sqrt(A)/sqrt(D) = sqrt(m_A)·2^(k_A) · y_D·2^(K−k_D) / 2^K, sqrt(m_A) = m_A·y_A; the
    # powers of two are exact integers, so only the first product and the last shift round.
    scaled = (m[:1] * y[:1] * y[1:]) * two_up[:1] * two_down[1:]
    ctx.progress("computing", 0.8)
    (result,) = mpc.np_tolist(shift_down(mpc, scaled, big_k))
    _, few = mpc.np_tolist(zero)
    return [SecureOutput("stdev", result), SecureOutput("few", few, on_value_scale=False)]


def _finalize_spread(name: str) -> Finalize:
    def finalize(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
        if "few" in values:  # the exact release
            return {name: math.nan if values["few"] else values[name]}
        count, total, squares = noisy_moments(values)
        var = spread_from_moments(count, total, squares)
        if var is None:
            out: Fraction | float = math.nan
        else:
            out = var if name == "variance" else math.sqrt(var)
        return {name: out, "count": count, "sum": total, "sumsq": squares}

    return finalize


def noisy_moments(values: dict[str, Fraction]) -> tuple[Fraction, Fraction, Fraction]:
    """(N, S, Q) in the declared unit from a DP release (Q's name says its grid)."""
    (name,) = [k for k in values if k.startswith(SUMSQ)]
    return values["count"], values["sum"], values[name] / 10 ** int(name[len(SUMSQ) :])


def spread_from_moments(count: Fraction, total: Fraction, squares: Fraction) -> Fraction | None:
    """The sample variance (N·Q − S²) / (N·(N − 1)) of noisy sums: None when N < 2, and
    0 where the noise makes it negative (post-processing: it costs no privacy)."""
    if count < 2:
        return None
    return max(Fraction(0), (count * squares - total * total) / (count * (count - 1)))


def _dp_moments(protocol: str) -> DpSensitivity:
    def blocks(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
        return sampler_safe(protocol, moment_blocks(owners))

    return blocks


def moment_blocks(owners: Sequence[tuple[int, int]]) -> list[BlockSpec]:
    """Blocks (N), (S), (Q), ρ/3 each.

    A person has at most k_i rows at owner i, each with |x| ≤ B_i on the integer grid,
    and may be at every owner. Adding or removing them moves N by at most Σ k_i, S by at
    most Σ k_i·B_i and Q = Σ x² by at most Σ k_i·B_i² (each of their rows adds one term
    of at most that size; the min/max filter only drops rows). The three differ by
    orders of magnitude, so each is its own block rather than one vector whose noise
    would follow the largest.
    """
    rows = sum(k for k, _ in owners)
    total = max(1, sum(k * b for k, b in owners))
    squares = max(1, sum(k * b * b for k, b in owners))
    return [BlockSpec(float(rows), 1), BlockSpec(float(total), 1), BlockSpec(float(squares), 1)]


def _kept(tables: Sequence[Table], params: Mapping[str, Any]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(row_filter(np.asarray(t["value"]), params), dtype=object) for t in tables]
    )


def _sample_variance(tables: Sequence[Table], params: Mapping[str, Any]) -> Fraction | None:
    xs = [exact(v) for v in _kept(tables, params)]
    n = len(xs)
    if n < 2:
        return None
    mean = sum(xs, Fraction(0)) / n
    return sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1)


def _ref_variance(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    var = _sample_variance(tables, params)
    return {"variance": math.nan if var is None else float(var)}


def _ref_stdev(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    var = _sample_variance(tables, params)
    return {"stdev": math.nan if var is None else math.sqrt(var)}

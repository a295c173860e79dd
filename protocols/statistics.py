"""Statistics of a numeric column held by one or more data owners.

Variance, standard deviation, minimum and maximum, histogram and quantile.

Who provides what: each data owner feeds one numeric column (the ``value`` role) of
its own dataset; a compute-only party (the helper) feeds nothing.

How: nothing in MPC is per row. Each owner first reduces its own rows locally (in its
own database for a SQL source) to a handful of exact integers on the session's decimal
scale, and secret-shares only those:

* variance, stdev: (count N, sum S, sum of squares Q). The parties add them and form
  A = N·Q − S² and D = N·(N − 1) exactly, so there is no cancellation; the sample
  variance is A / D and the standard deviation sqrt(A / D) (on the squared and the plain
  scale). Both come from one bit decomposition per operand, which splits it as
  m·4^k with m in [1/4, 1), and Newton's iteration for 1/sqrt(m) (see
  :func:`normalize`), in fixed point sized from the session's bit length.
* minmax: its local minimum and maximum (a sentinel beyond every bound when it has no
  row) and a non-empty bit; the parties take the minimum and maximum over owners —
  a few secure comparisons, not one per row.
* histogram: its counts per public bin; the vectors are added.
* quantile: its counts per point of a public grid (values rounded down onto it); the
  parties add them, take cumulative counts C and compare den·C_j < num·N for all j in
  one vectorized comparison (q = num/den exactly, N stays secret); the number of ones
  is the index of the inverted-CDF quantile on the grid.

What is revealed: nothing, to any party. The outputs stay secret-shared; each worker
hands its re-randomized share to the analyst (see ``protocols.worker``).

What leaks, to the analyst only, beyond the declared outputs: for variance and stdev
whether fewer than two rows were selected, for minmax and quantile whether none was
(the output is then NaN). The quantile is only known to the grid's resolution.

DP release (``ctx.dp``): noise is added to integers on the grid, so nothing is divided,
rooted or searched in MPC. Variance and stdev open noisy (N, S, Q), the quantile noisy
counts per grid point, the histogram its noisy counts, and the analyst's side computes
the declared output from them (``finalize``: post-processing, free under DP). Minmax
opens its two ends clipped to the largest owner's bound, with noise of the order of the
whole range: a minimum is one person's value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.aggregates import value_filter
from protocols.io import Context, SecureOutput, scaled_bound
from protocols.registry import (
    BlockSpec,
    DpSensitivity,
    Finalize,
    Param,
    ProtocolDef,
    Table,
    row_filter,
    sampler_safe,
)

MAX_BINS = 4096  # histogram bins and quantile grid points: one secure vector of this length


def exact(x: Any) -> Fraction:
    """A number as the exact decimal a person wrote (0.29 is 29/100, not its float)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, float):
        return Fraction(repr(float(x)))  # numpy's repr of a float64 is not a decimal
    return Fraction(int(x))


def _decimal_places(x: Fraction) -> int:
    """The number of decimals of an exact decimal (its denominator divides 10^e)."""
    e = 0
    while (x * 10**e).denominator != 1:
        e += 1
    return e


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


# -- minimum and maximum -----------------------------------------------------------------------


def value_bound(ctx: Context) -> int:
    """This owner's largest |value| on the session's grid, from its own column's declared
    bounds (as the release plan's B: ceil(max(|lower|, |upper|)·10^decimals))."""
    assert ctx.local is not None
    declared = {c.name: c for c in ctx.local.source.columns}
    column = declared[ctx.local.columns["value"]]
    scale: int = 10**ctx.decimals
    return math.ceil(column.abs_bound * scale)


async def minmax(ctx: Context) -> list[SecureOutput]:
    mpc = ctx.mpc
    secint = mpc.SecInt(ctx.bit_length)
    # Every value on the session scale is below the session's bound 2^(b−2) in magnitude,
    # so an owner without rows inputs (2^(b−2), −2^(b−2)): it can never win.
    sentinel = 1 << (ctx.bit_length - 2)
    if ctx.local is not None:
        agg = ctx.local.aggregate(
            measures=[("count", None), ("min", "value"), ("max", "value")],
            where=value_filter(ctx.params),
        )
        bound = min(value_bound(ctx), sentinel)
        if agg.values["count"][0]:
            lo, hi = int(agg.values["min:value"][0]), int(agg.values["max:value"][0])
            if max(abs(lo), abs(hi)) >= sentinel:
                raise ValueError("a value exceeds the session's bound (bit length too small)")
            local = np.array([lo, hi, 1, bound], dtype=object)
        else:
            local = np.array([sentinel, -sentinel, 0, bound], dtype=object)
    else:
        local = np.zeros(4, dtype=object)  # placeholder: only its shape is used
    ctx.progress("computing", 0.2)
    stacked = mpc.np_stack(mpc.input(secint.array(local), senders=ctx.owners))
    lowest = mpc.np_amin(stacked[:, 0])
    highest = mpc.np_amax(stacked[:, 1])
    ctx.progress("computing", 0.7)
    if ctx.dp:
        # Within [−B, B] (B the largest owner's bound), an empty selection at the far ends:
        # what the sensitivity below assumes. No emptiness bit: it would be exact.
        bound = mpc.np_amax(stacked[:, 3])
        return [
            SecureOutput("min", mpc.min(lowest, bound)),
            SecureOutput("max", mpc.max(highest, -bound)),
        ]
    empty = mpc.np_prod(1 - stacked[:, 2])
    return [
        SecureOutput("min", lowest),
        SecureOutput("max", highest),
        SecureOutput("empty", empty, on_value_scale=False),
    ]


def _finalize_minmax(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    if "empty" not in values:  # the DP release: the noisy ends, as they are
        return {"min": values["min"], "max": values["max"]}
    if values["empty"]:
        return {"min": math.nan, "max": math.nan}
    return {"min": values["min"], "max": values["max"]}


def _dp_minmax(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
    """One block (min, max): L2 2·√2·B, or 2·B when a person has a single row in all.

    Honest but wide: a minimum is one person's value. The release clips both ends to
    [−B, B], B the largest owner's bound on the grid, an empty selection giving (B, −B).
    Adding a person with values in [−B, B] to a non-empty selection with ends m ≤ M moves
    them by (m − a)⁺ and (b − M)⁺ (a, b: the person's smallest and largest value), at most
    (m + B)² + (B − M)² ≤ 4B² in squares since m ≤ M. To an empty one it moves them by
    B − a and b + B: up to 8B² when a = −B and b = B, which takes two rows; with one row,
    a = b and 2B² + 2a² ≤ 4B². Rows per person beyond two change nothing; the row filter
    only drops rows. The noise is therefore of the order of the whole declared range:
    for an informative DP answer use `quantile` with q near 0 or 1 on a grid. In L1 (for
    the discrete Laplace mechanism): (m + B) + (B − M) ≤ 2B, and 4B, or 2B with one row.
    """
    bound = max((b for _, b in owners), default=0)
    rows = sum(k for k, _ in owners)
    spread = 2.0 * bound * (math.sqrt(2) if rows > 1 else 1)
    l1 = 2.0 * bound * (2 if rows > 1 else 1)
    return sampler_safe("minmax", [BlockSpec(max(1.0, spread), 2, max(1.0, l1))])


def _ref_minmax(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    kept = _kept(tables, params)
    if not kept.size:
        return {"min": math.nan, "max": math.nan}
    return {"min": float(min(kept)), "max": float(max(kept))}


# -- histogram -----------------------------------------------------------------------------------


def check_edges(params: Mapping[str, Any]) -> list[Fraction]:
    """The bin edges as exact decimals; at least two, strictly increasing, at most MAX_BINS bins."""
    edges = params.get("edges")
    if not isinstance(edges, list) or len(edges) < 2:
        raise InvalidJobSpec("params.edges: give at least two bin edges, e.g. [0, 10, 20]")
    if len(edges) > MAX_BINS + 1:
        raise InvalidJobSpec(f"params.edges: at most {MAX_BINS} bins ({len(edges) - 1} given)")
    exact_edges = [exact(e) for e in edges]
    for i in range(1, len(exact_edges)):
        if exact_edges[i] <= exact_edges[i - 1]:
            raise InvalidJobSpec(
                f"params.edges: must be strictly increasing (edges[{i}] = {edges[i]!r} "
                f"after {edges[i - 1]!r})"
            )
    return exact_edges


def bin_counts(
    keys: np.ndarray, counts: np.ndarray, edges: Sequence[Any], decimals: int
) -> np.ndarray:
    """Counts per bin [e_i, e_(i+1)) (the last bin closed) of distinct values with their counts.

    Compared on the session's integer scale: x ≥ e ⇔ x ≥ ceil(e·10^d), x ≤ e ⇔ x ≤ floor(e·10^d).
    Values outside [e_0, e_last] are not counted.
    """
    x = np.rint(np.asarray(keys, dtype=np.float64) * 10**decimals).astype(np.int64)
    lows = np.array([scaled_bound(float(e), decimals, upper=False) for e in edges], dtype=np.int64)
    top = scaled_bound(float(edges[-1]), decimals, upper=True)
    inside = (x >= lows[0]) & (x <= top)
    index = np.searchsorted(lows[:-1], x[inside], side="right") - 1
    out = np.zeros(len(edges) - 1, dtype=np.int64)
    np.add.at(out, index, np.asarray(counts, dtype=np.int64)[inside])
    return out


async def histogram(ctx: Context) -> list[SecureOutput]:
    mpc = ctx.mpc
    edges = check_edges(ctx.params)
    secint = mpc.SecInt(ctx.bit_length)
    if ctx.local is not None:
        agg = ctx.local.aggregate(by=["value"], measures=[("count", None)])
        local = bin_counts(agg.keys["value"], agg.values["count"], edges, ctx.decimals)
        local = local.astype(object)
    else:
        local = np.zeros(len(edges) - 1, dtype=object)
    ctx.progress("computing", 0.3)
    shared = mpc.input(secint.array(local), senders=ctx.owners)
    totals = mpc.np_tolist(mpc.np_sum(mpc.np_stack(shared), axis=0))
    return [SecureOutput(f"count[{i}]", c, on_value_scale=False) for i, c in enumerate(totals)]


def _dp_counts(points: Callable[[Mapping[str, Any]], int]) -> DpSensitivity:
    """One block: the counts of every bin (grid point), L2 sensitivity Σ k_i.

    Each row is counted in at most one bin (exactly one grid point: values beyond the
    grid count at its ends), so a person with k_i rows at each owner changes the vector
    of counts by at most Σ k_i in L1, hence in L2, the most when all their rows share one
    bin; spread over bins it is only sqrt(Σ k_i²). The bins are public (the analyst's),
    so their number costs nothing: no √bins factor, in L2 nor in L1 (declared for the
    discrete Laplace mechanism, whose default would be √bins·L2).
    """

    def blocks(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
        rows = float(max(1, sum(k for k, _ in owners)))
        return [BlockSpec(rows, points(params), rows)]

    return blocks


def _ref_histogram(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    edges = [exact(e) for e in params["edges"]]
    xs = [exact(v) for t in tables for v in np.asarray(t["value"])]
    counts = [0] * (len(edges) - 1)
    for x in xs:
        if edges[0] <= x <= edges[-1]:
            i = next(i for i in range(len(edges) - 2, -1, -1) if x >= edges[i])
            counts[i] += 1
    return {f"count[{i}]": float(c) for i, c in enumerate(counts)}


# -- quantile ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """The public grid lower + j·step, j = 0..points−1, and the quantile q = num/den."""

    lower: Fraction
    step: Fraction
    points: int
    q: Fraction

    def value(self, j: int) -> Fraction:
        return self.lower + j * self.step

    def index(self, x: Fraction) -> int:
        """x rounded down onto the grid; below it counts at its first point, above at its last."""
        return min(max(math.floor((x - self.lower) / self.step), 0), self.points - 1)


def check_grid(params: Mapping[str, Any]) -> Grid:
    for name in ("lower", "upper", "step"):
        if params.get(name) is None:
            raise InvalidJobSpec(f"params.{name}: required (the public grid lower..upper by step)")
    lower, upper, step = (exact(params[k]) for k in ("lower", "upper", "step"))
    q = exact(params.get("q", 0.5))
    if not 0 < q < 1:
        raise InvalidJobSpec(f"params.q: must be strictly between 0 and 1, got {params['q']!r}")
    if step <= 0:
        raise InvalidJobSpec(f"params.step: must be positive, got {params['step']!r}")
    if upper <= lower:
        raise InvalidJobSpec(
            f"params.upper ({params['upper']!r}) must be greater than params.lower "
            f"({params['lower']!r})"
        )
    points = math.floor((upper - lower) / step) + 1
    if points > MAX_BINS:
        coarser = float((upper - lower) / (MAX_BINS - 1)) * (1 + 1e-6)  # rounded up below
        raise InvalidJobSpec(
            f"params.step: the grid lower..upper by step has {points} points, at most "
            f"{MAX_BINS} are allowed; use a coarser step (at least {coarser:.6g})"
        )
    return Grid(lower, step, points, q)


def grid_counts(keys: np.ndarray, counts: np.ndarray, grid: Grid, decimals: int) -> np.ndarray:
    """Counts per grid point of distinct values (declared unit) with their counts; exact."""
    e = max(decimals, _decimal_places(grid.lower), _decimal_places(grid.step))
    lower, step = int(grid.lower * 10**e), int(grid.step * 10**e)
    scaled = np.rint(np.asarray(keys, dtype=np.float64) * 10**decimals).astype(np.int64)
    x = scaled.astype(object) * 10 ** (e - decimals)  # Python ints: no overflow
    index = np.clip((x - lower) // step, 0, grid.points - 1).astype(np.int64)
    out = np.zeros(grid.points, dtype=np.int64)
    np.add.at(out, index, np.asarray(counts, dtype=np.int64))
    return out


def decimal_text(x: Fraction) -> str:
    """An exact decimal as text: 12.5, -3, 0.05 (Fraction(text) reads it back exactly)."""
    digits = _decimal_places(x)
    if not digits:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    whole, rest = divmod(abs(x.numerator) * 10**digits // x.denominator, 10**digits)
    return f"{sign}{whole}.{rest:0{digits}d}"


GRID_COUNT = re.compile(r"^count\[(?P<x>[^\]]+)\]@q=(?P<q>\d+(?:/\d+)?)$")


def _local_grid_counts(ctx: Context, grid: Grid) -> np.ndarray:
    """This owner's count of rows per grid point (zeros at a compute-only party)."""
    if ctx.local is None:
        return np.zeros(grid.points, dtype=object)
    agg = ctx.local.aggregate(by=["value"], measures=[("count", None)])
    counts = grid_counts(agg.keys["value"], agg.values["count"], grid, ctx.decimals)
    return counts.astype(object)


async def _noisy_grid_counts(ctx: Context, grid: Grid) -> list[SecureOutput]:
    """The DP release of the quantile: the counts per grid point, for the analyst's side to
    take the quantile of. That side knows neither the grid nor q (only the opened values),
    so every output's name carries its grid point and q."""
    mpc = ctx.mpc
    secint = mpc.SecInt(ctx.bit_length)
    local = _local_grid_counts(ctx, grid)
    ctx.progress("computing", 0.3)
    shared = mpc.input(secint.array(local), senders=ctx.owners)
    totals = mpc.np_tolist(mpc.np_sum(mpc.np_stack(shared), axis=0))
    return [
        SecureOutput(f"count[{decimal_text(grid.value(j))}]@q={grid.q}", c, on_value_scale=False)
        for j, c in enumerate(totals)
    ]


def quantile_from_counts(values: dict[str, Fraction]) -> Fraction | float:
    """The inverted-CDF quantile of noisy grid counts: negative counts read as 0, then the
    first grid point whose cumulative count reaches q·N (NaN when nothing is left)."""
    points = []
    q = None
    for name, count in values.items():
        m = GRID_COUNT.match(name)
        if m is None:
            raise ValueError(f"not a grid count: {name!r}")
        points.append((Fraction(m["x"]), max(count, Fraction(0))))
        q = Fraction(m["q"])
    points.sort()
    total = sum((c for _, c in points), Fraction(0))
    if not points or total <= 0 or q is None:
        return math.nan
    cumulative = Fraction(0)
    for x, c in points:
        cumulative += c
        if cumulative >= q * total:
            return x
    return points[-1][0]  # not reached: the last cumulative count is the total


async def quantile(ctx: Context) -> list[SecureOutput]:
    mpc = ctx.mpc
    grid = check_grid(ctx.params)
    if ctx.dp:
        return await _noisy_grid_counts(ctx, grid)
    num, den = grid.q.numerator, grid.q.denominator
    # Room for den·C − num·N (C, N < 2^(b−2)) and for the grid's values on the value scale.
    top = max(abs(grid.lower), abs(grid.value(grid.points - 1))) * 10**ctx.decimals
    bits = max(ctx.bit_length + den.bit_length(), math.ceil(top).bit_length()) + 2
    secint = mpc.SecInt(bits)
    local = _local_grid_counts(ctx, grid)
    ctx.progress("computing", 0.2)
    shared = mpc.input(secint.array(local), senders=ctx.owners)
    cum = mpc.np_cumsum(mpc.np_sum(mpc.np_stack(shared), axis=0))
    total = mpc.np_sum(cum[-1:])  # N
    ctx.progress("computing", 0.4)
    # below[j] = [C_j < q·N] for j < J−1: a prefix of ones whose length is the index of the
    # quantile. The last entry C_(J−1) = N is never below q·N; there den·N − num·N − 1 < 0
    # holds exactly when N = 0, which makes that entry the "empty" bit.
    last = np.zeros(grid.points, dtype=object)
    last[-1] = 1
    below = (cum * den - total * num - last) < 0
    index = mpc.np_sum(below[:-1])
    (empty,) = mpc.np_tolist(below[-1:])
    ctx.progress("computing", 0.8)
    value = _grid_value(ctx, grid, index)
    return [SecureOutput("quantile", value), SecureOutput("empty", empty, on_value_scale=False)]


def _grid_value(ctx: Context, grid: Grid, index: Any) -> Any:
    """lower + index·step on the value scale: exact when the grid has no more decimals than
    the data; otherwise in fixed point (relative error about 2^-40)."""
    mpc, d = ctx.mpc, ctx.decimals
    lower, step = grid.lower * 10**d, grid.step * 10**d
    if lower.denominator == 1 and step.denominator == 1:
        return index * int(step) + int(lower)
    f = 48
    secfxp = mpc.SecFxp(type(index).bit_length + f, f)
    return mpc.convert(index, secfxp) * float(step) + float(lower)


def _finalize_quantile(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    if "empty" not in values:  # the DP release: noisy counts per grid point
        return {"quantile": quantile_from_counts(values)}
    return {"quantile": math.nan if values["empty"] else values["quantile"]}


def _ref_quantile(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    grid = check_grid(params)
    index = sorted(grid.index(exact(v)) for t in tables for v in np.asarray(t["value"]))
    if not index:
        return {"quantile": math.nan}
    rank = math.ceil(grid.q * len(index))  # inverted CDF: the smallest x with F(x) >= q
    return {"quantile": float(grid.value(index[rank - 1]))}


# -- declarations --------------------------------------------------------------------------------


def _check_histogram(spec: Any) -> None:
    check_edges(spec.params)


def _check_quantile(spec: Any) -> None:
    check_grid(spec.params)


_FILTER = (
    Param("min", "number", "only rows whose value is >= min (evaluated locally by each owner)"),
    Param("max", "number", "only rows whose value is <= max (evaluated locally by each owner)"),
)
_NOTHING = (
    "Nothing to any party: each owner pre-aggregates its own rows locally and secret-shares "
    "only {what}; no party, the coordinator included, sees another owner's partials or the "
    "result, which reaches only the analyst."
)
_SPREAD_LEAK = (
    _NOTHING.format(what="its (count, sum, sum of squares)")
    + " Count, sum and sum of squares are never opened: the division and square root run in "
    "MPC in fixed point (relative error below 1e-9). The analyst also learns whether fewer "
    "than two rows were selected (the output is then NaN). DP release: instead, a noisy "
    "count, sum and sum of squares are opened by the analyst, whose side computes the "
    "sample variance from them (0 where the noise makes it negative, NaN below two rows)."
)

DEFINITIONS = (
    ProtocolDef(
        name="variance",
        family="statistics",
        summary="Sample variance (n − 1) of a numeric column over the rows of all data owners",
        inputs="one numeric column per data owner",
        outputs=("variance",),
        leakage=_SPREAD_LEAK,
        program="protocols.statistics:variance",
        reference=_ref_variance,
        parameters=_FILTER,
        finalize=_finalize_spread("variance"),
        dp_sensitivity=_dp_moments("variance"),
    ),
    ProtocolDef(
        name="stdev",
        family="statistics",
        summary="Sample standard deviation (n − 1) of a numeric column over all data owners",
        inputs="one numeric column per data owner",
        outputs=("stdev",),
        leakage=_SPREAD_LEAK,
        program="protocols.statistics:stdev",
        reference=_ref_stdev,
        parameters=_FILTER,
        finalize=_finalize_spread("stdev"),
        dp_sensitivity=_dp_moments("stdev"),
    ),
    ProtocolDef(
        name="minmax",
        family="statistics",
        summary="Minimum and maximum of a numeric column over the rows of all data owners",
        inputs="one numeric column per data owner",
        outputs=("min", "max"),
        leakage=_NOTHING.format(what="its own minimum and maximum (and whether it has rows)")
        + " The analyst also learns whether no row was selected (both outputs are then NaN). "
        "Note that a minimum or maximum is one owner's actual value. DP release: both ends "
        "clipped to the largest owner's bound and noised at the scale of the whole declared "
        "range (a minimum is one person's value), so the answer is honest but wide; no "
        "emptiness bit. For an informative DP answer, use quantile with q near 0 or 1.",
        program="protocols.statistics:minmax",
        reference=_ref_minmax,
        parameters=_FILTER,
        finalize=_finalize_minmax,
        dp_sensitivity=_dp_minmax,
    ),
    ProtocolDef(
        name="histogram",
        family="statistics",
        summary="Row counts per bin [e_i, e_(i+1)) of public edges (the last bin closed)",
        inputs="one numeric column per data owner",
        outputs=("count[<i>]",),
        leakage=_NOTHING.format(what="its vector of counts per bin")
        + " Rows outside [edges[0], edges[-1]] are not counted; the edges are public. "
        "DP release: every bin's count is noised (one block, sensitivity Σ rows per person).",
        program="protocols.statistics:histogram",
        reference=_ref_histogram,
        parameters=(
            Param(
                "edges",
                "numbers",
                f"bin edges, strictly increasing, at most {MAX_BINS} bins",
                required=True,
            ),
        ),
        check_spec=_check_histogram,
        dp_sensitivity=_dp_counts(lambda params: len(check_edges(params)) - 1),
    ),
    ProtocolDef(
        name="quantile",
        family="statistics",
        summary=(
            "The q-quantile (inverted CDF, as numpy's method='inverted_cdf') of a numeric "
            "column, on a public grid lower..upper by step"
        ),
        inputs="one numeric column per data owner",
        outputs=("quantile",),
        leakage=_NOTHING.format(what="its counts per grid point")
        + " The row count stays secret. The analyst learns the quantile only to the grid's "
        "resolution (values are rounded down onto the grid; below lower they count at lower, "
        "beyond the last grid point at that point), and whether no row was selected (NaN). "
        "DP release: instead, noisy counts per grid point are opened by the analyst, whose "
        "side takes the quantile of them (negative counts read as 0; NaN when none is left).",
        program="protocols.statistics:quantile",
        reference=_ref_quantile,
        parameters=(
            Param("q", "number", "the quantile, strictly between 0 and 1", default=0.5),
            Param("lower", "number", "the grid's first point", required=True),
            Param("upper", "number", "the grid's end (its last point is <= upper)", required=True),
            Param("step", "number", f"the grid's step (at most {MAX_BINS} points)", required=True),
        ),
        finalize=_finalize_quantile,
        check_spec=_check_quantile,
        dp_sensitivity=_dp_counts(lambda params: check_grid(params).points),
    ),
)

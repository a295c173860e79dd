"""Quantile on a public grid: per-grid-point counts, a cumulative sum and one vectorized
comparison (``np.quantile(method='inverted_cdf')``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.io import Context, SecureOutput
from protocols.registry import (
    Table,
)
from protocols.statistics.common import MAX_BINS, _decimal_places, exact

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
    """The inverted-CDF quantile of noisy grid counts: the first grid point whose
    cumulative count reaches q·N (NaN when N is not positive).

    The noisy counts are summed as they are: reading a negative count as 0 would add the
    positive part of the noise at every empty grid point, and pull the quantile toward the
    middle of the grid (by 18 units at noise sd 60 on a 201-point grid, in
    tests/unit/protocols/test_quantile_bias.py). Where noise makes the cumulative counts
    decrease, they are replaced by their isotonic (least-squares non-decreasing) fit, the
    pool-adjacent-violators algorithm; exact counts are already non-decreasing and give
    the exact inverted-CDF quantile."""
    points = []
    q = None
    for name, count in values.items():
        m = GRID_COUNT.match(name)
        if m is None:
            raise ValueError(f"not a grid count: {name!r}")
        points.append((Fraction(m["x"]), Fraction(count)))
        q = Fraction(m["q"])
    points.sort()
    if not points or q is None:
        return math.nan
    xs = [x for x, _ in points]
    cumulative = list(itertools.accumulate(c for _, c in points))
    if any(b < a for a, b in itertools.pairwise(cumulative)):
        cumulative = [Fraction(v) for v in _isotonic([float(v) for v in cumulative])]
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    at = int(np.argmax(np.array([c >= q * total for c in cumulative])))
    return xs[at]


def _isotonic(y: list[float]) -> list[float]:
    """The non-decreasing sequence closest to ``y`` in least squares (pool adjacent
    violators: merge neighbouring blocks while one's mean exceeds the next's)."""
    means: list[float] = []
    sizes: list[int] = []
    for v in y:
        means.append(v)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            n = sizes[-2] + sizes[-1]
            means[-2:] = [(means[-2] * sizes[-2] + means[-1] * sizes[-1]) / n]
            sizes[-2:] = [n]
    return np.repeat(means, sizes).tolist()


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

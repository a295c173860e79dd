"""Minimum and maximum across owners."""

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
    Table,
    sampler_safe,
)
from protocols.statistics.spread import _kept

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

"""Aggregates over a numeric column held by several data owners: count, sum, mean.

Who provides what: each data owner feeds one column of its own dataset; a
compute-only party (the helper) feeds nothing and completes an honest majority.

How: each owner filters and pre-aggregates its own rows locally (in its own
database for a SQL source) into the pair (sum, count) of integers on the column's decimal scale,
then secret-shares that pair as a secure array. The pairs are added with
``mpc.np_sum`` over the stacked array; the mean divides inside MPC with
fixed-point arithmetic, so the count is never opened.

What is revealed: nothing, to any party. The outputs stay secret-shared; each
worker hands its re-randomized share to the analyst (see ``protocols.worker``).

What leaks: the public catalog's row counts and bounds; for the mean, whether the
selection was empty (the analyst then gets NaN rather than a meaningless number).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from protocols.io import Context, SecureOutput


def value_filter(params: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """The optional [min, max] row filter as a local where-clause on the value role."""
    out: list[tuple[str, str, float]] = []
    if params.get("min") is not None:
        out.append(("value", ">=", params["min"]))
    if params.get("max") is not None:
        out.append(("value", "<=", params["max"]))
    return out


async def _owner_partials(ctx: Context, sectype: Any) -> Any:
    """Secret-share every owner's local (sum, count) and add them: a secure array of length 2."""
    mpc = ctx.mpc
    if ctx.local is not None:
        agg = ctx.local.aggregate(
            measures=[("sum", "value"), ("count", None)], where=value_filter(ctx.params)
        )
        local = np.array(
            [int(agg.values["sum:value"][0]), int(agg.values["count"][0])], dtype=object
        )
    else:
        local = np.array([0, 0], dtype=object)  # placeholder: only its shape is used
    ctx.progress("computing", 0.2)
    hosted = ctx.outsourced  # an outsourced owner: its totals come through the conversion
    live = [o for o in ctx.owners if hosted is None or o != hosted.position]
    shared = mpc.input(sectype.array(local), senders=live)
    stacked = mpc.np_stack(shared)
    ctx.progress("computing", 0.5)
    totals = mpc.np_sum(stacked, axis=0)
    if hosted is not None:
        from protocols.he_outsourced import owner_totals

        totals = totals + await owner_totals(mpc, hosted, sectype)
    return totals


async def count(ctx: Context) -> list[SecureOutput]:
    secint = ctx.mpc.SecInt(ctx.bit_length)
    totals = await _owner_partials(ctx, secint)
    return [SecureOutput("count", totals[1], on_value_scale=False)]


async def total(ctx: Context) -> list[SecureOutput]:
    secint = ctx.mpc.SecInt(ctx.bit_length)
    totals = await _owner_partials(ctx, secint)
    return [SecureOutput("sum", totals[0])]


def mean_frac_bits(bit_length: int) -> int:
    """Fractional bits for the mean.

    MPyC's fixed-point division (0.11) is only correct with l = 2f, so f must hold the
    integer part of the sum (bit_length bits). The reciprocal of the count carries an
    absolute error near 2^-f, i.e. a relative error up to count·2^-f on the mean; as
    count < 2^bit_length, 30 more bits keep that below 2^-30 (about 1e-9) at any size.
    """
    return max(32, bit_length + 30)


async def mean(ctx: Context) -> list[SecureOutput]:
    if ctx.dp:  # noise goes on integers: release a noisy sum and count, divided by the analyst
        secint = ctx.mpc.SecInt(ctx.bit_length)
        totals = await _owner_partials(ctx, secint)
        return [
            SecureOutput("sum", totals[0]),
            SecureOutput("count", totals[1], on_value_scale=False),
        ]
    f = mean_frac_bits(ctx.bit_length)
    secfxp = ctx.mpc.SecFxp(2 * f, f)
    totals = await _owner_partials(ctx, secfxp)
    ctx.progress("computing", 0.7)
    # An empty selection has no mean: divide by 1 instead of 0 and tell the analyst so.
    empty = totals[1] == 0
    return [
        SecureOutput("mean", totals[0] / (totals[1] + empty)),
        SecureOutput("empty", empty, on_value_scale=False),
    ]

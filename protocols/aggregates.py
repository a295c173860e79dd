"""Aggregates over a numeric column held by several data owners: count, sum, mean.

Who provides what: each data owner feeds one column of its own dataset; a
compute-only party (the helper) feeds nothing and completes an honest majority.

How: each owner filters and pre-aggregates its own rows locally (it may see its
own data) into the pair (sum, count) of integers on the column's decimal scale,
then secret-shares that pair as a secure array. The pairs are added with
``mpc.np_sum`` over the stacked array; the mean divides inside MPC with
fixed-point arithmetic, so the count is never opened.

What is revealed: nothing, to any party. The outputs stay secret-shared; each
worker hands its re-randomized share to the analyst (see ``protocols.worker``).

What leaks: the public catalog's row counts and bounds; nothing else.
"""

from __future__ import annotations

import numpy as np

from protocols.io import Context, SecureOutput
from protocols.registry import row_filter


def _scaled_filter(ctx: Context) -> dict[str, float]:
    return {
        k: ctx.scaled(v) for k, v in ctx.params.items() if k in ("min", "max") and v is not None
    }


async def _owner_partials(ctx: Context, sectype) -> object:
    """Secret-share every owner's local (sum, count) and add them: a secure array of length 2."""
    mpc = ctx.mpc
    if ctx.is_owner and ctx.values is not None:
        kept = row_filter(ctx.values, _scaled_filter(ctx))
        local = np.array([int(kept.sum()), kept.size], dtype=object)
    else:
        local = np.array([0, 0], dtype=object)  # placeholder: only its shape is used
    ctx.progress("computing", 0.2)
    shared = mpc.input(sectype.array(local), senders=ctx.owners)
    stacked = mpc.np_stack(shared)
    ctx.progress("computing", 0.5)
    return mpc.np_sum(stacked, axis=0)


async def count(ctx: Context) -> list[SecureOutput]:
    secint = ctx.mpc.SecInt(ctx.bit_length)
    totals = await _owner_partials(ctx, secint)
    return [SecureOutput("count", totals[1], on_value_scale=False)]


async def total(ctx: Context) -> list[SecureOutput]:
    secint = ctx.mpc.SecInt(ctx.bit_length)
    totals = await _owner_partials(ctx, secint)
    return [SecureOutput("sum", totals[0])]


def mean_frac_bits(bit_length: int) -> int:
    """Fractional bits for the mean: MPyC's fixed-point division (0.11) is only correct
    with l = 2f, so f must also hold the integer part of the sum (bit_length bits)."""
    return max(32, bit_length + 4)


async def mean(ctx: Context) -> list[SecureOutput]:
    f = mean_frac_bits(ctx.bit_length)
    secfxp = ctx.mpc.SecFxp(2 * f, f)
    totals = await _owner_partials(ctx, secfxp)
    ctx.progress("computing", 0.7)
    return [SecureOutput("mean", totals[0] / totals[1])]

"""Intersection size and intersection sum/mean over the keys both owners hold.

Minimum cohort (``protocols.joint_cohort``): the matched set exists only inside MPC, so
the owners' rule is held there. Each owner inputs its ``min_cohort`` as a secret; when the
matched keys (``count``, ``keys``; noisy under DP, after the noise) are fewer than the
largest, every output opens as 0 and the public ``withheld`` marker as 1. Exact: the marker
says "matched keys < k", less than the count the release gives; DP: a function of the
noisy count the release opens (no extra budget).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from protocols import joint_cohort
from protocols.io import Context, SecureOutput
from protocols.join.common import (
    _announce,
    _hashed,
    _input,
    _pseudonymize,
    _secfld,
    _select_sum,
    capped,
    keyed,
    match,
    row_cap,
)
from protocols.registry import (
    BlockSpec,
    sampler_safe,
)


# -- intersection size -------------------------------------------------------------------
async def intersection_size(ctx: Context) -> list[SecureOutput]:
    outputs = await _intersection_size(ctx)
    return outputs + joint_cohort.markers([None], type(outputs[0].value))


async def _intersection_size(ctx: Context) -> list[SecureOutput]:
    from protocols.join import tagged
    from protocols.shuffle import Shuffler

    if ctx.outsourced is not None:  # an outsourced side: its keys converted from BFV
        from protocols import he_join

        return await he_join.intersection_size(ctx)
    if tagged.takes_route(ctx, "intersection_size"):  # two owners, one helper, t = 1
        return await tagged.intersection_size(ctx)

    mpc, secfld = ctx.mpc, _secfld(ctx)
    sizes, keys = [], []
    for position in range(2):
        mine = None
        if ctx.local is not None and ctx.owners[position] == ctx.index:
            mine = _hashed(keyed(ctx.local, ["key"]).keys["key"])
        n = await _announce(ctx, position, None if mine is None else len(mine))
        sizes.append(n)
        keys.append(_input(ctx, position, secfld, mine, (n,)) if n else None)
    secint = mpc.SecInt(ctx.bit_length)
    if not all(sizes):
        return [SecureOutput("count", secint(0), on_value_scale=False)]
    ctx.progress("shuffling", 0.3)
    (ka,) = await Shuffler(mpc).apply([keys[0]])
    (kb,) = await Shuffler(mpc).apply([keys[1]])
    ctx.progress("pseudonyms", 0.5)
    ps_a, ps_b = await _pseudonymize(ctx, ka, kb)
    ia, _ = match(ps_a, ps_b)
    return [SecureOutput("count", secint(len(ia)), on_value_scale=False)]


# -- intersection sum / mean ---------------------------------------------------------------
def _value_where(params: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    out: list[tuple[str, str, float]] = []
    if params.get("min") is not None:
        out.append(("value", ">=", params["min"]))
    if params.get("max") is not None:
        out.append(("value", "<=", params["max"]))
    return out


async def intersection_sum(ctx: Context) -> list[SecureOutput]:
    outputs = await _intersection_sum(ctx)
    return outputs + joint_cohort.markers([None], type(outputs[0].value))


async def _intersection_sum(ctx: Context) -> list[SecureOutput]:
    from protocols.join import tagged
    from protocols.shuffle import Shuffler

    if ctx.outsourced is not None:  # an outsourced side: its keys converted from BFV
        from protocols import he_join

        return await he_join.intersection_sum(ctx)
    if tagged.takes_route(ctx, "intersection_sum"):  # two owners, one helper, t = 1
        return await tagged.intersection_sum(ctx)

    mpc, secfld = ctx.mpc, _secfld(ctx)
    secint = mpc.SecInt(ctx.bit_length)
    mine_a = mine_b = None
    if ctx.local is not None and ctx.index == ctx.owners[0]:
        agg = keyed(
            ctx.local,
            ["key"],
            measures=[("count", None), ("sum", "value")],
            where=_value_where(ctx.params),
        )
        sums, counts = agg.values["sum:value"], agg.values["count"]
        if ctx.dp:  # bounded contribution per key: what the sensitivity assumes
            counts, sums = capped(sums, counts, row_cap(ctx.params))
        mine_a = (_hashed(agg.keys["key"]), sums, counts)
    if ctx.local is not None and ctx.index == ctx.owners[1]:
        mine_b = _hashed(keyed(ctx.local, ["key"]).keys["key"])
    n_a = await _announce(ctx, 0, None if mine_a is None else len(mine_a[0]))
    n_b = await _announce(ctx, 1, None if mine_b is None else len(mine_b))
    if not (n_a and n_b):
        zero = secint(0)
        return [
            SecureOutput("keys", zero, on_value_scale=False),
            SecureOutput("rows", zero, on_value_scale=False),
            SecureOutput("sum", zero),
        ]
    key_a = _input(ctx, 0, secfld, None if mine_a is None else mine_a[0], (n_a,))
    sum_a = _input(ctx, 0, secint, None if mine_a is None else mine_a[1], (n_a,))
    cnt_a = _input(ctx, 0, secint, None if mine_a is None else mine_a[2], (n_a,))
    key_b = _input(ctx, 1, secfld, mine_b, (n_b,))
    ctx.progress("shuffling", 0.25)
    key_a, sum_a, cnt_a = await Shuffler(mpc).apply([key_a, sum_a, cnt_a])
    (key_b,) = await Shuffler(mpc).apply([key_b])
    ctx.progress("pseudonyms", 0.45)
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ctx.progress("aggregating", 0.8)
    ia, _ = match(ps_a, ps_b)
    return [
        SecureOutput("keys", secint(len(ia)), on_value_scale=False),
        SecureOutput("rows", _select_sum(ctx, cnt_a, ia, secint), on_value_scale=False),
        SecureOutput("sum", _select_sum(ctx, sum_a, ia, secint)),
    ]


def _finalize_intersection_sum(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    rows = values["rows"]  # > 0, not just nonzero: under DP a noisy count can be negative
    return {**values, "mean": values["sum"] / rows if rows > 0 else math.nan}


def _dp_intersection_size(
    owners: Sequence[tuple[int, int]], params: Mapping[str, Any]
) -> list[BlockSpec]:
    """One block, L2 Σ k_i (k_A + k_B).

    After pre-aggregation each side's keys are distinct, and a key on one side matches at
    most one on the other. A person with k_i rows at owner i brings at most k_i keys
    there, each of which can create at most one match — whatever the key means: with a
    key shared by several people (a zip code) their rows may match other people's keys.
    """
    return [BlockSpec(float(max(1, sum(k for k, _ in owners))), 1)]


def _dp_intersection_sum(
    owners: Sequence[tuple[int, int]], params: Mapping[str, Any]
) -> list[BlockSpec]:
    """Blocks keys, rows, sum (ρ/3 each), with c = max_rows_per_key.

    Under DP each of the first owner's keys counts a = min(n, c) of its n rows with the
    sum s·a/n (rounded): a key's contribution is at most c rows and c·B_A. A person with
    k_A rows at A and k_B at B:
    - keys: as intersection_size, k_A + k_B;
    - rows: their rows at A move the capped counts of the keys they fall in by at most one
      each (k_A); each of their at most k_B keys at B can make one of A's keys match, with
      all its capped rows, whoever's they are (c each): k_A + c·k_B;
    - sum: one more row in a key moves s·a/n by |v| ≤ B_A while n < c, else by
      c·|v·n − s| / (n·(n + 1)) ≤ 2·c·B_A/(c + 1); rounding adds at most 1 per key touched:
      k_A·(2·c·B_A/(c + 1) + 1) from A, plus c·B_A for each key their B rows unlock.
    Without the cap, one row at B could unlock a key with any number of A's rows.
    """
    (k_a, b_a), (k_b, _) = owners
    c = row_cap(params)
    keys = max(1, k_a + k_b)
    rows = max(1, k_a + c * k_b)
    total = max(1.0, k_a * (2 * c * b_a / (c + 1) + 1) + k_b * c * b_a)
    blocks = [BlockSpec(float(keys), 1), BlockSpec(float(rows), 1), BlockSpec(float(total), 1)]
    return sampler_safe("intersection_sum", blocks)

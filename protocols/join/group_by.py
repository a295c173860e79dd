"""A join, then group-by: owner B's value by B's group over the keys owner A holds
(optionally only keys whose A-side total exceeds a threshold).

Minimum cohort (``protocols.joint_cohort``): the joined selection exists only inside
MPC, so the owners' rule is held there, per group: each owner inputs its ``min_cohort`` as
a secret, and a group whose joined rows (``count[<group>]``: B's rows over the selected
keys; under DP at most max_rows_per_key per key, noisy, after the noise) are fewer than
the largest opens as 0 with its public ``withheld[<group>]`` marker set. The rule counts
rows, which with the DP default of one row per key are distinct keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from protocols import joint_cohort
from protocols.io import Context, SecureOutput
from protocols.join.common import (
    _announce,
    _hashed,
    _input,
    _pseudonymize,
    _secfld,
    cap_per_key,
    keyed,
    match,
    row_cap,
)
from protocols.registry import (
    BlockSpec,
    sampler_safe,
)


# -- join, then group-by ---------------------------------------------------------------------
def _groups(params: Mapping[str, Any]) -> list[str]:
    return [str(g) for g in params["groups"]]


def threshold_flags(totals: np.ndarray, threshold: float, decimals: int) -> np.ndarray:
    """1 where a key's scaled total exceeds ``threshold`` (exact: compare with floor(T·10^d))."""
    from protocols.io import scaled_bound

    cut = scaled_bound(threshold, decimals, upper=True)
    # Python ints compared by numpy's object loop: exact at any size, no per-key Python.
    above = np.asarray(np.asarray(totals, dtype=object) > cut, dtype=bool)
    return np.asarray(above.astype(np.int64), dtype=object)


def group_columns(labels: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each row's column among the listed ``groups`` (its group's text, as the job lists
    groups), or −1 for a group not listed; a label listed twice takes its last column.
    One sort of the listed groups and one binary search of all rows: no per-row Python."""
    if len(labels) == 0 or not groups:
        return np.full(len(labels), -1, dtype=np.int64)
    column = {g: i for i, g in enumerate(groups)}  # over the listed groups, not the rows
    names = np.array(sorted(column), dtype=str)
    index = np.array([column[g] for g in names], dtype=np.int64)
    text = np.asarray(labels).astype(str)
    at = np.minimum(np.searchsorted(names, text), len(names) - 1)
    return np.where(names[at] == text, index[at], -1)


def _side_a(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """The first owner's distinct keys and their flags (threshold passed, or 1)."""
    assert ctx.local is not None
    if ctx.params.get("threshold") is not None:
        agg = keyed(ctx.local, ["key"], measures=[("sum", "filter")])
        flags = threshold_flags(
            agg.values["sum:filter"], ctx.params["threshold"], ctx.local.scale("filter")
        )
    else:
        agg = keyed(ctx.local, ["key"])
        flags = np.ones(len(agg.keys["key"]), dtype=object)
    return agg.keys["key"], flags


def _side_b(
    ctx: Context, groups: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The second owner's (key, group) rows over the listed groups: keys, group columns,
    row counts and sums (capped per key under DP)."""
    assert ctx.local is not None
    agg = keyed(ctx.local, ["key", "group"], measures=[("count", None), ("sum", "value")])
    cols = group_columns(agg.keys["group"], groups)
    keep = cols >= 0
    cols = cols[keep]
    counts = agg.values["count"][keep].astype(object)
    sums = agg.values["sum:value"][keep]
    if ctx.dp:  # bounded contribution per key: what the sensitivity assumes
        counts, sums = cap_per_key(agg.keys["key"][keep], cols, counts, sums, row_cap(ctx.params))
    return agg.keys["key"][keep], cols, counts, sums


async def join_group_by(ctx: Context) -> list[SecureOutput]:
    outputs = await _join_group_by(ctx)
    return outputs + joint_cohort.markers(_groups(ctx.params), type(outputs[0].value))


async def _join_group_by(ctx: Context) -> list[SecureOutput]:
    from protocols.join import tagged
    from protocols.shuffle import Shuffler

    if ctx.outsourced is not None:  # an outsourced side: its keys and columns from BFV
        from protocols import he_join

        return await he_join.join_group_by(ctx)
    if tagged.takes_route(ctx, "join_group_by"):  # two owners, one helper, t = 1
        return await _tagged_group_by(ctx)

    mpc, secfld = ctx.mpc, _secfld(ctx)
    secint = mpc.SecInt(ctx.bit_length)
    groups = _groups(ctx.params)
    width = 2 * len(groups)
    mine_a = mine_b = None
    if ctx.local is not None and ctx.index == ctx.owners[0]:
        keys, flags = _side_a(ctx)
        mine_a = (_hashed(keys), flags)
    if ctx.local is not None and ctx.index == ctx.owners[1]:
        keys, weights = side_b_weights(ctx, groups)
        mine_b = (_hashed(keys), weights)
    n_a = await _announce(ctx, 0, None if mine_a is None else len(mine_a[0]))
    n_b = await _announce(ctx, 1, None if mine_b is None else len(mine_b[0]))
    if not (n_a and n_b):
        return _group_outputs(groups, [secint(0)] * width)
    key_a = _input(ctx, 0, secfld, None if mine_a is None else mine_a[0], (n_a,))
    flag_a = _input(ctx, 0, secint, None if mine_a is None else mine_a[1], (n_a,))
    key_b = _input(ctx, 1, secfld, None if mine_b is None else mine_b[0], (n_b,))
    weights_b = _input(ctx, 1, secint, None if mine_b is None else mine_b[1], (n_b, width))
    ctx.progress("shuffling", 0.25)
    key_a, flag_a = await Shuffler(mpc).apply([key_a, flag_a])
    shuffle_b = Shuffler(mpc)
    (key_b,) = await shuffle_b.apply([key_b])
    ctx.progress("pseudonyms", 0.45)
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ctx.progress("aggregating", 0.75)
    ia, ib = match(ps_a, ps_b)
    selected = flag_a[ia] if len(ia) else None
    totals = await selected_totals(ctx, secint, selected, ib, shuffle_b, weights_b, n_b)
    return _group_outputs(groups, totals)


def side_b_weights(ctx: Context, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The second owner's (key, group) rows as PRF-route inputs: their keys (not hashed:
    the caller hashes as its route does) and per row [counts by group | sums by group]
    (zero outside its own group)."""
    keys, cols, counts, sums = _side_b(ctx, groups)
    weights = np.zeros((len(keys), 2 * len(groups)), dtype=object)
    rows = np.arange(len(cols))
    weights[rows, cols] = counts
    weights[rows, cols + len(groups)] = sums
    return keys, weights


async def selected_totals(
    ctx: Context, secint: Any, flags: Any, ib: np.ndarray, shuffle_b: Any, weights_b: Any, n_b: int
) -> list[Any]:
    """Every group's count and sum over B's rows whose shuffled position ``ib`` matched
    (weighted by the matched A key's secret flag), with B's weights in B's own order."""
    mpc = ctx.mpc
    width = weights_b.shape[1]
    if len(ib) == 0:
        return [secint(0)] * width
    # The secret weight of every B row (its A partner's flag, 0 if unmatched), in B's
    # shuffled order; the inverse shuffle takes it back to B's own row order, where
    # one matrix-vector product with B's per-row weights aggregates every group.
    selector = mpc.np_update(secint.array(np.zeros(n_b, dtype=object)), ib, flags)
    (selector,) = await shuffle_b.apply([selector], inverse=True)
    product = mpc.np_matmul(selector, weights_b)
    return [product[i] for i in range(width)]


def pivot(
    keys: np.ndarray, cols: np.ndarray, counts: np.ndarray, sums: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """(key, group) rows as one row per distinct key: [counts by group | sums by group]
    (int64; a key without rows in a group has zeros there)."""
    distinct, row = np.unique(np.asarray(keys), return_inverse=True)
    table = np.zeros((len(distinct), 2 * groups), dtype=np.int64)
    table[row, cols] = np.asarray(counts, dtype=object).astype(np.int64)
    table[row, cols + groups] = np.asarray(sums, dtype=object).astype(np.int64)
    return distinct, table


async def _tagged_group_by(ctx: Context) -> list[SecureOutput]:
    """The tagged-helper route (``protocols.join.aligned``): A's flags aligned to B's keys,
    then one product with B's pivoted table, in Z_2^k.

    B's table is one row per distinct key (its groups as columns), so nobody — the
    helper included — learns how many groups a key has rows in. k is the whole bytes of
    the session's integer size (``aligned.ring_bits``: 40 bits for a million rows of
    values up to 300.00), public before any data is read; every output's magnitude is
    below 2^(k − 2), so the ring holds it exactly, and each masked element costs k/8
    bytes on the wire instead of 8 (what each party sees is unchanged: uniform masks
    reduced modulo 2^k are uniform; ``protocols.join.aligned``, "Who sees what")."""
    from protocols.join import aligned, tagged

    me, (a, b) = ctx.index, ctx.owners
    groups = _groups(ctx.params)
    width = 2 * len(groups)
    bits = aligned.ring_bits(ctx.bit_length)
    keys = flags = table = None
    if me == a:
        keys, flags = _side_a(ctx)
    elif me == b:
        rows = _side_b(ctx, groups)
        _fits_ring(rows[2], rows[3], bits)
        keys, table = pivot(*rows, len(groups))
    n_a, n_b = await aligned.sizes(ctx, None if keys is None else len(keys))
    if not (n_a and n_b):
        secint = ctx.mpc.SecInt(ctx.bit_length)
        return _group_outputs(groups, [secint(0)] * width)
    trace = tagged._Trace("helper" if me not in (a, b) else f"owner{ctx.owners.index(me)}")
    ctx.progress("tagging", 0.25)
    m = await aligned.match(ctx, keys, n_a, n_b, trace)
    ring = aligned.Ring2k(bits)
    ctx.progress("aligning", 0.5)
    x = None if flags is None else ring.encode(np.asarray(flags, dtype=np.int64)[:, None])
    y = await aligned.align(ctx, m, ring, x, 1, trace)
    w = None
    if table is not None:
        assert m.order is not None
        w, table = ring.encode(table[m.order]), None  # one copy of B's table, not two
    ctx.progress("aggregating", 0.75)
    share = await aligned.with_b(ctx, m, ring, y, w, width, b"groups", trace)
    totals = ring.ints(share[0])
    if me == a:  # the offset keeps every total non-negative in the ring
        totals = [(t + (1 << (bits - 2))) % (1 << bits) for t in totals]
    trace.write(ctx.mpc)
    return _group_outputs(groups, await tagged._into_mpc(ctx, totals, bits=bits))


def _fits_ring(counts: np.ndarray, sums: np.ndarray, bits: int) -> None:
    """B's own check that its counts and its sums, each in total over all its rows, stay
    below 2^(bits − 2) in magnitude, as the session's size promises (so does every output,
    a part of one of those totals). The node checks the same against the catalog before
    the job; this guards the ring's exactness, not privacy."""
    limit = 1 << (bits - 2)
    for column in (counts, sums):  # (key, group) rows: one entry each, not the pivot's 2·G
        try:
            values = np.abs(np.asarray(column).astype(np.int64))
            big = float(values.sum(dtype=np.float64)) >= 2.0**62  # where int64 could wrap
            over = big or int(values.sum()) >= limit
        except OverflowError:  # an entry beyond int64
            over = True
        if over:
            raise FailedPrecondition(
                "join_group_by: the second input's counts or sums outgrow the session's "
                "integer size; restart the node to republish its catalog",
                reason="catalog_stale",
            )


def _group_outputs(groups: list[str], totals: list[Any]) -> list[SecureOutput]:
    """Every group's count, then every group's sum: the two blocks of the DP release."""
    counts = [
        SecureOutput(f"count[{g}]", totals[i], on_value_scale=False) for i, g in enumerate(groups)
    ]
    sums = [SecureOutput(f"sum[{g}]", totals[len(groups) + i]) for i, g in enumerate(groups)]
    return counts + sums


def _finalize_group(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    out: dict[str, Fraction | float] = dict(values)
    for name, count in values.items():
        if name.startswith("count["):
            g = name[len("count[") : -1]
            # count > 0, not just nonzero: under DP a noisy count can be 0 or negative.
            out[f"mean[{g}]"] = values[f"sum[{g}]"] / count if count > 0 else math.nan
    return out


def _dp_join_group_by(
    owners: Sequence[tuple[int, int]], params: Mapping[str, Any]
) -> list[BlockSpec]:
    """Blocks counts[G] and sums[G] (ρ/2 each), with c = max_rows_per_key.

    Under DP the second owner caps every key at c rows over the listed groups (greedy in
    the groups' order, each (key, group) keeping its mean): an unlocked key moves the
    count vector by at most c in L1 (so in L2) and the sums by at most c·B_B. A person
    with k_A rows at A and k_B at B:
    - at A, their rows decide the threshold bit (or the presence) of at most k_A keys,
      each of which switches a whole capped key of B on or off: k_A·c and k_A·c·B_B;
    - at B, one more row in (key, group g) adds at most one capped row to g and, when the
      key's cap is reached, takes one from a later group g': √2 for the counts. The sum of
      g moves by at most 2·B_B (+1 for rounding: s·a/n with a fixed, or |v| if a grows),
      that of g' by at most B_B + 1 (s/n): sqrt((2B_B + 1)² + (B_B + 1)²) per row.
    Without the cap, one row at A could switch on a key with any number of B's rows.
    In L1 (declared for the discrete Laplace mechanism): k_A·c + 2·k_B for the counts,
    k_A·c·B_B + k_B·(3·B_B + 2) for the sums.
    """
    (k_a, _), (k_b, b_b) = owners
    c = row_cap(params)
    g = len(_groups(params))
    counts = max(1.0, k_a * c + math.sqrt(2) * k_b)
    per_row = math.sqrt((2 * b_b + 1) ** 2 + (b_b + 1) ** 2)
    sums = max(1.0, k_a * c * b_b + k_b * per_row)
    counts_l1 = float(max(1, k_a * c + 2 * k_b))
    sums_l1 = float(max(1, k_a * c * b_b + k_b * (3 * b_b + 2)))
    return sampler_safe(
        "join_group_by", [BlockSpec(counts, g, counts_l1), BlockSpec(sums, g, sums_l1)]
    )


def _check_join_group_by(spec: Any) -> None:
    row_cap(spec.params)
    if spec.params.get("threshold") is None:
        return
    if "filter" not in spec.inputs[0].columns:
        raise InvalidJobSpec(
            "params.threshold: needs a `filter` column on the first input (the owner whose "
            "column is thresholded evaluates it on its own rows); a party can only threshold "
            "a column it owns"
        )

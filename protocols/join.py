"""Private joins on a key column held by two data owners (DESIGN.md §7).

Pipeline, the same for every protocol here:

1. Each owner pre-aggregates its own rows per join key in its own engine
   (so its table has one row per key — or per (key, group) for the group-by)
   and hashes the keys into Z_q locally (``protocols.prf.hash_keys``).
2. The tables are secret-shared and each is shuffled obliviously by resharing
   among the (t+1)-sets (``protocols.shuffle``): no party knows where its rows went.
3. A PRF is evaluated on the shuffled shared keys under a shared random key and
   only the pseudonyms are revealed (``protocols.prf``).
4. Pseudonyms are matched in the clear (a sort and a binary search — no
   comparison matrix, no oblivious sort); matching positions are public.
5. The still-shared values of matched rows are selected by those positions
   (local, no communication) and aggregated; where the owner's payload is wide
   (the group-by), a secret selection vector is carried back to the owner's
   original row order by the inverse shuffle instead, and one secure
   matrix-vector product aggregates it.

What leaks, to every party of the session (the helper included), is listed per
protocol: the two tables' sizes after per-key pre-aggregation (numbers of
distinct keys), the number of matching keys, and for the group-by, how many
(key, group) rows each matching key has on the value owner's side. No party
learns which of its own keys matched, nor any value.

DP release: every output is an integer noised inside MPC before the analyst opens it
(the correlation as its sufficient statistics, r computed on the analyst's side). A
key's contribution is bounded first, on the owner's side (``max_rows_per_key``), since
a key need not be a person: one person's row could otherwise bring in a key with any
number of other people's rows. The sizes and the match count stay exact and known to
the parties, as above: against them the noise changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.io import Context, SecureOutput
from protocols.registry import (
    KEY_TYPES,
    NUMERIC,
    BlockSpec,
    Param,
    ProtocolDef,
    Role,
    Table,
    positional,
    sampler_safe,
)

KEY = Role(
    "key", KEY_TYPES, "the join key (e.g. a customer id); int or string, same type on both sides"
)
VALUE = Role("value", NUMERIC, "the numeric column to aggregate over matching keys")
GROUP = Role("group", frozenset({"int", "string"}), "the categorical group-by column")
FILTER = Role(
    "filter",
    NUMERIC,
    "a column its owner thresholds locally per key (params.threshold)",
    required=False,
)


# -- the shared machinery ---------------------------------------------------------------
async def _announce(ctx: Context, position: int, value: int | None) -> int:
    """A public size announced by the owner at ``position`` (every party takes part)."""
    owner = ctx.owners[position]
    got = await ctx.mpc.transfer(value if ctx.index == owner else None, senders=[owner])
    return int(got[0] if isinstance(got, list) else got)


def _input(
    ctx: Context, position: int, sectype: Any, data: np.ndarray | None, shape: tuple[int, ...]
) -> Any:
    """The owner at ``position`` secret-shares ``data``; the others pass a placeholder."""
    owner = ctx.owners[position]
    values = data if ctx.index == owner else np.zeros(shape, dtype=object)
    return ctx.mpc.input(sectype.array(np.asarray(values, dtype=object)), senders=[owner])[0]


def match(ps_a: np.ndarray, ps_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) with ps_a[ia] == ps_b[ib]; A's pseudonyms are unique.

    A sort and a binary search over public pseudonyms: O((n + m) log n).
    """
    if len(ps_a) == 0 or len(ps_b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    order = np.argsort(ps_a, kind="stable")
    ordered = ps_a[order]
    if np.any(ordered[1:] == ordered[:-1]):
        raise ArithmeticError("two keys of one owner share a pseudonym after pre-aggregation")
    pos = np.minimum(np.searchsorted(ordered, ps_b), len(ordered) - 1)
    hit = ordered[pos] == ps_b
    ib = np.nonzero(hit)[0]
    return order[pos[hit]], ib


async def _pseudonymize(ctx: Context, keys_a: Any, keys_b: Any) -> tuple[np.ndarray, np.ndarray]:
    from protocols import prf

    mpc = ctx.mpc
    secfld = type(keys_a).sectype if hasattr(type(keys_a), "sectype") else type(keys_a)
    k = await prf.random_key(mpc, secfld)
    both = mpc.np_concatenate((keys_a, keys_b))
    ps = await prf.pseudonyms(mpc, both, k)
    return ps[: len(keys_a)], ps[len(keys_a) :]


def _secfld(ctx: Context) -> Any:
    from protocols import prf

    return ctx.mpc.SecFld(prf.Q)


def _hashed(keys: np.ndarray) -> np.ndarray:
    from protocols import prf

    return prf.hash_keys(keys)


def keyed(local: Any, by: list[str], **kwargs: Any) -> Any:
    """The owner's per-key pre-aggregation, without groups whose key is missing.

    A row with no key (NULL, or an empty string in a CSV) cannot be joined; two
    owners' empty keys must not match each other. Such rows are left out here.
    """
    from ensnif_mpc.data.sources import Aggregate

    agg = local.aggregate(by=by, **kwargs)
    keys = agg.keys["key"]
    present = np.array([k is not None and k != "" for k in keys.tolist()], dtype=bool)
    if present.all():
        return agg
    return Aggregate(
        keys={r: v[present] for r, v in agg.keys.items()},
        values={m: v[present] for m, v in agg.values.items()},
        rows=agg.rows,
        groups=int(present.sum()),
    )


def _select_sum(ctx: Context, array: Any, idx: np.ndarray, sectype: Any) -> Any:
    if len(idx) == 0:
        return sectype(0)
    return ctx.mpc.np_sum(array[idx])


# -- contribution bounding for the DP releases -----------------------------------------------
CAP = "max_rows_per_key"


def row_cap(params: Mapping[str, Any]) -> int:
    """The most rows one key contributes to a DP release (params.max_rows_per_key, default 1)."""
    cap = params.get(CAP, 1)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidJobSpec(f"params.{CAP}: expected a positive integer, got {cap!r}")
    return cap


def capped(sums: np.ndarray, counts: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Per key: its count capped at ``cap`` and its sum scaled to that count, keeping the
    key's mean (rounded half up): a key with n rows of sum s counts a = min(n, cap) rows
    of sum s·a/n. Exact integers."""
    rows, total = [], []
    for s, n in zip(sums, counts, strict=True):
        n, s = int(n), int(s)
        a = min(n, cap)
        rows.append(a)
        total.append((2 * s * a + n) // (2 * n) if n else 0)
    return np.array(rows, dtype=object), np.array(total, dtype=object)


def cap_per_key(
    keys: np.ndarray, columns: np.ndarray, counts: np.ndarray, sums: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """(key, group) rows capped so that a key counts at most ``cap`` rows over all groups.

    Greedy in the listed groups' order: each (key, group) row keeps a = min(n, what the key
    has left) of its n rows and the sum s·a/n (its mean kept, rounded half up). Rows stay
    in the table (with zeros where nothing is left), so the table's shape is unchanged.
    """
    left: dict[Any, int] = {}
    rows = np.zeros(len(keys), dtype=object)
    total = np.zeros(len(keys), dtype=object)
    for i in sorted(range(len(keys)), key=lambda i: int(columns[i])):
        n, s = int(counts[i]), int(sums[i])
        room = left.get(keys[i], cap)
        a = min(n, room)
        left[keys[i]] = room - a
        rows[i] = a
        total[i] = (2 * s * a + n) // (2 * n) if n else 0
    return rows, total


# -- intersection size -------------------------------------------------------------------
async def intersection_size(ctx: Context) -> list[SecureOutput]:
    from protocols.shuffle import Shuffler

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
    from protocols.shuffle import Shuffler

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


# -- join, then group-by ---------------------------------------------------------------------
def _groups(params: Mapping[str, Any]) -> list[str]:
    return [str(g) for g in params["groups"]]


def threshold_flags(totals: np.ndarray, threshold: float, decimals: int) -> np.ndarray:
    """1 where a key's scaled total exceeds ``threshold`` (exact: compare with floor(T·10^d))."""
    from protocols.io import scaled_bound

    cut = scaled_bound(threshold, decimals, upper=True)
    return np.array([1 if int(v) > cut else 0 for v in totals], dtype=object)


async def join_group_by(ctx: Context) -> list[SecureOutput]:
    from protocols.shuffle import Shuffler

    mpc, secfld = ctx.mpc, _secfld(ctx)
    secint = mpc.SecInt(ctx.bit_length)
    groups = _groups(ctx.params)
    width = 2 * len(groups)
    mine_a = mine_b = None
    if ctx.local is not None and ctx.index == ctx.owners[0]:
        if ctx.params.get("threshold") is not None:
            agg = keyed(ctx.local, ["key"], measures=[("sum", "filter")])
            flags = threshold_flags(
                agg.values["sum:filter"], ctx.params["threshold"], ctx.local.scale("filter")
            )
        else:
            agg = keyed(ctx.local, ["key"])
            flags = np.ones(len(agg.keys["key"]), dtype=object)
        mine_a = (_hashed(agg.keys["key"]), flags)
    if ctx.local is not None and ctx.index == ctx.owners[1]:
        agg = keyed(ctx.local, ["key", "group"], measures=[("count", None), ("sum", "value")])
        label = np.array([str(g) for g in agg.keys["group"]], dtype=object)
        keep = np.isin(label, groups)
        column = {g: i for i, g in enumerate(groups)}
        cols = np.array([column[g] for g in label[keep]], dtype=np.int64)
        weights = np.zeros((int(keep.sum()), width), dtype=object)
        rows = np.arange(len(cols))
        counts = agg.values["count"][keep].astype(object)
        sums = agg.values["sum:value"][keep]
        if ctx.dp:  # bounded contribution per key: what the sensitivity assumes
            counts, sums = cap_per_key(
                agg.keys["key"][keep], cols, counts, sums, row_cap(ctx.params)
            )
        weights[rows, cols] = counts
        weights[rows, cols + len(groups)] = sums
        mine_b = (_hashed(agg.keys["key"][keep]), weights)
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
    if len(ib) == 0:
        totals = [secint(0)] * width
    else:
        # The secret weight of every B row (its A partner's flag, 0 if unmatched), in B's
        # shuffled order; the inverse shuffle takes it back to B's own row order, where
        # one matrix-vector product with B's per-row weights aggregates every group.
        selector = mpc.np_update(secint.array(np.zeros(n_b, dtype=object)), ib, flag_a[ia])
        (selector,) = await shuffle_b.apply([selector], inverse=True)
        product = mpc.np_matmul(selector, weights_b)
        totals = [product[i] for i in range(width)]
    return _group_outputs(groups, totals)


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


# -- correlation after a join ------------------------------------------------------------------
def per_key_values(sums: np.ndarray, counts: np.ndarray, how: str) -> np.ndarray:
    """A key's value: its sum, or its mean rounded half up to the session's decimals (exact)."""
    if how == "sum":
        return np.asarray(sums, dtype=object)
    return np.array(
        [(2 * int(s) + int(c)) // (2 * int(c)) for s, c in zip(sums, counts, strict=True)],
        dtype=object,
    )


def correlation_frac_bits(bit_length: int) -> int:
    """Fractional bits for r²: num/vx reaches 2^(2·bit_length + 1), and l = 2f for division."""
    return 2 * bit_length + 32


MOMENTS = ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy")


async def join_correlation(ctx: Context) -> list[SecureOutput]:
    from protocols.shuffle import Shuffler

    mpc, secfld = ctx.mpc, _secfld(ctx)
    f = correlation_frac_bits(ctx.bit_length)
    # DP: integers, for sums of squares and products of per-key values below 2^(b−2).
    sectype = mpc.SecInt(2 * ctx.bit_length) if ctx.dp else mpc.SecFxp(2 * f, f)
    how = ctx.params.get("per_key", "mean")
    tables: list[tuple[np.ndarray, np.ndarray] | None] = [None, None]
    for position in range(2):
        if ctx.local is not None and ctx.index == ctx.owners[position]:
            agg = keyed(ctx.local, ["key"], measures=[("count", None), ("sum", "value")])
            sums, counts = agg.values["sum:value"], agg.values["count"]
            if ctx.dp and how == "sum":  # bounded per-key values: what the sensitivity assumes
                _, sums = capped(sums, counts, row_cap(ctx.params))
            values = per_key_values(sums, counts, how)
            tables[position] = (_hashed(agg.keys["key"]), values)
    shared = []
    sizes = []
    for position in range(2):
        mine = tables[position]
        sizes.append(await _announce(ctx, position, None if mine is None else len(mine[0])))
    if min(sizes) < 2 and not ctx.dp:
        return _no_correlation(sectype, 0)
    if not all(sizes):
        return [SecureOutput(name, sectype(0), on_value_scale=False) for name in MOMENTS]
    for position, n in enumerate(sizes):
        mine = tables[position]
        key = _input(ctx, position, secfld, None if mine is None else mine[0], (n,))
        value = _input(ctx, position, sectype, None if mine is None else mine[1], (n,))
        shared.append(await Shuffler(mpc).apply([key, value]))
    ctx.progress("pseudonyms", 0.45)
    (key_a, x), (key_b, y) = shared
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ia, ib = match(ps_a, ps_b)
    m = len(ia)
    ctx.progress("aggregating", 0.75)
    if ctx.dp:  # the sufficient statistics on the grid; r is scale-free, so no decimals
        if m == 0:
            return [SecureOutput(name, sectype(0), on_value_scale=False) for name in MOMENTS]
        xs, ys = x[ia], y[ib]
        stats = [sectype(m), mpc.np_sum(xs), mpc.np_sum(ys), xs @ xs, ys @ ys, xs @ ys]
        return [
            SecureOutput(name, v, on_value_scale=False)
            for name, v in zip(MOMENTS, stats, strict=True)
        ]
    if m < 2:
        return _no_correlation(sectype, m)
    xs, ys = x[ia], y[ib]
    sx, sy = mpc.np_sum(xs), mpc.np_sum(ys)
    sxx, syy, sxy = xs @ xs, ys @ ys, xs @ ys
    num = m * sxy - sx * sy
    vx = m * sxx - sx * sx
    vy = m * syy - sy * sy
    # r² = (num/vx)·(num/vy) keeps every intermediate within the fixed-point range (a
    # product vx·vy would not). The analyst gets r² and the sign of r — a one-to-one
    # encoding of r — and takes the square root in the clear: no secure square root
    # (one comparison per bit) is needed.
    zx, zy = vx == 0, vy == 0
    undefined = zx + zy - zx * zy
    r2 = (num / (vx + zx)) * (num / (vy + zy))
    return [
        SecureOutput("r2", r2, on_value_scale=False),
        SecureOutput("negative", num < 0, on_value_scale=False),
        SecureOutput("pairs", sectype(m), on_value_scale=False),
        SecureOutput("undefined", undefined, on_value_scale=False),
    ]


def _no_correlation(secfxp: Any, pairs: int) -> list[SecureOutput]:
    return [
        SecureOutput("r2", secfxp(0), on_value_scale=False),
        SecureOutput("negative", secfxp(0), on_value_scale=False),
        SecureOutput("pairs", secfxp(pairs), on_value_scale=False),
        SecureOutput("undefined", secfxp(1), on_value_scale=False),
    ]


def _finalize_correlation(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    if "r2" not in values:  # the DP release: noisy sufficient statistics
        return {"r": correlation_from_moments(values), "pairs": round(values["pairs"])}
    pairs = round(values["pairs"])
    if values["undefined"]:
        return {"r": math.nan, "pairs": pairs}
    r = math.sqrt(min(max(float(values["r2"]), 0.0), 1.0))
    return {"r": -r if values["negative"] else r, "pairs": pairs}


def correlation_from_moments(values: Mapping[str, Fraction]) -> float:
    """Pearson's r from (noisy) n, Σx, Σy, Σx², Σy², Σxy: NaN where n < 2 or a noisy
    spread is not positive, else clamped to [−1, 1] (post-processing)."""
    n, sx, sy, sxx, syy, sxy = (values[name] for name in MOMENTS)
    num = n * sxy - sx * sy
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    if n < 2 or vx <= 0 or vy <= 0:
        return math.nan
    r = math.sqrt(min(float(num * num / (vx * vy)), 1.0))
    return -r if num < 0 else r


def _dp_correlation(
    owners: Sequence[tuple[int, int]], params: Mapping[str, Any]
) -> list[BlockSpec]:
    """Blocks n, Σx, Σy, Σx², Σy², Σxy (ρ/6 each: their scales differ by orders).

    A key's value is its mean, within [−B, B], or under DP its sum capped at c =
    max_rows_per_key rows (mean kept), within [−c·B, c·B]: call the bounds X (A) and Y (B).
    A person with k_A rows at A and k_B at B touches at most k_A keys at A and k_B at B, so
    at most K = k_A + k_B pairs appear, vanish or change. Each moves n by at most 1, Σx by
    2X (a value anywhere in [−X, X] replaced by another; X when added), Σx² by X² (both
    squares in [0, X²]), Σxy by 2XY; likewise for y. Without the cap, a key shared by many
    people (a zip code) could carry any sum.
    """
    (k_a, b_a), (k_b, b_b) = owners
    c = row_cap(params) if params.get("per_key", "mean") == "sum" else 1
    x, y, k = c * b_a, c * b_b, k_a + k_b
    blocks = [k, 2 * k * x, 2 * k * y, k * x * x, k * y * y, 2 * k * x * y]
    return sampler_safe("join_correlation", [BlockSpec(float(max(1, v)), 1) for v in blocks])


# -- plaintext references (pandas), in the declared unit ---------------------------------------
def _frame(table: Table) -> Any:
    import pandas as pd  # references run in tests, the demo and benchmarks only

    return pd.DataFrame({role: np.asarray(v) for role, v in table.items()})


def _filtered(frame: Any, params: Mapping[str, Any]) -> Any:
    keep = np.ones(len(frame), dtype=bool)
    if params.get("min") is not None:
        keep &= frame["value"].to_numpy() >= params["min"]
    if params.get("max") is not None:
        keep &= frame["value"].to_numpy() <= params["max"]
    return frame[keep]


def _ref_intersection_size(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = (set(np.asarray(t["key"]).tolist()) for t in tables[:2])
    return {"count": float(len(a & b))}


def _ref_intersection_sum(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a = _filtered(_frame(tables[0]), params)
    b = set(np.asarray(tables[1]["key"]).tolist())
    hit = a[a["key"].isin(b)]
    rows = len(hit)
    total = float(hit["value"].sum())
    return {
        "keys": float(hit["key"].nunique()),
        "rows": float(rows),
        "sum": total,
        "mean": total / rows if rows else math.nan,
    }


def _ref_join_group_by(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = _frame(tables[0]), _frame(tables[1])
    if params.get("threshold") is not None:
        totals = a.groupby("key")["filter"].sum()
        keys = set(totals[totals > params["threshold"]].index.tolist())
    else:
        keys = set(a["key"].tolist())
    hit = b[b["key"].isin(keys)]
    out: dict[str, float] = {}
    for g in _groups(params):
        rows = hit[hit["group"].astype(str) == g]
        n, total = len(rows), float(rows["value"].sum())
        out[f"count[{g}]"] = float(n)
        out[f"sum[{g}]"] = total
        out[f"mean[{g}]"] = total / n if n else math.nan
    return out


def _ref_join_correlation(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    import pandas as pd

    how = params.get("per_key", "mean")
    per_key = [
        _frame(t).groupby("key")["value"].agg("sum" if how == "sum" else "mean") for t in tables[:2]
    ]
    joined = pd.concat(per_key, axis=1, join="inner")
    if len(joined) < 2:
        return {"r": math.nan, "pairs": float(len(joined))}
    r = float(np.corrcoef(joined.iloc[:, 0], joined.iloc[:, 1])[0, 1])
    return {"r": r, "pairs": float(len(joined))}


# -- declarations -------------------------------------------------------------------------------
_SIZES = (
    "the number of distinct keys of each owner (the sizes of the pre-aggregated tables) and "
    "the number of matching keys, to every party of the session, the helper included"
)
_NOT = (
    " No party learns which of its own keys matched (rows are shuffled obliviously before "
    "pseudonyms are revealed), nor any key of the other owner, nor any value. Rows without "
    "a key (NULL or empty) are left out of the join."
)
_DP = (
    " DP release: the outputs are noised inside MPC before the analyst opens them, but the "
    "parties still see the sizes and the exact number of matching keys by construction: "
    "the noise protects the release against the analyst only."
)


def _cap(whose: str) -> Param:
    return Param(
        CAP,
        "int",
        f"DP release only: the most of {whose} rows one key contributes (its count is "
        "capped and its sum scaled to keep the key's mean); larger: less bias, more noise",
        default=1,
    )


def _check_cap(spec: Any) -> None:
    row_cap(spec.params)


def _check_correlation(spec: Any) -> None:
    _check_per_key(spec.params)
    row_cap(spec.params)


DEFINITIONS = (
    ProtocolDef(
        name="intersection_size",
        family="private-join",
        summary="Number of join keys (e.g. customers) both data owners have",
        inputs="two data owners, each a `key` column (int or string, same type)",
        outputs=("count",),
        leakage=f"Leaks {_SIZES}; the count is therefore known to the parties too.{_NOT}{_DP}",
        program="protocols.join:intersection_size",
        reference=_ref_intersection_size,
        roles=((KEY,), (KEY,)),
        min_data_owners=2,
        max_data_owners=2,
        dp_sensitivity=_dp_intersection_size,
    ),
    ProtocolDef(
        name="intersection_sum",
        family="private-join",
        summary="Sum and mean of the first owner's value over the keys both owners have",
        inputs="first owner: `key` and `value`; second owner: `key`",
        outputs=("keys", "rows", "sum", "mean"),
        leakage=(
            f"Leaks {_SIZES}; the first owner's count is taken after the analyst's optional "
            "min/max row filter, so the parties also see how many of its keys have a row in "
            "that range. The first owner's rows are pre-aggregated per key (sum, count) "
            "before sharing, so duplicate keys do not show. `rows` (the first owner's rows "
            "of matching keys) and `sum` reach only the analyst; `mean` = sum / rows."
            + _NOT
            + _DP
            + " Under DP each key counts at most max_rows_per_key of the first owner's rows "
            "(its sum scaled to keep its mean), so `rows` and `sum` are of the capped rows."
        ),
        program="protocols.join:intersection_sum",
        reference=_ref_intersection_sum,
        roles=((KEY, VALUE), (KEY,)),
        parameters=(
            Param("min", "number", "only the first owner's rows with value >= min (local)"),
            Param("max", "number", "only the first owner's rows with value <= max (local)"),
            _cap("the first owner's"),
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=_finalize_intersection_sum,
        check_spec=_check_cap,
        dp_sensitivity=positional(_dp_intersection_sum),
    ),
    ProtocolDef(
        name="join_group_by",
        family="private-join",
        summary=(
            "Count, sum and mean of the second owner's value by its group column, over the "
            "keys the first owner has (optionally only keys whose total in the first owner's "
            "filter column exceeds a threshold)"
        ),
        inputs=("first owner: `key` and optional `filter`; second owner: `key`, `group`, `value`"),
        outputs=("count[<group>]", "sum[<group>]", "mean[<group>]"),
        leakage=(
            "Leaks the number of distinct keys of the first owner and the number of (key, "
            "group) pairs of the second (its table is pre-aggregated per key and group, over "
            "the listed groups), the number of matching keys, and — for every key of the "
            "second owner — how many of the listed groups it has rows in (equal pseudonyms), "
            "to every party of the session, the helper included. "
            "The threshold is evaluated by the first owner on its own per-key totals and "
            "shared as a secret bit: nobody learns which keys pass. Rows of groups not "
            "listed in params.groups are ignored. Per-group counts and sums reach only the "
            "analyst."
            + _NOT
            + _DP
            + " Under DP each key of the second owner counts at most max_rows_per_key rows "
            "over the listed groups (taken in their listed order, each group's sum scaled to "
            "keep its mean)."
        ),
        program="protocols.join:join_group_by",
        reference=_ref_join_group_by,
        roles=((KEY, FILTER), (KEY, GROUP, VALUE)),
        parameters=(
            Param("groups", "labels", "the group values to report (public)", required=True),
            Param(
                "threshold",
                "number",
                "keep keys whose total of the first owner's `filter` column is > threshold",
            ),
            _cap("the second owner's"),
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=_finalize_group,
        check_spec=_check_join_group_by,
        dp_sensitivity=positional(_dp_join_group_by),
    ),
    ProtocolDef(
        name="join_correlation",
        family="private-join",
        summary="Pearson correlation between two owners' columns over the keys both have",
        inputs="two data owners, each `key` and `value`",
        outputs=("r", "pairs"),
        leakage=(
            f"Leaks {_SIZES}. Each owner first reduces its rows to one value per key "
            "(params.per_key: mean rounded half up to the session's decimals, or sum). "
            "The sums and cross-products stay secret; only r (and the public pair count) reach the "
            "analyst. r is NaN when fewer than two keys match or a side is constant."
            + _NOT
            + _DP
            + " Under DP the analyst opens noisy n, Σx, Σy, Σx², Σy², Σxy of the matched "
            "pairs instead, and its side computes r (NaN where a noisy spread is not "
            "positive) and the noisy pair count; with per_key = sum a key's sum counts at "
            "most max_rows_per_key rows (scaled to keep its mean)."
        ),
        program="protocols.join:join_correlation",
        reference=_ref_join_correlation,
        roles=((KEY, VALUE), (KEY, VALUE)),
        parameters=(
            Param(
                "per_key",
                "string",
                "how a key's rows become one value: mean or sum",
                default="mean",
            ),
            _cap("an owner's (with per_key = sum)"),
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=_finalize_correlation,
        check_spec=_check_correlation,
        dp_sensitivity=positional(_dp_correlation),
    ),
)


def _check_per_key(params: Mapping[str, Any]) -> None:
    if params.get("per_key", "mean") not in ("mean", "sum"):
        raise InvalidJobSpec(f"params.per_key: expected 'mean' or 'sum', got {params['per_key']!r}")

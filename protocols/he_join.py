"""A private join with an outsourced side: ``intersection_size``, ``intersection_sum``,
``join_regression`` (the vertical ridge), ``join_group_by``, ``join_correlation`` and
``join_moments`` where one of the two owners runs no node and its table sits,
BFV-encrypted, at a helper node that plays its position (called by
``protocols.join.intersection``, ``.group_by``, ``.correlation`` (so ``.moments``) and
``protocols.models.vertical`` when the job has an outsourced input). The description
below is intersection_sum's; the others differ only in what the matched rows feed (a
count; the ridge's statistics; the group-by's per-group counts and sums; the six moments),
each in its section below.

Why the PRF route (``params.join_path = "prf-shuffle"``, required at the helper's
admission, so the signed spec and the manifest name it). The tagged-helper route has each
owner tag its own plaintext keys with a keyed PRF and hands the tags to a third party that
matches them. Here one owner's keys exist only as ciphertexts at the node that plays its
position: nobody could tag them without decrypting, the owner's client is online only to
decrypt masked values, and the node that would receive the tags must be distinct from both
owners, which the holder is not. The PRF route instead evaluates the pseudonyms inside MPC
on secret-shared keys, so keys converted from BFV to shares by the rows path
(``ensnif_mpc/he/outsource_rows.py``) enter it exactly like a live owner's input.

Who provides what:
* the live owner, as in ``protocols.join.intersection``: its distinct keys (pre-aggregated
  per key; on the first side with each key's row count and value sum, capped under DP),
  each key as h(key), the 128-bit hash of ``ensnif_mpc/he/outsource_keys.py``, in GF(q);
* the outsourced owner, at encryption on its own machine: h(key) of each row in eight
  16-bit limbs (its key column is distinct over the table, checked then), and on the first
  side the value column. The helper masks every limb and value row under encryption
  (r uniform in [B, t − B), B = 2^16 − 1 for a limb; noise flooded), the owner's client
  decrypts only masked values and seals an additive share of them to each party, every
  party combines its additive shares of the eight limbs (the helper its shares minus r)
  into one share of h = Σ_j 2^(16 j) · limb_j (linear, so the shares still add up to h,
  exact in GF(q) as 2^128 < q) and inputs that one value per key, the values into the
  job's integers
  (scaled to the session's grid by a public power of ten). A row's count is 1 (public).

Then the PRF route as for two live owners: both key vectors (the first side's with its
sums and counts) are shuffled by resharing, pseudonymized with the Dodis–Yampolskiy PRF in
MPC (``protocols.prf``), matched by every party for itself; the outputs are the numbers of
matched keys and rows and the matched value sum, secret-shared, released exactly or with
the job's DP noise, and held to the owners' minimum cohort like any intersection_sum.

Keys: any int or string key, as a hash the owner computes at encryption (not a grid:
an identifier's range is too wide for the rows path's 2^-40 hiding, whose bound is 2^17).
Two distinct keys of the job share h with probability at most N²/2^129 for N keys on both
sides (2^-89 at a million); both sides must hold keys of the same type (an int 7 and a
string "7" hash apart).

What is revealed: the release (keys, rows, sum; ``mean`` derived), the owners' minimum
cohort marker, and to every party what the PRF route reveals with two live owners: both
table sizes (the outsourced one is its catalog row count) and the number of matching keys.

What each party learns, compared with a live owner's PRF join:
* every party: the same as there (both sizes, the match count, which shuffled positions
  match), plus its additive shares of the converted limbs and values (uniform within
  2^-64);
* the helper: additionally nothing about a key or value (ciphertexts, its masks);
* the outsourced owner's client: masked limbs and values, each within statistical
  distance 2B/(t − 2B) of a value independent of the data (below 2^-40 for a value,
  B < 2^17; 2^-41 for a limb, so a key's eight limbs within 2^-38), and the job's
  protocol, analyst and release, which it approves; it
  receives nothing of the live owner's keys or values;
* the live owner: the same as with a live counterpart.
The owners' declared bounds and the outsourced value column's scale to the session's grid
are announced in the clear (public in the catalog).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensnif_mpc.he import outsource_keys
from protocols.he_outsourced import OutsourcedInput, outsourced_rows, own_share
from protocols.io import Context, SecureOutput


def _hashed(keys: np.ndarray) -> np.ndarray:
    """A live owner's keys as the outsourced owner encrypted its own: h(key) (< 2^128)."""
    return outsource_keys.key_hashes(keys)


def _live_side(ctx: Context, first: bool) -> tuple[np.ndarray, ...]:
    """The live owner's distinct keys (hashed), with per key (first side) its value sum
    and row count, capped under DP as the live join caps them."""
    from protocols.join.common import capped, keyed, row_cap
    from protocols.join.intersection import _value_where

    if not first:
        return (_hashed(keyed(ctx.local, ["key"]).keys["key"]),)
    agg = keyed(
        ctx.local,
        ["key"],
        measures=[("count", None), ("sum", "value")],
        where=_value_where(ctx.params),
    )
    sums, counts = agg.values["sum:value"], agg.values["count"]
    if ctx.dp:
        counts, sums = capped(sums, counts, row_cap(ctx.params))
    return (_hashed(agg.keys["key"]), sums, counts)


async def converted_side(
    ctx: Context,
    hosted: OutsourcedInput,
    rows: int,
    columns: int,
    secfld: Any,
    secint: Any,
    value_type: Any = None,
) -> tuple[Any, Any]:
    """The outsourced side from its rows conversion: the keys h (GF(q), one per row) and its
    ``columns`` value columns on the session's grid (``columns`` × rows; None for none), as
    ``value_type`` (default ``secint``; a SecFxp type gets them as integral fixed point)."""
    mpc = ctx.mpc
    mine = await own_share(mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, True)
    flat = np.asarray(mine, dtype=object)
    width = outsource_keys.LIMBS * rows
    # h = Σ_j 2^(16 j)·limb_j is linear: each party combines its own additive shares of the
    # eight limbs into one share of h before inputting (the helper its shares minus r, so
    # its combination holds −Σ_j 2^(16 j)·r_j), and inputs one value per key, not eight.
    parts = flat[:width].reshape(outsource_keys.LIMBS, rows)
    combined = (outsource_keys.weights().reshape(-1, 1) * parts).sum(axis=0)
    keys = await outsourced_rows(mpc, combined, secfld)
    if not columns:
        return keys, None
    at_holder = ctx.index == hosted.position
    got = await mpc.transfer(
        list(hosted.scales[outsource_keys.LIMBS :]) if at_holder else None,
        senders=[hosted.position],
    )
    scales = [int(v) for v in got[0]]  # one sender: a list of its one message
    if len(scales) != columns:
        raise ValueError("the holder's conversion does not carry the job's value columns")
    if value_type is None or value_type is secint:
        values = (await outsourced_rows(mpc, flat[width:], secint)).reshape(columns, rows)
        if any(f != 1 for f in scales):
            values = values * np.array(scales, dtype=object).reshape(columns, 1)
        return keys, values
    # Any other type: each party scales its own additive shares (linear, so they still add
    # up to the scaled value, exact as |x| < p/2) and encodes them as that type's integers.
    parts = flat[width:].reshape(columns, rows) * np.array(scales, dtype=object).reshape(-1, 1)
    return keys, _shares_as(mpc, parts, value_type)


def _shares_as(mpc: Any, mine: np.ndarray, sectype: Any) -> Any:
    """Every party's additive shares of integers (any shape) as one secure array of
    ``sectype``: reduced modulo its field's prime and, for fixed point, times 2^f there
    (integral values: a product needs no truncation), input by every party and added."""
    one = 1 << int(getattr(sectype, "frac_length", 0))
    field = sectype.field
    encoded = field.array(np.mod(np.asarray(mine, dtype=object) * one, int(field.modulus)))
    own = sectype.array(encoded) if one == 1 else sectype.array(encoded, integral=True)
    shared = mpc.input(own, senders=list(range(len(mpc.parties))))
    total = shared[0]
    for part in shared[1:]:
        total = total + part
    return total


async def intersection_sum(ctx: Context) -> list[SecureOutput]:
    """``protocols.join.intersection`` ``_intersection_sum`` when one side is outsourced
    (the caller adds the minimum cohort's marker, as for two live owners)."""
    from protocols.join.common import (
        _announce,
        _input,
        _pseudonymize,
        _secfld,
        _select_sum,
        match,
        row_cap,
    )
    from protocols.shuffle import Shuffler

    mpc, hosted = ctx.mpc, ctx.outsourced
    side = ctx.owners.index(hosted.position)  # 0: keys and values outsourced; 1: keys only
    live = 1 - side
    row_cap(ctx.params)  # the parameter is checked as in the live join
    secfld, secint = _secfld(ctx), mpc.SecInt(ctx.bit_length)
    mine = None
    if ctx.local is not None and ctx.index == ctx.owners[live]:
        mine = _live_side(ctx, first=live == 0)
    n_live = await _announce(ctx, live, None if mine is None else len(mine[0]))
    n_out = await _announce(ctx, side, hosted.rows if ctx.index == hosted.position else None)
    if not (n_live and n_out):
        zero = secint(0)
        return [
            SecureOutput("keys", zero, on_value_scale=False),
            SecureOutput("rows", zero, on_value_scale=False),
            SecureOutput("sum", zero),
        ]
    ctx.progress("converting", 0.1)
    key_out, value_out = await converted_side(ctx, hosted, n_out, int(side == 0), secfld, secint)
    if side == 0:
        key_a, sum_a = key_out, value_out[0]
        cnt_a = secint.array(np.ones(n_out, dtype=object))  # one row per key (public)
        key_b = _input(ctx, 1, secfld, None if mine is None else mine[0], (n_live,))
    else:
        got = mine if mine is not None else (None, None, None)
        key_a = _input(ctx, 0, secfld, got[0], (n_live,))
        sum_a = _input(ctx, 0, secint, got[1], (n_live,))
        cnt_a = _input(ctx, 0, secint, got[2], (n_live,))
        key_b = key_out
    ctx.progress("shuffling", 0.3)
    key_a, sum_a, cnt_a = await Shuffler(mpc).apply([key_a, sum_a, cnt_a])
    (key_b,) = await Shuffler(mpc).apply([key_b])
    ctx.progress("pseudonyms", 0.5)
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ctx.progress("aggregating", 0.8)
    ia, _ = match(ps_a, ps_b)
    return [
        SecureOutput("keys", secint(len(ia)), on_value_scale=False),
        SecureOutput("rows", _select_sum(ctx, cnt_a, ia, secint), on_value_scale=False),
        SecureOutput("sum", _select_sum(ctx, sum_a, ia, secint)),
    ]


# -- join_regression (the vertical ridge) with an outsourced side -------------------------
async def _z_bounds(ctx: Context, hosted: OutsourcedInput) -> list[int]:
    """``protocols.models.vertical._z_bounds`` with the holder announcing the outsourced
    owner's facts: its signed row count and its value columns' bounds on the session's
    grid (public in the catalog). One row per key there, so a per-key sum is the row."""
    from protocols.join.common import row_cap
    from protocols.models import vertical

    mine = None
    if ctx.local is not None and ctx.index in ctx.owners:
        mine = vertical._declared(ctx, ctx.owners.index(ctx.index))
    elif ctx.index == hosted.position:
        mine = [hosted.rows, *hosted.bounds[outsource_keys.LIMBS :]]
    got = await ctx.mpc.transfer(mine, senders=list(ctx.owners))
    how = ctx.params.get("per_key", "mean")
    out: list[int] = []
    for position, facts in enumerate(got):
        rows, bounds = int(facts[0]), [int(b) for b in facts[1:]]
        if how == "sum" and ctx.owners[position] != hosted.position:
            factor = row_cap(ctx.params) if ctx.dp else max(1, rows)
            bounds = [b * factor for b in bounds]
        out += bounds
    return out


async def _matched(ctx: Context, secint: Any, hosted: OutsourcedInput) -> tuple[Any, int] | None:
    """The PRF route's matched rows Z = [A's columns | B's columns] (matches × w) when one
    side is converted from BFV, and the public match count; None when nothing matched."""
    from protocols.join.common import _announce, _input, _pseudonymize, _secfld, match
    from protocols.models import vertical
    from protocols.shuffle import Shuffler

    mpc, secfld = ctx.mpc, _secfld(ctx)
    side = ctx.owners.index(hosted.position)
    live = 1 - side
    widths = vertical.widths(ctx)
    mine = None
    if ctx.local is not None and ctx.index == ctx.owners[live]:
        keys, columns = vertical._own_table(ctx, live)
        mine = (_hashed(keys), columns)
    n_live = await _announce(ctx, live, None if mine is None else len(mine[0]))
    n_out = await _announce(ctx, side, hosted.rows if ctx.index == hosted.position else None)
    if not (n_live and n_out):
        return None
    ctx.progress("converting", 0.1)
    key_out, values = await converted_side(ctx, hosted, n_out, widths[side], secfld, secint)
    ctx.progress("shuffling", 0.25)
    shuffled: list[tuple[Any, Any]] = [(None, None), (None, None)]
    got = await Shuffler(mpc).apply([key_out, *(values[j] for j in range(widths[side]))])
    shuffled[side] = (got[0], mpc.np_transpose(mpc.np_stack(got[1:])))
    key = _input(ctx, live, secfld, None if mine is None else mine[0], (n_live,))
    cols = _input(ctx, live, secint, None if mine is None else mine[1], (n_live, widths[live]))
    got = await Shuffler(mpc).apply([key, *(cols[:, j] for j in range(widths[live]))])
    shuffled[live] = (got[0], mpc.np_transpose(mpc.np_stack(got[1:])))
    ctx.progress("pseudonyms", 0.4)
    (key_a, x_a), (key_b, x_b) = shuffled
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ia, ib = match(ps_a, ps_b)
    if len(ia) == 0:
        return None
    return mpc.np_hstack((x_a[ia], x_b[ib])), len(ia)


async def join_regression(ctx: Context) -> list[SecureOutput]:
    """``protocols.models.vertical.join_regression`` when one side is outsourced: the same
    statistics of the matched rows, the same joint minimum cohort and the same solve (exact)
    or noisy blocks (DP); only the outsourced side's per-key table comes from BFV."""
    from protocols import joint_cohort
    from protocols.models import vertical
    from protocols.models.regression import _noisy, solved

    hosted = ctx.outsourced
    c_a, c_b1 = vertical.widths(ctx)
    w = c_a + c_b1
    bounds = await _z_bounds(ctx, hosted)
    secint = ctx.mpc.SecInt(ctx.bit_length)
    matched = await _matched(ctx, secint, hosted)
    if matched is None:
        total, rows = secint.array(np.zeros(1 + w + w * (w + 1) // 2, dtype=object)), 1
    else:
        z, rows = matched
        ctx.progress("cross products", 0.5)
        total = vertical._statistics(ctx.mpc, secint(rows), z, w)
    if ctx.dp:  # the rule on the noisy n after the noise (joint_cohort.on_noisy_n)
        return _noisy(ctx, total, w) + joint_cohort.markers([None], secint)
    await vertical._hold_cohort(ctx, total[0], secint)
    return await solved(ctx, total, rows, bounds)


# -- intersection_size with an outsourced side ----------------------------------------------
async def intersection_size(ctx: Context) -> list[SecureOutput]:
    """``protocols.join.intersection._intersection_size`` when one side is outsourced: the
    number of keys both sides hold (the caller adds the minimum cohort's marker)."""
    from protocols.join.common import _announce, _input, _pseudonymize, _secfld, match
    from protocols.shuffle import Shuffler

    mpc, hosted = ctx.mpc, ctx.outsourced
    side = ctx.owners.index(hosted.position)
    live = 1 - side
    secfld, secint = _secfld(ctx), mpc.SecInt(ctx.bit_length)
    mine = None
    if ctx.local is not None and ctx.index == ctx.owners[live]:
        mine = _live_side(ctx, first=False)[0]
    n_live = await _announce(ctx, live, None if mine is None else len(mine))
    n_out = await _announce(ctx, side, hosted.rows if ctx.index == hosted.position else None)
    if not (n_live and n_out):
        return [SecureOutput("count", secint(0), on_value_scale=False)]
    ctx.progress("converting", 0.1)
    keys: list[Any] = [None, None]
    keys[side], _ = await converted_side(ctx, hosted, n_out, 0, secfld, secint)
    keys[live] = _input(ctx, live, secfld, mine, (n_live,))
    ctx.progress("shuffling", 0.3)
    (ka,) = await Shuffler(mpc).apply([keys[0]])
    (kb,) = await Shuffler(mpc).apply([keys[1]])
    ctx.progress("pseudonyms", 0.5)
    ps_a, ps_b = await _pseudonymize(ctx, ka, kb)
    ia, _ = match(ps_a, ps_b)
    return [SecureOutput("count", secint(len(ia)), on_value_scale=False)]


# -- join_group_by with an outsourced side --------------------------------------------------
def group_targets(groups: list[str]) -> tuple[list[int], np.ndarray]:
    """The listed groups an outsourced int group column can hold: their columns and their
    values (a label that is not an integer's text, "01" or "a", matches no row of an int
    column, as in the live join, which compares the column's text)."""
    columns, values = [], []
    for j, g in enumerate(groups):
        try:
            value = int(g)
        except ValueError:
            continue
        if str(value) == g:
            columns.append(j)
            values.append(value)
    return columns, np.array(values, dtype=object)


LAGRANGE_POINTS = 64  # the most codes −B..B for which indicators are one polynomial each


def lagrange_matrix(bound: int, targets: np.ndarray, modulus: int) -> np.ndarray:
    """Coefficients (N × listed, N = 2·bound + 1, ascending powers) modulo ``modulus`` of
    the polynomials L_c with L_c(c) = 1 and L_c(j) = 0 at every other integer j in
    [−bound, bound]; a target outside the range gets the zero polynomial (no code has it)."""
    points = list(range(-bound, bound + 1))
    out = np.zeros((len(points), len(targets)), dtype=object)
    for col, c in enumerate(int(t) for t in targets):
        if not -bound <= c <= bound:
            continue
        poly = [1]  # Π_{j ≠ c} (x − j), ascending coefficients (a public table, not data)
        scale = 1
        for j in points:
            if j == c:
                continue
            poly = [(a - j * b) % modulus for a, b in zip([0, *poly], [*poly, 0], strict=True)]
            scale = scale * (c - j) % modulus
        inverse = pow(scale, -1, modulus)
        out[:, col] = [a * inverse % modulus for a in poly]
    return out


async def group_indicators(mpc: Any, codes: Any, targets: np.ndarray, bound: int) -> Any:
    """m × listed secure indicators [code_i == target_j] for codes known to lie in
    [−bound, bound] (declared bounds, checked at encryption). For at most
    :data:`LAGRANGE_POINTS` codes: the powers code^0..code^(N−1) (N − 2 products per row,
    log N rounds) times the public Lagrange table, exact in the field; else one secure
    equality per row and target."""
    sectype = type(codes).sectype if hasattr(type(codes), "sectype") else type(codes)
    m, n = len(codes), 2 * bound + 1
    if n > LAGRANGE_POINTS:
        return mpc.np_equal(codes.reshape(m, 1), np.tile(targets.reshape(1, -1), (m, 1)))
    powers = mpc.np_stack([sectype.array(np.ones(m, dtype=object)), codes], axis=1)
    while powers.shape[1] < n:  # [p_0..p_(k−1)] → [p_0..p_(2k−1)]: one round
        top = powers[:, -1:] * codes.reshape(m, 1)  # p_k
        powers = mpc.np_hstack((powers, powers * top))
    table = lagrange_matrix(bound, targets, int(sectype.field.modulus))
    return mpc.np_matmul(powers[:, :n], sectype.field.array(table))


async def join_group_by(ctx: Context) -> list[SecureOutput]:
    """``protocols.join.group_by._join_group_by`` when one side is outsourced (the caller
    adds the per-group minimum cohort's markers, as for two live owners).

    The outsourced owner holds one row per key (distinct keys, checked at encryption): as
    the first side its keys and, with ``params.threshold``, its ``filter`` column, whose
    row is the key's total: the flag [filter > T] is one secure comparison per MATCHED
    key; as the second side its keys, its int ``group`` column (not scaled: a label) and
    its value on the session's grid: a matched row's group indicators are one secure
    equality per matched row and listed group, and the counts and sums two products of
    the matched rows' weights with them. A row is one (key, group) row of the live join,
    with a count of 1 (≤ max_rows_per_key, so the DP cap holds as it stands). Which
    shuffled positions matched is what the PRF route reveals anyway; nothing else is."""
    from protocols.io import scaled_bound
    from protocols.join.common import (
        _announce,
        _input,
        _pseudonymize,
        _secfld,
        match,
        row_cap,
    )
    from protocols.join.group_by import (
        _group_outputs,
        _groups,
        _side_a,
        selected_totals,
        side_b_weights,
    )
    from protocols.shuffle import Shuffler

    mpc, hosted = ctx.mpc, ctx.outsourced
    side = ctx.owners.index(hosted.position)  # 0: keys (+ filter); 1: keys, group, value
    live = 1 - side
    row_cap(ctx.params)  # the parameter is checked as in the live join
    groups = _groups(ctx.params)
    width = 2 * len(groups)
    threshold = ctx.params.get("threshold")
    secfld, secint = _secfld(ctx), mpc.SecInt(ctx.bit_length)
    mine: tuple[np.ndarray, np.ndarray] | None = None
    if ctx.local is not None and ctx.index == ctx.owners[live]:
        if live == 0:
            keys, flags = _side_a(ctx)
            mine = (_hashed(keys), flags)
        else:
            keys, weights = side_b_weights(ctx, groups)
            mine = (_hashed(keys), weights)
    n_live = await _announce(ctx, live, None if mine is None else len(mine[0]))
    n_out = await _announce(ctx, side, hosted.rows if ctx.index == hosted.position else None)
    if not (n_live and n_out):
        return _group_outputs(groups, [secint(0)] * width)
    columns = (0 if threshold is None else 1) if side == 0 else 2
    ctx.progress("converting", 0.1)
    key_out, values = await converted_side(ctx, hosted, n_out, columns, secfld, secint)
    ctx.progress("shuffling", 0.3)
    if side == 0:
        got = await Shuffler(mpc).apply([key_out, *(values[j] for j in range(columns))])
        key_b = _input(ctx, 1, secfld, None if mine is None else mine[0], (n_live,))
        weights_b = _input(ctx, 1, secint, None if mine is None else mine[1], (n_live, width))
        shuffle_b = Shuffler(mpc)
        (key_b,) = await shuffle_b.apply([key_b])
        ctx.progress("pseudonyms", 0.5)
        ps_a, ps_b = await _pseudonymize(ctx, got[0], key_b)
        ctx.progress("aggregating", 0.8)
        ia, ib = match(ps_a, ps_b)
        selected: Any = None
        if len(ia) and threshold is not None:  # on the session's grid, as converted
            selected = got[1][ia] > scaled_bound(threshold, ctx.decimals, upper=True)
        elif len(ia):
            selected = secint.array(np.ones(len(ia), dtype=object))
        by_b = await selected_totals(ctx, secint, selected, ib, shuffle_b, weights_b, n_live)
        return _group_outputs(groups, by_b)
    key_a = _input(ctx, 0, secfld, None if mine is None else mine[0], (n_live,))
    flag_a = _input(ctx, 0, secint, None if mine is None else mine[1], (n_live,))
    key_a, flag_a = await Shuffler(mpc).apply([key_a, flag_a])
    key_b, group_b, value_b = await Shuffler(mpc).apply([key_out, values[0], values[1]])
    ctx.progress("pseudonyms", 0.5)
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ctx.progress("aggregating", 0.8)
    ia, ib = match(ps_a, ps_b)
    listed, targets = group_targets(groups)
    # The group code's declared bound |g| <= B (public in the catalog), from the holder.
    got_bound = await mpc.transfer(
        int(hosted.bounds[outsource_keys.LIMBS]) if ctx.index == hosted.position else None,
        senders=[hosted.position],
    )
    bound = int(got_bound[0])
    totals: list[Any] = [secint(0)] * width
    if len(ia) and listed:
        hits = await group_indicators(mpc, group_b[ib], targets, bound)
        w = flag_a[ia]
        counts = mpc.np_matmul(w, hits)
        sums = mpc.np_matmul(w * value_b[ib], hits)
        for i, j in enumerate(listed):
            totals[j], totals[len(groups) + j] = counts[i], sums[i]
    return _group_outputs(groups, totals)


# -- join_correlation / join_moments with an outsourced side --------------------------------
async def correlation_outputs(ctx: Context) -> list[SecureOutput]:
    """``protocols.join.correlation.correlation_outputs`` when one side is outsourced (so
    also ``join_moments``, which runs its DP branch): the outsourced owner's one row per
    key is its per-key value (its mean and its sum alike, within any DP row cap), converted
    into the correlation's own secure type (fixed point exact, integers under DP); the live
    side, the shuffles, the PRF matching and the moments are the live join's."""
    from protocols.join.common import _announce, _input, _secfld
    from protocols.join.correlation import (
        MOMENTS,
        _no_correlation,
        _own_values,
        _sectype,
        matched_moments,
    )
    from protocols.shuffle import Shuffler

    mpc, hosted = ctx.mpc, ctx.outsourced
    side = ctx.owners.index(hosted.position)
    live = 1 - side
    secfld, secint, sectype = _secfld(ctx), mpc.SecInt(ctx.bit_length), _sectype(ctx)
    mine = None
    if ctx.local is not None and ctx.index == ctx.owners[live]:
        keys, values = _own_values(ctx)
        mine = (_hashed(keys), values)
    n_live = await _announce(ctx, live, None if mine is None else len(mine[0]))
    n_out = await _announce(ctx, side, hosted.rows if ctx.index == hosted.position else None)
    if min(n_live, n_out) < 2 and not ctx.dp:
        return _no_correlation(sectype, 0)
    if not (n_live and n_out):
        return [SecureOutput(name, sectype(0), on_value_scale=False) for name in MOMENTS]
    ctx.progress("converting", 0.1)
    key_out, converted = await converted_side(ctx, hosted, n_out, 1, secfld, secint, sectype)
    ctx.progress("shuffling", 0.3)
    shared: list[Any] = [None, None]
    shared[side] = await Shuffler(mpc).apply([key_out, converted[0]])
    key = _input(ctx, live, secfld, None if mine is None else mine[0], (n_live,))
    value = _input(ctx, live, sectype, None if mine is None else mine[1], (n_live,))
    shared[live] = await Shuffler(mpc).apply([key, value])
    return await matched_moments(ctx, sectype, shared)

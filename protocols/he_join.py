"""A private join with an outsourced side: ``intersection_sum`` where one of the two owners
runs no node and its table sits, BFV-encrypted, at a helper node that plays its position
(called by ``protocols.join.intersection`` when the job has an outsourced input).

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
  party inputs its share (the helper its share minus r): the limbs into GF(q), where
  h = Σ_j 2^(16 j) · limb_j is exact (2^128 < q), the values into the job's integers
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
  distance 2B/(t − 2B) < 2^-40 of a value independent of the data (so a key's eight limbs
  within 2^-37), and the job's protocol, analyst and release, which it approves; it
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


def _live_side(ctx: Context, first: bool) -> tuple[np.ndarray, ...] | None:
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
    ctx: Context, hosted: OutsourcedInput, rows: int, values: bool, secfld: Any, secint: Any
) -> tuple[Any, Any]:
    """The outsourced side from its rows conversion: the keys h (GF(q), one per row) and,
    if ``values``, the value column on the session's grid (None otherwise)."""
    mpc = ctx.mpc
    mine = await own_share(mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, True)
    flat = np.asarray(mine, dtype=object)
    width = outsource_keys.LIMBS * rows
    limbs = await outsourced_rows(mpc, flat[:width], secfld)
    keys = limbs[:rows]
    for j, weight in enumerate(outsource_keys.weights()[1:], start=1):
        keys = keys + limbs[j * rows : (j + 1) * rows] * int(weight)
    if not values:
        return keys, None
    scale = await ctx.mpc.transfer(
        hosted.scales[-1] if ctx.index == hosted.position else None, senders=[hosted.position]
    )
    value = await outsourced_rows(mpc, flat[width:], secint)
    factor = int(scale[0] if isinstance(scale, list) else scale)
    return keys, (value * factor if factor != 1 else value)


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
    key_out, value_out = await converted_side(ctx, hosted, n_out, side == 0, secfld, secint)
    if side == 0:
        key_a, sum_a = key_out, value_out
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

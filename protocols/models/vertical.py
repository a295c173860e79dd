"""Linear and ridge regression across a private join (vertically partitioned): one owner's
columns on another's, the rows matched by a key none of them shows — the grocery's basket
value on the logistics firm's delivery minutes, joined by customer id.

Why here and not in ``protocols.join``: after the join this is the horizontal regression's
problem (the same sufficient statistics, the same fixed-point solve, the same DP blocks,
finalize and SDK intervals, ``protocols.models.regression``/``solve``); only how the
statistics are summed differs, and the join's part is a call to the join's own machinery.

Who provides what: owner A (first input) ``key`` and ``features`` (1 to 10 columns); owner
B (second input) ``key``, ``label`` and optionally its own ``features`` (0 to 10). The
coefficients come back as the intercept, A's features, then B's. Each owner first reduces
its rows to one row per distinct key (``params.per_key``, as ``join_correlation``: each
column's mean rounded half up to the session's decimals, or its sum; under DP a sum counts
at most ``max_rows_per_key`` rows, its mean kept). The regression is over the matched keys.

How: on the tagged-helper route (two owners, one helper, t = 1) the aligned join
(``protocols.join.aligned.aligned_rows``) gives, in B's private key order, both owners'
per-key rows secret-shared side by side, zeros where B's key has no match, and a 0/1
``present``; so with Z = [A's columns | B's columns | label] (n_B × w, w = d + 1):
n = Σ present, Σz = column sums of Z, Σ z zᵀ = ZᵀZ — one secure matrix product, the
unmatched rows adding zeros. On the PRF route (more parties, t ≥ 2, or ``join_path =
prf-shuffle``) each owner's per-key table is shuffled obliviously with its keys, the
keys pseudonymized in MPC and matched in the clear (``protocols.join.common``), and Z is
the matched rows taken by public positions. Either way the secure integers (n, Σz, the
triangle of ZᵀZ) are the horizontal regression's ``total``; exact release: solved inside
MPC in fixed point by ``regression.solved`` (a singular system opens one bit and fails with
``singular_system``); DP release: its five noisy blocks (``regression._noisy``), solved by
the analyst's client.

What is revealed: as ``linear_regression`` (exact: coefficients, squared standard errors,
R², and the one singular bit; with ``keep = "artifact"`` only that bit, the model
``[intercept, A's weights, B's weights]`` kept secret-shared by ``regression.solved``, a
vertical model that ``predict`` refuses, ``model_vertical``; DP: the noisy n, Σz, XᵀX, Xᵀy,
yᵀy), and the owners'
joint minimum cohort on the matched set (``protocols.joint_cohort``): exact, one bit
"n < k" opened before anything else (set: the job fails ``cohort_too_small``); DP, the
public ``withheld`` marker, a function of the noisy n (every block then opens as 0).
What leaks: the join route's — tagged-helper: every party learns both per-key table
sizes, the helper the number of matched keys; PRF route: every party learns both sizes
and the match count — and the owners' catalog row counts and declared bounds (public),
announced in the clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensnif_mpc.errors import PolicyViolation
from protocols import joint_cohort
from protocols.io import Context, SecureOutput
from protocols.join.common import (
    _announce,
    _hashed,
    _input,
    _pseudonymize,
    _secfld,
    capped,
    keyed,
    match,
    row_cap,
)
from protocols.join.correlation import per_key_values
from protocols.models.regression import _noisy, solved

MAX_SIDE = 10  # features per owner


def widths(ctx: Context) -> tuple[int, int]:
    """(c_A, c_B + 1): A's feature count, and B's features plus its label (public: the job)."""
    lists = list(ctx.input_role_lists) + [{}, {}]
    return len(lists[0].get("features", ["x"])), len(lists[1].get("features", [])) + 1


def _refs(ctx: Context, position: int) -> list[str]:
    """The role references of an owner's columns, in Z's order."""
    c_a, c_b1 = widths(ctx)
    if position == 0:
        return [f"features[{j}]" for j in range(c_a)]
    return [f"features[{j}]" for j in range(c_b1 - 1)] + ["label"]


def _own_table(ctx: Context, position: int) -> tuple[np.ndarray, np.ndarray]:
    """This owner's distinct keys and one row of integers per key (params.per_key)."""
    assert ctx.local is not None
    how = ctx.params.get("per_key", "mean")
    refs = _refs(ctx, position)
    agg = keyed(ctx.local, ["key"], measures=[("count", None), *(("sum", r) for r in refs)])
    counts = agg.values["count"]
    columns = []
    for ref in refs:
        sums = agg.values[f"sum:{ref}"]
        if ctx.dp and how == "sum":  # bounded per-key values: what the sensitivity assumes
            _, sums = capped(sums, counts, row_cap(ctx.params))
        columns.append(per_key_values(sums, counts, how))
    keys = agg.keys["key"]
    table = np.stack(columns, axis=1) if len(keys) else np.zeros((0, len(refs)), dtype=object)
    return keys, np.asarray(table, dtype=object)


def _declared(ctx: Context, position: int) -> list[int]:
    """This owner's catalog row count and its columns' declared bounds on the grid."""
    assert ctx.local is not None
    local = ctx.local
    columns = {c.name: c for c in local.source.columns}
    scale = 10**ctx.decimals
    names = [local.name(r) for r in _refs(ctx, position)]
    return [int(local.source.row_count())] + [
        int(np.ceil(columns[n].abs_bound * scale)) for n in names
    ]


async def _z_bounds(ctx: Context) -> list[int]:
    """A public bound on every |z_j| of a per-key row: the declared bound (a mean), times
    the cap (a DP sum) or the owner's catalog rows (an exact sum)."""
    me = ctx.index
    mine = None
    if ctx.local is not None and me in ctx.owners:
        mine = _declared(ctx, ctx.owners.index(me))
    got = await ctx.mpc.transfer(mine, senders=list(ctx.owners))
    how = ctx.params.get("per_key", "mean")
    out = []
    for facts in got:
        rows, bounds = int(facts[0]), [int(b) for b in facts[1:]]
        if how == "sum":
            factor = row_cap(ctx.params) if ctx.dp else max(1, rows)
            bounds = [b * factor for b in bounds]
        out += bounds
    return out


def _statistics(mpc: Any, n: Any, z: Any, w: int) -> Any:
    """One secure vector (n, Σz, upper triangle of ZᵀZ, row by row) from Z (rows × w)."""
    sums = mpc.np_sum(z, axis=0)
    gram = mpc.np_matmul(mpc.np_transpose(z), z)
    upper = gram[np.triu_indices(w)]  # row-major: gram.triangle's order
    return mpc.np_concatenate((mpc.np_fromlist([n]), sums, upper))


@dataclass(frozen=True)
class Matched:
    """The join's matched rows, secret-shared: Z = [A's columns | B's columns] (rows × w),
    zero rows where B's key has no match (tagged-helper route), ``present`` 1 on a
    matched row (None: every row is matched, the PRF route), ``n`` the secure count of
    matched rows and ``rows`` the public number of rows of Z (n_B, or the match count)."""

    z: Any
    present: Any | None
    n: Any
    rows: int


Table = Callable[[int], tuple[np.ndarray, np.ndarray]]


async def matched_rows(ctx: Context, secint: Any, protocol: str, table: Table) -> Matched | None:
    """The matched rows of the two owners' per-key tables (``table(position)`` at each
    owner, one row of integers per distinct key), on the session's join route (module
    docstring); None when nothing can match (an empty table, or no match on the PRF route,
    whose match count is public there)."""
    from protocols.join import tagged

    if tagged.takes_route(ctx, protocol):
        return await _aligned_rows(ctx, secint, table)
    return await _prf_rows(ctx, secint, table)


async def _aligned_rows(ctx: Context, secint: Any, table: Table) -> Matched | None:
    from protocols.join import aligned

    me, (a, b) = ctx.index, ctx.owners
    keys = columns = None
    if ctx.local is not None and me in (a, b):
        keys, columns = table(ctx.owners.index(me))
    c_a, c_b1 = widths(ctx)
    ctx.progress("joining", 0.2)
    rows = await aligned.aligned_rows(ctx, secint, keys, columns, (c_a, c_b1))
    if rows.rows == 0:
        return None
    ctx.progress("cross products", 0.4)
    z = ctx.mpc.np_hstack((rows.a, rows.b))
    return Matched(z, rows.present, ctx.mpc.np_sum(rows.present), rows.rows)


async def _prf_rows(ctx: Context, secint: Any, table: Table) -> Matched | None:
    from protocols.shuffle import Shuffler

    mpc, secfld = ctx.mpc, _secfld(ctx)
    c_a, c_b1 = widths(ctx)
    mine: tuple[np.ndarray, np.ndarray] | None = None
    position = ctx.owners.index(ctx.index) if ctx.index in ctx.owners else -1
    if ctx.local is not None and position >= 0:
        keys, columns = table(position)
        mine = (_hashed(keys), columns)
    sizes = [
        await _announce(ctx, p, len(mine[0]) if mine is not None and p == position else None)
        for p in range(2)
    ]
    if not all(sizes):
        return None
    shuffled = []
    for p, (size, width) in enumerate(zip(sizes, (c_a, c_b1), strict=True)):
        own = mine if p == position else None
        key = _input(ctx, p, secfld, None if own is None else own[0], (size,))
        cols = _input(ctx, p, secint, None if own is None else own[1], (size, width))
        got = await Shuffler(mpc).apply([key, *(cols[:, j] for j in range(width))])
        shuffled.append((got[0], mpc.np_transpose(mpc.np_stack(got[1:]))))
    ctx.progress("pseudonyms", 0.4)
    (key_a, x_a), (key_b, x_b) = shuffled
    ps_a, ps_b = await _pseudonymize(ctx, key_a, key_b)
    ia, ib = match(ps_a, ps_b)
    if len(ia) == 0:
        return None
    z = mpc.np_hstack((x_a[ia], x_b[ib]))
    return Matched(z, None, secint(len(ia)), len(ia))


async def _total(ctx: Context, secint: Any, w: int) -> tuple[Any, int]:
    """The regression's statistics over the matched rows (zeros when nothing matched)."""
    m = await matched_rows(ctx, secint, "join_regression", lambda p: _own_table(ctx, p))
    if m is None:
        return secint.array(np.zeros(1 + w + w * (w + 1) // 2, dtype=object)), 1
    return _statistics(ctx.mpc, m.n, m.z, w), m.rows


async def _hold_cohort(ctx: Context, n: Any, secint: Any) -> None:
    """The joint minimum cohort on the matched set, exact release: open one bit, n < k
    (k the largest of the owners' ``min_cohort``, a secret; ``protocols.joint_cohort``),
    before the solve opens anything; set, the job fails with ``cohort_too_small`` and
    nothing else is opened. Revealed: that bit, strictly less than the coefficients an
    exact release opens otherwise."""
    k = joint_cohort.floor(ctx, secint)
    below = (n < k) * (k > 0)
    if not await ctx.mpc.is_zero_public(below):
        raise PolicyViolation(  # the owners' policy, as the node's own cohort refusal
            "fewer keys matched than an owner's minimum cohort (nothing else was opened)",
            reason="cohort_too_small",
        )


async def join_regression(ctx: Context) -> list[SecureOutput]:
    if ctx.outsourced is not None:  # an outsourced side: its keys and columns from BFV
        from protocols import he_join

        return await he_join.join_regression(ctx)
    c_a, c_b1 = widths(ctx)
    w = c_a + c_b1
    bounds = await _z_bounds(ctx)
    secint = ctx.mpc.SecInt(ctx.bit_length)
    total, rows = await _total(ctx, secint, w)
    if ctx.dp:  # the rule on the noisy n after the noise (joint_cohort.on_noisy_n)
        return _noisy(ctx, total, w) + joint_cohort.markers([None], secint)
    await _hold_cohort(ctx, total[0], secint)
    return await solved(ctx, total, rows, bounds)

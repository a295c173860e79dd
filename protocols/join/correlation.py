"""Pearson correlation of owner A's and owner B's per-key values over matched keys
(its DP release opens the sufficient statistics; r is computed by the analyst's client).

Minimum cohort (``protocols.joint_cohort``): held inside MPC on the matched pairs
(``pairs``, noisy under DP after the noise) against the largest of the owners' secret
``min_cohort``: below it every output opens as 0 and the public ``withheld`` marker as 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

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
from protocols.registry import (
    BlockSpec,
    sampler_safe,
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


def _sectype(ctx: Context) -> Any:
    f = correlation_frac_bits(ctx.bit_length)
    # DP: integers, for sums of squares and products of per-key values below 2^(b−2).
    return ctx.mpc.SecInt(2 * ctx.bit_length) if ctx.dp else ctx.mpc.SecFxp(2 * f, f)


def _own_values(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """This owner's distinct keys and one value per key (params.per_key; capped under DP)."""
    assert ctx.local is not None
    how = ctx.params.get("per_key", "mean")
    agg = keyed(ctx.local, ["key"], measures=[("count", None), ("sum", "value")])
    sums, counts = agg.values["sum:value"], agg.values["count"]
    if ctx.dp and how == "sum":  # bounded per-key values: what the sensitivity assumes
        _, sums = capped(sums, counts, row_cap(ctx.params))
    return agg.keys["key"], per_key_values(sums, counts, how)


async def join_correlation(ctx: Context) -> list[SecureOutput]:
    outputs = await correlation_outputs(ctx)
    pairs = next(o.value for o in outputs if o.name == "pairs")
    return outputs + joint_cohort.markers([None], type(pairs))


async def correlation_outputs(ctx: Context) -> list[SecureOutput]:
    """The correlation's outputs without the cohort marker (``join_moments`` reuses its
    DP branch, the six moments as integers)."""
    from protocols.join import tagged
    from protocols.shuffle import Shuffler

    if ctx.outsourced is not None:  # an outsourced side: its keys and values from BFV
        from protocols import he_join

        return await he_join.correlation_outputs(ctx)
    if tagged.takes_route(ctx, "join_correlation"):  # two owners, one helper, t = 1
        return await _tagged_correlation(ctx)

    mpc, secfld = ctx.mpc, _secfld(ctx)
    sectype = _sectype(ctx)
    tables: list[tuple[np.ndarray, np.ndarray] | None] = [None, None]
    for position in range(2):
        if ctx.local is not None and ctx.index == ctx.owners[position]:
            keys, values = _own_values(ctx)
            tables[position] = (_hashed(keys), values)
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
    return await matched_moments(ctx, sectype, shared)


async def matched_moments(ctx: Context, sectype: Any, shared: list[Any]) -> list[SecureOutput]:
    """The PRF route after the shuffles: [(keys, values)] of A and B, secret-shared and
    shuffled, pseudonymized and matched; the six moments (DP) or r (exact) of the pairs."""
    mpc = ctx.mpc
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
    return _pearson(m, sx, sy, xs @ xs, ys @ ys, xs @ ys, sectype(m))


def _pearson(m: Any, sx: Any, sy: Any, sxx: Any, syy: Any, sxy: Any, pairs: Any) -> list[Any]:
    """r² and the sign of r from the pair count (public or secret) and the moments."""
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
        SecureOutput("pairs", pairs, on_value_scale=False),
        SecureOutput("undefined", undefined, on_value_scale=False),
    ]


async def _tagged_correlation(ctx: Context) -> list[SecureOutput]:
    """The tagged-helper route (``protocols.join.aligned``): A's [1, x, x²] aligned to B's
    keys, then one product with B's [1, y, y²], in Z_p of the output's secure type; the
    six moments enter MPyC as one input per party (no wrap-around to remove). Same sizes
    check as the PRF route: both sizes are known to every party on either route."""
    from protocols.join import aligned, tagged
    from protocols.tagging import RingP

    me, (a, b) = ctx.index, ctx.owners
    sectype = _sectype(ctx)
    keys = values = None
    if me in (a, b):
        keys, values = _own_values(ctx)
    n_a, n_b = await aligned.sizes(ctx, None if keys is None else len(keys))
    if min(n_a, n_b) < 2 and not ctx.dp:
        return _no_correlation(sectype, 0)
    if not (n_a and n_b):
        return [SecureOutput(name, sectype(0), on_value_scale=False) for name in MOMENTS]
    trace = tagged._Trace("helper" if me not in (a, b) else f"owner{ctx.owners.index(me)}")
    ctx.progress("tagging", 0.25)
    m = await aligned.match(ctx, keys, n_a, n_b, trace)
    ring = RingP(sectype.field.modulus)
    powers = None
    if values is not None:
        v = np.asarray(values, dtype=object)
        powers = ring.encode(np.stack([np.ones(len(v), dtype=object), v, v * v], axis=1))
    ctx.progress("aligning", 0.5)
    y = await aligned.align(ctx, m, ring, powers if me == a else None, 3, trace)
    w = None
    if me == b:
        assert powers is not None and m.order is not None
        w = powers[m.order]
    ctx.progress("aggregating", 0.75)
    share = await aligned.with_b(ctx, m, ring, y, w, 3, b"moments", trace)
    # Y^T·W for Y = [P, X, X²] (aligned) and W = [1, y, y²]: the six moments.
    cells = [(0, 0), (1, 0), (0, 1), (2, 0), (0, 2), (1, 1)]  # in MOMENTS' order
    one = 1 << int(getattr(sectype, "frac_length", 0))
    mine = np.array([share[i, j] * one for i, j in cells], dtype=object) % ring.modulus
    n, sx, sy, sxx, syy, sxy = aligned.into_field(ctx, sectype, mine)
    trace.write(ctx.mpc)
    if ctx.dp:
        return [
            SecureOutput(name, value, on_value_scale=False)
            for name, value in zip(MOMENTS, (n, sx, sy, sxx, syy, sxy), strict=True)
        ]
    return _pearson(n, sx, sy, sxx, syy, sxy, n)


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

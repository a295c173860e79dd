"""Logistic regression across a private join (vertically partitioned): a 0/1 label held by
one owner on features held by both, the rows matched by a key none of them shows — the
logistics firm's "late delivery" on the grocery's basket and its own delivery minutes,
joined by customer id.

Why here: after the join this is the horizontal logistic regression's problem
(``protocols.models.logistic``: the public feature box, the fixed-Hessian Newton steps,
the odd cubic sigmoid, Newton–Schulz, the |z| guard); what differs is that no owner
holds a whole row, so nothing can be computed locally per row: the rows enter MPC through
the join (``protocols.models.vertical.matched_rows``: the aligned join on the
tagged-helper route, the PRF route otherwise) and every per-row step is done inside MPC.

Who provides what: owner A (first input) ``key`` and ``features`` (1 to 10 columns);
owner B (second input) ``key``, ``label`` (0/1) and optionally its own ``features``
(0 to 10). ``params.lower``/``params.upper``: the public box of every feature, A's then
B's. Each owner first reduces its rows to one row per distinct key as ``join_regression``
does (``params.per_key``: each feature's mean rounded half up to the session's decimals,
or its sum, under DP of at most ``max_rows_per_key`` rows), then clamps that row into the
box and maps it onto [−1, 1] at 2^-12 (``secure_math.unit_grid``), locally. A key's label
is the majority of its rows' labels (1 on a tie), so it stays 0 or 1 whatever per_key
says. The coefficients come back in the features' own units, A's then B's, and the
intercept.

Exact release (weights secret throughout): Z = [x_A | x_B | present·2^12] (the last column
the intercept, 0 on an unmatched row of the aligned join, whose features and label are 0
too, so the row adds nothing to the Gram matrix or to any gradient), y = B's label. The
Gram matrix ZᵀZ is one secure matrix product; then ``logistic.fit_exact`` on the rows,
exactly the horizontal fit (its error statement holds: weights at 2^-24, the cubic σ
within 0.115 of the logistic on [−8, 8]). Before the fit two bits are opened: the owners'
joint minimum cohort on the matched set ("n < k", ``protocols.joint_cohort``; set: the
job fails ``cohort_too_small``) and "some feature is constant over the matched keys"
(n·Σx_j² = (Σx_j)² for some j, in the box's grid; set: ``singular_system``, its
coefficient would not be determined by the data, only by the penalty). Then the fit's own
bit, ``model_out_of_range``.

DP release: noisy gradient descent on the matched rows inside MPC. The weights w_t are
public at every step (post-processing of the earlier noisy rounds). The first round opens
the noisy matched count n̂ (the joint minimum cohort is held on it: n̂ < k opens one bit
and fails the job ``cohort_too_small`` before any gradient). Each step computes, in MPC,
z = Z·w_t (a product by public integers: no communication), the same cubic σ(z), the
residual r = s_t·(σ(z) − y) and the gradient sum Σ r_i z_i (two secure products per row and
one matrix–vector product), truncates it to the grid 2^-20 and opens it with the step's
noise; w_{t+1} = w_t − lr·ĝ/(s_t·n̂). s_t ≤ 1 is a public factor from w_t that keeps every
|r_i| ≤ 1: |z| ≤ L_t = Σ|w_t,j| (features in [−1, 1]), and the cubic's largest |σ − y| on
[−L_t, L_t] is B(L_t) (at most 1.06 for L_t ≤ 8, growing beyond), so s_t = 1/max(1,
B(L_t)) less the public rounding of its constants. A row therefore adds at most √D
(D = features + 1) to a step's gradient in L2, whatever the data: no per-row clipping
(it would need a secure comparison per row) and no ``clip`` parameter. The public
weights are kept within Σ|w_j| ≤ 64 (a projection, public post-processing) so that every
value fits the field. The ledger charges the count and every step at admission (zCDP
composition over the blocks, as ``logistic_regression``); a run beyond the budget is
refused before it starts.

What is revealed: exact — the coefficients and the intercept to the analyst (or nothing,
kept as the artifact ``model``), and to every party the three bits above; DP — the noisy
count and every step's noisy gradient (to every party and the analyst), the cohort bit
on the noisy count, and the weights computed from them. What leaks: the join route's
(tagged-helper: every party learns both per-key table sizes, the helper the number of
matched keys; PRF route: every party both sizes and the match count); the number of
steps and the sizes are public parameters, so nothing in the run's length depends on
the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition, PolicyViolation
from protocols import joint_cohort
from protocols.io import Context, SecureOutput
from protocols.join.common import capped, keyed, row_cap
from protocols.join.correlation import per_key_values
from protocols.models import inputs, keep
from protocols.models.logistic import (
    BITS,
    DP_GRID,
    FOUT,
    FX,
    descent_step,
    fit_exact,
    learning_rate,
    raw_coefficients,
    ridge,
    steps_of,
)
from protocols.models.secure_math import (
    SIGMOID_C1,
    SIGMOID_C3,
    as_fixed,
    feature_box,
    shift,
    unit_grid,
)
from protocols.models.vertical import _hold_cohort, matched_rows, widths

# The DP steps' scales (bits after the binary point): public weights at 2^-FWD, so
# z = x·w at 2^(FX+FWD) = 2^28 and z³ at 2^84; the residual at 2^FR; the gradient sum at
# 2^(FR+FX), truncated to 2^DP_GRID before its noise.
FWD = 16
FR = 140
# The public weights' L1 norm is kept at most this (so |z| ≤ 64: z³ < 2^102, the
# gradient of 2^24 rows below 2^176, inside the 200-bit integers).
MAX_L1 = 64.0
# Where the cubic σ peaks: σ'(z) = C1 + 3·C3·z² = 0.
PEAK = math.sqrt(SIGMOID_C1 / (-3 * SIGMOID_C3))


def feature_count(ctx: Context) -> int:
    c_a, c_b1 = widths(ctx)
    return c_a + c_b1 - 1


def _majority(sums: np.ndarray, counts: np.ndarray, scale: int) -> np.ndarray:
    """A key's label: 1 when at least half its rows say 1 (labels on the grid: 1 = scale)."""
    out: np.ndarray = (2 * np.asarray(sums, dtype=object) >= np.asarray(counts) * scale).astype(
        np.int64
    )
    return out


def _own_table(
    ctx: Context, position: int, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """This owner's distinct keys and one row per key: its features on the unit grid (at
    2^FX, in the box), and at B the key's majority label last."""
    assert ctx.local is not None
    local, how, scale = ctx.local, ctx.params.get("per_key", "mean"), 10**ctx.decimals
    c_a, c_b1 = widths(ctx)
    refs = [f"features[{j}]" for j in range(c_a if position == 0 else c_b1 - 1)]
    if position == 1:
        inputs.labels(ctx)  # a label other than 0 or 1 is refused here, without naming it
    measured = [*refs, "label"] if position == 1 else refs
    agg = keyed(local, ["key"], measures=[("count", None), *(("sum", r) for r in measured)])
    counts, keys = agg.values["count"], agg.keys["key"]
    columns = []
    for ref in refs:
        sums = agg.values[f"sum:{ref}"]
        if ctx.dp and how == "sum":  # bounded per-key values: what the sensitivity assumes
            _, sums = capped(sums, counts, row_cap(ctx.params))
        columns.append(np.asarray(per_key_values(sums, counts, how), dtype=float) / scale)
    box = slice(0, c_a) if position == 0 else slice(c_a, c_a + c_b1 - 1)
    grid = np.zeros((len(keys), len(refs)), dtype=np.int64)
    if refs and len(keys):
        grid = unit_grid(np.stack(columns, axis=1), lower[box], upper[box], FX)
    table = grid.astype(object)
    if position == 1:
        label = _majority(agg.values["sum:label"], counts, scale).astype(object)
        table = np.hstack([table, label.reshape(-1, 1)])
    return keys, table


async def _rows(ctx: Context, sint: Any, lower: np.ndarray, upper: np.ndarray) -> Any:
    """(X with the intercept column last, y, n, public row count), or a refusal when the
    join matched nothing (the sizes behind that are public on either route)."""
    m = await matched_rows(ctx, sint, "join_logistic", lambda p: _own_table(ctx, p, lower, upper))
    if m is None:
        raise FailedPrecondition(
            "no key matched across the join: there are no rows to fit", reason="too_few_rows"
        )
    mpc = ctx.mpc
    d = feature_count(ctx)
    ones = m.present if m.present is not None else sint.array(np.ones(m.rows, dtype=object))
    x = mpc.np_hstack((m.z[:, :d], mpc.np_reshape(ones * (1 << FX), (m.rows, 1))))
    return x, m.z[:, d], m.n, m.rows


async def _constant_feature(mpc: Any, gram: Any, d: int) -> None:
    """One bit: is some feature constant over the matched rows? With the intercept column
    c = present·2^FX last, n·Σx_j² − (Σx_j)² ∝ G_cc·G_jj − G_jc², zero exactly for a
    constant feature (Cauchy–Schwarz); their product is zero iff one of them is (a prime
    field). Set: ``singular_system``, nothing else opened."""
    last = gram[d, d]
    spread = gram[np.arange(d), np.arange(d)] * last - gram[:d, d] * gram[:d, d]
    product = mpc.prod(mpc.np_tolist(spread)) if d > 1 else spread[0]
    if await mpc.is_zero_public(product):
        raise FailedPrecondition(
            "a feature is constant over the matched keys (only that was opened): its "
            "coefficient would come from the penalty alone; drop it",
            reason="singular_system",
        )


async def join_logistic(ctx: Context) -> list[SecureOutput]:
    lower, upper = feature_box(ctx.params, feature_count(ctx))
    mpc = ctx.mpc
    sint = mpc.SecInt(BITS)
    x, y, n, rows = await _rows(ctx, sint, lower, upper)
    if ctx.dp:
        return await _noisy_descent(ctx, sint, x, y, n, lower, upper)
    await _hold_cohort(ctx, n, sint)
    ctx.progress("training", 0.5)
    d = lower.size
    gram = mpc.np_matmul(mpc.np_transpose(x), x)
    await _constant_feature(mpc, gram, d)
    w = await fit_exact(mpc, x, y, gram, max(rows, 1), ridge(ctx.params), steps_of(ctx.params))
    out = await as_fixed(mpc, raw_coefficients(mpc, w, lower, upper), FOUT)
    if keep.kept(ctx.params):  # [intercept, β_1..β_d], kept secret-shared
        return keep.keep_model(mpc, mpc.np_hstack([out[d:], out[:d]]))
    names = [f"coef[{j}]" for j in range(d)] + ["intercept"]
    return [
        SecureOutput(name, out[i], on_value_scale=False, noisy=False)
        for i, name in enumerate(names)
    ]


# -- the DP fit ---------------------------------------------------------------------------


def residual_bound(l1: float) -> float:
    """The largest |σ(z) − y| of the cubic σ over |z| ≤ l1 and y ∈ {0, 1}: σ(−z) = 1 − σ(z)
    and σ rises on [0, PEAK] and falls after, so it is the larger of σ at min(l1, PEAK),
    1 − σ(l1) and 1/2."""

    def sigma(z: float) -> float:
        return 0.5 + SIGMOID_C1 * z + SIGMOID_C3 * z**3

    return max(sigma(min(l1, PEAK)), 1 - sigma(l1), 0.5)


def step_constants(w: np.ndarray) -> tuple[np.ndarray, list[int], float]:
    """For public weights w (normalized units, intercept last): the integer weights at
    2^FWD, the residual's integer constants (S1, S0, c1, c3: r = S0 + c1·z + c3·z³ − S1·y at
    2^FR is s·(σ(z) − y)) and s, chosen so that |r| ≤ 2^FR on every row: s·B(L)·2^FR plus
    the constants' rounding (at most 1/2 each, times 1, 1, |z|, |z|³) stays within 2^FR."""
    wq = np.array([round(float(v) * (1 << FWD)) for v in w], dtype=object)
    l1 = float(sum(abs(int(v)) for v in wq)) / (1 << FWD)
    z_max = l1 * (1 << (FX + FWD))
    rounding = 0.5 * (2 + z_max + z_max**3)
    s = (2.0**FR - rounding) / (2.0**FR * max(1.0, residual_bound(l1)))
    constants = [
        round(s * 2.0**FR),
        round(s * 2.0 ** (FR - 1)),
        round(s * SIGMOID_C1 * 2.0 ** (FR - FX - FWD)),
        round(s * SIGMOID_C3 * 2.0 ** (FR - 3 * (FX + FWD))),
    ]
    return wq, constants, s


def project(w: np.ndarray) -> np.ndarray:
    """The public weights scaled into Σ|w_j| ≤ MAX_L1 (post-processing of public values)."""
    l1 = float(np.abs(w).sum())
    return w if l1 <= MAX_L1 else w * (MAX_L1 / l1)


def gradient_grid(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """The DP step's gradient sum in the clear, exactly as MPC computes it before its
    truncation: (Σ r_i x_i / 2^(FR+FX−DP_GRID) as floats, s). ``x`` the rows at 2^FX with
    the intercept column, ``y`` the labels (integers)."""
    wq, (s1, s0, c1, c3), s = step_constants(w)
    xo = np.asarray(x, dtype=object)
    z = xo @ wq
    r = s0 + c1 * z + c3 * z * z * z - s1 * np.asarray(y, dtype=object)
    g = r @ xo if len(xo) else np.zeros(xo.shape[1], dtype=object)
    return np.array([float(v) / 2.0 ** (FR + FX - DP_GRID) for v in g]), s


async def _noisy_descent(
    ctx: Context, sint: Any, x: Any, y: Any, n: Any, lower: np.ndarray, upper: np.ndarray
) -> list[SecureOutput]:
    mpc, rounds = ctx.mpc, ctx.rounds
    assert rounds is not None
    steps, lr = steps_of(ctx.params), learning_rate(ctx.params)
    (n_hat,) = await rounds.open("count", mpc.np_fromlist([n]))
    k = joint_cohort.floor(ctx, sint)
    if not await mpc.is_zero_public((k > int(n_hat)) * (k > 0)):
        raise PolicyViolation(  # a function of the noisy count and the owners' minimum only
            "fewer keys matched (by the noisy count) than an owner's minimum cohort; no "
            "gradient was opened",
            reason="cohort_too_small",
        )
    w = np.zeros(lower.size + 1)
    for t in range(steps):
        wq, (s1, s0, c1, c3), s = step_constants(w)
        z = x @ wq
        r = z * c1 + z * z * z * c3 - y * s1 + s0  # s·(σ(z) − y) at 2^FR, |r| ≤ 2^FR
        g = shift(mpc, r @ x, FR + FX - DP_GRID)
        noisy = await rounds.open(f"gradient{t}", g)
        w = project(descent_step(w, np.asarray(noisy, dtype=float) / s, float(n_hat), 1.0, lr))
        ctx.progress("training", 0.1 + 0.8 * (t + 1) / steps)
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    coef = w[:-1] / half
    fixed = mpc.SecFxp(64, 32)
    rounds.publish("coef", fixed, coef)
    rounds.publish("intercept", fixed, [w[-1] - float(coef @ mid)])
    return []


def replay(
    x: np.ndarray, y: np.ndarray, noisy: list[np.ndarray], count: float, params: Mapping[str, Any]
) -> np.ndarray:
    """The public trajectory from the opened rounds (what every party computes): the
    weights after each step, in normalized units (for tests and the bench)."""
    lr = learning_rate(params)
    w = np.zeros(x.shape[1])
    for g in noisy:
        _, _, s = step_constants(w)
        w = project(descent_step(w, np.asarray(g, dtype=float) / s, count, 1.0, lr))
    return w

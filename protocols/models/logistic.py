"""Logistic regression on rows held by several owners (horizontal: the same feature columns
and a 0/1 label at each owner).

Who provides what: each owner its feature rows and labels; the public box
``params.lower``/``params.upper`` (one bound per feature), which every owner clamps its
rows into and maps onto [−1, 1] (resolution 2^-12) locally before anything is shared.

Exact release (weights secret throughout): fixed-Hessian Newton steps (Böhning's bound
H ⪯ XᵀX/4), w ← w + (XᵀX/4 + λI)⁻¹ (Xᵀ(y − σ(Xw)) − λw). Each owner adds its local Gram
matrix XᵀX (one d × d input, no per-row work in MPC); the inverse is computed once, by
Newton–Schulz iteration (products only, a public number of steps from the public sizes).
Per step, in MPC: z = Xw, the odd cubic σ (``secure_math``), the gradient Xᵀ(y − σ(z)),
one d × d product; every product of the n rows is exact in a wide field, only the d-element
gradient and step are truncated. Unlike plain gradient descent, there is no learning rate
to tune and the steps approach the penalised maximum-likelihood weights within ~10 steps.

DP release: noisy gradient descent. The weights are public at every step: each owner
computes, locally and in the clear, each row's gradient at the current weights (the exact
σ), clips it to L2 norm ``clip``, puts it on an integer grid (truncating toward zero, so
the norm never grows), and sums its rows; MPC adds the owners' sums and opens them with
the step's noise (``protocols.rounds``). The first round opens a noisy row count, by which
every later step divides. The ledger charges the whole run (count + steps blocks, ρ split
evenly) at admission; a run beyond the budget is refused before it starts.

What is revealed: exact — the coefficients and the intercept (to the analyst), and to every
party one bit: whether some step's weights could have given |x·w| ≥ 2^Z_BITS (then the job
fails with ``model_out_of_range`` and nothing else is opened). DP — the
noisy count, every step's noisy gradient sum (to every party and the analyst) and the
weights computed from them. What leaks: the owners' row counts (public in the catalog);
the number of steps and the sizes are public parameters. Nothing depends on the data in
the length of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition
from protocols.io import Context, SecureOutput
from protocols.models import inputs, keep, ns_solve
from protocols.models.secure_math import (
    SIGMOID_C1,
    SIGMOID_C3,
    as_fixed,
    feature_box,
    newton_schulz_steps,
    public_vector,
    scaled_int,
    shift,
    sigmoid_poly,
    unit_grid,
)

# Scales (bits after the binary point) of the exact fit, and what each one bounds:
FX = 12  # normalized features and the intercept column: |x| ≤ 1 at 2^-12
FW = 24  # weights
FR = 140  # residual y − σ(z); z = x·w is at 2^(FX+FW) = 2^36, z³ at 2^108
FG = 40  # the gradient Xᵀr after its truncation (from 2^(FR+FX) = 2^152)
FA = 40  # the inverse (XᵀX/4 + λI)⁻¹
FB = 44  # the Newton–Schulz iterate
FOUT = 40  # released coefficients
# Secure integers of 200 bits hold |z| < 2^Z_BITS (well past the sigmoid's range [−8, 8]),
# the gradient of up to 2^24 rows and every intermediate above (field: 200 + k + 2 bits).
# Checked inside MPC at every step from the weights (|z| ≤ Σ|w_j| ≤ √D·‖w‖ on features in
# [−1, 1]): a step whose ‖w‖² reaches 2^(2·Z_BITS)/D scores with w = 0 instead, so every
# value stays in range, and the job then fails with ``model_out_of_range``, one bit opened.
BITS = 200
Z_BITS = 8
INVERSE_ACCURACY = 40  # bits of the Newton–Schulz residual

# The DP gradient grid: a row's clipped gradient, in units of 2^-20 of its norm bound.
DP_GRID = 20
# Noisy sums of up to 2^30 rows on that grid, and their noise (60σ), fit in 112 bits.
DP_BITS = 112


def steps_of(params: Mapping[str, Any]) -> int:
    return int(params.get("steps", 10))


def ridge(params: Mapping[str, Any]) -> float:
    return float(params.get("l2", 1.0))


# -- the exact fit, on secure arrays -----------------------------------------------------------


async def fit_exact(mpc: Any, x: Any, y: Any, gram: Any, rows: int, l2: float, steps: int) -> Any:
    """Weights (scale 2^FW, the intercept last) from the secure rows ``x`` (n × D, at 2^FX,
    the last column 2^FX), labels ``y`` (n) and the summed Gram matrix (D × D, at 2^2FX)."""
    d = gram.shape[0]
    # B = α(G/4 + λI), α = 1/(D(n/4 + λ)) ≥ 1/λ_max: eigenvalues of B in [αλ, 1].
    alpha = 1.0 / (d * (rows / 4 + l2))
    b = shift(mpc, gram * scaled_int(alpha / 4, FB + 2 * FX), 2 * FX + 2 * FX)
    b = b + np.eye(d, dtype=object) * scaled_int(alpha * l2, FB)
    k = newton_schulz_steps(1.0 / (alpha * l2), INVERSE_ACCURACY)
    sectype = type(y)
    # Truncations by pre-shared pairs (no random bits; ns_solve): the iterate's values stay
    # below 2^(FB + K + 1) at scale 2^(2·FB), far inside the 200-bit integers.
    pairs = ns_solve.PairTruncator(mpc, sectype.sectype, FB)
    pairs.prepare(2 * k * d * d)
    y_k = await ns_solve.iterate(mpc, pairs, b, k)
    inverse = shift(mpc, y_k * scaled_int(alpha, 60), FB + 60 - FA)
    c1 = scaled_int(SIGMOID_C1, FR - (FX + FW))
    c3 = scaled_int(SIGMOID_C3, FR - 3 * (FX + FW))
    target = y * (1 << FR) - (1 << (FR - 1))  # y − 1/2 at 2^FR
    penalty = scaled_int(l2, FR + FX - FW)
    w = sectype(np.zeros(d, dtype=object))
    limit = (1 << 2 * (Z_BITS + FW)) // d  # ‖w‖² below it: |x·w| ≤ Σ|w_j| ≤ √D‖w‖ < 2^Z_BITS
    out_of_range = []
    for step in range(steps):
        used = w
        if step:  # w₀ = 0; a step whose weights could give |z| ≥ 2^Z_BITS scores with w = 0
            big = mpc.np_sum(w * w) >= limit
            out_of_range.append(big)
            used = w * mpc.np_fromlist([1 - big])
        z = x @ used
        r = target - (z * c1 + z * z * z * c3)  # y − σ(z)
        g = shift(mpc, r @ x - w * penalty, FR + FX - FG)
        w = w + shift(mpc, inverse @ g, FA + FG - FW)
    if out_of_range and not await mpc.is_zero_public(mpc.np_sum(mpc.np_fromlist(out_of_range))):
        raise FailedPrecondition(
            f"the exact logistic fit's weights left the range its fixed point holds (|x·w| "
            f"could reach 2^{Z_BITS} on the normalized features; only that was opened): "
            "raise params.l2, or use the DP release",
            reason="model_out_of_range",
        )
    return w


def raw_coefficients(mpc: Any, w: Any, lower: np.ndarray, upper: np.ndarray) -> Any:
    """From weights on the normalized features back to the features' own units:
    β_j = w_j / half_j and intercept = w_b − Σ β_j·mid_j (public constants; at 2^FOUT),
    as one array (β_1..β_d, intercept)."""
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    d = lower.size
    coef = shift(mpc, w[:d] * public_vector(1 / half, FOUT + 32 - FW), 32)
    offset = shift(mpc, coef.reshape(1, d) @ public_vector(mid, 20), 20)
    intercept = w[d:] * (1 << (FOUT - FW)) - offset
    return mpc.np_hstack([coef, intercept])


async def logistic_regression(ctx: Context) -> list[SecureOutput]:
    if ctx.outsourced is not None:  # an outsourced owner's rows: converted, Gram in MPC
        from protocols import he_logistic

        return await he_logistic.logistic_regression(ctx)
    lower, upper = feature_box(ctx.params)
    if ctx.dp:
        return await _noisy_descent(ctx, lower, upper)
    mpc = ctx.mpc
    sint = mpc.SecInt(BITS)
    d = lower.size + 1
    xs, ys, grams, rows = [], [], [], 0
    for position in range(len(ctx.owners)):
        mine = inputs.is_owner_at(ctx, position)
        x = _design(ctx, lower, upper) if mine else None
        y = inputs.labels(ctx) if mine else None
        n = await inputs.announce(ctx, position, None if x is None else len(x))
        rows += n
        gram = None if x is None else _gram(x)
        grams.append(inputs.share(ctx, position, sint, gram, (d, d)))
        xs.append(inputs.share(ctx, position, sint, x, (n, d)))
        ys.append(inputs.share(ctx, position, sint, y, (n,)))
    ctx.progress("training", 0.3)
    x_all = mpc.np_vstack(xs)
    y_all = mpc.np_hstack(ys)
    gram_all = grams[0]
    for g in grams[1:]:
        gram_all = gram_all + g
    w = await fit_exact(
        mpc, x_all, y_all, gram_all, max(rows, 1), ridge(ctx.params), steps_of(ctx.params)
    )
    out = await as_fixed(mpc, raw_coefficients(mpc, w, lower, upper), FOUT)
    if keep.kept(ctx.params):  # [intercept, β_1..β_d], kept secret-shared
        return keep.keep_model(mpc, mpc.np_hstack([out[lower.size :], out[: lower.size]]))
    names = [f"coef[{j}]" for j in range(lower.size)] + ["intercept"]
    return [
        SecureOutput(name, out[i], on_value_scale=False, noisy=False)
        for i, name in enumerate(names)
    ]


def _design(ctx: Context, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """This owner's rows on the unit grid with the intercept column (integers at 2^FX)."""
    grid = unit_grid(inputs.features(ctx), lower, upper, FX)
    ones = np.full((grid.shape[0], 1), 1 << FX, dtype=np.int64)
    return np.hstack([grid, ones]).astype(object)


def _gram(x: np.ndarray) -> np.ndarray:
    """XᵀX exactly (Python integers: 2^24 per product, no int64 overflow for any n)."""
    gram: np.ndarray = (x.T @ x).astype(object)
    return gram


# -- the DP fit: noisy gradient descent --------------------------------------------------------


def clip_of(params: Mapping[str, Any]) -> float:
    return float(params.get("clip", 1.0))


def learning_rate(params: Mapping[str, Any]) -> float:
    return float(params.get("learning_rate", 1.0))


def clipped_gradient_sum(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    clip: float,
    row_norms: np.ndarray | None = None,
) -> np.ndarray:
    """Σ over rows of each row's log-loss gradient x(σ(x·w) − y), clipped to L2 norm ``clip``
    and put on the grid 2^DP_GRID / clip, each coordinate truncated toward zero (so a row
    contributes at most 2^DP_GRID in L2): an owner's local step, in the clear.

    A row's gradient is x_i scaled by its residual r_i, so its norm is |r_i|·‖x_i‖: with the
    rows' norms computed once (``row_norms``, :func:`norms`) a step is one matrix-vector
    product, one scaling of the rows and one truncation, with no per-step norm pass. The
    grid values are integers below 2^DP_GRID, so their float64 column sums are exact for up
    to 2^33 rows (every partial sum an integer below 2^53)."""
    if x.shape[0] == 0:
        return np.zeros(x.shape[1], dtype=object)
    if row_norms is None:
        row_norms = norms(x)
    residual = 1 / (1 + np.exp(-(x @ w))) - y
    length = np.abs(residual) * row_norms
    scale = residual * np.minimum(1.0, clip / np.maximum(length, 1e-300)) * ((1 << DP_GRID) / clip)
    grid = np.multiply(x, scale[:, None])
    np.trunc(grid, out=grid)
    return np.array([int(v) for v in grid.sum(axis=0)], dtype=object)


def norms(x: np.ndarray) -> np.ndarray:
    """Each row's L2 norm (computed once per run: the rows do not change between steps)."""
    out: np.ndarray = np.sqrt(np.einsum("ij,ij->i", x, x))
    return out


def descent_step(
    w: np.ndarray, noisy_sum: np.ndarray, count: float, clip: float, lr: float
) -> np.ndarray:
    """w − lr·ĝ/n̂ from the opened noisy gradient sum (public post-processing)."""
    grad = np.asarray(noisy_sum, dtype=float) * (clip / (1 << DP_GRID))
    return w - lr * grad / max(count, 1.0)


async def _noisy_descent(ctx: Context, lower: np.ndarray, upper: np.ndarray) -> list[SecureOutput]:
    mpc, rounds = ctx.mpc, ctx.rounds
    assert rounds is not None
    d = lower.size + 1
    sint = mpc.SecInt(DP_BITS)
    steps, clip, lr = steps_of(ctx.params), clip_of(ctx.params), learning_rate(ctx.params)
    x = y = None
    if ctx.is_owner and ctx.local is not None:
        x = design_matrix(inputs.features(ctx), lower, upper)
        y = inputs.labels(ctx).astype(float)
    row_norms = None if x is None else norms(x)
    count = np.array([0 if x is None else len(x)], dtype=object)
    (n_hat,) = await rounds.open("count", inputs.summed(ctx, sint, count, (1,)))
    w = np.zeros(d)
    for t in range(steps):
        local = None if x is None or y is None else clipped_gradient_sum(x, y, w, clip, row_norms)
        noisy = await rounds.open(f"gradient{t}", inputs.summed(ctx, sint, local, (d,)))
        w = descent_step(w, noisy, float(n_hat), clip, lr)
        ctx.progress("training", 0.1 + 0.8 * (t + 1) / steps)
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    coef = w[:-1] / half
    fixed = mpc.SecFxp(64, 32)
    rounds.publish("coef", fixed, coef)
    rounds.publish("intercept", fixed, [w[-1] - float(coef @ mid)])
    return []


# -- the same computations in the clear --------------------------------------------------------


def design_matrix(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    grid = unit_grid(x, lower, upper, FX) / (1 << FX)
    return np.hstack([grid, np.ones((grid.shape[0], 1))])


def reference_fit(
    x: np.ndarray, y: np.ndarray, lower: np.ndarray, upper: np.ndarray, l2: float, steps: int
) -> np.ndarray:
    """The exact fit in float64 (same grid, same σ, the exact inverse): the MPC result
    differs by its fixed-point error only."""
    a = design_matrix(x, lower, upper)
    inverse = np.linalg.inv(a.T @ a / 4 + l2 * np.eye(a.shape[1]))
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        w = w + inverse @ (a.T @ (y - sigmoid_poly(a @ w)) - l2 * w)
    return w


def to_raw(w: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, float]:
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    coef = w[:-1] / half
    return coef, float(w[-1] - coef @ mid)


def reference(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]
) -> dict[str, float]:
    lower, upper = feature_box(params)
    x = np.vstack([np.asarray(t["features"], dtype=float) for t in tables])
    y = np.concatenate([np.asarray(t["label"], dtype=float) for t in tables])
    coef, intercept = to_raw(
        reference_fit(x, y, lower, upper, ridge(params), steps_of(params)), lower, upper
    )
    return {**{f"coef[{j}]": float(c) for j, c in enumerate(coef)}, "intercept": intercept}


def predict_proba(coef: np.ndarray, intercept: float, x: np.ndarray) -> np.ndarray:
    p: np.ndarray = 1 / (1 + np.exp(-(np.asarray(x, dtype=float) @ coef + intercept)))
    return p


def newton_schulz_iterations(rows: int, features: int, l2: float) -> int:
    """The public number of inverse iterations of a job (for docs and the bench)."""
    d = features + 1
    return newton_schulz_steps(d * (rows / 4 + l2) / l2, INVERSE_ACCURACY)

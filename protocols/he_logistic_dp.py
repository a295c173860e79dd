"""The DP logistic regression (noisy gradient descent) with an outsourced owner: its rows
converted from BFV into secret shares once (``protocols.he_logistic``), and its clipped
gradient sum computed INSIDE MPC at every step against the public noisy weights, then added
to the live owners' local sums and noised exactly as in ``protocols.models.logistic``.

Why in MPC: each live owner clips its rows' gradients in the clear at the public weights;
the outsourced owner's rows exist in the clear nowhere but at its client, which decrypts
masked values only. So for its rows every party computes, on shares:

* once per job: each row's q = ‖x‖² (exact, on the unit grid with the intercept, so q is in
  [1, D]) and y ≈ 1/√q by Newton's iteration y ← y(3 − q·y²)/2 from the public 1/√D (from
  below, so it rises monotonically to the root; the public count :func:`inverse_steps`
  leaves a relative error below 2^-14 for every q in [1, D]), and τ = (1 − 2^-9)·y;
* each step, with the public weights w: z = X·w (local: w is public), z clamped into
  [−8, 8] only when the public Σ|w| exceeds 8, the odd cubic σ of the exact fit
  (``secure_math.sigmoid_poly``, error ≤ 0.115 on [−8, 8]; the live owners use the exact
  σ), the residual r = σ(z) − y, u = r/clip clamped into [−τ, τ] (two comparisons a row),
  and the sum Σ x·u·2^20 (one product of the n rows) rounded once onto the gradient grid.

Clipping: |u|·‖x‖ ≤ τ·√q ≤ (1 − 2^-9)(1 + 2^-14) < 1 − 2^-10, i.e. each row adds at most
(1 − 2^-10)·2^20 in L2 on the grid, exactly what a live owner's row adds (it clips to
``clip`` and truncates toward zero) less a margin; clamping r·(1/clip) to τ is the
live owners' clip r·min(1, clip/(|r|·‖x‖)) itself. The one rounding of the sum moves each
coordinate by less than one unit: a neighbouring dataset's rounded sum differs by at most
(1 − 2^-10)·2^20·K + √D < K·2^20 (D ≤ 21), inside the sensitivity ``_dp_logistic``
declares. So the release plan, the noise and the ledger's charge are those of any DP
logistic run; the helper's admission charges the owner's budget (``<owner>/<dataset>``)
and refuses a run over it before anything starts.

What is revealed: what the DP logistic regression reveals (the noisy count, every step's
noisy gradient sum, the weights from them). The outsourced row count is public (the
catalog's) and enters the count in the clear.
What leaks, and to whom: as ``protocols.he_logistic`` (the helper the row count, the
owner's client its masked rows, every party its shares); nothing about a row's gradient or
whether it was clipped is opened.
Cost per outsourced row and step: 2 comparisons (4 when Σ|w| > 8), 3 truncations and
D + 4 products of shares (z = X·w is local); once per job, 3 truncations and 3 products per
Newton step; the sum's truncation is one per coordinate, not per row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protocols.io import Context, SecureOutput

FY = 24  # the inverse norm y and the residual r
FU = 24  # r / clip carries this many more bits: u at 2^(FY + FU)
FZ = 16  # z after its truncation (z³ is then at 2^(3·FZ − FZ) = 2^32)
FS = 64  # σ(z) − 1/2 before its truncation to FY (C3 at 2^(FS − 2·FZ) keeps 22 bits)
FW = 24  # the public weights on their grid
MARGIN = 2.0**-9  # τ = (1 − MARGIN)/‖x‖: room for Newton's error and the sum's rounding
Z_RANGE = 8.0  # the cubic's range


def inverse_steps(d: int, accuracy: float = 2.0**-14) -> int:
    """Newton steps for 1/√q from 1/√D to within ``accuracy`` (relative) for every q in
    [1, D]: the slowest is q = 1 (the farthest start); a public count from the width."""
    y, steps = 1 / math.sqrt(d), 0
    while abs(1 - y) > accuracy / 4:
        y, steps = y * (3 - y * y) / 2, steps + 1
    return steps + 1


def clip_bound(x: Any, mpc: Any, d: int) -> Any:
    """τ per row at 2^(FY + FU): (1 − MARGIN)·y with y ≈ 1/‖x‖ at 2^FY (x at 2^FX)."""
    from protocols.models.logistic import FX
    from protocols.models.secure_math import shift

    q = mpc.np_sum(x * x, axis=1)  # at 2^(2·FX), exact
    y = type(q)(np.full(q.shape, round((1 << FY) / math.sqrt(d)), dtype=object))
    three = 3 << FY
    for _ in range(inverse_steps(d)):
        qy2 = shift(mpc, q * shift(mpc, y * y, FY), 2 * FX)  # q·y² at 2^FY
        y = shift(mpc, y * (three - qy2), FY + 1)
    return y * round((1 - MARGIN) * (1 << FU))


def clipped_sum(mpc: Any, x: Any, label: Any, tau: Any, w: np.ndarray, clip: float) -> Any:
    """Σ over the outsourced rows of the clipped log-loss gradient at the public weights
    ``w``, on the gradient grid 2^DP_GRID/clip (secure integers, D of them)."""
    from protocols.models.logistic import DP_GRID, FX
    from protocols.models.secure_math import SIGMOID_C1, SIGMOID_C3, scaled_int, shift

    z = x @ np.array([scaled_int(float(v), FW) for v in w], dtype=object)  # at 2^(FX+FW)
    if float(np.abs(w).sum()) > Z_RANGE:  # public: only then can |z| leave the cubic's range
        top = scaled_int(Z_RANGE, FX + FW)
        high, low = z > top, z < -top
        z = z + high * (top - z) + low * (-top - z)
    z = shift(mpc, z, FX + FW - FZ)
    cube = z * shift(mpc, z * z, FZ)  # at 2^(2·FZ)
    s = z * scaled_int(SIGMOID_C1, FS - FZ) + cube * scaled_int(SIGMOID_C3, FS - 2 * FZ)
    r = shift(mpc, s, FS - FY) + (1 << (FY - 1)) - label * (1 << FY)  # σ(z) − y at 2^FY
    u = r * scaled_int(1 / clip, FU)  # r / clip at 2^(FY+FU)
    high, low = u > tau, u < -tau
    u = u + high * (tau - u) + low * (-tau - u)
    g = u @ x  # at 2^(FY+FU+FX), units of 1/clip
    return shift(mpc, g, FY + FU + FX - DP_GRID)


async def noisy_descent(ctx: Context, lower: np.ndarray, upper: np.ndarray) -> list[SecureOutput]:
    """``logistic._noisy_descent`` with one outsourced owner."""
    from protocols.he_logistic import _outsourced_rows
    from protocols.models import inputs, logistic as lr

    mpc, rounds, hosted = ctx.mpc, ctx.rounds, ctx.outsourced
    assert rounds is not None
    d = lower.size + 1
    sint = mpc.SecInt(lr.DP_BITS)
    params = ctx.params
    steps, clip, rate = lr.steps_of(params), lr.clip_of(params), lr.learning_rate(params)
    x_out, y_out, n_out = await _outsourced_rows(ctx, sint, hosted, lower.size, lower, upper)
    tau = clip_bound(x_out, mpc, d)
    live = [p for p, o in enumerate(ctx.owners) if o != hosted.position]
    x = y = None
    if ctx.local is not None:
        x = lr.design_matrix(inputs.features(ctx), lower, upper)
        y = inputs.labels(ctx).astype(float)
    norms = None if x is None else lr.norms(x)
    count = np.array([0 if x is None else len(x)], dtype=object)
    total = sint.array(np.array([n_out], dtype=object))  # public: the catalog's row count
    for p in live:
        total = total + inputs.share(ctx, p, sint, count, (1,))
    (n_hat,) = await rounds.open("count", total)
    w = np.zeros(d)
    for t in range(steps):
        local = None if x is None or y is None else lr.clipped_gradient_sum(x, y, w, clip, norms)
        grad = clipped_sum(mpc, x_out, y_out, tau, w, clip)
        for p in live:
            grad = grad + inputs.share(ctx, p, sint, local, (d,))
        noisy = await rounds.open(f"gradient{t}", grad)
        w = lr.descent_step(w, noisy, float(n_hat), clip, rate)
        ctx.progress("training", 0.1 + 0.8 * (t + 1) / steps)
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    coef = w[:-1] / half
    fixed = mpc.SecFxp(64, 32)
    rounds.publish("coef", fixed, coef)
    rounds.publish("intercept", fixed, [w[-1] - float(coef @ mid)])
    return []


# -- the same computation in the clear ----------------------------------------------------------


def reference_clipped_sum(x: np.ndarray, y: np.ndarray, w: np.ndarray, clip: float) -> np.ndarray:
    """:func:`clipped_sum` in float64 on the design rows ``x`` (unit grid with the intercept
    column) and 0/1 labels ``y``: the cubic σ, the clamp of z when Σ|w| > 8, the clip by
    (1 − MARGIN)/‖x‖ of r/clip, on the gradient grid (not rounded)."""
    from protocols.models.logistic import DP_GRID
    from protocols.models.secure_math import sigmoid_poly

    z = x @ w
    if float(np.abs(w).sum()) > Z_RANGE:
        z = np.clip(z, -Z_RANGE, Z_RANGE)
    u = (sigmoid_poly(z) - y) / clip
    tau = (1 - MARGIN) / np.sqrt(np.einsum("ij,ij->i", x, x))
    out: np.ndarray = (np.clip(u, -tau, tau)[:, None] * x).sum(axis=0) * (1 << DP_GRID)
    return out

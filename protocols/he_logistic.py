"""The horizontal logistic regression with an outsourced owner (exact release; DP in
``he_logistic_dp``): its rows converted from BFV into secret shares
(``ensnif_mpc/he/outsource_rows.py``), put on the fit's unit grid and its Gram matrix
computed inside MPC, then the same fixed-Hessian Newton fit as every owner's
(``protocols.models.logistic.fit_exact``; called from
``protocols.models.logistic.logistic_regression`` when the job has an outsourced input).

Who provides what: every live owner, as in ``protocols.models.logistic``, its rows clamped
into the job's box and mapped onto [−1, 1] at 2^-12 in the clear (plus the intercept
column), its labels and its local XᵀX. The outsourced owner's features and 0/1 label are
converted row by row (the helper masks every row under encryption, the owner's client
decrypts only masked values and seals an additive share to each party); inside MPC each
feature on the session's grid is mapped onto the unit grid by public constants,
u = (a·x − b) / 2^32 with a = 2^(12+32)/(10^D·half), b = mid·2^(12+32)/half (one
probabilistic truncation per value: u is within one unit of 2^-12 of the live owners' rint),
and its Gram UᵀU is one secure matrix product. No clamp is needed: the helper's admission
requires the job's box to contain the outsourced columns' declared bounds (it cannot clamp
ciphertexts), and the label to be declared an integer in [0, 1].

The DP release (noisy gradient descent) is ``protocols.he_logistic_dp``: the same
converted rows, their clipped gradient sum computed inside MPC at every step.

What is revealed: what ``logistic_regression`` reveals (the coefficients and the intercept;
to every party the one bit "the weights left the fixed point's range").
What leaks, and to whom: the helper, the outsourced row count (public in the catalog); the
owner's client, its masked rows (within 2^-40 each, ``outsource_rows``) and the job it
approves, nothing of the live owners'; every party, its additive shares; all, the
outsourced columns' scales to the session's grid (public in the catalog).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.he_outsourced import OutsourcedInput, converted_input
from protocols.io import Context, SecureOutput

PRECISION = 32  # extra bits of the public unit-grid constants before the truncation


async def _outsourced_rows(
    ctx: Context, sint: Any, hosted: OutsourcedInput, d: int, lower: np.ndarray, upper: np.ndarray
) -> tuple[Any, Any, int]:
    """The outsourced rows as the fits take them: X (n × (d+1), unit grid at 2^FX with the
    intercept column), y (n, 0/1), and n (public: the signed row count); converted once."""
    from protocols.models.logistic import FX
    from protocols.models.secure_math import shift

    mpc = ctx.mpc
    at_holder = ctx.index == hosted.position
    facts = [hosted.rows, *hosted.scales] if at_holder else None
    got = (await mpc.transfer(facts, senders=[hosted.position]))[0]
    rows, scales = int(got[0]), [int(v) for v in got[1:]]
    z = await converted_input(
        mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, True, sint, d + 1
    )
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    grid = 10**ctx.decimals
    a = [
        round((1 << (FX + PRECISION)) * s / (grid * h))
        for s, h in zip(scales[:d], half, strict=True)
    ]
    b = [round(m * (1 << (FX + PRECISION)) / h) for m, h in zip(mid, half, strict=True)]
    features = z[:d] * np.array(a, dtype=object).reshape(d, 1)
    features = features - np.array(b, dtype=object).reshape(d, 1)
    unit = shift(mpc, features, PRECISION)  # d × n at 2^FX, within [−2^FX − 1, 2^FX + 1]
    ones = sint.array(np.full((1, rows), 1 << FX, dtype=object))
    x = mpc.np_transpose(mpc.np_vstack([unit, ones]))
    return x, z[d], rows  # the label is declared an integer in [0, 1]: its own grid


async def _outsourced_design(
    ctx: Context, sint: Any, hosted: OutsourcedInput, d: int, lower: np.ndarray, upper: np.ndarray
) -> tuple[Any, Any, Any, int]:
    """The exact fit's outsourced input: X, y, XᵀX (one secure product) and n."""
    x, y, rows = await _outsourced_rows(ctx, sint, hosted, d, lower, upper)
    return x, y, ctx.mpc.np_matmul(ctx.mpc.np_transpose(x), x), rows


async def logistic_regression(ctx: Context) -> list[SecureOutput]:
    """``protocols.models.logistic.logistic_regression`` (exact) with one outsourced owner."""
    from protocols.models import inputs, keep
    from protocols.models.logistic import (
        BITS,
        FOUT,
        _design,
        _gram,
        fit_exact,
        raw_coefficients,
        ridge,
        steps_of,
    )
    from protocols.models.secure_math import as_fixed, feature_box

    mpc, hosted = ctx.mpc, ctx.outsourced
    lower, upper = feature_box(ctx.params)
    if ctx.dp:
        from protocols import he_logistic_dp

        return await he_logistic_dp.noisy_descent(ctx, lower, upper)
    sint = mpc.SecInt(BITS)
    d = lower.size + 1
    xs, ys, grams, rows = [], [], [], 0
    for position, owner in enumerate(ctx.owners):
        if owner == hosted.position:
            x, y, gram, n = await _outsourced_design(ctx, sint, hosted, lower.size, lower, upper)
        else:
            mine = inputs.is_owner_at(ctx, position)
            local_x = _design(ctx, lower, upper) if mine else None
            local_y = inputs.labels(ctx) if mine else None
            n = await inputs.announce(ctx, position, None if local_x is None else len(local_x))
            gram = inputs.share(
                ctx, position, sint, None if local_x is None else _gram(local_x), (d, d)
            )
            x = inputs.share(ctx, position, sint, local_x, (n, d))
            y = inputs.share(ctx, position, sint, local_y, (n,))
        rows += n
        xs.append(x)
        ys.append(y)
        grams.append(gram)
    ctx.progress("training", 0.3)
    gram_all = grams[0]
    for g in grams[1:]:
        gram_all = gram_all + g
    w = await fit_exact(
        mpc, mpc.np_vstack(xs), mpc.np_hstack(ys), gram_all, max(rows, 1),
        ridge(ctx.params), steps_of(ctx.params),
    )  # fmt: skip
    out = await as_fixed(mpc, raw_coefficients(mpc, w, lower, upper), FOUT)
    if keep.kept(ctx.params):
        return keep.keep_model(mpc, mpc.np_hstack([out[lower.size :], out[: lower.size]]))
    names = [f"coef[{j}]" for j in range(lower.size)] + ["intercept"]
    return [
        SecureOutput(name, out[i], on_value_scale=False, noisy=False)
        for i, name in enumerate(names)
    ]

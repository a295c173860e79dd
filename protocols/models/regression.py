"""Linear and ridge regression on rows held by several owners (horizontally partitioned).

Who provides what: each owner its rows, the same ``features`` (1 to 20 numeric columns,
in the job's order) and ``label`` columns; the public ridge penalty λ ≥ 0
(``params.ridge``, 0 for ordinary least squares; the intercept is never penalised).

What is computed: each owner, in its own engine and in the clear, its local sufficient
statistics of z = (x_1 … x_d, y) on the integer grid (value · 10^decimals): the count n,
the sums Σz and the upper triangle of Σ z zᵀ, exactly (``protocols.models.gram``). Each
owner secret-shares that one vector (its length depends only on d); MPC adds them as secure
integers, so the MPC work does not depend on the rows. Then, exact release:

- the statistics become fixed point (``FRAC_BITS`` fractional bits) scaled by public powers
  of two from the columns' declared bounds and the owners' row counts (the catalog's), so
  every entry is at most about 1 in magnitude;
- centred: S = Σ z zᵀ − Σz Σzᵀ / n (one secure reciprocal of n);
- the d × d system (S_xx + λ·I) β = S_xy is solved by Gauss–Jordan elimination on
  [S_xx + λI | S_xy | I] (``protocols.ports.linalg.gauss_jordan``, the Local_test port's);
  it gives β and (S_xx + λI)⁻¹ together;
- the intercept ȳ − β·x̄, the residual sum RSS = S_yy − β·S_xy, R² = 1 − RSS/S_yy and the
  squared standard errors σ̂²·(S_xx + λI)⁻¹_jj (intercept: σ̂²·(1/n + x̄ᵀ(S_xx + λI)⁻¹x̄)),
  σ̂² = RSS/(n − d − 1). For λ > 0 these are those of the penalised fit: RSS includes
  λ‖β‖² (see docs/models.md).

A singular system (a constant feature, collinear features, or n ≤ d + 1 rows) is found
inside MPC: every pivot of the elimination is compared with a threshold relative to its
column's diagonal, and n with d + 1; only one bit is opened — whether any of these tests
failed — and the job then fails with ``singular_system``, opening nothing else.

DP release (sufficient-statistics perturbation): the summed integers themselves are the
outputs, noised inside MPC before anything is opened, in five blocks: n; Σz; the upper
triangle of XᵀX (with λ·10^(2·decimals) added to its diagonal, a public constant); Xᵀy;
yᵀy. The analyst's client solves the noisy system (``protocols.models.solve``) and the
SDK draws the noise again to give each coefficient an interval.

What is revealed: exact — the d + 1 coefficients, their squared standard errors and R² to
the analyst, and to every party the one bit "the system is singular" (which is the job's
failure). DP — the noisy statistics above. What leaks: the owners' row counts and the
columns' declared bounds (public in the catalog), announced in the clear at the start.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition
from protocols.io import Context, SecureOutput
from protocols.models import keep
from protocols.models.gram import moments, triangle
from protocols.ports.linalg import gauss_jordan

FRAC_BITS = 48  # working precision of the solve: absolute resolution 2^-48 on scaled entries
# (in 2·FRAC_BITS bits: MPyC's fixed-point reciprocal is only right when l = 2f)
# A pivot at most this fraction of its column's (penalised) diagonal, or below PIVOT_FLOOR,
# is taken for zero: the features are collinear (or one is constant) at this precision.
PIVOT_RELATIVE = 1e-9
PIVOT_FLOOR = 2.0 ** -(FRAC_BITS - 8)
CROSS = "cross@decimals="  # the name says which grid an opened cross product is on


def width(ctx: Context) -> int:
    """d, the number of features (the same at every owner: the job's check)."""
    lists = ctx.input_role_lists[0] if ctx.input_role_lists else {}
    return len(lists["features"]) if "features" in lists else 1


def _z(ctx: Context) -> np.ndarray:
    """This owner's rows z = (features…, label) on the session's grid (int64)."""
    assert ctx.local is not None
    x = ctx.local.matrix("features", scaled=True)
    y = ctx.local.column("label", scaled=True)
    return np.column_stack([x, y]).astype(np.int64)


def _declared(ctx: Context) -> list[int]:
    """This owner's catalog row count and each z column's declared bound on the grid:
    public facts (the catalog publishes them), the same whatever the rows."""
    assert ctx.local is not None
    local = ctx.local
    columns = {c.name: c for c in local.source.columns}
    names = [*local.role_names("features"), local.name("label")]
    scale = 10**ctx.decimals
    bounds = [int(np.ceil(columns[n].abs_bound * scale)) for n in names]
    return [int(local.source.row_count()), *bounds]


async def _announced(ctx: Context, w: int) -> tuple[int, list[int]]:
    """(Σ catalog rows, per column the largest declared bound at any owner)."""
    mine = _declared(ctx) if ctx.local is not None else None
    got = await ctx.mpc.transfer(mine, senders=list(ctx.owners))
    rows = sum(int(g[0]) for g in got)
    bounds = [max(int(g[1 + j]) for g in got) for j in range(w)]
    return rows, bounds


async def _summed(ctx: Context, secint: Any, w: int) -> Any:
    """Every owner's (n, Σz, triangle of Σ z zᵀ), secret-shared and added (one vector)."""
    mpc = ctx.mpc
    size = 1 + w + w * (w + 1) // 2
    if ctx.local is not None:
        z = _z(ctx)
        bits = max(1, max(_declared(ctx)[1:]).bit_length())
        m = moments(z, bits)
        local = np.array([m.n, *m.sums, *m.cross], dtype=object)
    else:
        local = np.zeros(size, dtype=object)  # placeholder: only its shape is used
    ctx.progress("computing", 0.3)
    shared = mpc.input(secint.array(local), senders=list(ctx.owners))
    return mpc.np_sum(mpc.np_stack(shared), axis=0)


def _noisy(ctx: Context, total: Any, w: int) -> list[SecureOutput]:
    """The DP release: n, Σz, then the triangle of Σ z zᵀ in blocks XᵀX, Xᵀy, yᵀy, with
    the ridge penalty (on the grid) added to XᵀX's diagonal before the noise."""
    d = w - 1
    grid = 2 * ctx.decimals
    penalty = round(float(ctx.params.get("ridge", 0.0)) * 10**grid)
    pairs = triangle(w)
    cross = {jl: total[1 + w + i] for i, jl in enumerate(pairs)}
    out = [SecureOutput("n", total[0], on_value_scale=False)]
    out += [SecureOutput(f"sum[{j}]", total[1 + j]) for j in range(w)]
    for (j, col), v in cross.items():
        if j < d and col < d:
            v = v + penalty if j == col else v
            out.append(SecureOutput(f"{CROSS}{grid}[{j},{col}]", v, on_value_scale=False))
    out += [
        SecureOutput(f"{CROSS}{grid}[{j},{d}]", cross[(j, d)], on_value_scale=False)
        for j in range(d)
    ]
    out.append(SecureOutput(f"{CROSS}{grid}[{d},{d}]", cross[(d, d)], on_value_scale=False))
    return out


def _pow2(x: Any, k: int) -> Any:
    """x · 2^k for a public k, in steps whose constants are exact in fixed point."""
    step = FRAC_BITS // 2
    while k < -step:
        x, k = x * 2.0**-step, k + step
    while k > step:
        x, k = x * 2**step, k - step
    return x * 2.0**k if k < 0 else x * 2**k


async def linear_regression(ctx: Context) -> list[SecureOutput]:
    if ctx.outsourced is not None:  # an outsourced owner's rows: converted, Gram in MPC
        from protocols import he_regression

        return await he_regression.linear_regression(ctx)
    mpc = ctx.mpc
    d = width(ctx)
    w = d + 1
    rows, bounds = await _announced(ctx, w)
    secint = mpc.SecInt(ctx.bit_length)
    total = await _summed(ctx, secint, w)
    if ctx.dp:
        return _noisy(ctx, total, w)
    return await solved(ctx, total, rows, bounds)


async def solved(ctx: Context, total: Any, rows: int, bounds: list[int]) -> list[SecureOutput]:
    """The exact release from the summed statistics ``total`` (secure integers: n, Σz, the
    triangle of Σ z zᵀ), ``rows`` a public bound on n and ``bounds`` public bounds on every
    |z_j| on the grid (also the vertical regression's, ``protocols.models.vertical``)."""
    mpc = ctx.mpc
    w = len(bounds)
    d = w - 1
    ctx.progress("solving", 0.5)
    r = max(1, rows.bit_length())
    e = [max(1, b.bit_length()) for b in bounds]  # 2^e_j ≥ every |z_j| on the grid
    # Wide enough for the raw sums, only to scale them by public powers of two (exact);
    # then the working type, whose 2·FRAC_BITS bits MPyC's reciprocal needs.
    wide = mpc.SecFxp(ctx.bit_length + FRAC_BITS + 8, FRAC_BITS)
    fx = mpc.SecFxp(2 * FRAC_BITS, FRAC_BITS)
    raw = mpc.convert(mpc.np_tolist(total), wide)
    pairs = triangle(w)
    shifts = [r] + [r + e[j] for j in range(w)] + [r + e[j] + e[col] for j, col in pairs]
    scaled = mpc.convert([_pow2(v, -k) for v, k in zip(raw, shifts, strict=True)], fx)
    n_hat = scaled[0]
    t = mpc.np_fromlist(scaled[1 : 1 + w])
    q = [[None] * w for _ in range(w)]
    for i, (j, col) in enumerate(pairs):
        q[j][col] = q[col][j] = scaled[1 + w + i]
    inv_n = 1 / n_hat
    mean = t * inv_n
    s = mpc.np_fromlist([v for row in q for v in row]).reshape(w, w) - mpc.np_outer(t, mean)
    ridge = float(ctx.params.get("ridge", 0.0)) * 10 ** (2 * ctx.decimals)
    penalty = np.array([ridge / 2.0 ** (r + 2 * e[j]) for j in range(d)])
    m = s[:d, :d] + np.diag(penalty)
    aug = mpc.np_hstack((m, s[:d, d:], fx.array(np.eye(d))))
    reduced, pivots = gauss_jordan(mpc, aug, d)
    await _check_singular(ctx, fx, total[0], mpc.np_fromlist(pivots), m, w)
    ctx.progress("solving", 0.8)
    gamma, m_inv = reduced[:, d], reduced[:, d + 1 :]
    rss = s[d, d] - mpc.np_sum(gamma * s[:d, d])
    r2 = 1 - rss * (1 / (s[d, d] + PIVOT_FLOOR))
    sigma2 = rss * (1 / (n_hat - w * 2.0**-r))
    out_scale = 10**-ctx.decimals
    intercept = (mean[d] - mpc.np_sum(gamma * mean[:d])) * (2 ** e[d] * out_scale)
    coefs = [intercept] + [_pow2(gamma[j], e[d] - e[j]) for j in range(d)]
    if keep.kept(ctx.params):  # kept secret-shared: nothing else is computed or opened
        return keep.keep_model(mpc, coefs)
    quad = mpc.np_sum(mean[:d] * mpc.np_matmul(m_inv, mean[:d]))
    se2 = [_pow2(sigma2 * (inv_n + quad), 2 * e[d] - r) * out_scale**2]
    se2 += [_pow2(sigma2 * m_inv[j, j], 2 * (e[d] - e[j]) - r) for j in range(d)]
    out = [SecureOutput(f"coef[{j}]", c, False, noisy=False) for j, c in enumerate(coefs)]
    out += [SecureOutput(f"se2[{j}]", v, False, noisy=False) for j, v in enumerate(se2)]
    out.append(SecureOutput("r2", r2, False, noisy=False))
    return out


async def _check_singular(ctx: Context, fx: Any, n: Any, pivots: Any, m: Any, w: int) -> None:
    """Open one bit: is any pivot ~0 (relative to its column's diagonal) or n ≤ d + 1? Then
    the job fails with singular_system, before anything else is opened."""
    mpc = ctx.mpc
    diagonal = mpc.np_fromlist([m[k, k] for k in range(w - 1)])
    small = pivots <= diagonal * PIVOT_RELATIVE + PIVOT_FLOOR
    too_few = mpc.convert(n <= w, fx)
    bad = mpc.np_sum(small) + too_few
    if not await mpc.is_zero_public(bad):
        raise FailedPrecondition(
            "the regression's system is singular: a feature is constant, features are "
            "collinear, or there are no more rows than coefficients (nothing else was "
            "opened); drop or combine the features, or set params.ridge > 0",
            reason="singular_system",
        )

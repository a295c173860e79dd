"""Linear and ridge regression on rows held by several owners (horizontally partitioned).

Who provides what: each owner its rows, the same ``features`` (1 to 20 numeric columns,
in the job's order) and ``label`` columns; the public ridge penalty λ ≥ 0
(``params.ridge``, 0 for ordinary least squares; the intercept is never penalised).

What is computed: each owner, in its own engine and in the clear, its local sufficient
statistics of z = (x_1 … x_d, y) on the integer grid (value · 10^decimals): the count n,
the sums Σz and the upper triangle of Σ z zᵀ, exactly (``protocols.models.gram``). Each
owner secret-shares that one vector (its length depends only on d); MPC adds them as secure
integers, so the MPC work does not depend on the rows. Then, exact release:

- the statistics become fixed point (``FRAC_BITS`` = 64 fractional bits) scaled by public powers
  of two from the columns' declared bounds and the owners' row counts (the catalog's), so
  every entry is at most about 1 in magnitude;
- centred: S = Σ z zᵀ − Σz Σzᵀ / n (one secure reciprocal of n);
- the d × d system (S_xx + λ·I) β = S_xy is solved through (S_xx + λI)⁻¹, computed by
  Newton–Schulz iteration (``protocols.models.ns_solve``: matrix products only, a public
  number of steps, truncations by pre-shared random pairs), then β = (S_xx + λI)⁻¹ S_xy;
- the intercept ȳ − β·x̄, the residual sum RSS = S_yy − β·S_xy, R² = 1 − RSS/S_yy and the
  squared standard errors σ̂²·(S_xx + λI)⁻¹_jj (intercept: σ̂²·(1/n + x̄ᵀ(S_xx + λI)⁻¹x̄)),
  σ̂² = RSS/(n − d − 1). For λ > 0 these are those of the penalised fit: RSS includes
  λ‖β‖² (see docs/models.md).

A singular system (a constant feature, collinear features, or n ≤ d + 1 rows) is found
inside MPC: the iteration's residual ‖I − BY‖²_F is compared with a threshold (a singular or
too ill-conditioned system does not converge, ``ns_solve``), and n with d + 1; only one bit
is opened — whether either test failed — and the job then fails with ``singular_system``,
opening nothing else.

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
from protocols.models import keep, ns_solve
from protocols.models.gram import moments, triangle

# Working precision of the solve: absolute resolution 2^-64 on scaled entries (every entry
# at most 1 by the declared bounds). The Newton–Schulz inverse's error is absolute, about
# ‖(S_xx + λI)⁻¹‖ times that resolution in the scaled units, so data far inside its declared
# bounds (tiny scaled variances) needs the bits: at 2^-48 a per-key sum regression lost 1e-6.
FRAC_BITS = 64
KEPT_FRAC = 48  # a kept model's coefficients (SecFxp(96, 48)): what predict computes in
# Added to n·S_yy (scaled) before R²'s reciprocal, so that a constant label divides by no
# zero (its R² is meaningless): a bias of YY_FLOOR / (n·S_yy) in 1 − R², below the working
# resolution. The reciprocal rides in the solve, which inverts down to about 2^-34 of the
# scale: R² is right when the label's spread is at least ~2^-17 of its declared bound.
YY_FLOOR = 2.0**-60
CROSS = "cross@decimals="  # the name says which grid an opened cross product is on


def width(ctx: Context) -> int:
    """d, the number of features (the same at every owner: the job's check)."""
    lists = ctx.input_role_lists[0] if ctx.input_role_lists else {}
    return len(lists["features"]) if "features" in lists else 1


def _z(ctx: Context) -> np.ndarray:
    """This owner's rows z = (features…, label) on the session's grid (int64)."""
    assert ctx.local is not None
    refs = [f"features[{j}]" for j in range(len(ctx.local.role_names("features")))]
    cols = ctx.local.columns_of([*refs, "label"], scaled=True)  # one read of the rows
    z = np.empty((cols[-1].shape[0], len(cols)), dtype=np.int64)
    for j, col in enumerate(cols):
        z[:, j] = col
    return z


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
    fx = mpc.SecFxp(2 * FRAC_BITS, FRAC_BITS)  # 2·FRAC_BITS bits: the solve's working type
    pairs = triangle(w)
    shifts = [r] + [r + e[j] for j in range(w)] + [r + e[j] + e[col] for j, col in pairs]
    scaled = await _scaled(mpc, fx, total, shifts)
    n_hat = scaled[0]
    t = scaled[1 : 1 + w]
    where = np.zeros((w, w), dtype=int)
    for i, (j, col) in enumerate(pairs):
        where[j, col] = where[col, j] = 1 + w + i
    ridge = float(ctx.params.get("ridge", 0.0)) * 10 ** (2 * ctx.decimals)
    penalty = np.array([ridge / 2.0 ** (r + 2 * e[j]) for j in range(d)])
    a = await _centred(mpc, fx, scaled, where, penalty)
    m = a[:d, :d]  # n(S_xx + λI)
    # The divisions the outputs need ride along in the solve as 1 × 1 blocks (no MPyC
    # reciprocal): 1/n, 1/(n − d − 1) and 1/(n·S_yy) (scaled; S_yy floored, and not part of
    # the convergence check: a constant label only makes R² meaningless).
    scalars = [n_hat, n_hat - w * 2.0**-r, a[d, d] + YY_FLOOR]
    # Every diagonal entry of m is at most 1 + its penalty (the declared bounds), and each
    # scalar at most 1, so the eigenvalues are at most the sum: the solve's public scale.
    m_inv_a, inverses, residual = await ns_solve.inverse(
        mpc,
        fx,
        m,
        scalars,
        [True, True, False],
        float(w + 2 + penalty.sum()),
        ns_solve.iterations(),
    )
    inv_n, inv_dof, inv_syy = (inverses[i] for i in range(3))
    await _check_singular(ctx, residual, total[0], w)
    ctx.progress("solving", 0.8)
    gamma = mpc.np_matmul(m_inv_a, a[:d, d])  # β on the scaled columns: n cancels
    m_inv = m_inv_a * n_hat  # (S_xx + λI)⁻¹ in the scaled units
    mean = t * inv_n
    rss_n = a[d, d] - mpc.np_sum(gamma * a[:d, d])  # n·RSS, scaled
    r2 = 1 - rss_n * inv_syy
    sigma2 = rss_n * inv_n * inv_dof
    out_scale = 10**-ctx.decimals
    intercept = (mean[d] - mpc.np_sum(gamma * mean[:d])) * (2 ** e[d] * out_scale)
    coefs = [intercept] + [_pow2(gamma[j], e[d] - e[j]) for j in range(d)]
    if keep.kept(ctx.params):  # kept secret-shared: nothing else is computed or opened
        return keep.keep_model(mpc, mpc.convert(coefs, mpc.SecFxp(2 * KEPT_FRAC, KEPT_FRAC)))
    quad = mpc.np_sum(mean[:d] * mpc.np_matmul(m_inv, mean[:d]))
    se2 = [_pow2(sigma2 * (inv_n + quad), 2 * e[d] - r) * out_scale**2]
    se2 += [_pow2(sigma2 * m_inv[j, j], 2 * (e[d] - e[j]) - r) for j in range(d)]
    out = [SecureOutput(f"coef[{j}]", c, False, noisy=False) for j, c in enumerate(coefs)]
    out += [SecureOutput(f"se2[{j}]", v, False, noisy=False) for j, v in enumerate(se2)]
    out.append(SecureOutput("r2", r2, False, noisy=False))
    return out


async def _scaled(mpc: Any, fx: Any, total: Any, shifts: list[int]) -> Any:
    """total_i / 2^shifts_i as one ``fx`` array (every |total_i| ≤ 2^shifts_i, so every
    entry at most 1): into ``fx``'s field as integers (one conversion), each multiplied by
    the public 2^(top − shifts_i) so that one truncation by top − FRAC_BITS bits (pre-shared
    pairs, ``ns_solve``) puts all of them at 2^FRAC_BITS, read as fixed point in place."""
    sint = mpc.SecInt(fx.bit_length + fx.frac_length)  # fx's field, as integers
    top = max(shifts)
    ints = mpc.np_fromlist(mpc.convert(mpc.np_tolist(total), sint))
    widened = ints * np.array([1 << (top - k) for k in shifts], dtype=object)  # |v| ≤ 2^top
    if top <= FRAC_BITS:
        at_f = widened * (1 << (FRAC_BITS - top))
    else:
        pairs = ns_solve.PairTruncator(mpc, sint, top - FRAC_BITS, top + 2)
        pairs.prepare(len(shifts))
        at_f = await pairs.truncate(widened)
    return fx.array(await mpc.gather(at_f), integral=False)


async def _centred(mpc: Any, fx: Any, scaled: Any, where: np.ndarray, penalty: np.ndarray) -> Any:
    """a = n·S in units of 2^(2r + e_j + e_l) — n·Σ z zᵀ − Σz Σzᵀ, no division by n (every
    entry at most 1 in magnitude by the declared bounds; the solve needs no 1/n, n cancels)
    — with n·λ_j on the features' diagonal: exact products of the integer views at 2^(2f),
    one truncation by pre-shared pairs (``ns_solve``), no random bits."""
    f = fx.frac_length
    sint = mpc.SecInt(fx.bit_length + f)
    v = sint.array(await mpc.gather(scaled))  # the same shares, as integers at 2^f
    n, t = v[0:1], v[1 : where.shape[0] + 1]  # n as a 1-element array: it broadcasts
    d = penalty.size
    ridge = np.zeros(where.shape, dtype=object)
    ridge[np.arange(d), np.arange(d)] = [round(p * (1 << f)) for p in penalty]
    pairs = ns_solve.PairTruncator(mpc, sint, f, 2 * f + 4)
    pairs.prepare(where.size)
    wide = v[where] * n - mpc.np_outer(t, t) + n * ridge  # at 2^(2f), exact
    return fx.array(await mpc.gather(await pairs.truncate(wide)), integral=False)


async def _check_singular(ctx: Context, residual: Any, n: Any, w: int) -> None:
    """Open one bit: did the solve not converge (a singular or too ill-conditioned system,
    ``ns_solve``), or is n ≤ d + 1? Then the job fails with singular_system, before
    anything else is opened."""
    mpc = ctx.mpc
    sint = type(residual)
    bad = ns_solve.diverged(residual, FRAC_BITS) + mpc.convert(n <= w, sint)
    if not await mpc.is_zero_public(bad):
        raise FailedPrecondition(
            "the regression's system is singular: a feature is constant, features are "
            "collinear, or there are no more rows than coefficients (nothing else was "
            "opened); drop or combine the features, or set params.ridge > 0",
            reason="singular_system",
        )

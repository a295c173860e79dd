"""The horizontal ridge regression with an outsourced owner: its rows converted from BFV
into secret shares (``ensnif_mpc/he/outsource_rows.py``), its Gram matrix computed inside
MPC, and then the same solve as every owner's (``protocols.models.regression``).

Who provides what: every live owner, as in ``protocols.models.regression``, its local
(n, Σz, upper triangle of Σ z zᵀ) of z = (features…, label) on the session's grid, exactly,
computed in the clear in its own engine. The outsourced owner runs no node: the helper that
stores its ciphertexts plays its position. The helper masks every row of each converted
column under encryption (r_i uniform in [B, t − B), noise flooded) and leaves the masked
batch for the owner's client, which decrypts only masked values m_i = x_i + r_i, splits
them into additive shares and seals one to each party; each party inputs its share, the
helper its share minus r. The MPC then holds the outsourced rows Z (columns × rows) as
secure integers, scales each column to the session's grid (a public power of ten), and
computes n (public: the signed row count), Σz = Z·1 and ZZᵀ with one secure matrix
product (``mpc.np_matmul``: local products, one resharing per entry of the w × w
result), adds them to the live owners' statistics and solves as for any owner.

Why the Gram in MPC, not under BFV at the helper: the helper would have to multiply
ciphertexts (ct_j ⊗ ct_l slot-wise, then add the chunks), which needs the owner's
relinearization key or size-3 ciphertexts, and one product eats most of the noise budget
at these parameters (q ≈ 2^180 of data modulus, t ≈ 2^58): measured, a fresh ciphertext
has 114 bits of invariant noise budget and one product leaves 44
(tests/unit/ensnif_mpc/he_outsource/test_he_rows_regression.py). The 2^100 noise flooding
that hides the helper's computation and masks from the owner's decryption
(``bfv.flooded``) spends 100 bits, so it no longer fits: the owner's decryption of a
product would either leak the helper's masks through the noise (no flooding) or fail (with
it). A larger ring (N = 16384) would mean a second parameter set and re-encrypting every
dataset. The product's cost in MPC is what the bench measures (bench/he_outsource.py
``--ridge-only``): local arithmetic on shares and w(w+1)/2 resharings, independent of
the values.

What is revealed: what the regression reveals (its docstring): the coefficients, their
squared standard errors and R² (exact release), or the noisy statistics (DP); and to every
party the one bit "the system is singular".

What leaks, and to whom:
* the helper: the outsourced row count n (public in the catalog) and nothing about a
  value (BFV is IND-CPA; its additive share is independent of the rows);
* the owner's client: m_i = x_i + r_i per row, within statistical distance 2B/(t − 2B) <
  2^-40 of a value independent of x_i (B the column's bound on its grid, below 2^17:
  checked at admission, ``he_sum_out_of_range`` otherwise), and the flooded noise; it
  receives nothing of the live owners' data;
* every other party: its additive share of each row (uniform within 2^-64);
* the owners' declared bounds and row counts, and each outsourced column's scale to the
  session's grid, announced in the clear at the start (all public in the catalog).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.he_outsourced import OutsourcedInput, converted_input
from protocols.io import Context, SecureOutput
from protocols.models import regression
from protocols.models.gram import moments, triangle


def _declared(ctx: Context, hosted: OutsourcedInput, w: int) -> list[int] | None:
    """What this owner announces: its catalog rows and each z column's bound on the grid,
    and (the outsourced position) each converted column's scale to the session's grid."""
    if ctx.local is not None:
        return [*regression._declared(ctx), *([1] * w)]
    if ctx.index == hosted.position:
        return [hosted.rows, *hosted.bounds, *hosted.scales]
    return None


async def _live_statistics(ctx: Context, secint: Any, hosted: OutsourcedInput, w: int) -> Any:
    """The live owners' (n, Σz, triangle of Σ z zᵀ), secret-shared and added; None if the
    outsourced owner is the only one."""
    mpc = ctx.mpc
    live = [o for o in ctx.owners if o != hosted.position]
    if not live:
        return None
    size = 1 + w + w * (w + 1) // 2
    local = np.zeros(size, dtype=object)  # placeholder: only its shape is used
    if ctx.local is not None:
        z = regression._z(ctx)
        bits = max(1, max(regression._declared(ctx)[1:]).bit_length())
        m = moments(z, bits)
        local = np.array([m.n, *m.sums, *m.cross], dtype=object)
    shared = mpc.input(secint.array(local), senders=live)
    total = shared[0]
    for part in shared[1:]:
        total = total + part
    return total


async def outsourced_statistics(
    ctx: Context, secint: Any, hosted: OutsourcedInput, w: int, rows: int, scales: list[int]
) -> Any:
    """The outsourced owner's (n, Σz, triangle of Σ z zᵀ) from its converted rows: Z is
    w × rows; Σz its row sums, the triangle from one secure product Z·Zᵀ."""
    mpc = ctx.mpc
    z = await converted_input(
        mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, True, secint, w
    )
    if any(s != 1 for s in scales):
        z = z * np.array(scales, dtype=object).reshape(w, 1)
    ctx.progress("computing", 0.4)
    gram = mpc.np_matmul(z, mpc.np_transpose(z))
    sums = mpc.np_sum(z, axis=1)
    cross = [gram[j, col] for j, col in triangle(w)]
    return mpc.np_hstack(
        (secint.array(np.array([rows], dtype=object)), sums, mpc.np_fromlist(cross))
    )


async def linear_regression(ctx: Context) -> list[SecureOutput]:
    """``protocols.models.regression.linear_regression`` when one owner is outsourced."""
    mpc = ctx.mpc
    hosted = ctx.outsourced
    w = regression.width(ctx) + 1
    got = await mpc.transfer(_declared(ctx, hosted, w), senders=list(ctx.owners))
    rows = sum(int(g[0]) for g in got)
    bounds = [max(int(g[1 + j]) for g in got) for j in range(w)]
    at = ctx.owners.index(hosted.position)
    outsourced_rows, scales = int(got[at][0]), [int(v) for v in got[at][1 + w :]]
    secint = mpc.SecInt(ctx.bit_length)
    ctx.progress("computing", 0.2)
    live = await _live_statistics(ctx, secint, hosted, w)
    total = await outsourced_statistics(ctx, secint, hosted, w, outsourced_rows, scales)
    if live is not None:
        total = total + live
    if ctx.dp:
        return regression._noisy(ctx, total, w)
    return await regression.solved(ctx, total, rows, bounds)

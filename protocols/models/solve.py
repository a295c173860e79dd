"""Least squares from sufficient statistics, in the clear: the plaintext reference's solve,
the DP release's finalize (the analyst's client solves the noisy system) and the SDK's
intervals (the same solve over many noise draws at once, batched over leading axes).

Given n, the sums Σz and the cross products Σ z zᵀ of z = (x_1 … x_d, y) in real units
(the ridge penalty, where there is one, already on XᵀX's diagonal), with the intercept
unpenalised:

    S = Σ z zᵀ − Σz Σzᵀ / n          (centred)
    β = S_xx⁻¹ S_xy,  β₀ = ȳ − β·x̄
    RSS = S_yy − β·S_xy,  R² = 1 − RSS / S_yy,  σ̂² = RSS / (n − d − 1)
    se²(β_j) = σ̂² (S_xx⁻¹)_jj,  se²(β₀) = σ̂² (1/n + x̄ᵀ S_xx⁻¹ x̄)

For a ridge fit (S_xx holding λI) RSS is the penalised residual RSS + λ‖β‖², and R² and the
standard errors follow from it (docs/models.md). Where the system is singular or not
positive definite (a noisy release can make it so), or n ≤ d + 1, every number is NaN.
"""

from __future__ import annotations

import numpy as np

from protocols.models.gram import triangle


def unpack(cross: np.ndarray, width: int) -> np.ndarray:
    """The symmetric width × width matrices from their upper triangles (last axis)."""
    out = np.empty((*cross.shape[:-1], width, width))
    for i, (j, col) in enumerate(triangle(width)):
        out[..., j, col] = out[..., col, j] = cross[..., i]
    return out


def solve(n: np.ndarray, sums: np.ndarray, cross: np.ndarray) -> dict[str, np.ndarray]:
    """coef (…, d+1: intercept first), se2 (…, d+1) and r2 (…) from n (…), sums (…, d+1)
    and the upper triangles of Σ z zᵀ (…, (d+1)(d+2)/2)."""
    n = np.asarray(n, dtype=float)
    sums = np.asarray(sums, dtype=float)
    w = sums.shape[-1]
    d = w - 1
    q = unpack(np.asarray(cross, dtype=float), w)
    valid = n > w
    safe_n = np.where(valid, n, 1.0)
    mean = sums / safe_n[..., None]
    s = q - sums[..., :, None] * mean[..., None, :]
    sxx, sxy, syy = s[..., :d, :d], s[..., :d, d], s[..., d, d]
    with np.errstate(all="ignore"):
        eig = np.linalg.eigvalsh(sxx)
        valid = valid & (eig.min(axis=-1) > 0) & np.isfinite(eig).all(axis=-1)
        eye = np.eye(d)
        fixed = np.where(valid[..., None, None], sxx, eye)  # a solvable stand-in, masked below
        inv = np.linalg.inv(fixed)
        beta = np.einsum("...jk,...k->...j", inv, sxy)
        rss = syy - np.einsum("...j,...j->...", beta, sxy)
        r2 = 1 - rss / syy
        sigma2 = rss / (safe_n - w)
        quad = np.einsum("...j,...jk,...k->...", mean[..., :d], inv, mean[..., :d])
        intercept = mean[..., d] - np.einsum("...j,...j->...", beta, mean[..., :d])
        se2 = np.concatenate(
            [
                (sigma2 * (1 / safe_n + quad))[..., None],
                sigma2[..., None] * np.diagonal(inv, axis1=-2, axis2=-1),
            ],
            axis=-1,
        )
    coef = np.concatenate([intercept[..., None], beta], axis=-1)
    nan = np.nan
    return {
        "coef": np.where(valid[..., None], coef, nan),
        "se2": np.where(valid[..., None], se2, nan),
        "r2": np.where(valid, r2, nan),
    }


def from_rows(x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> dict[str, np.ndarray]:
    """The same numbers from the rows themselves (float64): the plaintext reference."""
    z = np.column_stack([x, y]).astype(float)
    w = z.shape[1]
    gram = z.T @ z
    gram[: w - 1, : w - 1] += ridge * np.eye(w - 1)
    cross = np.array([gram[j, col] for j, col in triangle(w)])
    return solve(np.asarray(float(len(z))), z.sum(axis=0), cross)

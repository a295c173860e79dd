"""k-means (Lloyd's iterations, a fixed number of them) on rows held by several owners.

Who provides what: each owner its feature rows, clamped into the public box
``params.lower``/``params.upper`` and mapped onto [0, 1] at resolution 2^-12 locally; the
public initial centroids (``params.initial``, k·d numbers row by row, in the features'
units) or a public ``params.seed`` from which every party draws them uniformly in the box.

Exact release: centroids secret throughout. Per iteration, in MPC: the scores
‖c‖² − 2x·c of every row against every centroid (one secret product of the n × d rows by
the d × k centroids; ‖x‖² is the same for every centroid and not needed), a secure argmin
per row (k − 1 comparisons, as unit vectors), per-cluster counts and sums (one product),
and the division sums/counts in fixed point (a cluster left empty keeps its centroid).
Two routes (``ensnif_mpc.jobs.join_path.choose``, named in the manifest): a session of two
owners and one helper with t = 1 runs the iterations in Z_2^64 between the owners with the
helper as dealer (``protocols.models.kmeans_ring``: the same scores, argmin, sums and, in
MPyC, the same :func:`divide`); any other session runs them here, all in MPyC, and so
does a job with an outsourced owner (``protocols.he_kmeans`` says why), exact or DP.

DP release: the centroids are public at every iteration. Each owner assigns its own rows
to the nearest public centroid locally and sums counts and features per cluster; MPC adds
the owners' sums and opens them with noise (two blocks per iteration: counts, then sums;
``protocols.rounds``); every party divides in the clear. No comparison runs in MPC.

What is revealed: exact — the final centroids and cluster sizes (to the analyst); DP —
every iteration's noisy counts and sums, and the centroids from them. What leaks: the
owners' row counts (public in the catalog); no row's cluster is ever opened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.io import Context, SecureOutput
from protocols.models import inputs
from protocols.models.secure_math import (
    as_fixed,
    as_int,
    box_grid,
    feature_box,
    public_vector,
    shift,
)

FK = 12  # rows on the box grid: [0, 2^12]
FC = 8  # centroids carry 8 more fractional bits: scale 2^(FK+FC)
# SecInt(96) shares its field with SecFxp(64, 32), the division's type: sums of up to 2^19
# rows on the grid fit its 32 integer bits; scores reach d·2^41.
BITS = 96
DIV_FRAC = 32
FOUT = 20  # released centroids, in the features' units
DP_BITS = 112


def clusters(params: Mapping[str, Any]) -> int:
    return int(params["k"])


def iterations(params: Mapping[str, Any]) -> int:
    return int(params.get("iterations", 10))


def initial_centroids(
    params: Mapping[str, Any], lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """The public initial centroids (k × d, features' units): given, or drawn from the seed."""
    k, d = clusters(params), lower.size
    given = params.get("initial")
    if given is not None:
        c = np.asarray(given, dtype=float)
        if c.size != k * d:
            raise InvalidJobSpec(f"params.initial: expected k·d = {k * d} numbers, got {c.size}")
        return c.reshape(k, d)
    rng = np.random.default_rng(int(params.get("seed", 0)))
    drawn: np.ndarray = lower + rng.uniform(size=(k, d)) * (upper - lower)
    return drawn


def check_params(params: Mapping[str, Any]) -> None:
    lower, upper = feature_box(params)
    if clusters(params) < 2:
        raise InvalidJobSpec("params.k: at least 2 clusters")
    if iterations(params) < 1:
        raise InvalidJobSpec("params.iterations: at least 1")
    initial_centroids(params, lower, upper)


def to_grid(c: np.ndarray, lower: np.ndarray, upper: np.ndarray, bits: int) -> np.ndarray:
    """Centroids in the features' units → on [0, 1] at 2^-bits (exact integers)."""
    unit = np.clip((c - lower) / (upper - lower), 0.0, 1.0)
    return np.array([[round(v * (1 << bits)) for v in row] for row in unit], dtype=object)


# -- the exact iterations, on secure arrays ----------------------------------------------------


def assign(mpc: Any, x: Any, c: Any) -> Any:
    """One-hot nearest centroid per row (n × k) of rows x (n × d, at 2^FK) to centroids c
    (k × d, at 2^(FK+FC)): argmin of ‖c‖² − 2x·c, all at 2^(2FK+2FC)."""
    norms = (c * c).sum(axis=1)
    scores = norms - (x @ c.T) * (2 << FC)
    return mpc.np_argmin(scores, axis=1, arg_unary=True)


async def update(mpc: Any, x: Any, onehot: Any, c: Any) -> tuple[Any, Any]:
    """New centroids (at 2^(FK+FC)) and the cluster sizes."""
    counts = onehot.sum(axis=0)
    sums = onehot.T @ x  # k × d, at 2^FK
    return await divide(mpc, sums, counts, c), counts


async def divide(mpc: Any, sums: Any, counts: Any, c: Any) -> Any:
    """sums / counts at 2^(FK+FC) from the per-cluster sums (k × d, at 2^FK) and counts
    (secure integers); a cluster left empty keeps its centroid ``c``. Both routes."""
    sint = type(c).sectype
    empty = counts == 0
    safe = counts + empty
    k, d = sums.shape
    num = await as_fixed(mpc, sums * (1 << DIV_FRAC), DIV_FRAC)
    den = await as_fixed(mpc, (safe * (1 << DIV_FRAC)).reshape(k, 1), DIV_FRAC)
    quotient = await as_int(mpc, sint, num / den)  # grid units at 2^DIV_FRAC
    moved = shift(mpc, quotient, DIV_FRAC - FC)
    keep = empty.reshape(k, 1)
    return moved + keep * (c - moved)


async def kmeans_exact(
    mpc: Any, x: Any, c0: np.ndarray, steps: int, progress: Any = None
) -> tuple[Any, Any]:
    sint = type(x).sectype
    c = sint.array(c0)
    counts = None
    for t in range(steps):
        onehot = assign(mpc, x, c)
        c, counts = await update(mpc, x, onehot, c)
        if progress is not None:
            progress("training", 0.1 + 0.8 * (t + 1) / steps)
    return c, counts


def to_units(mpc: Any, c: Any, lower: np.ndarray, upper: np.ndarray) -> Any:
    """Centroids from the box grid (2^(FK+FC)) to the features' units at 2^FOUT."""
    span = public_vector(upper - lower, FOUT)
    scaled = shift(mpc, c * span, FK + FC)
    return scaled + public_vector(lower, FOUT)


async def kmeans(ctx: Context) -> list[SecureOutput]:
    from protocols.models import kmeans_ring  # it imports this module

    if ctx.outsourced is not None:  # an outsourced owner's rows: converted, all in MPyC
        from protocols import he_kmeans

        return await he_kmeans.kmeans(ctx)
    lower, upper = feature_box(ctx.params)
    d = lower.size
    c0 = initial_centroids(ctx.params, lower, upper)
    if ctx.dp:
        return await _noisy_lloyd(ctx, lower, upper, c0)
    mpc = ctx.mpc
    sint = mpc.SecInt(BITS)
    grid_c0 = to_grid(c0, lower, upper, FK + FC)
    if kmeans_ring.route(len(mpc.parties), mpc.threshold, len(ctx.owners)) == kmeans_ring.ROUTE:
        rows = box_grid(inputs.features(ctx), lower, upper, FK) if ctx.local is not None else None
        c, counts = await kmeans_ring.kmeans_ring(
            ctx, rows, np.asarray(grid_c0, dtype=np.int64), iterations(ctx.params)
        )
        return await _release(mpc, c, counts, lower, upper)
    parts = []
    for position in range(len(ctx.owners)):
        mine = inputs.is_owner_at(ctx, position)
        x = box_grid(inputs.features(ctx), lower, upper, FK).astype(object) if mine else None
        n = await inputs.announce(ctx, position, None if x is None else len(x))
        parts.append(inputs.share(ctx, position, sint, x, (n, d)))
    x_all = mpc.np_vstack(parts)
    c, counts = await kmeans_exact(mpc, x_all, grid_c0, iterations(ctx.params), ctx.progress)
    return await _release(mpc, c, counts, lower, upper)


async def _release(
    mpc: Any, c: Any, counts: Any, lower: np.ndarray, upper: np.ndarray
) -> list[SecureOutput]:
    """The exact release: the final centroids (features' units) and the cluster sizes."""
    k, d = c.shape
    centroids = await as_fixed(mpc, to_units(mpc, c, lower, upper), FOUT)
    out = []
    for j in range(k):
        out += [SecureOutput(f"centroid[{j},{i}]", centroids[j, i], False, False) for i in range(d)]
    out += [SecureOutput(f"size[{j}]", counts[j], False, False) for j in range(k)]
    return out


# -- DP: noisy Lloyd iterations ----------------------------------------------------------------


def local_stats(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An owner's per-cluster counts and sums (box-grid integers) against public centroids
    ``c`` (on the same grid, floats): its local step, in the clear."""
    k = c.shape[0]
    if x.shape[0] == 0:
        return np.zeros(k, dtype=object), np.zeros(k * x.shape[1], dtype=object)
    d2 = ((x[:, None, :].astype(float) - c[None, :, :]) ** 2).sum(axis=2)
    nearest = np.argmin(d2, axis=1)
    counts = np.bincount(nearest, minlength=k)
    sums = np.zeros(c.shape, dtype=np.int64)
    np.add.at(sums, nearest, x)
    return counts.astype(object), np.array([int(v) for v in sums.ravel()], dtype=object)


def noisy_centroids(counts: np.ndarray, sums: np.ndarray, c: np.ndarray) -> np.ndarray:
    """sums/counts where the noisy count is at least 1 (else the centroid stays), clamped
    into the box grid: public post-processing."""
    k, d = c.shape
    n = np.asarray(counts, dtype=float).reshape(k, 1)
    s = np.asarray(sums, dtype=float).reshape(k, d)
    moved = np.clip(s / np.maximum(n, 1.0), 0, 1 << FK)
    return np.where(n >= 1, moved, c)


async def _noisy_lloyd(
    ctx: Context, lower: np.ndarray, upper: np.ndarray, c0: np.ndarray
) -> list[SecureOutput]:
    mpc, rounds = ctx.mpc, ctx.rounds
    assert rounds is not None
    k, d = c0.shape
    sint = mpc.SecInt(DP_BITS)
    x = (
        box_grid(inputs.features(ctx), lower, upper, FK)
        if ctx.is_owner and ctx.local is not None
        else None
    )
    c = np.asarray(to_grid(c0, lower, upper, FK), dtype=float)
    for t in range(iterations(ctx.params)):
        counts, sums = (None, None) if x is None else local_stats(x, c)
        noisy_counts = await rounds.open(f"count{t}", inputs.summed(ctx, sint, counts, (k,)))
        noisy_sums = await rounds.open(f"sum{t}", inputs.summed(ctx, sint, sums, (k * d,)))
        c = noisy_centroids(noisy_counts, noisy_sums, c)
    units = lower + c / (1 << FK) * (upper - lower)
    rounds.publish("centroid", mpc.SecFxp(64, 32), units)
    return []


# -- the same computation in the clear ---------------------------------------------------------


def reference_lloyd(
    x: np.ndarray, c0: np.ndarray, lower: np.ndarray, upper: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's iterations on the same grid in float64 (ties to the lowest index, an empty
    cluster keeps its centroid): centroids in the features' units and the sizes."""
    g = box_grid(x, lower, upper, FK).astype(float)
    c = np.asarray(to_grid(c0, lower, upper, FK + FC), dtype=float) / (1 << FC)
    counts = np.zeros(c.shape[0])
    for _ in range(steps):
        d2 = ((g[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        nearest = np.argmin(d2, axis=1)
        counts = np.bincount(nearest, minlength=c.shape[0]).astype(float)
        sums = np.zeros_like(c)
        np.add.at(sums, nearest, g)
        c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
    return lower + c / (1 << FK) * (upper - lower), counts


def reference(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]
) -> dict[str, float]:
    lower, upper = feature_box(params)
    x = np.vstack([np.asarray(t["features"], dtype=float) for t in tables])
    c, counts = reference_lloyd(
        x, initial_centroids(params, lower, upper), lower, upper, iterations(params)
    )
    out = {
        f"centroid[{j},{i}]": float(c[j, i]) for j in range(c.shape[0]) for i in range(c.shape[1])
    }
    return out | {f"size[{j}]": float(n) for j, n in enumerate(counts)}

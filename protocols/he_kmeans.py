"""k-means (exact and DP) with an outsourced owner: its rows converted from BFV into secret
shares once (``ensnif_mpc/he/outsource_rows.py``), put on the box grid inside MPC, then the
same Lloyd iterations as every owner's (``protocols.models.kmeans``; called from
``kmeans.kmeans`` when the job has an outsourced input).

Who provides what: every live owner, as in ``protocols.models.kmeans``, its rows clamped
into the job's box and put on [0, 2^FK] in the clear. The outsourced owner's features are
converted row by row (the helper masks every row under encryption, the owner's client
decrypts only masked values and seals an additive share to each party). Inside MPC each
feature on the session's grid goes onto the box grid by public constants,
u = (a·x − b) / 2^P with a = 2^(FK+P)·scale/(10^D·span), b = lower·2^(FK+P)/span: one
probabilistic truncation per value (within one unit of 2^-FK of the live owners' rint).
No clamp is needed: the helper's admission requires the job's box to contain the
outsourced columns' declared bounds (it cannot clamp ciphertexts).

Route (exact release): always the all-MPyC iterations (``join_path.MPC_ONLY``), never the
two-owner dealer route (``protocols.models.kmeans_ring``): that route multiplies each
owner's PLAINTEXT rows by the other's shares and has the helper deal the randomness; an
outsourced owner's rows exist in the clear nowhere but at its client, and the helper plays
the owner's position, so it would be dealer and owner at once (t = 1 broken). The
protocol's leakage text in every manifest says so (``protocols.models.learning``); the
route line the manifest adds from the session's shape cannot tell, since a node learns
which positions are outsourced only at Start (``party_node/supervisor.py``).

DP release: the centroids are public at every iteration. The live owners assign their rows
to them locally (``kmeans.local_stats``); the outsourced rows are assigned inside MPC
against the same public centroids (scores ‖c‖² − 2x·c, the centroids public so the
product is local; a secure argmin per row, k − 1 comparisons) and their per-cluster counts
and sums computed by one product with the one-hot; MPC adds them to the live owners' sums
and opens them with the block's noise, exactly as without an outsourced owner. The
sensitivity is the same (each row adds 1 to one count and its grid vector to one
cluster's sums, wherever it lies), so the release plan and the owner's ledger charge are
those of ``_dp_kmeans``; the owner's budget is charged by the helper's admission.

What is revealed: what ``kmeans`` reveals — exact: the final centroids and cluster sizes;
DP: every iteration's noisy counts and sums and the centroids from them.
What leaks, and to whom: the helper, the outsourced row count (public in the catalog); the
owner's client, its masked rows (within 2^-40 each, ``outsource_rows``) and the job it
approves, nothing of the live owners'; every party, its additive shares and the row counts;
all, the outsourced columns' scales to the session's grid (public in the catalog). No row's
cluster is opened on either release.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.he_outsourced import OutsourcedInput, converted_input
from protocols.io import Context, SecureOutput

PRECISION = 32  # extra bits of the public box-grid constants before the truncation


async def outsourced_grid(
    ctx: Context, sint: Any, hosted: OutsourcedInput, lower: np.ndarray, upper: np.ndarray
) -> Any:
    """The outsourced rows on the box grid (n × d secure integers in [0, 2^FK] within one
    unit), converted once per job."""
    from protocols.models.kmeans import FK
    from protocols.models.secure_math import shift

    mpc, d = ctx.mpc, lower.size
    at_holder = ctx.index == hosted.position
    facts = [hosted.rows, *hosted.scales] if at_holder else None
    got = (await mpc.transfer(facts, senders=[hosted.position]))[0]
    scales = [int(v) for v in got[1:]]
    z = await converted_input(
        mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, True, sint, d
    )
    z = z.reshape(d, -1)
    span, grid, one = upper - lower, 10**ctx.decimals, 1 << (FK + PRECISION)
    a = np.array([round(one * s / (grid * w)) for s, w in zip(scales, span, strict=True)])
    b = np.array([round(low * one / w) for low, w in zip(lower, span, strict=True)])
    moved = z * a.astype(object).reshape(d, 1) - b.astype(object).reshape(d, 1)
    return mpc.np_transpose(shift(mpc, moved, PRECISION))


def _live_rows(ctx: Context, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    from protocols.models import inputs
    from protocols.models.kmeans import FK
    from protocols.models.secure_math import box_grid

    if ctx.local is None:
        return None
    return box_grid(inputs.features(ctx), lower, upper, FK)


async def kmeans(ctx: Context) -> list[SecureOutput]:
    """``protocols.models.kmeans.kmeans`` (exact or DP) with one outsourced owner."""
    from protocols.models import inputs, kmeans as km
    from protocols.models.secure_math import feature_box

    lower, upper = feature_box(ctx.params)
    c0 = km.initial_centroids(ctx.params, lower, upper)
    if ctx.dp:
        return await _noisy_lloyd(ctx, lower, upper, c0)
    mpc, hosted, d = ctx.mpc, ctx.outsourced, lower.size
    sint = mpc.SecInt(km.BITS)
    parts = []
    for position, owner in enumerate(ctx.owners):
        if owner == hosted.position:
            parts.append(await outsourced_grid(ctx, sint, hosted, lower, upper))
            continue
        mine = inputs.is_owner_at(ctx, position)
        rows = _live_rows(ctx, lower, upper) if mine else None
        x = None if rows is None else rows.astype(object)
        n = await inputs.announce(ctx, position, None if x is None else len(x))
        parts.append(inputs.share(ctx, position, sint, x, (n, d)))
    grid_c0 = km.to_grid(c0, lower, upper, km.FK + km.FC)
    c, counts = await km.kmeans_exact(
        mpc, mpc.np_vstack(parts), grid_c0, km.iterations(ctx.params), ctx.progress
    )
    return await km._release(mpc, c, counts, lower, upper)


def _secure_stats(mpc: Any, x: Any, c: np.ndarray) -> Any:
    """The outsourced rows' per-cluster counts and sums (k + k·d secure integers) against
    the PUBLIC centroids ``c`` (box grid, floats), as ``kmeans.local_stats`` in the clear."""
    from protocols.models.kmeans import FC, assign

    fixed = np.array([[round(v * (1 << FC)) for v in row] for row in c], dtype=object)
    onehot = assign(mpc, x, fixed)  # n × k
    counts = onehot.sum(axis=0)
    sums = onehot.T @ x  # k × d
    return counts, sums.reshape(-1)


async def _noisy_lloyd(
    ctx: Context, lower: np.ndarray, upper: np.ndarray, c0: np.ndarray
) -> list[SecureOutput]:
    from protocols.models import inputs, kmeans as km

    mpc, rounds, hosted = ctx.mpc, ctx.rounds, ctx.outsourced
    assert rounds is not None
    k, d = c0.shape
    sint = mpc.SecInt(km.DP_BITS)
    x_out = await outsourced_grid(ctx, sint, hosted, lower, upper)
    live = [p for p, o in enumerate(ctx.owners) if o != hosted.position]
    x = _live_rows(ctx, lower, upper)
    c = np.asarray(km.to_grid(c0, lower, upper, km.FK), dtype=float)
    for t in range(km.iterations(ctx.params)):
        counts, sums = (None, None) if x is None else km.local_stats(x, c)
        out_counts, out_sums = _secure_stats(mpc, x_out, c)
        for p in live:
            out_counts = out_counts + inputs.share(ctx, p, sint, counts, (k,))
            out_sums = out_sums + inputs.share(ctx, p, sint, sums, (k * d,))
        noisy_counts = await rounds.open(f"count{t}", out_counts)
        noisy_sums = await rounds.open(f"sum{t}", out_sums)
        c = km.noisy_centroids(noisy_counts, noisy_sums, c)
        ctx.progress("training", 0.1 + 0.8 * (t + 1) / km.iterations(ctx.params))
    units = lower + c / (1 << km.FK) * (upper - lower)
    rounds.publish("centroid", mpc.SecFxp(64, 32), units)
    return []

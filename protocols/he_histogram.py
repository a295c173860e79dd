"""The histogram with an outsourced owner: its per-bin counts converted from BFV into
secret shares (``ensnif_mpc/he/outsource.py``), added to the live owners' counts (called
by ``protocols.statistics.histogram.histogram`` when the job has an outsourced input).

Who provides what: every live owner its local per-bin counts, as in
``protocols.statistics.histogram``; the outsourced owner's are the sums of the 0/1 series
it encrypted per declared bin (``col@bin<b>``, computed in the clear at encryption on its
own machine). The helper that holds them adds each series' chunks under encryption, masks
the slot partials with fresh uniform values mod t and floods the noise; the owner's client
decrypts only the masked totals and seals an additive share to each party; the MPC undoes
the wrap mod t with two secure comparisons per bin (``protocols.he_outsourced``). The job's
edges must be the ones the owner declared (the helper's admission refuses others), and the
bin rule is the histogram's ([e_b, e_(b+1)), the last closed, values outside not counted).

What is revealed: the per-bin counts of all owners' rows together, exactly or with the
job's DP noise (added by the worker before anything is opened; the sensitivity is the
histogram's, the outsourced rows count like any owner's).

What leaks: the number of bins (public: the job's edges) and the owners' row counts (the
catalog's); the owner's client learns nothing (one-time pads mod t), the helper nothing
(ciphertexts, its masks, one additive share).
"""

from __future__ import annotations

import numpy as np

from protocols.he_outsourced import converted_input
from protocols.io import Context, SecureOutput


async def with_outsourced(ctx: Context) -> list[SecureOutput]:
    """``protocols.statistics.histogram.histogram`` when one owner is outsourced."""
    from protocols.statistics.histogram import bin_counts, check_edges

    mpc = ctx.mpc
    hosted = ctx.outsourced
    edges = check_edges(ctx.params)
    secint = mpc.SecInt(ctx.bit_length)
    local = np.zeros(len(edges) - 1, dtype=object)
    if ctx.local is not None:
        agg = ctx.local.aggregate(by=["value"], measures=[("count", None)])
        counts = bin_counts(agg.keys["value"], agg.values["count"], edges, ctx.decimals)
        local = counts.astype(object)
    ctx.progress("computing", 0.3)
    totals = await converted_input(
        mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, False, secint
    )
    live = [o for o in ctx.owners if o != hosted.position]
    for part in mpc.input(secint.array(local), senders=live) if live else []:
        totals = totals + part
    from protocols.statistics.histogram import bin_outputs

    return bin_outputs(mpc.np_tolist(totals), secint)  # with the minimum cohort's markers

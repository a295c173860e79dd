"""Histogram over declared bin edges: per-bin counts.

Minimum cohort (``protocols.joint_cohort``): each owner inputs its ``min_cohort`` as a
secret, and a bin whose joint count (exact, or noisy after the noise under DP) is below
the largest is withheld inside MPC: its count opens as 0 and its public ``withheld[<i>]``
marker as 1. Exact: the marker says "count < k", less than the exact count the release
gives anyway; DP: a function of the noisy count the release opens (no extra budget).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols import joint_cohort
from protocols.io import Context, SecureOutput, scaled_bound
from protocols.registry import (
    BlockSpec,
    DpSensitivity,
    Table,
)
from protocols.statistics.common import MAX_BINS, exact

# -- histogram -----------------------------------------------------------------------------------


def check_edges(params: Mapping[str, Any]) -> list[Fraction]:
    """The bin edges as exact decimals; at least two, strictly increasing, at most MAX_BINS bins."""
    edges = params.get("edges")
    if not isinstance(edges, list) or len(edges) < 2:
        raise InvalidJobSpec("params.edges: give at least two bin edges, e.g. [0, 10, 20]")
    if len(edges) > MAX_BINS + 1:
        raise InvalidJobSpec(f"params.edges: at most {MAX_BINS} bins ({len(edges) - 1} given)")
    exact_edges = [exact(e) for e in edges]
    for i in range(1, len(exact_edges)):
        if exact_edges[i] <= exact_edges[i - 1]:
            raise InvalidJobSpec(
                f"params.edges: must be strictly increasing (edges[{i}] = {edges[i]!r} "
                f"after {edges[i - 1]!r})"
            )
    return exact_edges


def bin_counts(
    keys: np.ndarray, counts: np.ndarray, edges: Sequence[Any], decimals: int
) -> np.ndarray:
    """Counts per bin [e_i, e_(i+1)) (the last bin closed) of distinct values with their counts.

    Compared on the session's integer scale: x ≥ e ⇔ x ≥ ceil(e·10^d), x ≤ e ⇔ x ≤ floor(e·10^d).
    Values outside [e_0, e_last] are not counted.
    """
    x = np.rint(np.asarray(keys, dtype=np.float64) * 10**decimals).astype(np.int64)
    lows = np.array([scaled_bound(float(e), decimals, upper=False) for e in edges], dtype=np.int64)
    top = scaled_bound(float(edges[-1]), decimals, upper=True)
    inside = (x >= lows[0]) & (x <= top)
    index = np.searchsorted(lows[:-1], x[inside], side="right") - 1
    out = np.zeros(len(edges) - 1, dtype=np.int64)
    np.add.at(out, index, np.asarray(counts, dtype=np.int64)[inside])
    return out


async def histogram(ctx: Context) -> list[SecureOutput]:
    if ctx.outsourced is not None:  # an outsourced owner's per-bin counts, converted from BFV
        from protocols import he_histogram

        return await he_histogram.with_outsourced(ctx)
    mpc = ctx.mpc
    edges = check_edges(ctx.params)
    secint = mpc.SecInt(ctx.bit_length)
    if ctx.local is not None:
        agg = ctx.local.aggregate(by=["value"], measures=[("count", None)])
        local = bin_counts(agg.keys["value"], agg.values["count"], edges, ctx.decimals)
        local = local.astype(object)
    else:
        local = np.zeros(len(edges) - 1, dtype=object)
    ctx.progress("computing", 0.3)
    shared = mpc.input(secint.array(local), senders=ctx.owners)
    totals = mpc.np_tolist(mpc.np_sum(mpc.np_stack(shared), axis=0))
    return bin_outputs(totals, secint)


def bin_outputs(totals: list[Any], sectype: Any) -> list[SecureOutput]:
    """``count[<i>]`` per bin and its minimum-cohort marker ``withheld[<i>]`` (filled by
    ``protocols.joint_cohort.on_count`` after the noise); every histogram program's."""
    counts = [SecureOutput(f"count[{i}]", c, on_value_scale=False) for i, c in enumerate(totals)]
    return counts + joint_cohort.markers([str(i) for i in range(len(totals))], sectype)


def _dp_counts(points: Callable[[Mapping[str, Any]], int]) -> DpSensitivity:
    """One block: the counts of every bin (grid point), L2 sensitivity Σ k_i.

    Each row is counted in at most one bin (exactly one grid point: values beyond the
    grid count at its ends), so a person with k_i rows at each owner changes the vector
    of counts by at most Σ k_i in L1, hence in L2, the most when all their rows share one
    bin; spread over bins it is only sqrt(Σ k_i²). The bins are public (the analyst's),
    so their number costs nothing: no √bins factor, in L2 nor in L1 (declared for the
    discrete Laplace mechanism, whose default would be √bins·L2).
    """

    def blocks(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
        rows = float(max(1, sum(k for k, _ in owners)))
        return [BlockSpec(rows, points(params), rows)]

    return blocks


def _ref_histogram(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    edges = [exact(e) for e in params["edges"]]
    xs = [exact(v) for t in tables for v in np.asarray(t["value"])]
    counts = [0] * (len(edges) - 1)
    for x in xs:
        if edges[0] <= x <= edges[-1]:
            i = next(i for i in range(len(edges) - 2, -1, -1) if x >= edges[i])
            counts[i] += 1
    return {f"count[{i}]": float(c) for i, c in enumerate(counts)}

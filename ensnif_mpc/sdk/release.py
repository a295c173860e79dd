"""What a DP release opens, by name: for the dry run, before anything is computed.

A release plan's blocks are in the order of the outputs the protocol's program opens
(``ReleasePlan.output_sigmas``); these are those outputs' names, and the answers the
analyst's side derives from them. Where a protocol holds the owners' minimum cohort on a
noisy count, that count is one of these blocks (group_sum's ``count[<group>]``, added
for it, with its share of ρ); the ``withheld`` markers are not noised: they are computed
from those counts (post-processing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Answers the client derives from opened statistics, per protocol (each gets a simulated
# interval; an opened statistic gets the exact quantile of its noise).
DERIVED: dict[str, tuple[str, ...]] = {
    "mean": ("mean",),
    "variance": ("variance",),
    "stdev": ("stdev",),
    "quantile": ("quantile",),
    "group_mean": ("mean[<group>]",),
    "group_by": ("mean[<group>]",),
    "join_group_by": ("mean[<group>]",),
    "intersection_sum": ("mean",),
    "join_correlation": ("r",),
}

_FIXED: dict[str, tuple[str, ...]] = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("sum", "count"),
    "variance": ("count", "sum", "sumsq"),
    "stdev": ("count", "sum", "sumsq"),
    "minmax": ("min", "max"),
    "intersection_size": ("count",),
    "intersection_sum": ("keys", "rows", "sum"),
    "join_correlation": ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy"),
}


def opened_outputs(protocol: str, params: Mapping[str, Any]) -> list[str] | None:
    """The names of the noisy outputs a DP release of ``protocol`` opens, in plan order
    (None for a protocol not listed here)."""
    if protocol in _FIXED:
        return list(_FIXED[protocol])
    groups = [str(g) for g in params.get("groups", [])]
    if protocol == "group_count":
        return [f"count[{g}]" for g in groups]
    if protocol in ("group_sum", "group_mean", "group_by", "join_group_by"):
        # group_sum's noisy counts are its own block: the minimum cohort is held on them.
        return [f"count[{g}]" for g in groups] + [f"sum[{g}]" for g in groups]
    if protocol == "histogram":
        edges = params.get("edges") or []
        return [f"count[{i}]" for i in range(max(0, len(edges) - 1))]
    if protocol == "quantile":
        from protocols.statistics import check_grid, decimal_text

        grid = check_grid(params)
        return [f"count[{decimal_text(grid.value(j))}]" for j in range(grid.points)]
    return None


def block_outputs(protocol: str, params: Mapping[str, Any], dims: list[int]) -> list[list[str]]:
    """The output names of each block (of ``dims`` outputs each); generic names where the
    protocol's layout is not known here or does not match the plan."""
    names = opened_outputs(protocol, params)
    if names is None or len(names) != sum(dims):
        names = [f"output {k}" for k in range(sum(dims))]
    out, start = [], 0
    for d in dims:
        out.append(names[start : start + d])
        start += d
    return out


def short_list(names: list[str], most: int = 4) -> str:
    """``count[0], count[1], …, count[99] (100 outputs)`` for a long block."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{names[0]}, {names[1]}, …, {names[-1]} ({len(names)} outputs)"

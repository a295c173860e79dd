"""Plaintext models of what each protocol opens under DP, as its release blocks.

One model per protocol that declares a ``dp_sensitivity``: from the owners' rows (a key,
a group, a value on the integer grid and a filter value each) to the integer vectors the
DP release noises, block by block, in the protocol's declared order. The statistics',
``group_mean``'s and the joins' models are the ones in
``tests/unit/protocols/test_dp_families_sensitivity.py`` (they use the protocols' own
local steps: binning, grid counts, caps); the aggregates and the other group-by ones are
added here. A protocol with a DP release and no model fails the contract suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols import discovery
from tests.unit.protocols import test_dp_families_sensitivity as families

Row = families.Row
Release = Callable[[list[list[Row]], list[tuple[int, int]], dict[str, Any]], list[list[Any]]]
GROUPS = families.GROUPS


def _kept(rows: list[list[Row]], params: dict[str, Any]) -> list[Row]:
    flat = families._flat(rows)
    lo, hi = params.get("min"), params.get("max")
    return [r for r in flat if (lo is None or r.value >= lo) and (hi is None or r.value <= hi)]


def _count(rows, owners, params):
    return [[len(_kept(rows, params))]]


def _sum(rows, owners, params):
    return [[sum(r.value for r in _kept(rows, params))]]


def _mean(rows, owners, params):  # released as a noisy sum, then a noisy count
    return _sum(rows, owners, params) + _count(rows, owners, params)


def _per_group(rows: list[list[Row]]) -> tuple[list[int], list[int]]:
    flat = [r for r in families._flat(rows) if r.group in GROUPS]
    counts = [sum(1 for r in flat if r.group == g) for g in GROUPS]
    sums = [sum(r.value for r in flat if r.group == g) for g in GROUPS]
    return counts, sums


def _discovery(rows, owners, params):
    """The 2M candidate counts as the MPC lays them out: each owner's slots (the protocol's
    own local step), the second owner's labels that the first has moved into its slots."""
    m, width = discovery.sizes(params)
    laid = []
    for owner in [*rows, []][:2]:
        totals: dict[bytes, int] = {}
        for r in owner:  # every row counts: the model's person has at most k rows here
            label = discovery.cut(str(r.group), width)
            totals[label] = totals.get(label, 0) + 1
        laid.append(discovery.slots(totals, m, width))
    a, b = laid
    n = a.shape[0] - 1
    codes_a, codes_b = [tuple(a[:n, i]) for i in range(m)], [tuple(b[:n, i]) for i in range(m)]
    count_a, count_b = list(a[n]), list(b[n])
    for i, code in enumerate(codes_b):
        if any(code) and code in codes_a:
            count_a[codes_a.index(code)] += count_b[i]
            count_b[i] = 0
    return [count_a + count_b]


@dataclass(frozen=True)
class Model:
    release: Release
    # The DP job's parameters, on the integer grid of the drawn rows (from the property's
    # row cap, threshold and per-key rule).
    params: Callable[[int, int | None, str], dict[str, Any]] = lambda cap, t, how: {}


def _family(protocol: str) -> Model:
    return Model(
        families.RELEASES[protocol],
        lambda cap, t, how: families._params(protocol, cap, t, how),
    )


_GROUPS_PARAM = {"groups": GROUPS}
MODELS: dict[str, Model] = {
    "count": Model(_count, lambda cap, t, how: {"min": -100}),
    "sum": Model(_sum),
    "mean": Model(_mean, lambda cap, t, how: {"max": 50}),
    "group_count": Model(lambda r, o, p: [_per_group(r)[0]], lambda c, t, h: _GROUPS_PARAM),
    "group_sum": Model(lambda r, o, p: [_per_group(r)[1]], lambda c, t, h: _GROUPS_PARAM),
    "group_by": Model(lambda r, o, p: list(_per_group(r)), lambda c, t, h: _GROUPS_PARAM),
    "group_discovery": Model(_discovery, lambda c, t, h: {"max_groups": 8}),
    **{name: _family(name) for name in families.RELEASES},
}

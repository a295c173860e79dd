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
from tests.contract import dp_models_learning as learning, dp_models_vertical as vertical
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
    """The owners·M noised counts as what they release: the slots are shuffled inside MPC, so
    the release is a count per label, whatever slot held it. Laid out here by label
    identity over the drawn labels' universe (its first entries; the rest of the 2M
    candidates stay 0); every row counts (the model's person has at most k rows)."""
    m, width = discovery.sizes(params)
    slots = discovery.owner_count(params) * m
    universe = sorted({discovery.cut(g, width) for g in [*GROUPS, "z"]})
    assert len(universe) <= slots
    counts = dict.fromkeys(universe, 0)
    for owner in rows:
        for r in owner:
            counts[discovery.cut(str(r.group), width)] += 1
    return [[counts[label] for label in universe] + [0] * (slots - len(universe))]


@dataclass(frozen=True)
class Model:
    release: Release
    # The DP job's parameters, on the integer grid of the drawn rows (from the property's
    # row cap, threshold and per-key rule).
    params: Callable[[int, int | None, str], dict[str, Any]] = lambda cap, t, how: {}
    # A protocol reading several columns: each owner's column bounds by role, from the
    # drawn bound B (the rows' values are within [−B, B]; the model maps them to columns).
    bounds: Callable[[int], dict[str, tuple[int, ...]]] | None = None


def _family(protocol: str) -> Model:
    return Model(
        families.RELEASES[protocol],
        lambda cap, t, how: families._params(protocol, cap, t, how),
    )


def _regression_z(r: Row) -> tuple[int, int, int]:
    """A row's (x1, x2, y) for linear_regression, each within the value's bound."""
    return r.value, (r.value * r.filter) // 6, r.value if r.key % 2 else -r.value


def _regression(rows, owners, params):
    """n; Σz; XᵀX's upper triangle; Xᵀy; yᵀy (the DP release's blocks, ridge 0)."""
    z = [_regression_z(r) for r in families._flat(rows)]
    col = list(zip(*z, strict=True)) if z else [(), (), ()]
    dot = lambda a, b: sum(p * q for p, q in zip(col[a], col[b], strict=True))  # noqa: E731
    return [
        [len(z)],
        [sum(c) for c in col],
        [dot(0, 0), dot(0, 1), dot(1, 1)],
        [dot(0, 2), dot(1, 2)],
        [dot(2, 2)],
    ]


def _join_regression(rows, owners, params):
    """join_regression's five blocks over the matched keys' per-key rows: A's feature its
    value, B's feature (value·filter)//6 and label ±value (kept or flipped by key)."""
    from protocols.join.common import capped, row_cap
    from protocols.join.correlation import per_key_values

    how = params.get("per_key", "mean")
    sides = []
    for position, owner in enumerate(rows):
        columns = [[r.value for r in owner]]
        if position == 1:
            columns = [
                [(r.value * r.filter) // 6 for r in owner],
                [r.value if r.key % 2 else -r.value for r in owner],
            ]
        keys = sorted({r.key for r in owner})
        counts = [sum(1 for r in owner if r.key == k) for k in keys]
        table = {k: [] for k in keys}
        for col in columns:
            sums = [sum(v for r, v in zip(owner, col, strict=True) if r.key == k) for k in keys]
            if keys and how == "sum":
                _, sums = capped(sums, counts, row_cap(params))
            values = per_key_values(sums, counts, how) if keys else []
            for k, v in zip(keys, values, strict=True):
                table[k].append(int(v))
        sides.append(table)
    z = [sides[0][k] + sides[1][k] for k in sides[0] if k in sides[1]]
    col = list(zip(*z, strict=True)) if z else [(), (), ()]
    dot = lambda a, b: sum(p * q for p, q in zip(col[a], col[b], strict=True))  # noqa: E731
    return [
        [len(z)],
        [sum(c) for c in col],
        [dot(0, 0), dot(0, 1), dot(1, 1)],
        [dot(0, 2), dot(1, 2)],
        [dot(2, 2)],
    ]


def _accuracy(rows, owners, params):
    """model_accuracy's DP release for a fixed model: correctly classified rows (the
    model's class is value ≥ 0, the label the filter's parity), then the row count."""
    flat = families._flat(rows)
    return [[sum(1 for r in flat if (r.value >= 0) == (r.filter % 2 == 1))], [len(flat)]]


_GROUPS_PARAM = {"groups": GROUPS}
MODELS: dict[str, Model] = {
    "count": Model(_count, lambda cap, t, how: {"min": -100}),
    "sum": Model(_sum),
    "mean": Model(_mean, lambda cap, t, how: {"max": 50}),
    "group_count": Model(lambda r, o, p: [_per_group(r)[0]], lambda c, t, h: _GROUPS_PARAM),
    "group_sum": Model(lambda r, o, p: list(_per_group(r)), lambda c, t, h: _GROUPS_PARAM),
    "group_by": Model(lambda r, o, p: list(_per_group(r)), lambda c, t, h: _GROUPS_PARAM),
    "group_discovery": Model(_discovery, lambda c, t, h: {"max_groups": 8}),
    "linear_regression": Model(
        _regression,
        lambda c, t, h: {"ridge": 0.0},
        bounds=lambda b: {"features": (b, b), "label": (b,)},
    ),
    "logistic_regression": Model(
        learning.logistic_release,
        lambda c, t, h: learning.LOGISTIC_PARAMS,
        bounds=lambda b: {"features": (b,), "label": (1,)},
    ),
    "kmeans": Model(
        learning.kmeans_release,
        lambda c, t, h: learning.KMEANS_PARAMS,
        bounds=lambda b: {"features": (b,)},
    ),
    "join_regression": Model(
        _join_regression,
        lambda cap, t, how: {"per_key": how, "max_rows_per_key": cap, "ridge": 0.0},
        bounds=lambda b: {"features": (b,), "label": (b,)},
    ),
    "join_logistic": Model(
        vertical.join_logistic_release,
        lambda cap, t, how: {**vertical.PARAMS, "per_key": how, "max_rows_per_key": cap},
        bounds=lambda b: {"features": (b,), "label": (1,)},
    ),
    "model_accuracy": Model(_accuracy, bounds=lambda b: {"features": (b,), "label": (1,)}),
    "join_moments": Model(  # the same six sums as join_correlation's release
        families.RELEASES["join_correlation"],
        lambda cap, t, how: families._params("join_correlation", cap, t, how),
    ),
    **{name: _family(name) for name in families.RELEASES},
}

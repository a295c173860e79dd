"""Plaintext model of ``join_logistic``'s DP release, block by block, for the contract DP
suite (``tests/contract/dp_models.py`` merges it): the noisy matched count, then each
step's gradient sum over the matched keys' per-key rows, computed with the protocol's
own step (``vertical_logistic.gradient_grid``, before its truncation) at a fixed public
trajectory (the sensitivity must hold at any public weights; adaptive composition covers
the real, noise-dependent one). A's feature is a row's value, B's (value·filter)//6, B's
label the parity of the filter (a key's label: the majority of its rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.join.common import capped, row_cap
from protocols.join.correlation import per_key_values
from protocols.models import logistic as lr, vertical_logistic as vl

# A narrow box: every nonzero drawn value clamps to ±1, the extremes the bound is about.
PARAMS = {"lower": [-1.0, -1.0], "upper": [1.0, 1.0], "steps": 3}


def _table(owner: list[Any], position: int, params: dict[str, Any]) -> dict[int, list[float]]:
    """One owner's per-key row: its features (mean or capped sum), at B the label last."""
    how = params.get("per_key", "mean")
    keys = sorted({r.key for r in owner})
    rows = np.array([r.key for r in owner])
    counts = np.array([int((rows == k).sum()) for k in keys], dtype=object)
    value = np.array([r.value for r in owner], dtype=object)
    columns = [value] if position == 0 else [value * np.array([r.filter for r in owner]) // 6]
    table: dict[int, list[float]] = {k: [] for k in keys}
    for col in columns:
        sums = np.array([col[rows == k].sum() for k in keys], dtype=object)
        if keys and how == "sum":
            _, sums = capped(sums, counts, row_cap(params))
        for k, v in zip(keys, per_key_values(sums, counts, how) if keys else [], strict=True):
            table[k].append(float(v))
    if position == 1:
        ones = np.array([r.filter % 2 for r in owner], dtype=object)
        for k, c in zip(keys, counts, strict=True):
            table[k].append(float(2 * ones[rows == k].sum() >= c))
    return table


def join_logistic_release(rows, owners, params):
    a, b = _table(rows[0], 0, params), _table(rows[1], 1, params)
    matched = [a[k] + b[k] for k in a if k in b]
    z = np.array(matched, dtype=float).reshape(len(matched), 3)
    lower, upper = np.array(params["lower"]), np.array(params["upper"])
    grid = vl.unit_grid(z[:, :2], lower, upper, lr.FX)
    x = np.hstack([grid, np.full((len(z), 1), 1 << lr.FX, dtype=np.int64)])
    y = z[:, 2].astype(np.int64)
    blocks: list[list[Any]] = [[len(z)]]
    for t in range(lr.steps_of(params)):
        # weights where the cubic σ peaks (|z| up to 5.5, s·|σ − y| near 1) and beyond
        w = np.array([2.0 * (-1) ** t, -2.0 + t, 1.5 + 2 * t])
        blocks.append(list(vl.gradient_grid(x, y, w)[0]))
    return blocks

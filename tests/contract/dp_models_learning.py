"""Plaintext models of the iterative models' DP releases (logistic regression, k-means),
block by block, for the contract DP suite (``tests/contract/dp_models.py`` merges them).

Each step's block is computed with the protocol's own local step at public weights or
centroids: a fixed public trajectory here, since the sensitivity must hold at any public
point (the real one depends on earlier noisy blocks; adaptive composition covers that).
A row's one feature is its value, its label the parity of its filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.models import kmeans as km, logistic as lr
from tests.unit.protocols import test_dp_families_sensitivity as families

BOX = {"lower": [-300.0], "upper": [300.0]}  # holds every drawn value (|value| ≤ 300)


def _features(rows: list[list[Any]]) -> tuple[np.ndarray, np.ndarray]:
    flat = families._flat(rows)
    x = np.array([[float(r.value)] for r in flat]).reshape(len(flat), 1)
    y = np.array([float(r.filter % 2) for r in flat])
    return x, y


def logistic_release(rows, owners, params):
    """The noisy count, then per step the clipped gradient sums at public weights."""
    x, y = _features(rows)
    a = lr.design_matrix(x, np.array(params["lower"]), np.array(params["upper"]))
    blocks = [[len(x)]]
    for t in range(lr.steps_of(params)):
        w = np.array([0.7 * t - 1.0, 0.3 * (-1) ** t])
        blocks.append(list(lr.clipped_gradient_sum(a, y, w, lr.clip_of(params))))
    return blocks


def kmeans_release(rows, owners, params):
    """Per iteration, the counts and sums on the box grid at public centroids."""
    x, _ = _features(rows)
    lower, upper = np.array(params["lower"]), np.array(params["upper"])
    g = km.box_grid(x, lower, upper, km.FK)
    blocks = []
    for t in range(km.iterations(params)):
        c = np.array([[1000.0 + 500 * t], [3000.0 - 700 * t]])
        counts, sums = km.local_stats(g, c)
        blocks += [list(counts), list(sums)]
    return blocks


LOGISTIC_PARAMS = {**BOX, "steps": 3, "clip": 0.5}
KMEANS_PARAMS = {**BOX, "k": 2, "iterations": 2, "initial": [-100.0, 100.0]}

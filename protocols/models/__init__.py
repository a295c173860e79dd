"""The models family: regression, logistic regression, k-means, trained on the owners' joint
rows (docs/models.md). Declarations are collected here for the registry; each MPC program
lives in its own module and is imported by the worker only."""

from __future__ import annotations

from protocols.models.declarations import DEFINITIONS as DEFINITIONS

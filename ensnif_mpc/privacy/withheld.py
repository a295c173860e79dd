"""The joint minimum cohort's public markers: which outputs a release withheld.

A protocol that enforces the owners' ``min_cohort`` inside MPC (``ProtocolDef.extra
["joint_cohort"]``) opens, next to its values, one marker per label: ``withheld[<label>]``
for the outputs of a group or a bin, ``withheld`` for an ungrouped release (a join's
matched set). A marker is 1 where the joint count behind that label's outputs was below
the largest of the owners' minimums: those outputs were replaced by 0 inside MPC, and the
analyst's side shows them as withheld (NaN, no interval), never as 0.

What a marker says: for an exact release, "count < k" of a count the release opens
anyway (or, where the count stays secret, that one bit of it); for a DP release, a
function of the noisy count the release opens and charges (post-processing: free).

This module is shared by the protocols (which name the markers and strip them in their
``finalize``) and the SDK (which reads them from the combined outputs); it imports
nothing above the core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import TypeVar

MARKER = "withheld"

V = TypeVar("V")


def marker(label: str | None) -> str:
    """The marker's output name for ``label`` (None: an ungrouped release)."""
    return MARKER if label is None else f"{MARKER}[{label}]"


def label_of(name: str) -> str | None:
    """``sum[10115]`` → ``10115``; ``keys`` or ``sumsq_x@decimals=4`` → None."""
    if "[" in name and name.endswith("]"):
        return name[name.index("[") + 1 : -1]
    return None


def is_marker(name: str) -> bool:
    return name == MARKER or (name.startswith(f"{MARKER}[") and name.endswith("]"))


def split(values: Mapping[str, V]) -> tuple[dict[str, V], set[str | None]]:
    """(the values without markers, the labels whose marker is set; None for every
    output of an ungrouped release)."""
    kept = {k: v for k, v in values.items() if not is_marker(k)}
    labels = {label_of(k) for k, v in values.items() if is_marker(k) and v}
    return kept, labels


def covers(name: str, labels: set[str | None]) -> bool:
    """True when output ``name`` is withheld under the set ``labels`` (from :func:`split`):
    its own label is, or the whole release is (None)."""
    return None in labels or (label_of(name) is not None and label_of(name) in labels)


def names(values: Mapping[str, object], labels: set[str | None]) -> list[str]:
    """The outputs of ``values`` that ``labels`` withholds, in order."""
    return [k for k in values if covers(k, labels)]


Finalize = Callable[[dict[str, Fraction]], dict[str, Fraction | float]]


def finalizing(inner: Finalize | None = None) -> Finalize:
    """A protocol's ``finalize`` for a release with markers: drop the markers, run the
    protocol's own step on the rest (identity when none), and make every withheld output
    (derived ones included, e.g. a group's mean) NaN: it was suppressed, not 0."""

    def finalize(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
        kept, labels = split(values)
        out: dict[str, Fraction | float] = inner(kept) if inner is not None else dict(kept)
        for name in names(out, labels):
            out[name] = math.nan
        return out

    return finalize

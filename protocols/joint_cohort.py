"""The joint minimum cohort inside MPC: every number a job opens draws on at least k rows.

For the protocols whose cohorts exist only inside MPC (a join's matched set) or span
several owners (a group, a histogram bin), the owners' ``min_cohort`` rule is enforced
on the joint count, in MPC: each data owner's worker inputs its policy's minimum as a
secret (``LocalData.min_cohort``, written by its node), the parties take the largest,
k, and for each label (a group, a bin, or the whole release of a join) compare the count
behind its outputs with k. Where the count is below k, every output of that label is
multiplied by 0 inside MPC and its public marker (``withheld[<label>]``, or
``withheld``; :mod:`ensnif_mpc.privacy.withheld`) opens as 1. Where no owner sets a
minimum (k = 0) nothing is withheld.

Which count: the one the protocol names (``count`` per group or bin, a join's ``keys``
or ``pairs``). An exact release compares the exact count; a DP release compares the
noisy count after the worker's noise (the step runs as the protocol's
``extra["after_noise"]``), so the marker is post-processing of a noisy count that is part
of the release and charged in its plan.

What is revealed: to the analyst, the markers. Exact: "count < k" for each label, which
says strictly less than the exact count the release opens (where the count itself stays
secret, group_sum's and group_mean's exact release, it is that one bit of it). DP: a
function of a noisy count only (no extra budget). To no party anything: k, the counts
and the comparison bits stay secret-shared until the analyst opens the markers.
What leaks: nothing beyond that; the number and names of the outputs are public and
unchanged, and every party runs the same steps whatever the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.privacy.dp import ReleasePlan
from ensnif_mpc.privacy.withheld import is_marker, label_of, marker
from protocols.io import Context, SecureOutput

EXTRA = {"joint_cohort": True}  # ProtocolDef.extra: the node passes its min_cohort on


def markers(labels: Sequence[str | None], sectype: Any) -> list[SecureOutput]:
    """Placeholders for the markers (0), filled by :func:`gate`; never noised."""
    return [
        SecureOutput(marker(label), sectype(0), on_value_scale=False, noisy=False)
        for label in labels
    ]


def floor(ctx: Context, sectype: Any) -> Any:
    """k: the largest of the data owners' min_cohort, a secret (each owner inputs its own;
    every party, the helper included, takes part in the same input)."""
    mpc = ctx.mpc
    own = ctx.local.min_cohort if ctx.local is not None else 0
    hosted = ctx.outsourced  # an outsourced owner's signed minimum, input by its holder
    if hosted is not None and ctx.index == hosted.position:
        own = hosted.min_cohort
    minimums = mpc.input(sectype(int(own)), senders=list(ctx.owners))
    return minimums[0] if len(minimums) == 1 else mpc.max(*minimums)


async def gate(
    ctx: Context, outputs: list[SecureOutput], counts: Mapping[str | None, Any]
) -> list[SecureOutput]:
    """Zero every output of a label whose count is below k and set that label's marker.

    ``counts`` maps each label (None: the whole release) to the secure count behind its
    outputs, all of one secure type; every output of ``outputs`` must belong to one of
    them (by the label in its name, or to None), so nothing escapes the rule. Vectorized:
    one comparison of the count vector with k, one product per secure type."""
    mpc = ctx.mpc
    labels = list(counts)
    sectype = type(counts[labels[0]])
    k = floor(ctx, sectype)
    below = mpc.np_fromlist([counts[label] for label in labels]) < k
    withheld = below * (k > 0)  # k = 0: no owner sets a minimum, nothing is withheld
    keep = 1 - withheld
    index = {label: i for i, label in enumerate(labels)}

    def position(name: str) -> int:
        label = label_of(name)
        if label in index:
            return index[label]
        if None in index:
            return index[None]
        raise ValueError(f"output {name!r} has no cohort count")

    values: list[Any] = [None] * len(outputs)
    by_type: dict[Any, list[int]] = {}
    for i, o in enumerate(outputs):
        if is_marker(o.name):
            values[i] = withheld[position(o.name)]
        else:
            by_type.setdefault(type(o.value), []).append(i)
    for kind, at in by_type.items():
        if kind is not sectype:
            raise ValueError("the cohort rule gates outputs of its count's secure type only")
        rows = np.array([position(outputs[i].name) for i in at])
        gated = mpc.np_tolist(mpc.np_fromlist([outputs[i].value for i in at]) * keep[rows])
        for i, v in zip(at, gated, strict=True):
            values[i] = v
    return [dataclasses.replace(o, value=v) for o, v in zip(outputs, values, strict=True)]


def named_counts(outputs: list[SecureOutput], count: str) -> dict[str | None, Any]:
    """The count output of every label: ``count[<label>]`` for each label the outputs
    have, or ``count`` for an ungrouped release."""
    found: dict[str | None, Any] = {}
    for o in outputs:
        base = o.name.split("[", 1)[0]
        if base == count and not is_marker(o.name):
            found[label_of(o.name)] = o.value
    if not found:
        raise ValueError(f"no {count!r} output to hold the cohort rule on")
    return found


async def _by(ctx: Context, outputs: list[SecureOutput], count: str) -> list[SecureOutput]:
    return await gate(ctx, outputs, named_counts(outputs, count))


async def _dp_by(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan, count: str
) -> list[SecureOutput]:
    """The rule on ``count`` for a DP release only (an exact release of the protocol holds
    it inside its program)."""
    return outputs if plan.exact else await _by(ctx, outputs, count)


# -- the after-noise steps (ProtocolDef.extra["after_noise"]) ------------------------------
async def on_count(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """Per label, the rule on its ``count`` output (exact, or noisy after the noise)."""
    return await _by(ctx, outputs, "count")


async def on_keys(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """A join's matched set: the rule on its matched keys (``keys``)."""
    return await _by(ctx, outputs, "keys")


async def on_pairs(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """A join's matched set: the rule on its matched pairs (``pairs``)."""
    return await _by(ctx, outputs, "pairs")


async def on_noisy_count(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """As :func:`on_count`, for a DP release only: the exact release of a protocol whose
    counts stay secret (group_sum, group_mean) holds the rule inside its program."""
    return await _dp_by(ctx, outputs, plan, "count")


async def on_noisy_n(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """A regression across a join, DP release: the rule on its noisy matched count ``n``
    (its exact release holds the rule inside the program, before the solve opens
    anything: ``protocols.models.vertical``)."""
    return await _dp_by(ctx, outputs, plan, "n")


def step(name: str) -> dict[str, Any]:
    """A ProtocolDef's ``extra`` for the rule: the node's min_cohort goes to the worker
    and the after-noise step ``name`` of this module holds it."""
    return {**EXTRA, "after_noise": f"protocols.joint_cohort:{name}"}

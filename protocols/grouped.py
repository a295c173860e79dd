"""Group-by aggregates: count, sum and mean of a numeric column per public group.

Who provides what: each data owner feeds a categorical ``group`` column (string or
int) and, except for ``group_count``, a numeric ``value`` column of its own dataset;
a compute-only party (the helper) feeds nothing. The analyst lists the groups to
report (``params.groups``, public); rows whose group is not listed are ignored.

How: each owner pre-aggregates its own rows per group locally (GROUP BY in its own
database for a SQL source) and lays its (count, sum) out on the public list of groups,
zeros for groups it does not have. The MPC input is therefore one row per group, not
per record: a secure array of length G per owner, added with ``mpc.np_sum`` over the
stacked arrays. ``group_mean`` divides inside MPC (fixed point, vectorized), so counts
stay hidden; ``group_by`` releases counts and sums, and the analyst's side computes
each mean exactly as sum / count.

What is revealed: nothing, to any party. The outputs stay secret-shared; each worker
hands its re-randomized share to the analyst (see ``protocols.worker``).

What leaks: the public list of groups (the analyst's); for ``group_mean``, which
groups have no row (their mean is NaN).

Minimum cohort (``protocols.joint_cohort``): each owner inputs its ``min_cohort`` as a
secret; a group whose joint row count is below the largest is withheld inside MPC (its
outputs multiplied by 0) and its public ``withheld[<group>]`` marker opens as 1. Exact:
on the exact count (in the program for group_sum and group_mean, whose counts stay
secret: the marker is then one bit of the count); DP: on the noisy count, after the noise.

DP release: counts and sums per group on the integer grid, noised inside MPC (group_sum
opens its noisy counts too, for the cohort rule); every mean (``group_by``'s and
``group_mean``'s) is then divided on the analyst's side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.privacy.withheld import finalizing
from protocols import joint_cohort
from protocols.aggregates import mean_frac_bits
from protocols.io import Context, SecureOutput
from protocols.registry import (
    KEY_TYPES,
    NUMERIC,
    BlockSpec,
    DpSensitivity,
    Example,
    Param,
    ProtocolDef,
    Reference,
    Role,
    Table,
)

GROUP = Role("group", KEY_TYPES, "the categorical column to group by (string or int)")
VALUE = Role("value", NUMERIC, "the numeric column to aggregate per group")


def labels(params: Mapping[str, Any]) -> list[str]:
    """The public groups as text: an int column's 7 matches 7 or "7", never "07"."""
    return [str(g) for g in params["groups"]]


def per_group(
    keys: np.ndarray, measures: Sequence[np.ndarray], groups: Sequence[str]
) -> np.ndarray:
    """An owner's per-key measures laid out on the public groups: shape (len(measures), G).

    Keys not listed are dropped; listed groups the owner does not have stay 0.
    """
    position = {g: i for i, g in enumerate(groups)}
    out = np.zeros((len(measures), len(groups)), dtype=object)
    out[:] = 0
    for row, key in enumerate(keys):
        i = position.get(str(key))
        if i is not None:
            for m, values in enumerate(measures):
                out[m, i] = int(values[row])
    return out


COUNT: tuple[str, str | None] = ("count", None)
SUM: tuple[str, str | None] = ("sum", "value")


async def _group_totals(ctx: Context, sectype: Any, measures: list[tuple[str, str | None]]) -> Any:
    """Secret-share every owner's measures per listed group and add them: shape (measures, G)."""
    mpc = ctx.mpc
    groups = labels(ctx.params)
    if ctx.local is not None:
        agg = ctx.local.aggregate(by=["group"], measures=measures)
        names = [f if r is None else f"{f}:{r}" for f, r in measures]
        local = per_group(agg.keys["group"], [agg.values[n] for n in names], groups)
    else:  # a placeholder: only its shape is used
        local = np.zeros((len(measures), len(groups)), dtype=object)
    ctx.progress("computing", 0.2)
    shared = mpc.input(sectype.array(local), senders=ctx.owners)
    ctx.progress("computing", 0.5)
    return mpc.np_sum(mpc.np_stack(shared), axis=0)


def _named(
    prefix: str, values: list[Any], groups: list[str], on_value_scale: bool
) -> list[SecureOutput]:
    return [
        SecureOutput(f"{prefix}[{g}]", v, on_value_scale)
        for g, v in zip(groups, values, strict=True)
    ]


def _marked(ctx: Context, outputs: list[SecureOutput], sectype: Any) -> list[SecureOutput]:
    """The outputs and a withheld marker per group (filled by the cohort rule)."""
    return outputs + joint_cohort.markers(labels(ctx.params), sectype)


async def group_count(ctx: Context) -> list[SecureOutput]:
    secint = ctx.mpc.SecInt(ctx.bit_length)
    totals = await _group_totals(ctx, secint, [COUNT])
    return _marked(
        ctx, _named("count", ctx.mpc.np_tolist(totals[0]), labels(ctx.params), False), secint
    )


async def group_sum(ctx: Context) -> list[SecureOutput]:
    """Sums per group; the counts are computed too, for the cohort rule: held here for an
    exact release (they stay secret), opened noisy under DP (their own block)."""
    mpc, groups = ctx.mpc, labels(ctx.params)
    secint = mpc.SecInt(ctx.bit_length)
    totals = await _group_totals(ctx, secint, [COUNT, SUM])
    counts = _named("count", mpc.np_tolist(totals[0]), groups, False)
    sums = _named("sum", mpc.np_tolist(totals[1]), groups, True)
    if ctx.dp:
        return _marked(ctx, counts + sums, secint)
    by_group: dict[str | None, Any] = {g: o.value for g, o in zip(groups, counts, strict=True)}
    return await joint_cohort.gate(ctx, _marked(ctx, sums, secint), by_group)


async def group_by(ctx: Context) -> list[SecureOutput]:
    mpc, groups = ctx.mpc, labels(ctx.params)
    secint = mpc.SecInt(ctx.bit_length)
    totals = await _group_totals(ctx, secint, [COUNT, SUM])
    return _marked(
        ctx,
        _named("count", mpc.np_tolist(totals[0]), groups, False)
        + _named("sum", mpc.np_tolist(totals[1]), groups, True),
        secint,
    )


async def group_mean(ctx: Context) -> list[SecureOutput]:
    if ctx.dp:  # noise goes on integers: noisy counts and sums, divided by the analyst
        return await group_by(ctx)
    mpc, groups = ctx.mpc, labels(ctx.params)
    f = mean_frac_bits(ctx.bit_length)  # as the plain mean: l = 2f, relative error < 2^-30
    secfxp = mpc.SecFxp(2 * f, f)
    totals = await _group_totals(ctx, secfxp, [COUNT, SUM])
    counts, sums = totals[0], totals[1]
    empty = counts == 0
    means = sums / (counts + empty)  # an empty group divides by 1; the analyst gets NaN
    ctx.progress("computing", 0.8)
    outputs = _named("mean", mpc.np_tolist(means), groups, True) + _named(
        "empty", mpc.np_tolist(empty), groups, False
    )
    # The counts stay secret: the cohort rule is held here, on them.
    by_group: dict[str | None, Any] = dict(zip(groups, mpc.np_tolist(counts), strict=True))
    return await joint_cohort.gate(ctx, _marked(ctx, outputs, secfxp), by_group)


def _finalize_group_by(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    out: dict[str, Fraction | float] = dict(values)
    for name, count in values.items():
        if name.startswith("count["):
            g = name[len("count[") : -1]
            # count > 0, not just nonzero: under DP a noisy count can be 0 or negative.
            out[f"mean[{g}]"] = values[f"sum[{g}]"] / count if count > 0 else math.nan
    return out


def _finalize_group_mean(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    if not any(name.startswith("empty[") for name in values):  # the DP release
        return _finalize_group_by(values)
    return {
        name: math.nan if values[f"empty{name[len('mean') :]}"] else value
        for name, value in values.items()
        if name.startswith("mean[")
    }


# -- plaintext references ------------------------------------------------------------------------


def _reference(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """count, sum (exact, in the declared unit) and mean per listed group over all owners."""
    groups = labels(params)
    count = dict.fromkeys(groups, 0)
    total: dict[str, Any] = dict.fromkeys(groups, 0)
    for t in tables:
        keys = [str(k) for k in np.asarray(t["group"]).tolist()]
        values = np.asarray(t["value"]) if "value" in t else np.zeros(len(keys))
        for key, v in zip(keys, values, strict=True):
            if key in count:
                count[key] += 1
                total[key] += v
    mean = {g: total[g] / count[g] if count[g] else math.nan for g in groups}
    return {"count": count, "sum": total, "mean": mean}


def _ref(*outputs: str) -> Reference:
    def reference(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
        ref = _reference(tables, params)
        return {f"{o}[{g}]": float(ref[o][g]) for o in outputs for g in labels(params)}

    return reference


# -- declarations --------------------------------------------------------------------------------

_GROUPS = Param(
    "groups",
    "labels",
    "the group values to report (public); rows of other groups are ignored",
    required=True,
)
_LEAK = (
    "Nothing to any party: each owner pre-aggregates its own rows per group locally and "
    "secret-shares only its {what} per listed group (zeros for groups it lacks, so which "
    "groups an owner has does not show); no party, the coordinator included, sees another "
    "owner's partials or the result, which reaches only the analyst. The list of groups "
    "is public (the analyst's); rows of unlisted groups are ignored. Minimum cohort: each "
    "owner inputs its min_cohort as a secret and a group whose joint row count (noisy under "
    "DP) is below the largest is withheld inside MPC (its outputs open as 0); the analyst "
    "learns only its public withheld[<group>] marker: for an exact release that the count is "
    "below k, for a DP release a function of the noisy count (no extra budget)."
)


def _dp_blocks(*kinds: str) -> DpSensitivity:
    """A row lands in one group, so a person with k rows per owner moves each per-group
    vector by at most Σk (counts) or Σk·B (sums) in L2 — not √G times more."""

    def blocks(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
        g = len(labels(params))
        count = float(sum(k for k, _ in owners))
        total = float(max(1, sum(k * b for k, b in owners)))
        return [BlockSpec(count if kind == "count" else total, g) for kind in kinds]

    return blocks


# Groups drawn include one not listed (ignored) and the list one nobody has (empty).
_EXAMPLE = Example(
    {"groups": ["10115", "20095", "99999", "80331"]}, groups=("10115", "10117", "20095", "80331")
)

DEFINITIONS = (
    ProtocolDef(
        name="group_count",
        family="group-by",
        summary="Number of rows per group, over the rows of all data owners",
        inputs="one categorical `group` column per data owner",
        outputs=("count[<group>]",),
        leakage=_LEAK.format(what="row count"),
        program="protocols.grouped:group_count",
        reference=_ref("count"),
        roles=((GROUP,),),
        parameters=(_GROUPS,),
        examples=(_EXAMPLE,),
        finalize=finalizing(),
        dp_sensitivity=_dp_blocks("count"),
        extra=joint_cohort.step("on_count"),
    ),
    ProtocolDef(
        name="group_sum",
        family="group-by",
        summary="Sum of a numeric column per group, over the rows of all data owners",
        inputs="per data owner: a categorical `group` column and a numeric `value` column",
        outputs=("sum[<group>]",),
        leakage=_LEAK.format(what="row count and sum")
        + " The counts are never opened in an exact release (only whether each is below the "
        "owners' min_cohort: its withheld marker). DP release: a noisy count per group is "
        "opened too (its own block, ρ/2), on which the cohort rule is held.",
        program="protocols.grouped:group_sum",
        reference=_ref("sum"),
        roles=((GROUP, VALUE),),
        parameters=(_GROUPS,),
        examples=(_EXAMPLE,),
        finalize=finalizing(),
        dp_sensitivity=_dp_blocks("count", "sum"),
        extra=joint_cohort.step("on_noisy_count"),
    ),
    ProtocolDef(
        name="group_mean",
        family="group-by",
        summary="Mean of a numeric column per group; the per-group counts stay secret",
        inputs="per data owner: a categorical `group` column and a numeric `value` column",
        outputs=("mean[<group>]",),
        leakage=_LEAK.format(what="row count and sum")
        + " Counts and sums are never opened: the division runs in MPC in fixed point "
        "(relative error below 1e-9); the analyst learns which listed groups have no row "
        "(their mean is NaN). DP release: as group_by's, noisy counts and sums per group are "
        "opened by the analyst, whose side divides (NaN where a noisy count is not positive); "
        "the counts then do not stay hidden from the analyst, only noised.",
        program="protocols.grouped:group_mean",
        reference=_ref("mean"),
        roles=((GROUP, VALUE),),
        parameters=(_GROUPS,),
        examples=(replace(_EXAMPLE, rel_error=1e-6),),  # fixed point: below 2^-30
        finalize=finalizing(_finalize_group_mean),
        dp_sensitivity=_dp_blocks("count", "sum"),
        extra=joint_cohort.step("on_noisy_count"),
    ),
    ProtocolDef(
        name="group_by",
        family="group-by",
        summary="Count, sum and mean of a numeric column per group (counts are released)",
        inputs="per data owner: a categorical `group` column and a numeric `value` column",
        outputs=("count[<group>]", "sum[<group>]", "mean[<group>]"),
        leakage=_LEAK.format(what="row count and sum")
        + " Per-group counts and sums are outputs; each mean is computed from them exactly "
        "on the analyst's side (NaN for a group with no row). To keep counts secret, use "
        "group_mean.",
        program="protocols.grouped:group_by",
        reference=_ref("count", "sum", "mean"),
        roles=((GROUP, VALUE),),
        parameters=(_GROUPS,),
        examples=(_EXAMPLE,),
        finalize=finalizing(_finalize_group_by),
        dp_sensitivity=_dp_blocks("count", "sum"),
        extra=joint_cohort.step("on_count"),
    ),
)

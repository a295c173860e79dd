"""The registry entries of the private joins: roles, parameters, leakage, DP sensitivity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import join_path
from ensnif_mpc.privacy.withheld import finalizing
from protocols import joint_cohort
from protocols.join.common import CAP, FILTER, GROUP, KEY, VALUE, row_cap
from protocols.join.correlation import _dp_correlation, _finalize_correlation
from protocols.join.group_by import _check_join_group_by, _dp_join_group_by, _finalize_group
from protocols.join.intersection import (
    _dp_intersection_size,
    _dp_intersection_sum,
    _finalize_intersection_sum,
)
from protocols.join.references import (
    _ref_intersection_size,
    _ref_intersection_sum,
    _ref_join_correlation,
    _ref_join_group_by,
)
from protocols.registry import (
    Example,
    Param,
    ProtocolDef,
    positional,
)

# -- declarations -------------------------------------------------------------------------------
_SIZES = (
    "the number of distinct keys of each owner (the sizes of the pre-aggregated tables) and "
    "the number of matching keys, to every party of the session, the helper included"
)
_NOT = (
    " No party learns which of its own keys matched (rows are shuffled obliviously before "
    "pseudonyms are revealed), nor any key of the other owner, nor any value. Rows without "
    "a key (NULL or empty) are left out of the join."
)
_DP = (
    " DP release: the outputs are noised inside MPC before the analyst opens them, but the "
    "parties still see the sizes and the exact number of matching keys by construction: "
    "the noise protects the release against the analyst only."
)


_COHORT = (
    " Minimum cohort: the matched set exists only inside MPC, so the owners' min_cohort is "
    "held there: each owner inputs its minimum as a secret, and {what} below the largest "
    "opens as 0 with its public {marker} marker set (exact: says only that the count is "
    "below k; DP: decided by the noisy count, no extra budget)."
)


_ROUTES = (
    " Routes (ensnif_mpc.jobs.join_path; the job's manifest names the one it takes): the "
    "text above is the prf-shuffle route's, taken with more than three parties, t >= 2 or "
    "params.join_path = 'prf-shuffle'. A session of two owners and one helper with t = 1 "
    f"takes the {join_path.DESCRIPTIONS[join_path.TAGGED]}."
)
_ALIGNED_ROUTES = (
    " Routes (ensnif_mpc.jobs.join_path; the job's manifest names the one it takes): the "
    "text above is the prf-shuffle route's, taken with more than three parties, t >= 2 or "
    "params.join_path = 'prf-shuffle'. A session of two owners and one helper with t = 1 "
    f"takes the {join_path.DESCRIPTIONS[join_path.ALIGNED]}."
)
OUTSOURCED = (
    " An outsourced side (a member without a node whose BFV-encrypted table a helper "
    "holds, docs/homomorphic.md): prf-shuffle route only (params.join_path = "
    "'prf-shuffle'); its one row per key (its hashed key, its columns) is converted into "
    "shares by the helper, which sees only ciphertexts and its masks, and the owner's "
    "client, which sees only masked values; then every party learns what that route "
    "reveals, the outsourced table's size being its catalog row count."
)
_ROUTE_PARAM = Param(
    join_path.PARAM,
    "string",
    "'auto' (the tagged-helper route where the session allows it) or 'prf-shuffle' (every "
    "party matches for itself; for owners who do not let the helper choose the selection)",
    default=join_path.AUTO,
)


_SESSIONS_PARAM = Param(
    "sessions",
    "int",
    "k parallel MPC sessions per party on disjoint keyed-hash partitions of the keys "
    "(tagged-helper route only; the coordinator takes the smallest of k and every node's "
    "parallel_sessions; protocols/partitions.py); default 1",
)


def _check_route(spec: Any) -> None:
    try:
        join_path.requested(spec.params)
    except ValueError as exc:
        raise InvalidJobSpec(str(exc)) from exc


def _check_sum(spec: Any) -> None:
    row_cap(spec.params)
    _check_route(spec)


def _cap(whose: str) -> Param:
    return Param(
        CAP,
        "int",
        f"DP release only: the most of {whose} rows one key contributes (its count is "
        "capped and its sum scaled to keep the key's mean); larger: less bias, more noise",
        default=1,
    )


def _check_cap(spec: Any) -> None:
    row_cap(spec.params)


def _check_correlation(spec: Any) -> None:
    _check_per_key(spec.params)
    row_cap(spec.params)
    _check_route(spec)


def _check_group_by(spec: Any) -> None:
    _check_join_group_by(spec)
    _check_route(spec)


DEFINITIONS = (
    ProtocolDef(
        name="intersection_size",
        family="private-join",
        summary="Number of join keys (e.g. customers) both data owners have",
        inputs="two data owners, each a `key` column (int or string, same type)",
        outputs=("count",),
        leakage=(
            f"Leaks {_SIZES}; the count is therefore known to the parties too.{_NOT}{_DP}"
            + _COHORT.format(what="a count", marker="withheld")
            + _ROUTES
            + OUTSOURCED
        ),
        program="protocols.join.intersection:intersection_size",
        reference=_ref_intersection_size,
        roles=((KEY,), (KEY,)),
        parameters=(_ROUTE_PARAM, _SESSIONS_PARAM),
        check_spec=_check_route,
        examples=(Example(),),
        min_data_owners=2,
        max_data_owners=2,
        finalize=finalizing(),
        dp_sensitivity=_dp_intersection_size,
        extra=joint_cohort.step("on_count"),
        partitionable=True,
    ),
    ProtocolDef(
        name="intersection_sum",
        family="private-join",
        summary="Sum and mean of the first owner's value over the keys both owners have",
        inputs="first owner: `key` and `value`; second owner: `key`",
        outputs=("keys", "rows", "sum", "mean"),
        leakage=(
            f"Leaks {_SIZES}; the first owner's count is taken after the analyst's optional "
            "min/max row filter, so the parties also see how many of its keys have a row in "
            "that range. The first owner's rows are pre-aggregated per key (sum, count) "
            "before sharing, so duplicate keys do not show. `rows` (the first owner's rows "
            "of matching keys) and `sum` reach only the analyst; `mean` = sum / rows."
            + _NOT
            + _DP
            + " Under DP each key counts at most max_rows_per_key of the first owner's rows "
            "(its sum scaled to keep its mean), so `rows` and `sum` are of the capped rows."
            + _COHORT.format(what="a release whose matched keys (`keys`) are", marker="withheld")
            + _ROUTES
            + OUTSOURCED
        ),
        program="protocols.join.intersection:intersection_sum",
        reference=_ref_intersection_sum,
        roles=((KEY, VALUE), (KEY,)),
        examples=(Example({"min": 20.0}, rel_error=1e-12),),  # the mean: one division
        parameters=(
            Param("min", "number", "only the first owner's rows with value >= min (local)"),
            Param("max", "number", "only the first owner's rows with value <= max (local)"),
            _cap("the first owner's"),
            _ROUTE_PARAM,
            _SESSIONS_PARAM,
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=finalizing(_finalize_intersection_sum),
        check_spec=_check_sum,
        dp_sensitivity=positional(_dp_intersection_sum),
        extra=joint_cohort.step("on_keys"),
        partitionable=True,
    ),
    ProtocolDef(
        name="join_group_by",
        family="private-join",
        summary=(
            "Count, sum and mean of the second owner's value by its group column, over the "
            "keys the first owner has (optionally only keys whose total in the first owner's "
            "filter column exceeds a threshold)"
        ),
        inputs=("first owner: `key` and optional `filter`; second owner: `key`, `group`, `value`"),
        outputs=("count[<group>]", "sum[<group>]", "mean[<group>]"),
        leakage=(
            "Leaks the number of distinct keys of the first owner and the number of (key, "
            "group) pairs of the second (its table is pre-aggregated per key and group, over "
            "the listed groups), the number of matching keys, and — for every key of the "
            "second owner — how many of the listed groups it has rows in (equal pseudonyms), "
            "to every party of the session, the helper included. "
            "The threshold is evaluated by the first owner on its own per-key totals and "
            "shared as a secret bit: nobody learns which keys pass. Rows of groups not "
            "listed in params.groups are ignored. Per-group counts and sums reach only the "
            "analyst."
            + _NOT
            + _DP
            + " Under DP each key of the second owner counts at most max_rows_per_key rows "
            "over the listed groups (taken in their listed order, each group's sum scaled to "
            "keep its mean)."
            + _COHORT.format(
                what="a group whose joined rows (count[<group>]) are", marker="withheld[<group>]"
            )
            + _ALIGNED_ROUTES
            + OUTSOURCED
        ),
        program="protocols.join.group_by:join_group_by",
        reference=_ref_join_group_by,
        roles=((KEY, FILTER), (KEY, GROUP, VALUE)),
        examples=(
            Example(
                {"groups": ["10115", "20095", "00000"], "threshold": 8.0},
                groups=("10115", "20095", "99999"),
                optional_roles=frozenset({"filter"}),
                rel_error=1e-12,
            ),
        ),
        parameters=(
            Param("groups", "labels", "the group values to report (public)", required=True),
            Param(
                "threshold",
                "number",
                "keep keys whose total of the first owner's `filter` column is > threshold",
            ),
            _cap("the second owner's"),
            _ROUTE_PARAM,
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=finalizing(_finalize_group),
        check_spec=_check_group_by,
        dp_sensitivity=positional(_dp_join_group_by),
        extra=joint_cohort.step("on_count"),
    ),
    ProtocolDef(
        name="join_correlation",
        family="private-join",
        summary="Pearson correlation between two owners' columns over the keys both have",
        inputs="two data owners, each `key` and `value`",
        outputs=("r", "pairs"),
        leakage=(
            f"Leaks {_SIZES}. Each owner first reduces its rows to one value per key "
            "(params.per_key: mean rounded half up to the session's decimals, or sum). "
            "The sums and cross-products stay secret; only r (and the public pair count) reach the "
            "analyst. r is NaN when fewer than two keys match or a side is constant."
            + _NOT
            + _DP
            + " Under DP the analyst opens noisy n, Σx, Σy, Σx², Σy², Σxy of the matched "
            "pairs instead, and its side computes r (NaN where a noisy spread is not "
            "positive) and the noisy pair count; with per_key = sum a key's sum counts at "
            "most max_rows_per_key rows (scaled to keep its mean)."
            + _COHORT.format(what="a release whose matched pairs are", marker="withheld")
            + _ALIGNED_ROUTES
            + OUTSOURCED
        ),
        program="protocols.join.correlation:join_correlation",
        reference=_ref_join_correlation,
        roles=((KEY, VALUE), (KEY, VALUE)),
        # r in fixed point (see protocols.join.correlation): within 1e-9.
        examples=(Example({"per_key": "sum"}, abs_error=1e-9),),
        parameters=(
            Param(
                "per_key",
                "string",
                "how a key's rows become one value: mean or sum",
                default="mean",
            ),
            _cap("an owner's (with per_key = sum)"),
            _ROUTE_PARAM,
        ),
        min_data_owners=2,
        max_data_owners=2,
        finalize=finalizing(_finalize_correlation),
        check_spec=_check_correlation,
        dp_sensitivity=positional(_dp_correlation),
        extra=joint_cohort.step("on_pairs"),
    ),
)


def _check_per_key(params: Mapping[str, Any]) -> None:
    if params.get("per_key", "mean") not in ("mean", "sum"):
        raise InvalidJobSpec(f"params.per_key: expected 'mean' or 'sum', got {params['per_key']!r}")

"""Protocols of the ``local`` backend: one data owner alone computes on its own data.

``local_sum``: the row count and the sum of the owner's ``value`` column (within the
optional [min, max] filter), computed by the owner's own worker, with no MPC session and
no other party; the result is sealed to the analyst as one record and signed by the node,
as any share is. It is the baseline a consortium compares an MPC job with, and the form
of a step that needs no other member's data.

Who provides what: one data owner, its value column. What is revealed: the exact count
and sum, to the analyst only (the owner's policy must allow the exact release). What
leaks: nothing to anyone else; no other party takes part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocols.io import LocalData
from protocols.registry import Example, Param, ProtocolDef, Table, row_filter


def local_sum(local: LocalData, params: Mapping[str, Any]) -> dict[str, tuple[int, bool]]:
    """(count, sum on the decimal grid) of this owner's filtered rows, exactly."""
    where = []
    if params.get("min") is not None:
        where.append(("value", ">=", params["min"]))
    if params.get("max") is not None:
        where.append(("value", "<=", params["max"]))
    agg = local.aggregate(measures=(("count", None), ("sum", "value")), where=where)
    count = int(agg.values["count"][0]) if len(agg.values["count"]) else 0
    total = agg.values["sum:value"][0] if len(agg.values["sum:value"]) else 0
    return {"count": (count, False), "sum": (int(total or 0), True)}


def ref_local_sum(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    kept = row_filter(tables[0]["value"], params)
    return {"count": float(kept.size), "sum": float(kept.sum())}


DEFINITIONS = (
    ProtocolDef(
        name="local_sum",
        family="local",
        summary="Row count and sum of one owner's column, computed by that owner alone",
        inputs="one data owner: a numeric `value` column (no helpers: no MPC session)",
        outputs=("count", "sum"),
        leakage="The owner's exact count and sum, sealed to the analyst only and signed by "
        "the owner's node; no other party takes part or learns anything.",
        program="protocols.local:local_sum",
        reference=ref_local_sum,
        parameters=(
            Param("min", "number", "only rows whose value is >= min"),
            Param("max", "number", "only rows whose value is <= max"),
        ),
        min_data_owners=1,
        max_data_owners=1,
        backend="local",
        examples=(Example({"min": -12.5, "max": 80.25}, owners=1, rows=(40,)),),
    ),
)

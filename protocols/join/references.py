"""Plaintext references (pandas) of the private joins, in the declared unit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protocols.join.group_by import _groups
from protocols.registry import (
    Table,
)


# -- plaintext references (pandas), in the declared unit ---------------------------------------
def _frame(table: Table) -> Any:
    import pandas as pd  # references run in tests, the demo and benchmarks only

    return pd.DataFrame({role: np.asarray(v) for role, v in table.items()})


def _filtered(frame: Any, params: Mapping[str, Any]) -> Any:
    keep = np.ones(len(frame), dtype=bool)
    if params.get("min") is not None:
        keep &= frame["value"].to_numpy() >= params["min"]
    if params.get("max") is not None:
        keep &= frame["value"].to_numpy() <= params["max"]
    return frame[keep]


def _ref_intersection_size(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = (set(np.asarray(t["key"]).tolist()) for t in tables[:2])
    return {"count": float(len(a & b))}


def _ref_intersection_sum(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a = _filtered(_frame(tables[0]), params)
    b = set(np.asarray(tables[1]["key"]).tolist())
    hit = a[a["key"].isin(b)]
    rows = len(hit)
    total = float(hit["value"].sum())
    return {
        "keys": float(hit["key"].nunique()),
        "rows": float(rows),
        "sum": total,
        "mean": total / rows if rows else math.nan,
    }


def _ref_join_group_by(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = _frame(tables[0]), _frame(tables[1])
    if params.get("threshold") is not None:
        totals = a.groupby("key")["filter"].sum()
        keys = set(totals[totals > params["threshold"]].index.tolist())
    else:
        keys = set(a["key"].tolist())
    hit = b[b["key"].isin(keys)]
    out: dict[str, float] = {}
    for g in _groups(params):
        rows = hit[hit["group"].astype(str) == g]
        n, total = len(rows), float(rows["value"].sum())
        out[f"count[{g}]"] = float(n)
        out[f"sum[{g}]"] = total
        out[f"mean[{g}]"] = total / n if n else math.nan
    return out


def _ref_join_correlation(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    import pandas as pd

    how = params.get("per_key", "mean")
    per_key = [
        _frame(t).groupby("key")["value"].agg("sum" if how == "sum" else "mean") for t in tables[:2]
    ]
    joined = pd.concat(per_key, axis=1, join="inner")
    if len(joined) < 2:
        return {"r": math.nan, "pairs": float(len(joined))}
    r = float(np.corrcoef(joined.iloc[:, 0], joined.iloc[:, 1])[0, 1])
    return {"r": r, "pairs": float(len(joined))}

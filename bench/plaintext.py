"""The plaintext baseline: the same questions with pandas on the same CSV files, as an analyst
who could see both owners' data would ask them (read included in the time)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

Frames = Sequence[pd.DataFrame]  # per input, its columns renamed to their roles


def read(path: Path, roles: dict[str, str]) -> pd.DataFrame:
    """One owner's columns by role; keys and groups as text (zips keep their leading zeros)."""
    text = {c for r, c in roles.items() if r in ("key", "group")}
    frame = pd.read_csv(
        path, usecols=sorted(set(roles.values())), dtype={c: str for c in text}, engine="pyarrow"
    )
    return pd.DataFrame({role: frame[column] for role, column in roles.items()})


def _sum(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    return {"sum": float(sum(f["value"].sum() for f in frames))}


def _mean(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    return {"mean": float(pd.concat([f["value"] for f in frames]).mean())}


def _variance(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    return {"variance": float(pd.concat([f["value"] for f in frames]).var(ddof=1))}


def _per_group(frame: pd.DataFrame, groups: list[str]) -> dict[str, float]:
    agg = frame.groupby("group")["value"].agg(["count", "sum"]).reindex(groups, fill_value=0)
    out: dict[str, float] = {}
    for g, (count, total) in zip(groups, agg.itertuples(index=False), strict=True):
        out[f"count[{g}]"] = float(count)
        out[f"sum[{g}]"] = float(total)
        out[f"mean[{g}]"] = float(total) / count if count else math.nan
    return out


def _group_by(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    return _per_group(pd.concat(frames), [str(g) for g in params["groups"]])


def _intersection_sum(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    a, b = frames
    hit = a[a["key"].isin(b["key"].unique())]
    rows, total = len(hit), float(hit["value"].sum())
    return {
        "keys": float(hit["key"].nunique()),
        "rows": float(rows),
        "sum": total,
        "mean": total / rows if rows else math.nan,
    }


def _join_group_by(frames: Frames, params: dict[str, Any]) -> dict[str, float]:
    a, b = frames
    # Compared exactly, on the filter column's 2 decimals, as its owner does.
    cents = a.assign(filter=np.rint(a["filter"].to_numpy() * 100).astype(np.int64))
    totals = cents.groupby("key")["filter"].sum()
    keys = totals.index[totals > math.floor(params["threshold"] * 100)]
    return _per_group(b[b["key"].isin(keys)], [str(g) for g in params["groups"]])


PLAINTEXT: dict[str, Callable[[Frames, dict[str, Any]], dict[str, float]]] = {
    "sum": _sum,
    "mean": _mean,
    "variance": _variance,
    "group_by": _group_by,
    "intersection_sum": _intersection_sum,
    "join_group_by": _join_group_by,
}


def agrees(got: dict[str, float], want: dict[str, float], rel: float = 1e-8) -> list[str]:
    """The outputs of ``want`` that ``got`` misses or gets wrong (NaN equals NaN)."""
    wrong = []
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            wrong.append(f"{name} missing")
        elif math.isnan(w) or math.isnan(g):
            if not (math.isnan(w) and math.isnan(g)):
                wrong.append(f"{name}: {g} != {w}")
        elif not math.isclose(g, w, rel_tol=rel, abs_tol=1e-6):
            wrong.append(f"{name}: {g!r} != {w!r}")
    return wrong

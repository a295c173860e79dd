"""The protocol registry: what each protocol takes, returns and leaks, and its plaintext reference.

This module must not import MPyC: the coordinator validates jobs with it and
the CLI lists it. A protocol's MPC program is named by ``program``
(``module:function``) and imported only by the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec, UnknownProtocol


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "number" | "int" | "bool" | "string"
    description: str
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class OwnerInput:
    """One data owner's column, as the worker sees it: integers scaled by 10**decimals."""

    values: np.ndarray
    lower: float
    upper: float
    decimals: int


Reference = Callable[[list[np.ndarray], Mapping[str, Any]], dict[str, float]]
Finalize = Callable[[dict[str, Fraction]], dict[str, Fraction | float]]


@dataclass(frozen=True)
class ProtocolDef:
    name: str
    family: str
    summary: str
    inputs: str
    outputs: tuple[str, ...]
    leakage: str
    program: str
    reference: Reference
    column_types: frozenset[str] = frozenset({"int", "float"})
    parameters: tuple[Param, ...] = ()
    min_data_owners: int = 1
    # Turns the opened secret outputs into the declared outputs (e.g. NaN for an empty mean).
    finalize: Finalize | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and complete parameters; errors name the offending parameter."""
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise InvalidJobSpec(
                f"params.{unknown[0]}: protocol {self.name!r} has no such parameter "
                f"(allowed: {allowed})"
            )
        out: dict[str, Any] = {}
        for p in self.parameters:
            if p.name not in params:
                if p.required:
                    raise InvalidJobSpec(f"params.{p.name}: required by protocol {self.name!r}")
                if p.default is not None:
                    out[p.name] = p.default
                continue
            value = params[p.name]
            ok = {
                "number": isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value),
                "int": isinstance(value, int) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "string": isinstance(value, str),
            }[p.type]
            if not ok:
                raise InvalidJobSpec(f"params.{p.name}: expected a finite {p.type}, got {value!r}")
            out[p.name] = value
        lo, hi = out.get("min"), out.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise InvalidJobSpec(f"params.min ({lo}) is greater than params.max ({hi})")
        return out


def row_filter(values: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The optional [min, max] row filter, evaluated by each owner on its own rows."""
    keep = np.ones(values.shape, dtype=bool)
    if params.get("min") is not None:
        keep &= values >= params["min"]
    if params.get("max") is not None:
        keep &= values <= params["max"]
    return values[keep]


def _ref_count(cols: list[np.ndarray], params: Mapping[str, Any]) -> dict[str, float]:
    return {"count": float(sum(row_filter(c, params).size for c in cols))}


def _ref_sum(cols: list[np.ndarray], params: Mapping[str, Any]) -> dict[str, float]:
    return {"sum": float(sum(row_filter(c, params).sum() for c in cols))}


def _ref_mean(cols: list[np.ndarray], params: Mapping[str, Any]) -> dict[str, float]:
    kept = np.concatenate([row_filter(c, params) for c in cols])
    return {"mean": float(kept.mean()) if kept.size else math.nan}


def _finalize_mean(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    return {"mean": math.nan if values["empty"] else values["mean"]}


def finalize(protocol: str, values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """The analyst-side last step: from the combined secret outputs to the declared outputs."""
    definition = get(protocol)
    return definition.finalize(values) if definition.finalize else dict(values)


_FILTER = (
    Param("min", "number", "only rows whose value is >= min (evaluated locally by each owner)"),
    Param("max", "number", "only rows whose value is <= max (evaluated locally by each owner)"),
)
_AGG_LEAKAGE = (
    "Nothing beyond the output to the analyst: each owner pre-aggregates its own rows "
    "locally (filter, sum, count) and secret-shares only those partials; no party, the "
    "coordinator included, sees another owner's partial or the result. The catalog already "
    "makes row counts public."
)

PROTOCOLS: dict[str, ProtocolDef] = {
    d.name: d
    for d in (
        ProtocolDef(
            name="count",
            family="aggregates",
            summary="Number of rows across all data owners (optionally within [min, max])",
            inputs="one numeric column per data owner",
            outputs=("count",),
            leakage=_AGG_LEAKAGE,
            program="protocols.aggregates:count",
            reference=_ref_count,
            parameters=_FILTER,
        ),
        ProtocolDef(
            name="sum",
            family="aggregates",
            summary="Sum of a numeric column across all data owners",
            inputs="one numeric column per data owner",
            outputs=("sum",),
            leakage=_AGG_LEAKAGE,
            program="protocols.aggregates:total",
            reference=_ref_sum,
            parameters=_FILTER,
        ),
        ProtocolDef(
            name="mean",
            family="aggregates",
            summary="Mean of a numeric column over the rows of all data owners",
            inputs="one numeric column per data owner",
            outputs=("mean",),
            leakage=_AGG_LEAKAGE + " The count is not revealed: the division is done in MPC; "
            "only whether the selection was empty is (the mean is then NaN).",
            program="protocols.aggregates:mean",
            reference=_ref_mean,
            finalize=_finalize_mean,
            parameters=_FILTER,
        ),
    )
}


def get(name: str) -> ProtocolDef:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(
            f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))} "
            "(see `ensnif protocols list`)"
        ) from None

"""The protocol registry: what each protocol takes, returns and leaks, and its plaintext reference.

This module must not import MPyC: the coordinator validates jobs with it and
the CLI lists it. A protocol's MPC program is named by ``program``
(``module:function``) and imported only by the worker.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition, UnknownProtocol
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.member_program import MEMBER_PROTOCOL

# The contract's vocabulary, re-exported for the protocol families.
from ensnif_mpc.jobs.protocol import (
    KEY_TYPES as KEY_TYPES,
    NUMERIC as NUMERIC,
    VALUE as VALUE,
    DpSensitivity as DpSensitivity,
    Example as Example,
    Finalize as Finalize,
    OwnerBounds as OwnerBounds,
    Param as Param,
    ProtocolDef as ProtocolDef,
    Reference as Reference,
    Role as Role,
    Table as Table,
)
from ensnif_mpc.privacy.dp import BlockSpec as BlockSpec


def row_filter(values: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The optional [min, max] row filter, evaluated by each owner on its own rows."""
    keep = np.ones(values.shape, dtype=bool)
    if params.get("min") is not None:
        keep &= values >= params["min"]
    if params.get("max") is not None:
        keep &= values <= params["max"]
    return values[keep]


def _ref_count(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    return {"count": float(sum(row_filter(t["value"], params).size for t in tables))}


def _ref_sum(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    return {"sum": float(sum(row_filter(t["value"], params).sum() for t in tables))}


def _ref_mean(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    kept = np.concatenate([row_filter(t["value"], params) for t in tables])
    return {"mean": float(kept.mean()) if kept.size else math.nan}


def _finalize_mean(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    if "empty" not in values:  # the DP release: noisy sum and count, divided here
        count = values["count"]
        return {"mean": values["sum"] / count if count > 0 else math.nan, **values}
    return {"mean": math.nan if values["empty"] else values["mean"]}


def _dp_count(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
    """A person with k rows at each owner changes the count by at most Σk."""
    return [BlockSpec(float(sum(k for k, _ in owners)), 1)]


def _dp_sum(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
    """... and the sum by at most Σ k·B (B: the owner's largest |value| on the grid)."""
    return [BlockSpec(float(max(1, sum(k * b for k, b in owners))), 1)]


def _dp_mean(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
    """The mean is released as a noisy sum and a noisy count (ρ split between them)."""
    return _dp_sum(owners, params) + _dp_count(owners, params)


# Every party draws its noise shares as 64-bit integers (ensnif_mpc.privacy.dp.sample_shares), which
# saturate near 9.2e18. A block's per-party scale is about Δ / sqrt(2·ρ_block·m); keeping Δ at
# or below 2^50 keeps 60 of those scales inside 64 bits down to ρ_block ≈ 3e-5 (m = 1).
MAX_DP_SENSITIVITY = float(2**50)


def sampler_safe(protocol: str, blocks: list[BlockSpec]) -> list[BlockSpec]:
    """The blocks unchanged, or a clear refusal when one is beyond what the sampler can noise.

    Sums of squares and cross-products (variance, correlation) reach B² on the integer grid,
    far beyond any sum: without this check their noise would saturate, silently.
    """
    for block in blocks:
        if block.l2 > MAX_DP_SENSITIVITY:
            raise FailedPrecondition(
                f"the DP release of {protocol!r} has sensitivity {block.l2:.3g} on the columns' "
                f"integer grid, beyond the {MAX_DP_SENSITIVITY:.3g} the noise sampler supports; "
                "declare narrower bounds or fewer decimals, or ask for an exact release",
                reason="dp_unavailable",
            )
    return blocks


def positional(blocks: DpSensitivity) -> DpSensitivity:
    """For a protocol whose owners play different roles (a join): ``blocks`` reads
    ``owners`` in input order. A node checks its own contribution with a one-owner list and
    no position, so a single owner gets the smaller of its blocks at either position —
    a lower bound of what it contributes wherever it stands, which is what that check needs.
    """

    def wrapped(owners: Sequence[OwnerBounds], params: Mapping[str, Any]) -> list[BlockSpec]:
        if len(owners) != 1:
            return blocks(owners, params)
        first = blocks([owners[0], OwnerBounds(0)], params)
        second = blocks([OwnerBounds(0), owners[0]], params)
        return [_smaller(a, b) for a, b in zip(first, second, strict=True)]

    return wrapped


def _smaller(a: BlockSpec, b: BlockSpec) -> BlockSpec:
    """The elementwise smaller of two declarations of one block (L2, and L1 where both have
    one); the number of outputs is the same."""
    if a.l1 is not None and b.l1 is not None:
        return BlockSpec(min(a.l2, b.l2), a.dims, min(a.l1, b.l1))
    return BlockSpec(min(a.l2, b.l2), a.dims)


def finalize(protocol: str, values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """The analyst-side last step: from the combined secret outputs to the declared outputs."""
    if protocol == MEMBER_PROTOCOL:  # a member program's outputs are its declared ones
        return dict(values)
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
            examples=(Example({"min": -12.5, "max": 80.25}, rows=(30, 50)),),
            dp_sensitivity=_dp_count,
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
            examples=(Example({"min": -12.5, "max": 80.25}, rows=(30, 50)),),
            dp_sensitivity=_dp_sum,
        ),
        ProtocolDef(
            name="mean",
            family="aggregates",
            summary="Mean of a numeric column over the rows of all data owners",
            inputs="one numeric column per data owner",
            outputs=("mean",),
            leakage=_AGG_LEAKAGE + " Exact release: the count is not revealed, the division "
            "is done in MPC; only whether the selection was empty is (the mean is then NaN). "
            "DP release: a noisy sum and a noisy count are opened by the analyst, who divides.",
            program="protocols.aggregates:mean",
            reference=_ref_mean,
            finalize=_finalize_mean,
            parameters=_FILTER,
            # Fixed point with bit_length + 30 fractional bits: relative error below 2^-30.
            examples=(Example({"min": -12.5, "max": 80.25}, rows=(30, 50), rel_error=1e-6),),
            dp_sensitivity=_dp_mean,
        ),
    )
}


# Families declared in their own modules (declarations only at import time: their
# MPC programs import MPyC lazily, through the runtime the worker passes in).
FAMILY_MODULES = (
    "protocols.statistics",
    "protocols.grouped",
    "protocols.discovery",
    "protocols.join",
    "protocols.ports",
    "protocols.ports.restart",
    "protocols.stash",
    "protocols.local",
    "protocols.models",
    "protocols.models.learning",
    "protocols.models.predicting",
    "protocols.join.moments",
    "protocols.models.vertical_defs",
)


_collected = False  # set when collection starts (a family module's own import sees it)
_collecting = threading.RLock()
_done = threading.Event()


def catalog() -> dict[str, ProtocolDef]:
    """Every protocol, the families' included (collected on first use: a family module
    imports this one, so collecting at import time would be circular). Another thread
    asking while one collects waits for the whole catalog, not a part of it."""
    global _collected
    if not _done.is_set():
        with _collecting:
            if not _collected:
                _collected = True
                try:
                    _collect()
                finally:
                    _done.set()
    return PROTOCOLS


def _collect() -> None:
    import importlib

    for module_name in FAMILY_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for d in module.DEFINITIONS:
            if d.name in PROTOCOLS:
                raise ValueError(f"protocol {d.name!r} declared twice")
            PROTOCOLS[d.name] = d


def get(name: str) -> ProtocolDef:
    try:
        return catalog()[name]
    except KeyError:
        raise UnknownProtocol(
            f"unknown protocol {name!r}; known: {', '.join(sorted(catalog()))} "
            "(see `ensnif protocols list`)"
        ) from None


def for_spec(spec: JobSpec) -> ProtocolDef:
    """The definition a job is checked and signed against: its registry entry, or for
    ``protocol = "program"`` the one its member program's manifest declares (the program
    is pinned by its hash, which the definition carries in ``extra["program"]``)."""
    if spec.program is not None:
        return spec.program.manifest.definition(spec.program.digest)
    return get(spec.protocol)

"""What a protocol declares: its roles, parameters, outputs, leakage, DP sensitivity, reference.

The contract between the catalog and everything that checks a job against it: the
coordinator, every node (``ensnif_mpc.jobs.checks``) and the manifest read a
:class:`ProtocolDef`; the entries themselves live in ``protocols/registry.py`` (and its
family modules), above this core. Nothing here imports MPyC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.privacy.dp import BlockSpec


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "number" | "int" | "bool" | "string"
    description: str
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Role:
    """A column a data owner provides to a protocol, by what it does there."""

    name: str  # value | key | group | filter (ensnif_mpc.jobs.jobspec.ROLES)
    types: frozenset[str]
    description: str
    required: bool = True


NUMERIC = frozenset({"int", "float"})
KEY_TYPES = frozenset({"int", "string"})
VALUE = Role("value", NUMERIC, "the numeric column to aggregate")

# A reference gets, per data owner in input order, its columns by role (as declared:
# floats for numbers, str/int for keys) and returns the declared outputs.
Table = Mapping[str, np.ndarray]
Reference = Callable[[Sequence[Table], Mapping[str, Any]], dict[str, float]]
# From each owner's (rows per person, largest |value| on the integer grid) and the
# parameters: the blocks of the noisy release in output order, each a BlockSpec (L2
# sensitivity, outputs, and the L1 sensitivity where a block knows a better one than
# √outputs·L2, for the discrete Laplace mechanism; ensnif_mpc.privacy.dlaplace.l1_bound).
DpSensitivity = Callable[[Sequence[tuple[int, int]], Mapping[str, Any]], list[BlockSpec]]
Finalize = Callable[[dict[str, Fraction]], dict[str, Fraction | float]]


@dataclass(frozen=True)
class Example:
    """A valid job of a protocol, with what a generator needs to make data for it.

    The contract suite (``tests/contract``) runs every registered protocol on each entry
    of its ``examples``: data drawn per role within [lower, upper] at ``decimals``
    (``rows`` per owner; ``keys`` distinct keys per owner, ``overlap`` of them shared
    with the other owners; group labels from ``groups``), or the owners' columns as given
    in ``data`` (a known answer), and compares the MPC result with the reference within
    ``rel_error``/``abs_error`` (0: exact; fixed point: its declared precision).
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    owners: int = 2
    rows: tuple[int, ...] = (40,)  # per owner; the last entry repeats
    lower: float = -50.0
    upper: float = 120.0
    decimals: int = 2
    keys: int = 12
    overlap: float = 0.5
    groups: tuple[str, ...] = ()
    optional_roles: frozenset[str] = frozenset()  # optional roles the example fills
    data: tuple[Mapping[str, Sequence[Any]], ...] = ()  # per owner: role -> column
    rel_error: float = 0.0
    abs_error: float = 0.0


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
    # Roles per input position; the last entry applies to every further data owner.
    roles: tuple[tuple[Role, ...], ...] = ((VALUE,),)
    parameters: tuple[Param, ...] = ()
    min_data_owners: int = 1
    max_data_owners: int | None = None
    # Turns the opened secret outputs into the declared outputs (e.g. NaN for an empty mean).
    finalize: Finalize | None = None
    # Checks across inputs and parameters (e.g. a threshold needs a `filter` column);
    # raises InvalidJobSpec naming the field. Gets the ensnif_mpc.jobs.jobspec.JobSpec.
    check_spec: Callable[[Any], None] | None = None
    # Differential privacy: the blocks of the noisy release (see DpSensitivity).
    # None: the protocol has no DP release yet (exact only, where owners allow it).
    dp_sensitivity: DpSensitivity | None = None
    # Bumped when a protocol's meaning changes; submitters sign it (jobspec.canonical).
    version: int = 1
    # Valid jobs for the contract suite and the docs (see Example); an entry without one
    # fails the suite.
    examples: tuple[Example, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def roles_at(self, position: int) -> tuple[Role, ...]:
        return self.roles[min(position, len(self.roles) - 1)]

    def check_roles(self, position: int, given: Mapping[str, str]) -> None:
        """The roles an input fills must be the ones the protocol takes at its position."""
        where = f"inputs[{position}]"
        declared = {r.name: r for r in self.roles_at(position)}
        for role in given:
            if role not in declared:
                takes = ", ".join(declared) or "nothing"
                key = "column" if role == "value" else role
                raise InvalidJobSpec(
                    f"{where}.{key}: protocol {self.name!r} takes no {role!r} column at this "
                    f"position (it takes: {takes})"
                )
        for r in declared.values():
            if r.required and r.name not in given:
                key = "column" if r.name == "value" else r.name
                raise InvalidJobSpec(
                    f"{where}.{key}: protocol {self.name!r} needs a {r.name!r} column here "
                    f"({r.description})"
                )

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
            if not _type_ok(p.type, value):
                raise InvalidJobSpec(
                    f"params.{p.name}: expected {_TYPE_WORDS[p.type]}, got {value!r}"
                )
            out[p.name] = value
        lo, hi = out.get("min"), out.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise InvalidJobSpec(f"params.min ({lo}) is greater than params.max ({hi})")
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_TYPE_WORDS = {
    "number": "a finite number",
    "int": "an integer",
    "bool": "true or false",
    "string": "a string",
    "numbers": "a non-empty list of finite numbers",
    "labels": "a non-empty list of distinct strings or integers",
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "number":
        return _is_number(value)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "numbers":
        return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)
    if kind == "labels":
        return (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value)
            and len({str(v) for v in value}) == len(value)
        )
    raise ValueError(f"unknown parameter type {kind!r}")

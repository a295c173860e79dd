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
    """A column a data owner provides to a protocol, by what it does there.

    A role with ``many`` takes a list of columns (``features = ["x1", "x2"]``), between
    ``min_columns`` and ``max_columns`` of them, in the order the job lists them (the
    order is part of the signed job: column j of the matrix is the j-th listed).
    """

    name: str  # ensnif_mpc.jobs.jobspec.ROLES: value, key, group, filter, features, label, …
    types: frozenset[str]
    description: str
    required: bool = True
    many: bool = False
    min_columns: int = 1
    max_columns: int = 1
    # Declared bounds every column of the role must lie within (e.g. a 0/1 label: (0, 1)),
    # checked against the catalog before anything runs; None: any bounds.
    within: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_columns <= self.max_columns or (
            not self.many and self.max_columns != 1
        ):
            raise ValueError(f"role {self.name!r}: bad column counts")

    def spec_key(self) -> str:
        """The job spec's key for this role (``column`` for the value role)."""
        return "column" if self.name == "value" else self.name


# Roles whose numeric columns are read on the session's decimal grid (value · 10^decimals)
# and bound the release's sensitivity and the session's sizes; a filter is thresholded
# locally on its own column's grid and bounds nothing.
GRID_ROLES = frozenset({"value", "features", "label", "weight"})


BACKENDS = frozenset({"mpyc", "local", "he"})
ANALYST = "analyst"
ARTIFACT = "artifact"


def party_destination(index: int) -> str:
    """The destination of an output opened only by the member at MPC party ``index``."""
    return f"party:{index}"


# A model's ``keep = "to:<member>"`` (protocols/models/keep.py): the outputs the analyst
# would open are opened by that data owner of the job only; its policy's recipient.
TO_MEMBER = "to:"


def member_recipient(params: Mapping[str, Any]) -> str | None:
    """The member a job's outputs are released to instead of the analyst, if any."""
    keep = params.get("keep")
    if isinstance(keep, str) and keep.startswith(TO_MEMBER):
        return keep[len(TO_MEMBER) :]
    return None


def destination_party(destination: str) -> int | None:
    """The MPC party index of a ``party:<i>`` destination; None for the analyst or an artifact."""
    if destination.startswith("party:"):
        return int(destination.split(":", 1)[1])
    return None


NUMERIC = frozenset({"int", "float"})
KEY_TYPES = frozenset({"int", "string"})
VALUE = Role("value", NUMERIC, "the numeric column to aggregate")

# A reference gets, per data owner in input order, its columns by role (as declared:
# floats for numbers, str/int for keys) and returns the declared outputs.
Table = Mapping[str, np.ndarray]
Reference = Callable[[Sequence[Table], Mapping[str, Any]], dict[str, float]]


class OwnerBounds(tuple[int, int]):
    """What one owner's input can contribute: rows per person and, per role on the grid,
    the largest |value| of each of its columns on the integer grid (in the job's order).

    It is also the pair (rows per person, bound of the ``value`` column; 0 without one)
    that the one-column protocols unpack as ``k, b = owner``, so they read it as before;
    a protocol with several columns reads :attr:`bounds`.
    """

    bounds: Mapping[str, tuple[int, ...]]

    def __new__(
        cls, rows_per_person: int, bounds: Mapping[str, tuple[int, ...]] | None = None
    ) -> OwnerBounds:
        given = dict(bounds or {})
        value = given.get("value", (0,))
        self = super().__new__(cls, (rows_per_person, value[0] if value else 0))
        self.bounds = given
        return self

    @property
    def rows_per_person(self) -> int:
        return self[0]

    def role(self, name: str) -> tuple[int, ...]:
        """The grid bounds of the columns of role ``name`` (empty if the input has none)."""
        return self.bounds.get(name, ())

    def __repr__(self) -> str:
        return f"OwnerBounds({self[0]}, {self.bounds!r})"


# From each owner's OwnerBounds and the parameters: the blocks of the noisy release in
# output order, each a BlockSpec (L2 sensitivity, outputs, and the L1 sensitivity where a
# block knows a better one than √outputs·L2, for the discrete Laplace mechanism;
# ensnif_mpc.privacy.dlaplace.l1_bound). A plain (k, b) pair is an OwnerBounds' one-column
# reading, which the one-column protocols take.
DpSensitivity = Callable[[Sequence[OwnerBounds], Mapping[str, Any]], list[BlockSpec]]


@dataclass(frozen=True)
class OwnerSize:
    """One owner's input as the sizing sees it: its rows and each grid role's column
    bounds on the integer grid (as in :class:`OwnerBounds`)."""

    rows: int
    bounds: Mapping[str, tuple[int, ...]]


# A protocol whose secure values grow beyond Σ rows·|bound| (a Gram matrix: Σ x_j·x_l)
# declares the largest magnitude any of them reaches on the integer grid; the session's
# bit length is sized to hold it (ensnif_mpc.jobs.checks.sizing_for).
SizingNeed = Callable[[Sequence[OwnerSize], Mapping[str, Any]], int]
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
    columns: Mapping[str, int] = field(default_factory=dict)  # many-column role -> how many
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
    # The largest magnitude the protocol's secure values reach, where it exceeds the sum
    # of one column (see SizingNeed); None: Σ rows·|bound| of the value column.
    sizing: SizingNeed | None = None
    # Checks of the job against the catalog's row counts (the owners', in input order),
    # e.g. more coefficients than rows; raises a refusal naming the rule.
    check_rows: Callable[[Any, Sequence[int]], None] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Its outputs are sums over join keys, so a job may run as k parallel MPC sessions on
    # disjoint key partitions (params.sessions; ensnif_mpc/jobs/sessions.py).
    partitionable: bool = False
    # Who computes: "mpyc" (every party of the session, Shamir shares), "local" (one data
    # owner alone on its own data, no MPC session), "he" (homomorphic encryption).
    backend: str = "mpyc"
    # Where outputs go, by output name (as in ``outputs``, "<i>" patterns included):
    # "analyst" (the default for a name not listed), "party:<i>" (opened only by the
    # member at MPC party index i) or "artifact" (kept secret-shared at every party).
    destinations: Mapping[str, str] = field(default_factory=dict)
    # Artifacts the program imports (Program.import_shares), by name: a job of this
    # protocol lists their ids in its spec's ``artifacts``.
    artifacts_in: tuple[str, ...] = ()

    def destination(self, output: str) -> str:
        """Where ``output`` goes (see ``destinations``)."""
        return self.destinations.get(output, ANALYST)

    def roles_at(self, position: int) -> tuple[Role, ...]:
        return self.roles[min(position, len(self.roles) - 1)]

    def check_roles(self, position: int, given: Mapping[str, str | Sequence[str]]) -> None:
        """The roles an input fills must be the ones the protocol takes at its position,
        each with as many columns as the role takes (a list only for a many-column role)."""
        where = f"inputs[{position}]"
        declared = {r.name: r for r in self.roles_at(position)}
        for role, columns in given.items():
            if role not in declared:
                takes = ", ".join(declared) or "nothing"
                key = "column" if role == "value" else role
                raise InvalidJobSpec(
                    f"{where}.{key}: protocol {self.name!r} takes no {role!r} column at this "
                    f"position (it takes: {takes})"
                )
            check_column_count(declared[role], columns, f"{where}.{declared[role].spec_key()}")
        for r in declared.values():
            if r.required and r.name not in given:
                raise InvalidJobSpec(
                    f"{where}.{r.spec_key()}: protocol {self.name!r} needs "
                    + (
                        f"a list of {_count_words(r)} here"
                        if r.many
                        else f"a {r.name!r} column here"
                    )
                    + f" ({r.description})"
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


def check_column_count(role: Role, columns: str | Sequence[str], where: str) -> None:
    """A single-column role takes one name, not a list; a many-column role a list (or one
    name) of between min_columns and max_columns distinct columns."""
    if isinstance(columns, str):
        columns = (columns,)  # one name: a many-role's list of one
    elif not role.many:
        raise InvalidJobSpec(
            f"{where}: the {role.name!r} role takes one column, not a list ({len(columns)} given)",
            reason="role_column_count",
        )
    if not role.min_columns <= len(columns) <= role.max_columns:
        raise InvalidJobSpec(
            f"{where}: the {role.name!r} role takes {_count_words(role)}, {len(columns)} given",
            reason="role_column_count",
        )
    if len(set(columns)) != len(columns):
        raise InvalidJobSpec(f"{where}: a column is listed twice")


def _count_words(role: Role) -> str:
    lo, hi = role.min_columns, role.max_columns
    return f"{lo} column{'s' if lo > 1 else ''}" if lo == hi else f"{lo} to {hi} columns"


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

"""Job validation against the catalog: protocol, parties, datasets, columns, threshold.

Errors name the offending field of the job spec. The result also fixes the
secure-type sizes every party will use, derived from the published bounds and
row counts (each node re-checks them against its own data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from ensnif_mpc.data.schema import DatasetSchema
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    FailedPrecondition,
    InvalidJobSpec,
    NotEnoughParties,
    PolicyViolation,
    UnknownColumn,
    UnknownDataset,
    UnknownParty,
)
from ensnif_mpc.jobs.jobspec import JobSpec, Privacy
from ensnif_mpc.privacy import dlaplace
from ensnif_mpc.privacy.dp import EXACT, ReleasePlan, laplace_plan, plan as dp_plan
from protocols import registry


@dataclass(frozen=True)
class Sizing:
    """Secure-type sizes fixed for the whole session, and how its outputs are released."""

    bit_length: int
    decimals: int
    release: ReleasePlan = EXACT

    def as_dict(self) -> dict[str, Any]:
        return {
            "bit_length": self.bit_length,
            "decimals": self.decimals,
            "release": self.release.to_dict(),
        }


def honest_majority_threshold(n: int) -> int:
    return (n - 1) // 2


def sizing_for(columns: list[tuple[int, float, int]], decimals: int) -> Sizing:
    """Bits for any sum of the inputs: Σ rows·|bound|·10^decimals, plus sign and headroom."""
    total = sum(rows * math.ceil(bound * 10**decimals) for rows, bound, _ in columns)
    total = max(total, sum(rows for rows, _, _ in columns), 1)
    return Sizing(bit_length=max(32, total.bit_length() + 2), decimals=decimals)


def validate(
    spec: JobSpec,
    party_role: Callable[[str], str | None],
    dataset: Callable[[str, str], DatasetSchema | None],
) -> Sizing:
    definition = registry.get(spec.protocol)
    definition.check_params(spec.params)
    for n, inp in enumerate(spec.inputs):
        if party_role(inp.party) is None:
            raise UnknownParty(
                f"inputs[{n}].party: no party {inp.party!r} is registered (`ensnif parties list`)"
            )
    for n, helper in enumerate(spec.helpers):
        if party_role(helper) is None:
            raise UnknownParty(f"helpers[{n}]: no party {helper!r} is registered")
    if len(spec.owners) < definition.min_data_owners:
        raise NotEnoughParties(
            f"inputs: protocol {spec.protocol!r} needs at least {definition.min_data_owners} "
            "data owners"
        )
    n_parties = len(spec.party_order)
    if n_parties == 2:
        raise NotEnoughParties(
            "helpers: two parties give threshold t = 0, i.e. no secrecy at all; add a "
            'compute-only helper so that t = 1 < n/2 (e.g. helpers = ["helper"])'
        )
    if definition.max_data_owners is not None and len(spec.owners) > definition.max_data_owners:
        raise NotEnoughParties(
            f"inputs: protocol {spec.protocol!r} takes at most {definition.max_data_owners} "
            "data owners",
            reason="too_many_parties",
        )
    columns: list[tuple[int, float, int]] = []
    rows: list[int] = []
    key_types: dict[str, str] = {}
    for n, inp in enumerate(spec.inputs):
        ds = dataset(inp.party, inp.dataset)
        if ds is None:
            raise UnknownDataset(
                f"inputs[{n}].dataset: party {inp.party!r} has published no dataset {inp.dataset!r}"
            )
        given = inp.columns
        definition.check_roles(n, given)
        declared = {r.name: r for r in definition.roles_at(n)}
        for role, name in given.items():
            field = "column" if role == "value" else role
            col = ds.column(name)
            if col is None:
                names = ", ".join(c.name for c in ds.columns)
                raise UnknownColumn(
                    f"inputs[{n}].{field}: dataset {inp.party}/{inp.dataset} has no "
                    f"column {name!r} (columns: {names}); an owner can only use its own columns"
                )
            if col.type not in declared[role].types:
                raise ColumnTypeMismatch(
                    f"inputs[{n}].{field}: {name!r} is of type {col.type}; protocol "
                    f"{spec.protocol!r} needs {' or '.join(sorted(declared[role].types))} "
                    f"for its {role!r} column"
                )
            if role == "value":
                columns.append((ds.row_count, col.abs_bound, col.decimals))
            if role == "key":
                key_types[f"{inp.party}/{inp.dataset}.{name}"] = col.type
        rows.append(ds.row_count)
    if len(set(key_types.values())) > 1:
        listed = ", ".join(f"{k} ({t})" for k, t in key_types.items())
        raise ColumnTypeMismatch(
            f"inputs: join keys must have one type; got {listed}", reason="key_type_mismatch"
        )
    if definition.check_spec is not None:
        definition.check_spec(spec)
    if not columns:  # no value column (e.g. an intersection size): counts only
        sizing = sizing_for([(r, 1.0, 0) for r in rows], 0)
    else:
        sizing = sizing_for(columns, max(d for _, _, d in columns))
    schemas = [dataset(i.party, i.dataset) for i in spec.inputs]
    release = release_plan(spec, [s for s in schemas if s is not None], sizing.decimals)
    return replace(sizing, bit_length=sizing.bit_length + release.headroom_bits(), release=release)


def owner_contribution(schema: DatasetSchema, value_column: str, decimals: int) -> tuple[int, int]:
    """(rows per person, largest |value| on the integer grid) of one owner's input."""
    col = schema.column(value_column) if value_column else None
    bound = math.ceil(col.abs_bound * 10**decimals) if col is not None else 0
    return schema.policy.rows_per_person, bound


def release_plan(spec: JobSpec, schemas: list[DatasetSchema], decimals: int) -> ReleasePlan:
    """Exact where every owner allows it and the job asks; otherwise calibrated DP noise.

    Gaussian: ρ is the job's ``[privacy] rho`` or, without one, the smallest default
    among the owners' published policies. Laplace: the job's ε (it costs ρ = ε²/2) and δ.
    Each owner's node re-derives the scale and enforces its own ceiling and budget; this
    is only the coordinator's proposal.
    """
    definition = registry.get(spec.protocol)
    privacy = spec.privacy
    if privacy is not None and privacy.exact:
        refusing = [
            f"{s.party}/{s.name}" for s in schemas if spec.protocol not in s.policy.exact_protocols
        ]
        if refusing:
            raise PolicyViolation(
                f"privacy.exact: the policy of {', '.join(refusing)} does not allow exact "
                f"release of {spec.protocol!r}"
                + (
                    "; remove `exact` to get a DP release"
                    if definition.dp_sensitivity is not None
                    else " (and it has no DP release yet)"
                ),
                reason="exact_not_allowed",
            )
        return EXACT
    if definition.dp_sensitivity is None:
        raise FailedPrecondition(
            f"protocol {spec.protocol!r} has no differentially private release yet; "
            "ask for privacy.exact = true where every owner's policy allows it",
            reason="dp_unavailable",
        )
    owners = [
        owner_contribution(s, i.column, decimals) for s, i in zip(schemas, spec.inputs, strict=True)
    ]
    n = len(spec.party_order)
    blocks = definition.dp_sensitivity(owners, spec.params)
    if privacy is not None and privacy.mechanism == "laplace":
        return _laplace_plan(privacy, schemas, blocks, n)
    rho = privacy.rho if privacy is not None and privacy.rho is not None else None
    if rho is None:
        rho = min(s.policy.default_rho for s in schemas)
    over = [f"{s.party}/{s.name}" for s in schemas if rho > s.policy.max_rho]
    if over:
        raise PolicyViolation(
            f"privacy.rho: {rho:g} exceeds the per-job ceiling (max_rho) of {', '.join(over)}",
            reason="rho_above_policy",
        )
    return dp_plan(rho, blocks, n, honest_majority_threshold(n))


def _laplace_plan(
    privacy: Privacy, schemas: list[DatasetSchema], blocks: list[tuple[float, int]], n: int
) -> ReleasePlan:
    """Pure ε-DP: discrete Laplace noise sampled in MPC; each owner's max_rho caps ε²/2."""
    if privacy.epsilon is None:
        raise InvalidJobSpec('privacy.epsilon: required with mechanism = "laplace"')
    epsilon = privacy.epsilon
    delta = privacy.delta if privacy.delta is not None else dlaplace.DEFAULT_DELTA
    cost = dlaplace.charge(epsilon)
    over = [f"{s.party}/{s.name}" for s in schemas if cost > Fraction(s.policy.max_rho)]
    if over:
        raise PolicyViolation(
            f"privacy.epsilon: ε = {epsilon:g} costs ρ = ε²/2 = {float(cost):g}, which exceeds "
            f"the per-job ceiling (max_rho) of {', '.join(over)}",
            reason="rho_above_policy",
        )
    return laplace_plan(epsilon, delta, blocks, n, honest_majority_threshold(n))

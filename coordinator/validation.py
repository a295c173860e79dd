"""Job validation against the catalog: protocol, parties, datasets, columns, threshold.

Errors name the offending field of the job spec. The result also fixes the
secure-type sizes every party will use, derived from the published bounds and
row counts (each node re-checks them against its own data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    NotEnoughParties,
    UnknownColumn,
    UnknownDataset,
    UnknownParty,
)
from ensnif_mpc.jobspec import JobSpec
from ensnif_mpc.schema import DatasetSchema
from protocols import registry


@dataclass(frozen=True)
class Sizing:
    """Secure-type sizes fixed for the whole session."""

    bit_length: int
    decimals: int

    def as_dict(self) -> dict[str, int]:
        return {"bit_length": self.bit_length, "decimals": self.decimals}


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
        return sizing_for([(r, 1.0, 0) for r in rows], 0)
    decimals = max(d for _, _, d in columns)
    return sizing_for(columns, decimals)

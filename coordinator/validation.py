"""Job validation against the catalog, at the coordinator.

The checks themselves live in :mod:`ensnif_mpc.jobs.checks`, which every node runs
again with its own configuration; this module only looks the protocol up in the
registry (which the core may not import) and hands the catalog to them. Errors name
the offending field of the job spec. The result also fixes the secure-type sizes every
party will use, derived from the published bounds and row counts.
"""

from __future__ import annotations

from collections.abc import Callable

from ensnif_mpc.data.schema import DatasetSchema
from ensnif_mpc.jobs import checks
from ensnif_mpc.jobs.checks import Sizing, honest_majority_threshold, sizing_for
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy.dp import ReleasePlan
from protocols import registry

__all__ = [
    "Sizing",
    "honest_majority_threshold",
    "owner_contribution",
    "release_plan",
    "sizing_for",
    "validate",
]


def validate(
    spec: JobSpec,
    party_role: Callable[[str], str | None],
    dataset: Callable[[str, str], DatasetSchema | None],
) -> Sizing:
    """Protocol, parties, datasets, columns, threshold, sizes and the release plan."""
    return checks.check_job(registry.for_spec(spec), spec, party_role, dataset)


def release_plan(spec: JobSpec, schemas: list[DatasetSchema], decimals: int) -> ReleasePlan:
    """The coordinator's proposed release (:func:`ensnif_mpc.jobs.checks.release_plan`)."""
    return checks.release_plan(registry.for_spec(spec), spec, schemas, decimals)


def owner_contribution(schema: DatasetSchema, value_column: str, decimals: int) -> OwnerBounds:
    """(rows per person, largest |value| on the integer grid) of one owner's value input."""
    roles = {"value": value_column} if value_column else {}
    return checks.contribution(schema.policy, checks.schema_columns(schema, roles), decimals)

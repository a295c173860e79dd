"""The checks the coordinator and every node both run, written once.

A job is checked twice: by the coordinator against the published catalog (to refuse
early, naming the offending field), and again by every data owner's node against its
own configuration, because a node trusts no one else's check. Both call the functions
here, each with its own data: the coordinator with the catalog's schemas, a node with
its datasets and policy. So the two cannot drift apart, and a refusal reads the same
wherever it is raised.

Each function takes the protocol's :class:`~ensnif_mpc.jobs.protocol.ProtocolDef`
(looked up by the caller in ``protocols.registry``) and plain data (schemas, columns,
policies); the core never imports ``protocols/``.

- a job against the catalog: :func:`check_job` (parameters, parties, roles per input
  position, columns and their types, the number of owners, the two-party refusal);
- the release plan against owners' policies: :func:`release_plan` (the coordinator's
  proposal) and :func:`check_release_policy`, :func:`check_sensitivity`,
  :func:`check_calibration` (a node's own view of a proposed plan);
- the sizing: :class:`Sizing`, :func:`sizing_for`, :func:`check_fits`;
- the honest-majority threshold: :func:`honest_majority_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    EnsnifError,
    FailedPrecondition,
    InvalidArgument,
    InvalidJobSpec,
    NotEnoughParties,
    PolicyViolation,
    UnknownColumn,
    UnknownDataset,
    UnknownParty,
)
from ensnif_mpc.jobs.jobspec import JobSpec, Privacy
from ensnif_mpc.jobs.protocol import (
    GRID_ROLES,
    DpSensitivity,
    OwnerBounds,
    OwnerSize,
    ProtocolDef,
)
from ensnif_mpc.privacy import dlaplace, dp
from ensnif_mpc.privacy.dp import EXACT, ReleasePlan
from ensnif_mpc.results.artifacts import check_listed

# An owner's dataset as a release check sees it: its name ("party/dataset") and DP policy.
Owner = tuple[str, PrivacyPolicy]


# -- job ids -------------------------------------------------------------------------

JOB_ID_MAX = 64  # a job id names a directory at every node and a row in every store


def check_job_id(job_id: str) -> str:
    """A job id a node can store and name a directory after: 1 to 64 ASCII letters or
    digits. Checked where an id enters a node, before anything is reserved for it."""
    if not isinstance(job_id, str) or not 0 < len(job_id) <= JOB_ID_MAX:
        raise InvalidArgument(f"job id: expected 1 to {JOB_ID_MAX} letters or digits")
    if not (job_id.isascii() and job_id.isalnum()):
        raise InvalidArgument(f"job id {job_id[:JOB_ID_MAX]!r} is not ASCII letters and digits")
    return job_id


# -- the threshold -------------------------------------------------------------------


def honest_majority_threshold(n: int) -> int:
    """The largest t < n/2: Shamir sharing keeps secrets from any t colluding parties."""
    return (n - 1) // 2


def check_session_size(n_parties: int) -> None:
    """Two parties give t = 0, i.e. none of the secrecy the job is run for."""
    if n_parties == 2:
        raise NotEnoughParties(
            "helpers: two parties give threshold t = 0, i.e. no secrecy at all; add a "
            'compute-only helper so that t = 1 < n/2 (e.g. helpers = ["helper"])'
        )


def check_plan_session(plan: ReleasePlan, n: int) -> None:
    """A noisy plan is calibrated for one session: its size and its threshold."""
    if plan.parties != n or plan.threshold != honest_majority_threshold(n):
        raise InvalidArgument("release plan is for another session size")


# -- a job against the catalog ---------------------------------------------------------


def check_owner_count(definition: ProtocolDef, owners: int) -> None:
    if owners < definition.min_data_owners:
        raise NotEnoughParties(
            f"inputs: protocol {definition.name!r} needs at least {definition.min_data_owners} "
            "data owners"
        )


def check_max_owners(definition: ProtocolDef, owners: int) -> None:
    if definition.max_data_owners is not None and owners > definition.max_data_owners:
        raise NotEnoughParties(
            f"inputs: protocol {definition.name!r} takes at most {definition.max_data_owners} "
            "data owners",
            reason="too_many_parties",
        )


def check_input_columns(
    definition: ProtocolDef,
    position: int,
    roles: Mapping[str, str | Sequence[str]],
    columns: Sequence[Column],
    dataset: str,
) -> dict[str, tuple[Column, ...]]:
    """The columns input ``position`` reads from ``dataset`` ("party/name"): the roles
    its position takes, each with as many columns as the role takes, every one a declared
    column of a type the role accepts.

    Returns the columns of each role, in the job's order (one for a single-column role).
    """
    definition.check_roles(position, roles)
    declared = {r.name: r for r in definition.roles_at(position)}
    out: dict[str, tuple[Column, ...]] = {}
    for role, given in roles.items():
        names = (given,) if isinstance(given, str) else tuple(given)
        many = not isinstance(given, str)
        read = []
        for j, name in enumerate(names):
            field = declared[role].spec_key() + (f"[{j}]" if many else "")
            col = next((c for c in columns if c.name == name), None)
            if col is None:
                listed = ", ".join(c.name for c in columns)
                raise UnknownColumn(
                    f"inputs[{position}].{field}: dataset {dataset} has no "
                    f"column {name!r} (columns: {listed}); an owner can only use its own columns"
                )
            if col.type not in declared[role].types:
                raise ColumnTypeMismatch(
                    f"inputs[{position}].{field}: {name!r} is of type {col.type}; protocol "
                    f"{definition.name!r} needs {' or '.join(sorted(declared[role].types))} "
                    f"for its {role!r} column" + ("s" if declared[role].many else "")
                )
            within = declared[role].within
            if within is not None and not within[0] <= col.lower <= col.upper <= within[1]:
                raise ColumnTypeMismatch(
                    f"inputs[{position}].{field}: {name!r} is declared within "
                    f"[{col.lower}, {col.upper}]; protocol {definition.name!r} needs its "
                    f"{role!r} column declared within [{within[0]:g}, {within[1]:g}]"
                )
            read.append(col)
        out[role] = tuple(read)
    return out


def first(read: Mapping[str, tuple[Column, ...]], role: str) -> Column | None:
    """The (first) column of ``role`` in :func:`check_input_columns`' result, if any."""
    cols = read.get(role, ())
    return cols[0] if cols else None


def grid_columns(read: Mapping[str, tuple[Column, ...]]) -> dict[str, tuple[Column, ...]]:
    """The numeric columns of the roles read on the session's grid (GRID_ROLES)."""
    return {
        role: cols
        for role, cols in read.items()
        if role in GRID_ROLES and all(c.numeric for c in cols)
    }


def grid_bounds(
    read: Mapping[str, tuple[Column, ...]], decimals: int
) -> dict[str, tuple[int, ...]]:
    """Each grid role's columns' largest |value| on the integer grid at ``decimals``."""
    return {
        role: tuple(grid_bound(c.abs_bound, decimals) for c in cols)
        for role, cols in grid_columns(read).items()
    }


def check_key_types(key_types: Mapping[str, str]) -> None:
    """Join keys ("party/dataset.column" -> type) must all have one type."""
    if len(set(key_types.values())) > 1:
        listed = ", ".join(f"{k} ({t})" for k, t in key_types.items())
        raise ColumnTypeMismatch(
            f"inputs: join keys must have one type; got {listed}", reason="key_type_mismatch"
        )


def check_job(
    definition: ProtocolDef,
    spec: JobSpec,
    party_role: Callable[[str], str | None],
    dataset: Callable[[str, str], DatasetSchema | None],
) -> Sizing:
    """The job against a catalog (parties by name, datasets by party and name).

    Errors name the offending field of the job spec. Returns the secure-type sizes every
    party will use, derived from the published bounds and row counts, and the release.
    """
    definition.check_params(spec.params)
    check_listed(definition.artifacts_in, spec.artifacts, definition.name)
    for n, inp in enumerate(spec.inputs):
        if party_role(inp.party) is None:
            raise UnknownParty(
                f"inputs[{n}].party: no party {inp.party!r} is registered (`ensnif parties list`)"
            )
    for n, helper in enumerate(spec.helpers):
        if party_role(helper) is None:
            raise UnknownParty(f"helpers[{n}]: no party {helper!r} is registered")
    check_owner_count(definition, len(spec.owners))
    check_session_size(len(spec.party_order))
    check_max_owners(definition, len(spec.owners))
    columns: list[tuple[int, float, int]] = []
    rows: list[int] = []
    key_types: dict[str, str] = {}
    schemas: list[DatasetSchema] = []
    reads: list[dict[str, tuple[Column, ...]]] = []
    for n, inp in enumerate(spec.inputs):
        ds = dataset(inp.party, inp.dataset)
        if ds is None:
            raise UnknownDataset(
                f"inputs[{n}].dataset: party {inp.party!r} has published no dataset {inp.dataset!r}"
            )
        read = check_input_columns(
            definition, n, inp.role_columns, ds.columns, f"{inp.party}/{inp.dataset}"
        )
        if (value := first(read, "value")) is not None:
            columns.append((ds.row_count, value.abs_bound, value.decimals))
        if (key := first(read, "key")) is not None:
            key_types[f"{inp.party}/{inp.dataset}.{key.name}"] = key.type
        rows.append(ds.row_count)
        schemas.append(ds)
        reads.append(read)
    check_key_types(key_types)
    if definition.check_spec is not None:
        definition.check_spec(spec)
    if definition.check_rows is not None:
        definition.check_rows(spec, rows)
    # The session's decimals: the most any column read on the grid declares.
    on_grid = [c for read in reads for cols in grid_columns(read).values() for c in cols]
    decimals = max((c.decimals for c in on_grid), default=0)
    if not columns:  # no value column (e.g. an intersection size): counts only
        sizing = sizing_for([(r, 1.0, 0) for r in rows], decimals)
    else:
        sizing = sizing_for(columns, decimals)
    if definition.sizing is not None:
        sizes = [
            OwnerSize(r, grid_bounds(read, decimals)) for r, read in zip(rows, reads, strict=True)
        ]
        need = sum_bits(max(definition.sizing(sizes, spec.params), 1))
        sizing = replace(sizing, bit_length=max(sizing.bit_length, need))
    release = release_plan(definition, spec, schemas, sizing.decimals)
    return replace(sizing, bit_length=sizing.bit_length + release.headroom_bits(), release=release)


# -- the sizing ------------------------------------------------------------------------


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


def grid_bound(abs_bound: float, decimals: int) -> int:
    """The largest |value| of a column on the integer grid (value · 10^decimals)."""
    return int(math.ceil(abs_bound * 10**decimals))


def sum_bits(total: int) -> int:
    """Bits for any sum up to ``total`` in magnitude: its length, plus sign and headroom."""
    return total.bit_length() + 2


def sizing_for(columns: list[tuple[int, float, int]], decimals: int) -> Sizing:
    """Bits for any sum of the inputs: Σ rows·|bound|·10^decimals, plus sign and headroom."""
    total = sum(rows * grid_bound(bound, decimals) for rows, bound, _ in columns)
    total = max(total, sum(rows for rows, _, _ in columns), 1)
    return Sizing(bit_length=max(32, sum_bits(total)), decimals=decimals)


def own_need(
    definition: ProtocolDef,
    rows: int,
    read: Mapping[str, tuple[Column, ...]],
    decimals: int,
    params: Mapping[str, Any],
) -> int | None:
    """What one owner's rows alone make the protocol's secure values reach (its declared
    SizingNeed with this owner only), or None for a protocol that declares none."""
    if definition.sizing is None:
        return None
    return definition.sizing([OwnerSize(rows, grid_bounds(read, decimals))], params)


def check_fits(
    rows: int,
    column: Column,
    decimals: int,
    bit_length: int,
    release: ReleasePlan,
    where: str,
    need: int | None = None,
) -> None:
    """One owner's column (``where``: "dataset.column") still fits the session's sizes;
    ``need``: the magnitude a protocol declares it reaches (its SizingNeed), if larger."""
    need = max(rows * grid_bound(column.abs_bound, decimals), need or 0)
    if sum_bits(need) + release.headroom_bits() > bit_length:
        raise FailedPrecondition(
            f"{where} has grown beyond what the catalog announced "
            f"({rows} rows); restart the node to republish it",
            reason="catalog_stale",
        )


# -- the release plan against owners' policies -------------------------------------------


def contribution(
    policy: PrivacyPolicy, read: Mapping[str, Sequence[Column]], decimals: int
) -> OwnerBounds:
    """Rows per person and the grid bounds of every column of every grid role one owner's
    input reads (``read``: its columns by role); it reads as the pair (rows per person,
    largest |value| of the value column on the integer grid) for one-column protocols."""
    return OwnerBounds(policy.rows_per_person, grid_bounds(_tupled(read), decimals))


def _tupled(read: Mapping[str, Sequence[Column]]) -> dict[str, tuple[Column, ...]]:
    return {role: tuple(cols) for role, cols in read.items()}


def schema_columns(
    schema: DatasetSchema, roles: Mapping[str, str | Sequence[str]]
) -> dict[str, tuple[Column, ...]]:
    """The declared columns an input names, by role (names the schema lacks are skipped:
    :func:`check_input_columns` has refused them already)."""
    out: dict[str, tuple[Column, ...]] = {}
    for role, given in roles.items():
        names = (given,) if isinstance(given, str) else tuple(given)
        out[role] = tuple(c for n in names if (c := schema.column(n)) is not None)
    return out


def signed_delta(privacy: Privacy | None) -> float:
    """The δ of a Laplace release: the job's, or the sampler's default."""
    if privacy is not None and privacy.delta is not None:
        return privacy.delta
    return dlaplace.DEFAULT_DELTA


def check_exact_allowed(definition: ProtocolDef, owners: Sequence[Owner]) -> None:
    """An exact release needs every owner's policy to allow it for this protocol."""
    refusing = [name for name, policy in owners if definition.name not in policy.exact_protocols]
    if refusing:
        raise PolicyViolation(
            f"privacy.exact: the policy of {', '.join(refusing)} does not allow exact "
            f"release of {definition.name!r}"
            + (
                "; remove `exact` to get a DP release"
                if definition.dp_sensitivity is not None
                else " (and it has no DP release yet)"
            ),
            reason="exact_not_allowed",
        )


def check_dp_available(definition: ProtocolDef) -> DpSensitivity:
    """The protocol's DP release (its sensitivities), or the refusal that it has none."""
    if definition.dp_sensitivity is None:
        raise FailedPrecondition(
            f"protocol {definition.name!r} has no differentially private release yet; "
            "ask for privacy.exact = true where every owner's policy allows it",
            reason="dp_unavailable",
        )
    return definition.dp_sensitivity


def check_rho_ceiling(rho: float, owners: Sequence[Owner]) -> None:
    """A Gaussian release spends ρ of every input dataset: at most each owner's max_rho."""
    over = [name for name, policy in owners if not 0 < rho <= policy.max_rho]
    if over:
        raise PolicyViolation(
            f"privacy.rho: {rho:g} exceeds the per-job ceiling (max_rho) of {', '.join(over)}",
            reason="rho_above_policy",
        )


def check_epsilon_ceiling(epsilon: float, owners: Sequence[Owner]) -> None:
    """A Laplace release costs ρ = ε²/2 (exactly): at most each owner's max_rho."""
    finite = math.isfinite(epsilon) and epsilon > 0
    cost = dlaplace.charge(epsilon) if finite else None
    over = [name for name, p in owners if cost is None or cost > Fraction(p.max_rho)]
    if over:
        raise PolicyViolation(
            f"privacy.epsilon: ε = {epsilon:g} costs ρ = ε²/2 = {float(cost or math.inf):g}, "
            f"which exceeds the per-job ceiling (max_rho) of {', '.join(over)}",
            reason="rho_above_policy",
        )


def release_plan(
    definition: ProtocolDef, spec: JobSpec, schemas: Sequence[DatasetSchema], decimals: int
) -> ReleasePlan:
    """Exact where every owner allows it and the job asks; otherwise calibrated DP noise.

    Gaussian: ρ is the job's ``[privacy] rho`` or, without one, the smallest default
    among the owners' published policies. Laplace: the job's ε (it costs ρ = ε²/2) and δ.
    Each owner's node re-derives the scale and enforces its own ceiling and budget; this
    is only the coordinator's proposal.
    """
    privacy = spec.privacy
    owners = [(f"{s.party}/{s.name}", s.policy) for s in schemas]
    if privacy is not None and privacy.exact:
        check_exact_allowed(definition, owners)
        return EXACT
    sensitivity = check_dp_available(definition)
    given = [
        contribution(s.policy, schema_columns(s, i.role_columns), decimals)
        for s, i in zip(schemas, spec.inputs, strict=True)
    ]
    n = len(spec.party_order)
    blocks = sensitivity(given, spec.params)
    if privacy is not None and privacy.mechanism == "laplace":
        if privacy.epsilon is None:
            raise InvalidJobSpec('privacy.epsilon: required with mechanism = "laplace"')
        check_epsilon_ceiling(privacy.epsilon, owners)
        return dp.laplace_plan(
            privacy.epsilon, signed_delta(privacy), blocks, n, honest_majority_threshold(n)
        )
    rho = privacy.rho if privacy is not None and privacy.rho is not None else None
    if rho is None:
        rho = min(s.policy.default_rho for s in schemas)
    check_rho_ceiling(rho, owners)
    return dp.plan(rho, blocks, n, honest_majority_threshold(n))


def check_release_policy(
    definition: ProtocolDef, plan: ReleasePlan, owners: Sequence[Owner]
) -> None:
    """A proposed plan against owners' policies: exact only where allowed, noise only
    where the protocol has a DP release, and a cost within every owner's ceiling."""
    if plan.exact:
        check_exact_allowed(definition, owners)
        return
    check_dp_available(definition)
    if plan.laplace:
        check_epsilon_ceiling(plan.epsilon, owners)
    else:
        check_rho_ceiling(plan.rho, owners)


def check_sensitivity(
    definition: ProtocolDef, plan: ReleasePlan, own: OwnerBounds, params: Mapping[str, Any]
) -> None:
    """The plan's sensitivities cover what this one owner alone contributes (``own``,
    from :func:`contribution`): L2 and block sizes, and L1 for Laplace noise."""
    mine = check_dp_available(definition)([own], params)
    claimed = [(b.l2_sensitivity, b.dims) for b in plan.blocks]
    understated = len(mine) != len(claimed) or any(
        o[0] > c_l2 or o[1] != c_d for o, (c_l2, c_d) in zip(mine, claimed, strict=True)
    )
    if plan.laplace and not understated:  # Laplace noise is scaled to the L1 sensitivity
        own_l1 = [dlaplace.l1_bound(o[0], o[1], o[2] if len(o) > 2 else None) for o in mine]
        understated = any(o > b.l1_sensitivity for o, b in zip(own_l1, plan.blocks, strict=True))
    if understated:
        raise PolicyViolation(
            f"the release assumes sensitivities {claimed}"
            + (f" (L1 {[b.l1_sensitivity for b in plan.blocks]})" if plan.laplace else "")
            + f"; this dataset alone contributes {mine}",
            reason="sensitivity_understated",
        )


def check_calibration(plan: ReleasePlan, n: int) -> None:
    """Every scale in the plan is the one computed here from ρ or (ε, δ) and the plan's
    sensitivities (Laplace: digits K, bits L and δ bounds as well)."""
    if plan.exact:
        return
    check_plan_session(plan, n)
    if not plan.blocks:
        raise InvalidArgument("release plan is for another session size")
    if plan.laplace:
        sensitivities = [(b.l2_sensitivity, b.dims, b.l1_sensitivity) for b in plan.blocks]
        try:
            expected = dp.laplace_plan(
                dlaplace.check_epsilon(plan.epsilon, "release plan: epsilon"),
                dlaplace.check_delta(plan.delta, "release plan: delta"),
                sensitivities,
                n,
                plan.threshold,
            )
        except (EnsnifError, ValueError, ArithmeticError) as exc:
            raise InvalidArgument(f"release plan: not a valid Laplace plan ({exc})") from exc
        if expected != plan:
            raise PolicyViolation(
                "the proposed Laplace noise (ε per block, digits, bits or δ) is not the "
                "one this node computes from ε, δ and the plan's sensitivities",
                reason="noise_miscalibrated",
            )
        return
    claimed = [(b.l2_sensitivity, b.dims) for b in plan.blocks]
    calibrated = dp.plan(plan.rho, claimed, n, plan.threshold)
    if any(
        not math.isclose(e.sigma_share, b.sigma_share, rel_tol=1e-9)
        for e, b in zip(calibrated.blocks, plan.blocks, strict=True)
    ):
        raise PolicyViolation(
            "the proposed noise scales are not the calibrated ones",
            reason="noise_miscalibrated",
        )

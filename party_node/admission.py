"""Admission: the node's own checks of a proposal, returning a verdict that names its rule.

The coordinator relays a job; this node decides whether its data takes part, using only
its own configuration, data and store: the submitter's signature, its policy, the
schema, its data, the release (the checks the coordinator ran too are the same functions,
:mod:`ensnif_mpc.jobs.checks`, called here with this node's datasets and policy). No
threads, no ports, no budget: reserving what an admitted job needs is the node's
(:mod:`party_node.node`), running it the supervisor's (:mod:`party_node.supervisor`).

Data-independent checks (signature, policy, schema, release) come before the ones that
read data (bounds, rows per person, cohorts), and a refusal says which rule refused,
never what the data was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.data.schema import Column
from ensnif_mpc.db import utcnow
from ensnif_mpc.errors import (
    CryptoError,
    EnsnifError,
    FailedPrecondition,
    InvalidArgument,
    PolicyViolation,
    UnknownDataset,
)
from ensnif_mpc.jobs import approvals, caps, checks, jobspec, manifest, member_program
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.protocol import ProtocolDef, member_recipient
from ensnif_mpc.privacy.dp import EXACT, ReleasePlan
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.pki import identity_of, parse_cert, verify_member
from party_node import cohort, datasets, policy
from party_node.store import NodeJob, NodeStore
from protocols import registry


@dataclass(frozen=True)
class Proposal:
    job_id: str
    spec: JobSpec
    party_index: int
    party_order: list[str]
    analyst_cert_pem: str
    bit_length: int
    decimals: int
    release: ReleasePlan = EXACT


@dataclass(frozen=True)
class Verdict:
    """What admission decided about a proposal.

    Refused: ``refusal`` is the error whose message and reason name the rule. Otherwise
    ``manual`` says whether a person must approve first, ``rule`` which rule decided, and
    ``session_input`` is what the worker needs to read this owner's input (None at a
    compute-only party).
    """

    refusal: EnsnifError | None = None
    manual: bool = False
    rule: str = ""
    session_input: dict[str, Any] | None = None


def release_from_json(text: str) -> ReleasePlan:
    """The coordinator's proposed release plan; nodes check it before trusting it."""
    if not text:
        return EXACT
    try:
        raw = json.loads(text)
        return ReleasePlan.from_dict(raw) if not raw.get("exact") else EXACT
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"release plan: not a valid plan ({exc})") from exc


def cert_name(cert_pem: str) -> str:
    """The analyst a job's results are sealed to ("" if its certificate does not parse:
    the membership check refuses such a job anyway)."""
    try:
        return identity_of(parse_cert(cert_pem)).name
    except CryptoError:
        return ""


def job_hash(p: Proposal) -> str:
    """What a signed decision on this job signs (``ensnif_mpc.jobs.approvals``)."""
    return approvals.job_hash(p.spec, registry.for_spec(p.spec).version, p.job_id)


def question_key(p: Proposal) -> str:
    """The same question asked again has the same key (the policy's repeat limit)."""
    definition = registry.for_spec(p.spec)
    return approvals.question_key(p.spec, definition.version, cert_name(p.analyst_cert_pem))


def review(
    p: Proposal,
    *,
    name: str,
    own: Mapping[str, DatasetConfig],
    ca_pem: bytes,
    store: NodeStore,
    approved: bool = False,
    budget: Callable[[dict[str, Fraction]], None] | None = None,
    artifacts: Callable[[Proposal, ProtocolDef], None] | None = None,
    programs: tuple[str, ...] = (),
    hosted: Callable[[str, str], Any] | None = None,
) -> Verdict:
    """Check a proposal against this node (``name``, its datasets ``own``, its CA).

    ``approved``: the administrator already said yes, so no person is asked again. The
    store is only asked for what a check needs: the signed job's nonce (a signed job
    runs once) and how often the same question was admitted. ``programs``: the member
    programs this node runs unasked where it holds no input (its party.toml's).
    """
    try:
        session_input, verdict = _check(p, name, own, ca_pem, store, budget, artifacts, hosted)
    except EnsnifError as err:
        return Verdict(refusal=err)
    program = p.spec.program
    if session_input is None and program is not None and program.digest not in programs:
        # A helper runs the code too, with its own shares and key: a program it has not
        # listed could send them to its author. A person reviews it, as an owner does.
        verdict = policy.Verdict(True, f"program {program.digest} is not in this node's programs")
    if approved:
        verdict = policy.Verdict(False, "approved by the administrator")
    return Verdict(None, verdict.manual, verdict.rule, session_input)


def _check(
    p: Proposal,
    me: str,
    own: Mapping[str, DatasetConfig],
    ca_pem: bytes,
    store: NodeStore,
    budget: Callable[[dict[str, Fraction]], None] | None = None,
    artifacts: Callable[[Proposal, ProtocolDef], None] | None = None,
    hosted: Callable[[str, str], Any] | None = None,
) -> tuple[dict[str, Any] | None, policy.Verdict]:
    checks.check_session_size(len(p.party_order))
    if not 0 <= p.party_index < len(p.party_order):
        raise InvalidArgument(f"party_order[{p.party_index}] is not {me!r}")
    held = None
    if p.party_order[p.party_index] != me:  # this node may hold the owner's dataset
        held = outsourced_input(p, hosted)
        if held is None:
            raise InvalidArgument(f"party_order[{p.party_index}] is not {me!r}")
    if list(p.party_order) != list(p.spec.party_order):
        raise InvalidArgument("party_order does not match the job's owners and helpers")
    try:
        verify_member(p.analyst_cert_pem, ca_pem, role="analyst")
    except CryptoError as exc:
        raise PolicyViolation(
            f"results would be sealed to an untrusted key: {exc.message}",
            reason="untrusted_analyst",
        ) from exc
    definition = registry.for_spec(p.spec)
    # The submitter's signature binds everything below; the coordinator only relays it.
    jobspec.verify(p.spec, p.analyst_cert_pem, definition.version)
    holder = store.claim_nonce(p.spec.nonce, p.job_id)
    if holder != p.job_id:
        raise PolicyViolation(
            f"this signed job already ran here as job {holder}; a signed job runs once",
            reason="replayed_job",
        )
    definition.check_params(p.spec.params)
    if artifacts is not None:  # every party, helpers too: each must hold its share
        artifacts(p, definition)
    if definition.check_spec is not None:
        definition.check_spec(p.spec)
    if not 32 <= p.bit_length <= 4096 or not 0 <= p.decimals <= 6:
        raise InvalidArgument(
            f"session sizes out of range (bit_length {p.bit_length}, decimals {p.decimals})"
        )
    check_release_request(p)
    if held is not None:
        return _check_outsourced(p, definition, held, budget)
    mine = [(n, i) for n, i in enumerate(p.spec.inputs) if i.party == me]
    if not mine:
        if me in p.spec.helpers:
            # A helper's noise share may be one the guarantee counts on: it checks the
            # scale is the calibrated one (it cannot check sensitivities: it has no data).
            checks.check_calibration(p.release, len(p.party_order))
            return None, policy.Verdict(False, "compute-only party")
        raise InvalidArgument(f"job does not involve {me!r}")
    position, inp = mine[0]
    ds = own.get(inp.dataset)
    if ds is None:
        raise UnknownDataset(f"{me} has no dataset {inp.dataset!r}")
    roles = inp.columns
    role_columns = inp.role_columns
    # Every check that does not read data comes first, so that what the analyst sees of
    # a refusal never depends on the data (DESIGN §11): policy (protocols, columns,
    # recipients, the repeat limit), schema, the release and its calibration, budget.
    repeats = 0
    if ds.policy.max_repeats:
        since = utcnow() - dt.timedelta(seconds=ds.policy.repeat_period_s)
        repeats = store.count_question(question_key(p), since, p.job_id)
    verdict = policy.evaluate(
        ds.allowed_protocols, ds.policy, _policy_request(p, ds, read_columns(inp), repeats)
    )
    read = checks.check_input_columns(
        definition, position, role_columns, ds.columns, f"{me}/{ds.name}"
    )
    on_grid = [c for cols in checks.grid_columns(read).values() for c in cols]
    for col in on_grid:
        if p.decimals < col.decimals:
            raise InvalidArgument(
                f"session keeps {p.decimals} decimals; column {col.name!r} declares {col.decimals}"
            )
    check_release(p, definition, f"{me}/{ds.name}", ds, read)
    bound = contribution_bound(p, ds)
    if slot_checked(p):
        cohort.check_person_bound(ds, p.spec.params)
    if budget is not None:
        budget(charges_for(p, me, own))
    # Then the data. A dataset whose rows break their declared schema is refused (the
    # same whatever the job asks: the owner fixes its data); every rule about the data
    # a job selects is enforced without telling: rows per person by bounding, the
    # minimum cohort of a DP release by withholding this owner's rows on a noisy count.
    rows = datasets.check(ds)  # bounds, types, nulls: bad data is refused before any MPC
    need = checks.own_need(definition, rows, read, p.decimals, p.spec.params)
    for col in on_grid:
        where = f"{inp.dataset}.{col.name}"
        checks.check_fits(rows, col, p.decimals, p.bit_length, p.release, where, need)
    withheld = False
    if ds.policy.min_cohort:
        smallest = cohort.smallest(ds, roles, p.spec.params, position)
        if p.release.exact:  # every owner allows exact answers here: an exact rule
            facts = dataclasses.replace(
                _policy_request(p, ds, read_columns(inp), repeats), cohort=smallest
            )
            policy.evaluate(ds.allowed_protocols, ds.policy, facts)
        elif not joint_cohort(p):  # else the MPC thresholds the joint noisy count
            withheld = cohort.withheld(smallest, ds, cohort_charge(p))
    if slot_checked(p):  # group discovery: more labels than public slots
        overflow = cohort.slots_overflow(ds, roles, p.spec.params, cohort_charge(p))
        withheld = withheld or overflow
    session_input = {
        "source": ds.source.to_dict(),
        "dataset_columns": [asdict(c) for c in ds.columns],
        "clamp": ds.clamp,
        "roles": roles,
        "role_lists": inp.column_lists,
        "bound": bound,
        "withheld": withheld,
        "min_cohort": ds.policy.min_cohort if declares_joint_cohort(p) else 0,
    }
    return session_input, verdict


def outsourced_input(p: Proposal, hosted: Callable[[str, str], Any] | None) -> Any:
    """(input position, the input, the HostedDataset) when this node holds the outsourced
    dataset the job's input at this node's position names; None otherwise."""
    owner = p.party_order[p.party_index]
    mine = [(n, i) for n, i in enumerate(p.spec.inputs) if i.party == owner]
    if hosted is None or len(mine) != 1:
        return None
    dataset = hosted(owner, mine[0][1].dataset)
    return None if dataset is None else (mine[0][0], mine[0][1], dataset)


def _check_outsourced(
    p: Proposal,
    definition: ProtocolDef,
    held: Any,
    budget: Callable[[dict[str, Fraction]], None] | None,
) -> tuple[dict[str, Any], policy.Verdict]:
    """An input this node serves for an outsourced dataset's owner: the owner's signed
    policy, the roles the conversion serves, the columns against the signed schema, the
    release's calibration, then the owner's budget (party_node/outsourced_admission.py).
    Nothing there reads data: the node can read none (it holds ciphertexts only)."""
    from party_node.outsourced_admission import check_input

    return check_input(p, definition, held, budget)


# The min_cohort rule of a DP release thresholds a noisy count, charged on top of the
# release: this fraction of the job's ρ (ρ_c = ρ/10).
COHORT_SHARE = Fraction(1, 10)


def cohort_charge(p: Proposal) -> Fraction:
    return p.release.charge() * COHORT_SHARE


def joint_cohort(p: Proposal) -> bool:
    """A DP release of a protocol that enforces min_cohort on the joint noisy counts
    inside MPC (``extra["joint_cohort"]``: group discovery, the group-by family, the
    histogram, the private joins): each owner inputs its minimum as a secret and no
    output below the largest is opened. Post-processing of the noisy counts the release
    opens anyway: no ρ_c, and no per-owner withholding."""
    return not p.release.exact and declares_joint_cohort(p)


def declares_joint_cohort(p: Proposal) -> bool:
    """The protocol holds min_cohort on the joint counts inside MPC, exact or DP
    (``extra["joint_cohort"]``): the worker gets this dataset's minimum to input. An
    exact release keeps the node's own refusal too (cohort_too_small, before MPC)."""
    definition = registry.catalog().get(p.spec.protocol)
    return definition is not None and "joint_cohort" in definition.extra


def slot_checked(p: Proposal) -> bool:
    """A DP release of a protocol with public candidate slots (``extra["candidate_slots"]``,
    group discovery): each owner checks its labels fit on a noisy count, charged ρ_c."""
    definition = registry.catalog().get(p.spec.protocol)
    return not p.release.exact and definition is not None and "candidate_slots" in definition.extra


def contribution_bound(p: Proposal, ds: DatasetConfig) -> list[Any] | None:
    """[person_column, rows_per_person] for a DP release at a dataset that names its
    person (``ensnif_mpc.data.bounding``); None otherwise."""
    if p.release.exact or not ds.privacy.person_column:
        return None
    if ds.source.kind not in ("csv", "parquet", "sql", "spark"):
        raise FailedPrecondition(
            f"dataset {ds.name!r}: contribution bounding (person_column) is not available "
            f"for {ds.source.kind} sources yet, so no DP release is possible",
            reason="dp_unavailable",
        )
    return [ds.privacy.person_column, ds.privacy.rows_per_person]


def read_columns(inp: jobspec.Input) -> dict[str, str]:
    """Every column an input reads, by role, for the policy's column rule: a role given a
    list of columns appears once per column, as ``features[0]``, ``features[1]``, …"""
    out = inp.columns
    for role, cols in inp.column_lists.items():
        out.update((f"{role}[{j}]", c) for j, c in enumerate(cols))
    return out


def _policy_request(
    p: Proposal, ds: DatasetConfig, roles: dict[str, str], repeats: int
) -> policy.Request:
    # The owner's caps count what the signed job declares, never the data.
    size = caps.declared(registry.for_spec(p.spec), p.spec.params, len(p.spec.owners))
    return policy.Request(
        dataset=ds.name,
        protocol=p.spec.protocol,
        columns=roles,
        # A model released to a member (keep = "to:<member>") is sealed to that member.
        recipient=member_recipient(p.spec.params) or cert_name(p.analyst_cert_pem),
        repeats=repeats,
        program=p.spec.program.digest if p.spec.program is not None else "",
        groups=size.groups,
        outputs=size.outputs,
    )


def check_release_request(p: Proposal) -> None:
    """The release must be the one the submitter signed: exact only if asked, its
    mechanism, and its ρ (Gaussian) or its ε and δ (Laplace)."""
    asked = p.spec.privacy
    wants_exact = bool(asked and asked.exact)
    if p.release.exact != wants_exact:
        raise PolicyViolation(
            "the session's release ("
            + ("exact" if p.release.exact else "DP")
            + ") is not what the submitter signed",
            reason="release_mismatch",
        )
    if p.release.exact:
        return
    signed_mechanism = asked.mechanism if asked is not None else "gaussian"
    if p.release.mechanism != signed_mechanism:
        raise PolicyViolation(
            f"the session's noise is {p.release.mechanism!r}; the submitter signed "
            f"{signed_mechanism!r}",
            reason="release_mismatch",
        )
    if asked is not None and signed_mechanism == "laplace":
        delta = checks.signed_delta(asked)
        if (p.release.epsilon, p.release.delta) != (asked.epsilon, delta):
            raise PolicyViolation(
                f"the session spends ε = {p.release.epsilon:g} (δ = {p.release.delta:g}); "
                f"the submitter signed ε = {asked.epsilon} (δ = {delta:g})",
                reason="release_mismatch",
            )
        return
    signed_rho = asked.rho if asked is not None else None
    if signed_rho is not None and signed_rho != p.release.rho:
        raise PolicyViolation(
            f"the session spends ρ = {p.release.rho:g}; the submitter signed {signed_rho:g}",
            reason="release_mismatch",
        )


def check_release(
    p: Proposal,
    definition: ProtocolDef,
    where: str,
    ds: DatasetConfig,
    read: Mapping[str, tuple[Column, ...]],
) -> None:
    """This owner's own view of the release: its policy, and a scale it computes itself."""
    plan = p.release
    checks.check_release_policy(definition, plan, [(where, ds.privacy)])
    if plan.exact:
        return
    n = len(p.party_order)
    checks.check_plan_session(plan, n)
    mine = checks.contribution(ds.privacy, read, p.decimals)
    checks.check_sensitivity(definition, plan, mine, p.spec.params)
    checks.check_calibration(plan, n)


def check_approved(p: Proposal, decision: approvals.Decision) -> None:
    """An administrator's approval covers exactly the job it was given."""
    if job_hash(p) != decision.job_hash:
        raise PolicyViolation(
            "the proposal differs from the job the administrator approved",
            reason="approval_mismatch",
        )


def check_session(
    job: NodeJob, peers: list[mpc_session.PeerBinding], threshold: int, ca_pem: bytes
) -> list[mpc_session.PeerBinding]:
    """The session the coordinator hands out matches what this node approved: its party
    order, the honest-majority threshold, this node's own MPC certificate and every
    peer's binding. Returns the peers in party order."""
    order = job.data["party_order"]
    peers = sorted(peers, key=lambda p: p.index)
    if [p.party for p in peers] != order or [p.index for p in peers] != list(range(len(order))):
        raise InvalidArgument("session peers do not match the approved party order")
    t = checks.honest_majority_threshold(len(order))
    if threshold != t:
        raise PolicyViolation(
            f"threshold {threshold} is not the honest-majority threshold "
            f"{t} for {len(order)} parties"
        )
    if peers[job.party_index].mpc_cert_pem != job.data["mpc_cert"]:
        raise CryptoError(
            "the session carries an MPC certificate for this node that it never issued"
        )
    if len({p.node for p in peers}) != len(peers):
        # A node playing an outsourced owner's position and another: two shares at one node.
        raise PolicyViolation("a node plays two positions of the session (honest majority)")
    for peer in peers:
        mpc_session.verify_peer(job.job_id, peer, ca_pem)
    return peers


def charges(
    p: Proposal, me: str, own: Mapping[str, DatasetConfig] | None = None
) -> dict[str, Fraction]:
    """What this job costs each of this node's datasets (nothing for an exact release):
    the release's ρ (or ε²/2 exactly for pure ε-DP), plus the noisy cohort count's ρ_c
    where the dataset's policy sets a min_cohort. Charged whether or not the rule
    withheld the rows: a withheld job costs what an answered one does."""
    return charges_for(p, me, own or {})


def charges_for(p: Proposal, me: str, own: Mapping[str, DatasetConfig]) -> dict[str, Fraction]:
    if p.release.exact:
        return {}
    if p.party_order[p.party_index] != me:  # an outsourced owner's: its signed policy's
        return {}
    out = {}
    for i in p.spec.inputs:
        if i.party != me:
            continue
        ds = own.get(i.dataset)
        noisy_checks = int(ds is not None and bool(ds.policy.min_cohort) and not joint_cohort(p))
        noisy_checks += int(slot_checked(p))
        extra = cohort_charge(p) * noisy_checks
        out[i.dataset] = p.release.charge() + extra
    return out


def session_data(
    p: Proposal, session_input: dict[str, Any] | None, cred: mpc_session.MpcCredential
) -> dict[str, Any]:
    """What the node keeps of an admitted job: what its worker will need, and its key."""
    return {
        "spec": {
            "protocol": p.spec.protocol,
            "params": p.spec.params,
            **({"program": p.spec.program.to_wire()} if p.spec.program is not None else {}),
            **({"artifacts": list(p.spec.artifacts)} if p.spec.artifacts else {}),
        },
        "party_order": p.party_order,
        "bit_length": p.bit_length,
        "decimals": p.decimals,
        "analyst_cert": p.analyst_cert_pem,
        "input": session_input,
        "release": p.release.to_dict(),
        "input_roles": [i.columns for i in p.spec.inputs],
        "input_role_lists": [i.column_lists for i in p.spec.inputs],
        "owners": [i for i, name in enumerate(p.party_order) if name in p.spec.owners],
        "mpc_cert": cred.cert_pem,
        "mpc_key": cred.key_pem,
        "binding_signature": cred.binding_signature.hex(),
    }


def pending_data(p: Proposal, rule: str) -> dict[str, Any]:
    """What the administrator sees in `ensnif job pending`: the job and its manifest."""
    definition = registry.for_spec(p.spec)
    analyst = cert_name(p.analyst_cert_pem)
    return {
        "job_hash": job_hash(p),
        "rule": rule,
        "analyst": analyst,
        "manifest": manifest.build(p.spec, definition, p.party_order, p.release, analyst),
        "proposed_at": utcnow().isoformat(),
        **({"program": program_review(p.spec.program)} if p.spec.program is not None else {}),
    }


def program_review(bundle: member_program.Bundle) -> dict[str, Any]:
    """What the administrator reads before approving a member program: its hash, its
    manifest and every file's text (`ensnif job pending --job ID` prints them)."""
    return {
        "hash": bundle.digest,
        "files": {path: data.decode("utf-8", "replace") for path, data in bundle.files},
    }

"""The node's decisions and its jobs: propose (validate, policy, reserve), start, abort, monitor.

No gRPC here. The coordinator asks; this module decides, using only the node's
own configuration, data and store. Every refusal names the rule that refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ensnif_mpc.config import DatasetConfig, PartyConfig
from ensnif_mpc.data.schema import Column
from ensnif_mpc.db import utcnow
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    CryptoError,
    EnsnifError,
    FailedPrecondition,
    InvalidArgument,
    InvalidConfig,
    PermissionDenied,
    PolicyViolation,
    ResourceBusy,
    UnknownColumn,
    UnknownDataset,
)
from ensnif_mpc.jobs import approvals, jobspec, manifest
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.worker_session import RESULT_FILE, WorkerSession, WorkerStatus
from ensnif_mpc.privacy import dp
from ensnif_mpc.privacy.dp import EXACT, ReleasePlan
from ensnif_mpc.results import delivery
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.pki import Identity, identity_of, parse_cert, verify_member
from party_node import cohort, datasets, policy
from party_node.executor import Executor, JobHandle, Workspace
from party_node.ledger import Ledger
from party_node.states import NODE_LIVE, WORKER_STARTED, NodeState
from party_node.store import NodeJob, NodeStore
from protocols import registry

log = logging.getLogger(__name__)
S = NodeState


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


def release_from_json(text: str) -> ReleasePlan:
    """The coordinator's proposed release plan; nodes check it before trusting it."""
    if not text:
        return EXACT
    try:
        raw = json.loads(text)
        return ReleasePlan.from_dict(raw) if not raw.get("exact") else EXACT
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"release plan: not a valid plan ({exc})") from exc


def _cert_name(cert_pem: str) -> str:
    """The analyst a job's results are sealed to ("" if its certificate does not parse:
    the membership check refuses such a job anyway)."""
    try:
        return identity_of(parse_cert(cert_pem)).name
    except CryptoError:
        return ""


class Node:
    def __init__(
        self,
        cfg: PartyConfig,
        store: NodeStore,
        executor: Executor | None = None,
        monitor_interval_s: float = 0.2,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.hub = Hub()
        self.workspace = Workspace(cfg.state_dir)
        self.executor = executor or Executor()
        self.ca_pem = cfg.tls.ca.read_bytes()
        self.key_pem = cfg.tls.key.read_bytes()
        self.datasets: dict[str, DatasetConfig] = {d.name: d for d in cfg.datasets}
        self.ledger = Ledger(
            store.engine, {d.name: Fraction(d.privacy.budget_rho) for d in cfg.datasets}
        )
        self.on_budget_change: Callable[[], None] = lambda: None  # e.g. republish the catalog
        self._handles: dict[str, JobHandle] = {}
        self._started: dict[str, float] = {}
        self._reserved: set[int] = set()  # ports handed out, maybe not yet in the store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by start() so a new worker launches at once
        self._interval = monitor_interval_s
        self._monitor = threading.Thread(target=self._monitor_loop, name="job-monitor", daemon=True)

    # -- lifecycle -----------------------------------------------------------
    def start_monitor(self) -> None:
        # A reservation whose job is not live any more may have been opened: count it spent.
        self.ledger.recover({j.job_id for j in self.store.live() if j.state == S.APPROVED})
        for job in self.store.live():
            if job.state in WORKER_STARTED:
                self._end(job, S.FAILED, "the node restarted while the job ran", "node_restarted")
        self._monitor.start()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._monitor.is_alive():
            self._monitor.join(timeout=5)
        with self._lock:
            handles = dict(self._handles)
        for job_id, handle in handles.items():
            handle.terminate()
            job = self.store.find(job_id)
            if job and job.state in NODE_LIVE:
                self._end(job, S.FAILED, "the node was shut down", "node_shutdown")

    # Settings a reload may not change: identity, addresses and state need a restart.
    _FIXED = (
        "name",
        "listen",
        "advertise",
        "coordinator",
        "coordinator_name",
        "state_dir",
        "tls",
        "mpc_host",
        "mpc_ports",
    )

    def reload(self, cfg: PartyConfig) -> None:
        """Adopt a changed party.toml's datasets, policies, budgets and timeouts.

        Jobs already approved keep what they were approved under; every later proposal
        (and every waiting job's admission) is judged by the new policy. The reload is
        audited with a digest of the policies, so what was in force when can be shown.
        """
        changed = [f for f in self._FIXED if getattr(cfg, f) != getattr(self.cfg, f)]
        if changed:
            raise InvalidConfig(
                f"a reload cannot change {', '.join(changed)}; restart the node for that"
            )
        for d in cfg.datasets:
            datasets.check(d)
        with self._lock:
            self.cfg = cfg
            self.datasets = {d.name: d for d in cfg.datasets}
            self.ledger.caps = {d.name: Fraction(d.privacy.budget_rho) for d in cfg.datasets}
        digest = hashlib.sha256(
            json.dumps(
                [
                    [d.name, d.allowed_protocols, asdict(d.policy), asdict(d.privacy)]
                    for d in cfg.datasets
                ],
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        self.store.audit(
            "policy_reloaded", {"datasets": sorted(self.datasets), "policy_sha256": digest}
        )
        log.info("policies reloaded (sha256 %s)", digest[:16])
        self.on_budget_change()

    def check_coordinator(self, caller: Identity) -> None:
        if caller.role != "coordinator" or caller.name != self.cfg.coordinator_name:
            raise PermissionDenied(
                f"{caller.name!r} ({caller.role}) is not this node's "
                f"coordinator {self.cfg.coordinator_name!r}"
            )

    # -- propose -------------------------------------------------------------
    def propose(self, caller: Identity, p: Proposal) -> NodeJob:
        self.check_coordinator(caller)
        existing = self.store.find(p.job_id)
        if existing is not None:
            if existing.state == S.AWAITING_APPROVAL:
                return self._resume(existing, p)
            return existing
        if not p.job_id.isalnum():
            raise InvalidArgument(f"job id {p.job_id!r} is not alphanumeric")
        try:
            session_input, verdict = self._evaluate(p)
        except EnsnifError as err:
            log.info("job %s rejected: %s", p.job_id, err.message)
            return self._refuse(p, err)
        if verdict.manual:
            data = self._pending_data(p, verdict)
            log.info("job %s awaits approval by this node's administrator", p.job_id)
            return self.store.create(p.job_id, S.AWAITING_APPROVAL, p.party_index, data, 0)
        try:
            data, port = self._admit(p, session_input)
        except EnsnifError as err:
            log.info("job %s rejected: %s", p.job_id, err.message)
            return self._refuse(p, err)
        self._decide(p, "approved", "policy", verdict.rule)
        job = self.store.create(p.job_id, S.APPROVED, p.party_index, data, port)
        self.hub.notify(p.job_id)
        return job

    def _refuse(self, p: Proposal, err: EnsnifError) -> NodeJob:
        return self.store.create(
            p.job_id, S.REJECTED, p.party_index, {}, 0, err.message, err.reason
        )

    def _admit(
        self, p: Proposal, session_input: dict[str, Any] | None
    ) -> tuple[dict[str, Any], int]:
        """Reserve budget and a port and mint the job's MPC credential: the job may run."""
        charges = self._charges(p)
        self.ledger.reserve(p.job_id, charges)
        try:
            port = self._allocate_port()
        except EnsnifError:
            self.ledger.release(p.job_id)
            raise
        self.store.record_question(p.job_id, self._question_key(p))
        cred = mpc_session.mint(p.job_id, p.party_index, self.key_pem)
        self.workspace.create(p.job_id)
        data: dict[str, Any] = {
            "spec": {"protocol": p.spec.protocol, "params": p.spec.params},
            "party_order": p.party_order,
            "bit_length": p.bit_length,
            "decimals": p.decimals,
            "analyst_cert": p.analyst_cert_pem,
            "input": session_input,
            "release": p.release.to_dict(),
            "input_roles": [i.columns for i in p.spec.inputs],
            "owners": [i for i, name in enumerate(p.party_order) if name in p.spec.owners],
            "mpc_cert": cred.cert_pem,
            "mpc_key": cred.key_pem,
            "binding_signature": cred.binding_signature.hex(),
        }
        return data, port

    def _resume(self, job: NodeJob, p: Proposal) -> NodeJob:
        """A job waiting for the administrator: admit it once approved (the coordinator asks
        again until then), re-checking everything, since policy and data may have changed."""
        decision = self.store.approval(job.job_id)
        if decision is None:
            return job
        if decision.decision == "rejected":
            self._apply_rejection(job, decision)
            return self.store.get(job.job_id)
        definition = registry.get(p.spec.protocol)
        if approvals.job_hash(p.spec, definition.version, p.job_id) != decision.job_hash:
            err: EnsnifError = PolicyViolation(
                "the proposal differs from the job the administrator approved",
                reason="approval_mismatch",
            )
        else:
            try:
                session_input, _ = self._evaluate(p, approved=True)
                data, port = self._admit(p, session_input)
            except EnsnifError as exc:
                err = exc
            else:
                self.store.mark_applied(job.job_id)
                if self.store.transition(
                    job.job_id, S.AWAITING_APPROVAL, S.APPROVED, data=data, mpc_port=port
                ):
                    self.hub.notify(job.job_id)
                    return self.store.get(job.job_id)
                self.ledger.release(job.job_id)  # aborted meanwhile: give the reservation back
                with self._lock:
                    self._reserved.discard(port)
                return self.store.get(job.job_id)
        self.store.mark_applied(job.job_id)
        log.info("approved job %s refused at admission: %s", job.job_id, err.message)
        self.store.transition(job.job_id, S.AWAITING_APPROVAL, S.REJECTED, err.message, err.reason)
        self.hub.notify(job.job_id)
        return self.store.get(job.job_id)

    def _apply_rejection(self, job: NodeJob, decision: approvals.Decision) -> None:
        reason = f"rejected by {decision.approver}" + (
            f": {decision.reason}" if decision.reason else ""
        )
        self.store.transition(
            job.job_id, S.AWAITING_APPROVAL, S.REJECTED, reason, "rejected_by_owner"
        )
        self.store.mark_applied(job.job_id)
        self.hub.notify(job.job_id)

    def _decide(self, p: Proposal, decision: str, approver: str, reason: str) -> None:
        """Record a signed decision (the policy's own, for automatic approvals)."""
        definition = registry.get(p.spec.protocol)
        job_hash = approvals.job_hash(p.spec, definition.version, p.job_id)
        signed = approvals.decide(p.job_id, job_hash, decision, approver, reason, self.key_pem)
        self.store.add_approval(signed, applied=True)

    def _pending_data(self, p: Proposal, verdict: policy.Verdict) -> dict[str, Any]:
        """What the administrator sees in `ensnif job pending`: the job and its manifest."""
        definition = registry.get(p.spec.protocol)
        return {
            "job_hash": approvals.job_hash(p.spec, definition.version, p.job_id),
            "rule": verdict.rule,
            "analyst": _cert_name(p.analyst_cert_pem),
            "manifest": manifest.build(
                p.spec, definition, p.party_order, p.release, _cert_name(p.analyst_cert_pem)
            ),
            "proposed_at": utcnow().isoformat(),
        }

    def _question_key(self, p: Proposal) -> str:
        definition = registry.get(p.spec.protocol)
        return approvals.question_key(p.spec, definition.version, _cert_name(p.analyst_cert_pem))

    def _evaluate(
        self, p: Proposal, approved: bool = False
    ) -> tuple[dict[str, Any] | None, policy.Verdict]:
        """Validate the proposal against this node's data and policy.

        Returns what the worker needs to read this owner's input (source, declared
        columns, roles), or None at a compute-only party, and the policy's verdict
        (``approved``: the administrator already said yes, so no person is asked again).
        """
        me = self.cfg.name
        if len(p.party_order) == 2:
            raise PolicyViolation(
                "two parties give threshold t = 0 (no secrecy); this node requires a helper"
            )
        if not 0 <= p.party_index < len(p.party_order) or p.party_order[p.party_index] != me:
            raise InvalidArgument(f"party_order[{p.party_index}] is not {me!r}")
        if list(p.party_order) != list(p.spec.party_order):
            raise InvalidArgument("party_order does not match the job's owners and helpers")
        try:
            verify_member(p.analyst_cert_pem, self.ca_pem, role="analyst")
        except CryptoError as exc:
            raise PolicyViolation(
                f"results would be sealed to an untrusted key: {exc.message}",
                reason="untrusted_analyst",
            ) from exc
        definition = registry.get(p.spec.protocol)
        # The submitter's signature binds everything below; the coordinator only relays it.
        jobspec.verify(p.spec, p.analyst_cert_pem, definition.version)
        holder = self.store.claim_nonce(p.spec.nonce, p.job_id)
        if holder != p.job_id:
            raise PolicyViolation(
                f"this signed job already ran here as job {holder}; a signed job runs once",
                reason="replayed_job",
            )
        definition.check_params(p.spec.params)
        if definition.check_spec is not None:
            definition.check_spec(p.spec)
        if not 32 <= p.bit_length <= 4096 or not 0 <= p.decimals <= 6:
            raise InvalidArgument(
                f"session sizes out of range (bit_length {p.bit_length}, decimals {p.decimals})"
            )
        self._check_release_request(p)
        mine = [(n, i) for n, i in enumerate(p.spec.inputs) if i.party == me]
        if not mine:
            if me in p.spec.helpers:
                # A helper's noise share may be one the guarantee counts on: it checks the
                # scale is the calibrated one (it cannot check sensitivities: it has no data).
                self._check_calibration(p)
                return None, policy.Verdict(False, "compute-only party")
            raise InvalidArgument(f"job does not involve {me!r}")
        position, inp = mine[0]
        ds = self.datasets.get(inp.dataset)
        if ds is None:
            raise UnknownDataset(f"{me} has no dataset {inp.dataset!r}")
        roles = inp.columns
        # Cheap rules first: a job the policy refuses anyway is not checked against data.
        policy.evaluate(ds.allowed_protocols, ds.policy, self._policy_request(p, ds, roles, 0))
        definition.check_roles(position, roles)
        declared = {c.name: c for c in ds.columns}
        takes = {r.name: r for r in definition.roles_at(position)}
        for role, name in roles.items():
            col = declared.get(name)
            if col is None:
                raise UnknownColumn(f"dataset {inp.dataset!r} declares no column {name!r}")
            if col.type not in takes[role].types:
                raise ColumnTypeMismatch(f"column {name!r} is {col.type}")
            if role == "value" and p.decimals < col.decimals:
                raise InvalidArgument(
                    f"session keeps {p.decimals} decimals; column {name!r} declares {col.decimals}"
                )
        rows = datasets.check(ds)  # bounds, types, nulls: bad data is refused before any MPC
        if not p.release.exact and ds.privacy.person_column:
            most = datasets.max_rows_per_person(ds)
            if most > ds.privacy.rows_per_person:
                raise PolicyViolation(
                    f"dataset {ds.name!r} has a person ({ds.privacy.person_column}) with {most} "
                    f"rows, but its policy declares rows_per_person = "
                    f"{ds.privacy.rows_per_person}, which DP noise is calibrated to; raise it "
                    "(and republish) or keep one row per person",
                    reason="rows_per_person_exceeded",
                )
        value = declared.get(roles.get("value", ""))
        self._check_release(p, definition, ds, value)
        if value is not None:
            need = rows * math.ceil(value.abs_bound * 10**p.decimals)
            if need.bit_length() + 2 + p.release.headroom_bits() > p.bit_length:
                raise FailedPrecondition(
                    f"{inp.dataset}.{value.name} has grown beyond what the catalog announced "
                    f"({rows} rows); restart the node to republish it",
                    reason="catalog_stale",
                )
        repeats = 0
        if ds.policy.max_repeats:
            since = utcnow() - dt.timedelta(seconds=ds.policy.repeat_period_s)
            repeats = self.store.count_question(self._question_key(p), since, p.job_id)
        facts = self._policy_request(p, ds, roles, repeats)
        if ds.policy.min_cohort:
            facts = dataclasses.replace(facts, cohort=cohort.smallest(ds, roles, p.spec.params))
        verdict = policy.evaluate(ds.allowed_protocols, ds.policy, facts)
        if approved:
            verdict = policy.Verdict(False, "approved by the administrator")
        session_input = {
            "source": ds.source.to_dict(),
            "dataset_columns": [asdict(c) for c in ds.columns],
            "clamp": ds.clamp,
            "roles": roles,
        }
        return session_input, verdict

    def _policy_request(
        self, p: Proposal, ds: DatasetConfig, roles: dict[str, str], repeats: int
    ) -> policy.Request:
        return policy.Request(
            dataset=ds.name,
            protocol=p.spec.protocol,
            columns=roles,
            recipient=_cert_name(p.analyst_cert_pem),
            repeats=repeats,
        )

    def _check_release_request(self, p: Proposal) -> None:
        """The release must be the one the submitter signed: exact only if asked, its
        mechanism, and its ρ (Gaussian) or its ε and δ (Laplace)."""
        from ensnif_mpc.privacy import dlaplace

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
            delta = asked.delta if asked.delta is not None else dlaplace.DEFAULT_DELTA
            if (p.release.epsilon, p.release.delta) != (asked.epsilon, delta):
                raise PolicyViolation(
                    f"the session spends ε = {p.release.epsilon:g} (δ = {p.release.delta:g}); "
                    f"the submitter signed ε = {asked.epsilon} (δ = {delta:g})",
                    reason="release_mismatch",
                )
            return
        signed_rho = asked.rho if asked is not None else None
        if not p.release.exact and signed_rho is not None and signed_rho != p.release.rho:
            raise PolicyViolation(
                f"the session spends ρ = {p.release.rho:g}; the submitter signed {signed_rho:g}",
                reason="release_mismatch",
            )

    def _check_calibration(self, p: Proposal) -> None:
        """Every scale in the plan is the one this node computes itself from ρ or (ε, δ)
        and the plan's sensitivities (Laplace: digits K, bits L and δ bounds as well)."""
        from ensnif_mpc.privacy import dlaplace

        plan = p.release
        if plan.exact:
            return
        n = len(p.party_order)
        if plan.parties != n or plan.threshold != (n - 1) // 2 or not plan.blocks:
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
        expected = dp.plan(plan.rho, claimed, n, plan.threshold)
        if any(
            not math.isclose(e.sigma_share, b.sigma_share, rel_tol=1e-9)
            for e, b in zip(expected.blocks, plan.blocks, strict=True)
        ):
            raise PolicyViolation(
                "the proposed noise scales are not the calibrated ones",
                reason="noise_miscalibrated",
            )

    def _check_release(
        self,
        p: Proposal,
        definition: registry.ProtocolDef,
        ds: DatasetConfig,
        value: Column | None,
    ) -> None:
        """This owner's own view of the release: its policy, and a scale it computes itself."""
        from ensnif_mpc.privacy import dlaplace

        policy, plan = ds.privacy, p.release
        if plan.exact:
            if p.spec.protocol not in policy.exact_protocols:
                raise PolicyViolation(
                    f"policy of dataset {ds.name!r} does not allow exact release of "
                    f"{p.spec.protocol!r} (exact_protocols: "
                    f"{', '.join(policy.exact_protocols) or 'none'})",
                    reason="exact_not_allowed",
                )
            return
        if definition.dp_sensitivity is None:
            raise PolicyViolation(f"{p.spec.protocol!r} has no DP release", reason="dp_unavailable")
        if plan.laplace:  # the charge ε²/2, exactly, against the ceiling
            finite = math.isfinite(plan.epsilon) and plan.epsilon > 0
            cost = dlaplace.charge(plan.epsilon) if finite else None
            if cost is None or cost > Fraction(policy.max_rho):
                raise PolicyViolation(
                    f"the job spends ε = {plan.epsilon:g}, i.e. ρ = ε²/2 = "
                    f"{float(cost or math.inf):g}, of dataset {ds.name!r}; its policy allows at "
                    f"most ρ = {policy.max_rho:g} per job",
                    reason="rho_above_policy",
                )
        elif not 0 < plan.rho <= policy.max_rho:
            raise PolicyViolation(
                f"the job spends ρ = {plan.rho:g} of dataset {ds.name!r}; its policy allows at "
                f"most {policy.max_rho:g} per job",
                reason="rho_above_policy",
            )
        n = len(p.party_order)
        if plan.parties != n or plan.threshold != (n - 1) // 2:
            raise InvalidArgument("release plan is for another session size")
        bound = math.ceil(value.abs_bound * 10**p.decimals) if value is not None else 0
        own = definition.dp_sensitivity([(policy.rows_per_person, bound)], p.spec.params)
        claimed = [(b.l2_sensitivity, b.dims) for b in plan.blocks]
        understated = len(own) != len(claimed) or any(
            o[0] > c_l2 or o[1] != c_d for o, (c_l2, c_d) in zip(own, claimed, strict=True)
        )
        if plan.laplace and not understated:  # Laplace noise is scaled to the L1 sensitivity
            own_l1 = [dlaplace.l1_bound(o[0], o[1], o[2] if len(o) > 2 else None) for o in own]
            understated = any(
                o > b.l1_sensitivity for o, b in zip(own_l1, plan.blocks, strict=True)
            )
        if understated:
            raise PolicyViolation(
                f"the release assumes sensitivities {claimed}"
                + (f" (L1 {[b.l1_sensitivity for b in plan.blocks]})" if plan.laplace else "")
                + f"; this dataset alone contributes {own}",
                reason="sensitivity_understated",
            )
        self._check_calibration(p)

    def _charges(self, p: Proposal) -> dict[str, Fraction]:
        """What this job costs each of this node's datasets (nothing for an exact release)."""
        if p.release.exact:
            return {}
        cost = p.release.charge()  # ρ, or ε²/2 exactly for a pure ε-DP release
        return {i.dataset: cost for i in p.spec.inputs if i.party == self.cfg.name}

    def _allocate_port(self) -> int:
        lo, hi = self.cfg.mpc_ports
        with self._lock:
            used = self.store.ports_in_use() | self._reserved
            for port in range(lo, hi + 1):
                if port in used:
                    continue
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    # As the worker's own listener does: a port whose last job's connections
                    # linger in TIME_WAIT is free (without this, a busy node ran out).
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind(("", port))
                    except OSError:
                        continue
                self._reserved.add(port)
                return port
        raise ResourceBusy(f"no free MPC port in {lo}-{hi}; too many concurrent jobs")

    # -- start ---------------------------------------------------------------
    def start(
        self, caller: Identity, job_id: str, peers: list[mpc_session.PeerBinding], threshold: int
    ) -> NodeJob:
        self.check_coordinator(caller)
        job = self.store.get(job_id)
        if job.state != S.APPROVED:
            if job.state == S.REJECTED:
                raise FailedPrecondition(f"this node rejected job {job_id}: {job.reason}")
            return job
        order = job.data["party_order"]
        peers = sorted(peers, key=lambda p: p.index)
        if [p.party for p in peers] != order or [p.index for p in peers] != list(range(len(order))):
            raise InvalidArgument("session peers do not match the approved party order")
        if threshold != (len(order) - 1) // 2:
            raise PolicyViolation(
                f"threshold {threshold} is not the honest-majority threshold "
                f"{(len(order) - 1) // 2} for {len(order)} parties"
            )
        if peers[job.party_index].mpc_cert_pem != job.data["mpc_cert"]:
            raise CryptoError(
                "the session carries an MPC certificate for this node that it never issued"
            )
        for peer in peers:
            mpc_session.verify_peer(job_id, peer, self.ca_pem)
        own = mpc_session.MpcCredential(
            job.data["mpc_cert"], job.data["mpc_key"], bytes.fromhex(job.data["binding_signature"])
        )
        directory = self.workspace.create(job_id)
        mpc_session.write_config(directory, job.party_index, own, peers)
        addresses = [p.mpc_address for p in peers]
        addresses[job.party_index] = f"{self.cfg.mpc_host}:{job.mpc_port}"
        WorkerSession(
            job_id=job_id,
            protocol=job.data["spec"]["protocol"],
            params=job.data["spec"]["params"],
            index=job.party_index,
            threshold=threshold,
            addresses=addresses,
            owners=job.data["owners"],
            bit_length=job.data["bit_length"],
            decimals=job.data["decimals"],
            analyst_cert_pem=job.data["analyst_cert"],
            input_roles=job.data["input_roles"],
            release=job.data.get("release", {}),
            **(job.data["input"] or {}),
        ).write(directory)
        self.store.transition(job_id, S.APPROVED, S.STARTING)
        self.hub.notify(job_id)
        self._wake.set()
        return self.store.get(job_id)

    # -- abort ---------------------------------------------------------------
    def abort(self, caller: Identity, job_id: str, reason: str) -> NodeJob:
        self.check_coordinator(caller)
        job = self.store.find(job_id)
        if job is None:  # the abort overtook the proposal: remember it, so a late Propose fails
            if not job_id.isalnum():
                raise InvalidArgument(f"job id {job_id!r} is not alphanumeric")
            return self.store.create(
                job_id, S.ABORTED, 0, {}, 0, reason or "aborted by the coordinator", "aborted"
            )
        with self._lock:
            handle = self._handles.get(job_id)
        if handle is not None:
            handle.terminate()
        if job.state in NODE_LIVE:
            self._end(job, S.ABORTED, reason or "aborted by the coordinator", "aborted")
        return self.store.get(job_id)

    # -- monitor -------------------------------------------------------------
    def _end(self, job: NodeJob, state: NodeState, reason: str, code: str, **fields: Any) -> None:
        """Settle budget and resources first, then make the end visible: whoever sees the
        job ended sees no worker handle, no port and no open reservation left for it."""
        # The budget: once the worker started, its inputs were shared and the others may
        # still deliver enough shares to open the release: spent. Only a job that never
        # started gives its reservation back.
        if state == S.SUCCEEDED or job.state in WORKER_STARTED:
            moved = self.ledger.commit(job.job_id)
        else:
            moved = self.ledger.release(job.job_id)
        with self._lock:
            self._handles.pop(job.job_id, None)
            self._started.pop(job.job_id, None)
            self._reserved.discard(job.mpc_port)
        # The per-job MPC key is useless once the job ended; do not keep it at rest.
        self.workspace.scrub_secrets(job.job_id)
        data = fields.pop("data", job.data)
        fields["data"] = {k: v for k, v in data.items() if k != "mpc_key"}
        current = job
        while current.state in NODE_LIVE:
            if self.store.transition(job.job_id, current.state, state, reason, code, **fields):
                break
            current = self.store.get(job.job_id)
        self.hub.notify(job.job_id)
        if moved:
            self.on_budget_change()

    def _monitor_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for job in self.store.live():
                    self._tick(job)
            except Exception:  # keep watching the other jobs whatever one of them does
                log.exception("job monitor error")
            # Poll running workers often (their exit is the delivery); idle nodes rarely.
            busy = bool(self._handles)
            self._wake.wait(min(self._interval, 0.05) if busy else self._interval)
            self._wake.clear()

    def _tick(self, job: NodeJob) -> None:
        if job.state == S.AWAITING_APPROVAL:
            decision = self.store.approval(job.job_id)
            if decision is not None and decision.decision == "rejected":
                self._apply_rejection(job, decision)
                return
            waited = (utcnow() - job.updated_at).total_seconds() if job.updated_at else 0.0
            if waited > self.cfg.approval_timeout_s:
                self._end(
                    job,
                    S.ABORTED,
                    f"not approved within {self.cfg.approval_timeout_s:.0f}s",
                    "approval_timeout",
                )
            return
        if job.state == S.APPROVED:
            waited = (utcnow() - job.updated_at).total_seconds() if job.updated_at else 0.0
            if waited > self.cfg.start_timeout_s:
                self._end(
                    job,
                    S.ABORTED,
                    f"approved but never started within {self.cfg.start_timeout_s:.0f}s",
                    "start_timeout",
                )
            return
        directory = self.workspace.path(job.job_id)
        with self._lock:
            handle = self._handles.get(job.job_id)
        if job.state == S.STARTING and handle is None:
            handle = self.executor.launch(directory)
            with self._lock:
                self._handles[job.job_id] = handle
                self._started[job.job_id] = time.monotonic()
            self.store.transition(job.job_id, S.STARTING, S.RUNNING)
            self.hub.notify(job.job_id)
            log.info("job %s: worker %d started", job.job_id, handle.pid)
            return
        if job.state != S.RUNNING or handle is None:
            return
        status = WorkerStatus.read(directory)
        if status is not None:
            progress = {
                "phase": status.phase,
                "fraction": status.fraction,
                "message": status.message,
                "bytes_sent": status.bytes_sent,
            }
            if progress != job.progress:
                self.store.set_progress(job.job_id, progress)
                self.hub.notify(job.job_id)
        rc = handle.poll()
        if rc is not None:
            result = directory / RESULT_FILE
            if rc == 0 and result.exists():
                blob = result.read_bytes()
                signature = delivery.sign_share(self.key_pem, job.job_id, self.cfg.name, blob)
                data = {**job.data, "share_signature": signature.hex()}
                self._end(job, S.SUCCEEDED, "", "", sealed_share=blob, data=data)
                log.info("job %s: delivered", job.job_id)
            else:
                msg = status.message if status and status.phase == "failed" else ""
                code = status.reason_code if status and status.reason_code else "worker_failed"
                self._end(job, S.FAILED, msg or f"worker exited with code {rc}", code)
            return
        elapsed = time.monotonic() - self._started.get(job.job_id, time.monotonic())
        phase = status.phase if status else "starting"
        if phase in ("starting", "loading", "connecting") and elapsed > self.cfg.connect_timeout_s:
            handle.terminate()
            self._end(
                job,
                S.FAILED,
                f"MPC peers did not all connect within {self.cfg.connect_timeout_s:.0f}s",
                "peer_connect_timeout",
            )
        elif elapsed > self.cfg.job_timeout_s:
            handle.terminate()
            self._end(
                job,
                S.FAILED,
                f"job exceeded the node's limit of {self.cfg.job_timeout_s:.0f}s",
                "timeout",
            )

    def running_jobs(self) -> int:
        with self._lock:
            return len(self._handles)

"""The node's domain: what the coordinator may ask of it, and the decisions it takes.

No gRPC here (the servicer translates). The coordinator asks; the node decides, using
only its own configuration, data and store. A :class:`Node` ties the parts together:

- propose: :mod:`party_node.admission` checks the proposal and returns a verdict; an
  admitted job gets its budget reserved (the ledger), an MPC port and a per-job MPC
  credential here, or waits for this node's administrator (resume);
- start, abort and everything after: :mod:`party_node.supervisor` runs the worker,
  watches it and ends the job;
- reload: adopt a changed party.toml's datasets, policies and budgets.

Every refusal names the rule that refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from fractions import Fraction
from typing import Any

from ensnif_mpc import logs
from ensnif_mpc.config import DatasetConfig, PartyConfig
from ensnif_mpc.errors import (
    EnsnifError,
    FailedPrecondition,
    InvalidConfig,
    PermissionDenied,
    ResourceBusy,
)
from ensnif_mpc.jobs import approvals, checks
from ensnif_mpc.jobs.protocol import ProtocolDef
from ensnif_mpc.results import model_artifacts
from ensnif_mpc.results.artifacts import check_listed
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.pki import Identity
from party_node import admission, datasets
from party_node.admission import Proposal, release_from_json
from party_node.artifacts import ArtifactStore
from party_node.disclosure import Disclosure
from party_node.executor import Executor, Workspace
from party_node.ledger import Ledger
from party_node.states import NodeState
from party_node.store import NodeJob, NodeStore
from party_node.supervisor import Supervisor

__all__ = ["Node", "Proposal", "release_from_json"]

log = logging.getLogger(__name__)
S = NodeState


class Node:
    def __init__(
        self,
        cfg: PartyConfig,
        store: NodeStore,
        executor: Executor | None = None,
        monitor_interval_s: float = 0.2,
    ) -> None:
        self.store = store
        self.hub = Hub()
        self.workspace = Workspace(cfg.state_dir)
        self.executor = executor or Executor(standby=cfg.standby_workers)
        self.ca_pem = cfg.tls.ca.read_bytes()
        datasets.check_protocols(cfg.datasets)
        self.datasets: dict[str, DatasetConfig] = {d.name: d for d in cfg.datasets}
        # What of a message may leave the node (the servicer filters everything it sends).
        self.disclosure = Disclosure(cfg.datasets)
        self.ledger = Ledger(
            store.engine,
            {d.name: Fraction(d.privacy.budget_rho) for d in cfg.datasets},
            {d.name: Fraction(d.privacy.max_delta) for d in cfg.datasets},
        )
        self.supervisor = Supervisor(
            cfg,
            store,
            self.ledger,
            self.workspace,
            self.executor,
            self.hub,
            cfg.tls.key.read_bytes(),
            monitor_interval_s,
        )
        # This node's shares of artifacts (outputs kept secret-shared for later jobs).
        self.artifacts = ArtifactStore(store)
        self.supervisor.artifacts = self.artifacts
        # The outsourced datasets this node holds, by (owner, dataset): set by the server to
        # its OutsourcedStore's lookup (party_node/outsourced.py); None: none held.
        self.outsourced: Callable[[str, str], Any] = lambda _owner, _dataset: None
        self._lock = threading.Lock()
        # One Propose at a time per job id: the coordinator asks again when a call outlasts
        # its deadline while the first may still be running here, and both must not reserve.
        self._proposing: dict[str, list[Any]] = {}  # job id -> [lock, callers]
        self._proposing_guard = threading.Lock()

    # The supervisor reads these at every use; the node's are the same objects.
    @property
    def cfg(self) -> PartyConfig:
        return self.supervisor.cfg

    @cfg.setter
    def cfg(self, cfg: PartyConfig) -> None:
        self.supervisor.cfg = cfg

    @property
    def key_pem(self) -> bytes:
        """The node's signing key (replaced when the node's certificate rotates)."""
        return self.supervisor.key_pem

    @key_pem.setter
    def key_pem(self, key: bytes) -> None:
        self.supervisor.key_pem = key

    @property
    def on_budget_change(self) -> Callable[[], None]:
        return self.supervisor.on_budget_change

    @on_budget_change.setter
    def on_budget_change(self, callback: Callable[[], None]) -> None:
        self.supervisor.on_budget_change = callback  # e.g. republish the catalog

    # -- lifecycle -----------------------------------------------------------
    def start_monitor(self) -> None:
        self.supervisor.start()

    def shutdown(self) -> None:
        self.supervisor.stop()

    def running_jobs(self) -> int:
        return self.supervisor.running_jobs()

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
        datasets.check_protocols(cfg.datasets)
        for d in cfg.datasets:
            datasets.check(d)
        with self._lock:
            self.cfg = cfg
            self.datasets = {d.name: d for d in cfg.datasets}
            self.disclosure = self.disclosure.adding(cfg.datasets)  # old jobs' reasons too
            self.ledger.caps = {d.name: Fraction(d.privacy.budget_rho) for d in cfg.datasets}
            self.ledger.delta_caps = {d.name: Fraction(d.privacy.max_delta) for d in cfg.datasets}
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
    @logs.job_scoped("p")  # this job's id on every line logged for it
    def propose(self, caller: Identity, p: Proposal) -> NodeJob:
        self.check_coordinator(caller)
        checks.check_job_id(p.job_id)  # before anything is stored or reserved for it
        with self._proposing_guard:
            entry = self._proposing.setdefault(p.job_id, [threading.Lock(), 0])
            entry[1] += 1  # callers holding or waiting for this job's lock
        try:
            with entry[0]:  # a repeated Propose waits for the first, then finds its record
                return self._propose(p)
        finally:
            with self._proposing_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._proposing[p.job_id]

    def _propose(self, p: Proposal) -> NodeJob:
        existing = self.store.find(p.job_id)
        if existing is not None:
            if existing.state == S.AWAITING_APPROVAL:
                return self._resume(existing, p)
            return existing
        verdict = self._review(p)
        if verdict.refusal is not None:
            return self._refuse(p, verdict.refusal)
        if verdict.manual:
            data = admission.pending_data(p, verdict.rule)
            log.info("job %s awaits approval by this node's administrator", p.job_id)
            return self.store.create(p.job_id, S.AWAITING_APPROVAL, p.party_index, data, 0)
        try:
            data, port = self._admit(p, verdict.session_input)
        except EnsnifError as err:
            return self._refuse(p, err)
        try:
            self._decide(p, "approved", "policy", verdict.rule)
            job = self.store.create(p.job_id, S.APPROVED, p.party_index, data, port)
        except BaseException:
            self._unreserve(p.job_id, port)
            raise
        self.hub.notify(p.job_id)
        return job

    def _review(self, p: Proposal, approved: bool = False) -> admission.Verdict:
        return admission.review(
            p,
            name=self.cfg.name,
            programs=self.cfg.programs,
            own=self.datasets,
            ca_pem=self.ca_pem,
            store=self.store,
            approved=approved,
            budget=lambda charges: self.ledger.check(charges, _deltas(p, charges)),
            artifacts=self._check_artifacts,
            hosted=self._hosted,
        )

    def _hosted(self, owner: str, dataset: str) -> Any:
        """An outsourced dataset this node holds, with its owner's signed budget as the
        ledger's cap for ``owner/dataset`` (the ledger keeps the owner's line)."""
        held = self.outsourced(owner, dataset)
        if held is not None:
            self.ledger.caps[held.policy.key] = Fraction(held.policy.privacy.budget_rho)
            # and its signed max_delta as the δ cap, as a live dataset's policy sets it
            self.ledger.delta_caps[held.policy.key] = Fraction(held.policy.privacy.max_delta)
        return held

    def _check_artifacts(self, p: Proposal, definition: ProtocolDef) -> None:
        """At Propose: the job lists the artifacts its protocol reads, this node holds its
        share of each for this session, and may let this analyst use them (and a model
        the job scores with has as many weights as the job lists features)."""
        check_listed(definition.artifacts_in, p.spec.artifacts, p.spec.protocol)
        held = self._job_artifacts(
            p.spec.artifacts, p.party_order, admission.cert_name(p.analyst_cert_pem), None
        )
        model_artifacts.check_fits(definition, p.spec, held)

    def _job_artifacts(
        self, ids: Sequence[str], order: Sequence[str], analyst: str, threshold: int | None
    ) -> list[dict[str, Any]]:
        if not ids:
            return []
        return self.artifacts.for_job(
            ids,
            me=self.cfg.name,
            party_order=order,
            threshold=threshold,
            analyst=analyst,
            allowed=self.cfg.artifact_analysts,
        )

    def _refuse(self, p: Proposal, err: EnsnifError) -> NodeJob:
        log.info("job %s rejected: %s", p.job_id, err.message)
        return self.store.create(
            p.job_id, S.REJECTED, p.party_index, {}, 0, err.message, err.reason
        )

    def _admit(
        self, p: Proposal, session_input: dict[str, Any] | None
    ) -> tuple[dict[str, Any], int]:
        """Reserve budget and a port and mint the job's MPC credential: the job may run.

        Whatever fails after the budget is reserved gives back everything reserved so far
        (budget, port, the question's count) before the failure goes on: a job that never
        ran holds nothing. A failure that is not a refusal (the file system refusing the
        job's directory) becomes one, with the reason of its class."""
        outsourced = (session_input or {}).get("outsourced")
        charges = (
            {k: Fraction(n, d) for k, (n, d) in outsourced["charges"].items()}
            if outsourced
            else admission.charges(p, self.cfg.name, self.datasets)
        )
        self.ledger.reserve(p.job_id, charges, _deltas(p, charges))
        port = 0
        try:
            # One port per parallel session this node offers (ensnif_mpc/jobs/sessions.py).
            spec = p.spec
            offer = self.supervisor.offer(
                spec.protocol, spec.params, len(p.party_order), len(spec.owners)
            )
            port = self.supervisor.allocate_port(offer)
            self.store.record_question(p.job_id, admission.question_key(p))
            cred = mpc_session.mint(p.job_id, p.party_index, self.key_pem)
            self.workspace.create(p.job_id)
            return admission.session_data(p, session_input, cred), port
        except BaseException as exc:
            self._unreserve(p.job_id, port)
            if isinstance(exc, OSError):
                log.warning("job %s: cannot create its directory: %s", p.job_id, exc)
                raise ResourceBusy(
                    "this node cannot create the job's working directory; see its log"
                ) from exc
            raise

    def _unreserve(self, job_id: str, port: int) -> None:
        """Give back what :meth:`_admit` reserved for a job that will not run."""
        self.ledger.release(job_id)
        if port:
            self.supervisor.release_port(port)
        self.store.forget_question(job_id)

    def _resume(self, job: NodeJob, p: Proposal) -> NodeJob:
        """A job waiting for the administrator: admit it once approved (the coordinator asks
        again until then), re-checking everything, since policy and data may have changed."""
        decision = self.store.approval(job.job_id)
        if decision is None:
            return job
        if decision.decision == "rejected":
            self.supervisor.apply_rejection(job, decision)
            return self.store.get(job.job_id)
        try:
            admission.check_approved(p, decision)
            verdict = self._review(p, approved=True)
            if verdict.refusal is not None:
                raise verdict.refusal
            data, port = self._admit(p, verdict.session_input)
        except EnsnifError as err:
            self.store.mark_applied(job.job_id)
            log.info("approved job %s refused at admission: %s", job.job_id, err.message)
            # _admit gave back what it reserved before failing.
            self.store.transition(
                job.job_id, S.AWAITING_APPROVAL, S.REJECTED, err.message, err.reason
            )
            self.hub.notify(job.job_id)
            return self.store.get(job.job_id)
        self.store.mark_applied(job.job_id)
        if self.store.transition(
            job.job_id, S.AWAITING_APPROVAL, S.APPROVED, data=data, mpc_port=port
        ):
            self.hub.notify(job.job_id)
            return self.store.get(job.job_id)
        self._unreserve(job.job_id, port)  # aborted meanwhile: give the reservation back
        return self.store.get(job.job_id)

    def _decide(self, p: Proposal, decision: str, approver: str, reason: str) -> None:
        """Record a signed decision (the policy's own, for automatic approvals)."""
        signed = approvals.decide(
            p.job_id, admission.job_hash(p), decision, approver, reason, self.key_pem
        )
        self.store.add_approval(signed, applied=True)

    # -- start ---------------------------------------------------------------
    @logs.job_scoped("job_id")
    def start(
        self,
        caller: Identity,
        job_id: str,
        peers: list[mpc_session.PeerBinding],
        threshold: int,
        parallel: int = 1,
    ) -> NodeJob:
        self.check_coordinator(caller)
        job = self.store.get(job_id)
        if job.state != S.APPROVED:
            if job.state == S.REJECTED:
                raise FailedPrecondition(f"this node rejected job {job_id}: {job.reason}")
            return job
        peers = admission.check_session(job, peers, threshold, self.ca_pem)
        # The artifacts it reads, again: one may have been deleted since Propose.
        ids = job.data["spec"].get("artifacts", [])
        analyst = admission.cert_name(job.data["analyst_cert"])
        shares = self._job_artifacts(ids, job.data["party_order"], analyst, threshold)
        self.supervisor.stage(job, peers, threshold, artifacts=shares, parallel=parallel)
        self.artifacts.record_use(ids, job_id, analyst)
        return self.store.get(job_id)

    # -- artifacts -----------------------------------------------------------
    def list_artifacts(self, caller: Identity) -> list[tuple[dict[str, Any], str]]:
        """What this node holds of artifacts: (metadata, producing analyst), no shares."""
        self.check_coordinator(caller)
        return self.artifacts.listing()

    def delete_artifact(self, caller: Identity, artifact_id: str, requested_by: str) -> bool:
        """Delete this node's share at the request of the analyst who produced it (relayed
        by the coordinator); False when this node holds none."""
        self.check_coordinator(caller)
        found = self.artifacts.get(artifact_id)
        if found is None:
            return False
        if requested_by != found[1]:
            raise PermissionDenied(
                f"only {found[1]!r}, who produced artifact {artifact_id!r}, may delete it "
                "through the coordinator (this node's administrator may delete it here)"
            )
        return self.artifacts.delete(artifact_id, by=requested_by)

    # -- abort ---------------------------------------------------------------
    @logs.job_scoped("job_id")
    def abort(self, caller: Identity, job_id: str, reason: str) -> NodeJob:
        self.check_coordinator(caller)
        reason = reason or "aborted by the coordinator"
        job = self.store.find(job_id)
        if job is None:  # the abort overtook the proposal: remember it, so a late Propose fails
            checks.check_job_id(job_id)
            return self.store.create(job_id, S.ABORTED, 0, {}, 0, reason, "aborted")
        self.supervisor.abort(job, reason)
        return self.store.get(job_id)


def _deltas(p: Proposal, charges: dict[str, Fraction]) -> dict[str, Fraction]:
    """The job's δ at every dataset it charges, for the ledger's max_delta
    (ensnif_mpc.privacy.delta: the Laplace sampler's δ, group discovery's threshold δ)."""
    from ensnif_mpc.privacy.delta import job_delta
    from protocols import registry

    definition = registry.catalog().get(p.spec.protocol)
    delta = job_delta(p.release, definition.extra if definition else {}, p.spec.params)
    return {dataset: delta for dataset in charges} if delta else {}

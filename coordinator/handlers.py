"""Coordinator domain operations: no gRPC here, only identities, the store and the scheduler."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator import outsourced
from coordinator.outsourced import EntrustmentProof
from coordinator.scheduler import Scheduler
from coordinator.store import JobRecord, PartyRecord, Store
from coordinator.validation import validate
from ensnif_mpc import logs
from ensnif_mpc.data.schema import DatasetSchema
from ensnif_mpc.db import utcnow
from ensnif_mpc.errors import InvalidArgument, PermissionDenied, ResultNotReady
from ensnif_mpc.jobs import approvals, jobspec
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.security.pki import Identity
from protocols import registry

log = logging.getLogger(__name__)

# The walk a job answered from the cache takes: every state is still passed (and audited).
_CACHED_PATH = (
    JobState.VALIDATED,
    JobState.AWAITING_APPROVAL,
    JobState.APPROVED,
    JobState.SCHEDULED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
)


def new_job_id() -> str:
    """A fresh job id: twelve hex digits, the first a letter (a-f).

    The letter keeps an id from reading as a number anywhere it travels: twelve plain hex
    digits are all decimal about once in 280 jobs, or shaped like ``68403e193805``, which
    JSON, YAML, pandas and Airflow's XCom decoder read as a float (``inf`` there).
    """
    return secrets.choice("abcdef") + secrets.token_hex(6)[1:]


@dataclass
class Coordinator:
    store: Store
    scheduler: Scheduler
    # A DP question the same analyst asked within this many seconds, with the same
    # release, is answered from the earlier result at no privacy cost (0: never).
    cache_seconds: float = 86400.0
    # The consortium CA: an outsourced dataset's owner certificate is checked against it.
    ca_pem: bytes = b""

    def register_party(
        self,
        who: Identity,
        address: str,
        cert_pem: str,
        mpc_host: str = "",
        mpc_ports: tuple[int, int] = (0, 0),
    ) -> PartyRecord:
        if who.role != "party":
            raise PermissionDenied(f"{who.name!r} is a {who.role}; only party nodes register")
        if not address or ":" not in address:
            raise PermissionDenied("address: expected host:port of the node's PartyService")
        first, last = mpc_ports
        if mpc_ports != (0, 0) and not (0 < first <= last <= 65535):
            raise InvalidArgument(f"mpc ports: {first}-{last} is not a port range")
        return self.store.upsert_party(who.name, who.role, address, cert_pem, mpc_host, mpc_ports)

    def publish_dataset(
        self, who: Identity, ds: DatasetSchema, proof: EntrustmentProof | None = None
    ) -> DatasetSchema:
        if who.role != "party":
            raise PermissionDenied("only party nodes publish datasets")
        if self.store.get_party(who.name) is None:
            raise PermissionDenied(f"{who.name!r} must register before publishing datasets")
        if ds.host or proof is not None:  # under its owner's name, if the owner signed it
            owned = outsourced.verified_entry(
                who.name, ds, proof or EntrustmentProof(b"", b"", b""), self.ca_pem
            )
        else:  # the owner is whoever holds the certificate, whatever the message says
            owned = DatasetSchema(
                who.name, ds.name, ds.columns, ds.row_count, ds.description, ds.policy
            )
        if self.store.upsert_dataset(owned):  # republished every few seconds: audit changes
            audited = {"party": owned.party, "dataset": ds.name, "rows": owned.row_count}
            if owned.host:
                audited |= {"host": owned.host, "manifest_sha256": owned.outsourced_sha256}
            self.store.audit("dataset_published", audited)
        return owned

    def party_kind(self, name: str) -> str | None:
        """A member's kind as validation reads it (``_kinds`` answers the same from one
        catalog snapshot, for a submission)."""
        if self.store.get_party(name) is None:
            # An outsourced dataset's owner has no node: the node holding it serves its input.
            return "data_owner" if self.store.host_of(name) else None
        return "data_owner" if self.store.list_datasets(name) else "compute"

    def submit(self, who: Identity, spec: JobSpec, cert_pem: str, fresh: bool = False) -> JobRecord:
        if who.role != "analyst":
            raise PermissionDenied(f"{who.name!r} is a {who.role}; only analysts submit jobs")
        # Refuse early what every node would refuse: the nodes verify it again themselves.
        jobspec.verify(spec, cert_pem, registry.for_spec(spec).version)
        listed = self.store.list_datasets()
        datasets = {(d.party, d.name): d for d in listed}
        kind = _kinds(listed, {p.name for p in self.store.list_parties()})
        # Before the policy checks: what no helper serves says so, whatever the owner signed.
        outsourced.check_job(spec, self.store.host_of)  # one outsourced input, PRF joins
        sizing = validate(spec, kind, lambda p, n: datasets.get((p, n))).as_dict()
        job_id = new_job_id()
        earlier = None if fresh else self._answered_before(spec, who.name, sizing)
        if earlier is not None:
            job = self.store.create_job(job_id, spec, who.name, cert_pem, sizing)
            return self._answer_from(job, earlier)
        # Validated above: stored validated, and awaiting approval if it may go at once
        # (its places in flight taken now), every step audited, in one commit.
        parties = list(spec.party_order)
        admitted = self.scheduler.admit_now(job_id, parties)
        then = (JobState.VALIDATED, *((JobState.AWAITING_APPROVAL,) if admitted else ()))
        try:
            job = self.store.create_job(job_id, spec, who.name, cert_pem, sizing, then=then)
        except BaseException:
            if admitted:
                self.scheduler.release_admission(parties)
            raise
        with logs.job_context(job_id):  # the job's id on these lines, as on its driver's
            for state in then:
                log.info("job %s is %s", job_id, state.value)
        self.scheduler.drive(job.id, admitted=parties if admitted else None)
        return job

    def _answered_before(
        self, spec: JobSpec, submitter: str, sizing_of: dict[str, Any]
    ) -> JobRecord | None:
        """The latest earlier job that asked the same DP question with the same release
        (asked before the new job is stored, so it is never among them).

        Serving its result again releases nothing new, so it costs no budget; the
        nodes are not asked (they would see no computation to approve). Exact releases
        are never cached: they cost nothing, and the data may have changed.
        """
        release = sizing_of.get("release") or {}
        if self.cache_seconds <= 0 or not release or release.get("exact", True):
            return None
        version = registry.for_spec(spec).version
        key = approvals.question_key(spec, version, submitter)
        since = utcnow() - dt.timedelta(seconds=self.cache_seconds)
        sizing = json.dumps(sizing_of, sort_keys=True)  # as stored: tuples become lists
        for old in self.store.list_jobs(500, frozenset({JobState.SUCCEEDED})):
            if (
                old.submitter == submitter
                and old.created_at >= since
                and not old.session.get("cached_from")
                and json.dumps(old.sizing, sort_keys=True) == sizing
                and approvals.question_key(old.spec, version, old.submitter) == key
            ):
                return old
        return None

    def _answer_from(self, job: JobRecord, earlier: JobRecord) -> JobRecord:
        session = {
            "party_order": earlier.session.get("party_order", []),
            "approvals": earlier.session.get("approvals", []),
            "cached_from": earlier.id,
        }
        old = JobState.SUBMITTED
        for new in _CACHED_PATH:
            if new == JobState.SUCCEEDED:
                self.store.transition(job.id, old, new, session=session)
            else:
                self.store.transition(job.id, old, new)
            old = new
        self.store.audit("served_from_cache", {"job": job.id, "answered_by": earlier.id})
        return self.store.get_job(job.id)

    def job(self, who: Identity, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        self._may_see(who, job)
        return job

    def list_jobs(self, who: Identity, limit: int, states: frozenset[JobState]) -> list[JobRecord]:
        jobs = self.store.list_jobs(limit, states)
        return [j for j in jobs if self._visible(who, j)]

    def cancel(self, who: Identity, job_id: str) -> JobRecord:
        job = self.job(who, job_id)
        if who.name != job.submitter:
            raise PermissionDenied(
                f"only {job.submitter!r}, who submitted job {job_id}, may cancel it"
            )
        if job.state.final:
            return job
        return self.scheduler.cancel(job_id, f"cancelled by {who.name}")

    def result(self, who: Identity, job_id: str) -> dict[str, tuple[bytes, bytes, str]]:
        """Per party: sealed share, node signature, and the party's certificate."""
        job = self.job(who, job_id)
        # A member of the job's session may fetch too: the shares carry a part sealed to
        # it only where the protocol opens an output to it (ensnif_mpc.results.envelope).
        member = who.role == "party" and who.name in job.spec.party_order
        if who.name != job.submitter and not member:
            raise PermissionDenied(
                f"only {job.submitter!r}, who submitted job {job_id}, may fetch its result"
            )
        if job.state != JobState.SUCCEEDED:
            extra = f": {job.reason}" if job.reason else ""
            raise ResultNotReady(
                f"job {job_id} is {job.state.value}{extra}; a result exists "
                "only once it has succeeded"
            )
        out = {}
        source = str(job.session.get("cached_from") or job_id)
        for party, (blob, signature, signed_under) in self.store.shares(source).items():
            rec = self.store.get_party(party)
            # The certificate the share was signed under (the node may have rotated since).
            cert = signed_under or (rec.certificate_pem if rec else "")
            out[party] = (blob, signature, cert)
        self.store.audit("result_released", {"job": job_id, "to": who.name, "shares": sorted(out)})
        return out

    @staticmethod
    def _visible(who: Identity, job: JobRecord) -> bool:
        """Analysts see their own jobs, nodes the jobs they take part in."""
        if who.role == "analyst":
            return job.submitter == who.name
        if who.role == "party":
            return who.name in job.spec.party_order
        return who.role == "coordinator"

    def _may_see(self, who: Identity, job: JobRecord) -> None:
        if not self._visible(who, job):
            raise PermissionDenied(f"job {job.id} is not visible to {who.name!r} ({who.role})")


def _kinds(datasets: list[DatasetSchema], registered: set[str]) -> Callable[[str], str | None]:
    """``Coordinator.party_kind`` over one snapshot of the catalog and the registered parties:
    one read of each per submission instead of two queries per party named. A registered
    party with a dataset (its own or one it hosts under its own name) is a data owner, one
    without is compute; an owner without a node is a data owner if a node holds an
    outsourced dataset of it, else unknown."""
    owners = {d.party for d in datasets}
    entrusted = {d.party for d in datasets if d.host}

    def kind(name: str) -> str | None:
        if name not in registered:
            return "data_owner" if name in entrusted else None
        return "data_owner" if name in owners else "compute"

    return kind

"""Drives each job through approval, scheduling and running, and resumes after a restart.

One driver thread per live job: admit (coordinator/admission.py) → approve (propose to
every node) → start → follow (watch every node until all delivered their shares). Every
step is idempotent at the nodes (Propose and Start are keyed by job id), so a restarted
coordinator simply re-enters the step a job's persisted state names. Failure of any party
fails the job for all: the others are told to abort, so no worker is left waiting on a
dead peer.

This module decides what to ask the nodes and what their answers mean for the job; how
the questions travel (protobuf, stubs, gRPC errors) is coordinator/node_client.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from coordinator import root_cause
from coordinator.admission import Admission
from coordinator.node_client import (
    Approved,
    AwaitingApproval,
    NodeCallFailed,
    NodeClient,
    NodeJobState,
    NodeLostJob,
    NodeStatus,
    ProposeAnswer,
    Rejected,
    UnknownNode,
)
from coordinator.store import JobRecord, Store
from coordinator.threads import DaemonThreads
from coordinator.validation import honest_majority_threshold
from ensnif_mpc import logs
from ensnif_mpc.jobs import sessions
from ensnif_mpc.jobs.jobstate import LIVE, JobState
from ensnif_mpc.security.mpc_session import PeerBinding

log = logging.getLogger(__name__)

# Admission is named here too: callers (tests among them) reach it as scheduler.Admission.
__all__ = ["Admission", "JobEnded", "Scheduler"]


class JobEnded(Exception):
    """The job reached a final state (possibly by someone else); the driver stops."""


class Scheduler:
    """One driver thread per live job, taking turns through ``admission`` and reaching the
    nodes only through ``nodes`` (a :class:`NodeClient`); ``notify`` wakes the job's
    watchers after every change it stores."""

    def __init__(
        self,
        store: Store,
        nodes: NodeClient,
        notify: Callable[[str], None],
        propose_timeout_s: float = 30.0,
        job_timeout_s: float = 3600.0,
        node_lost_grace_s: float = 6.0,
        settle_s: float = 3.0,
        approval_timeout_s: float = 7 * 86400.0,
        max_jobs_per_party: int = 8,
    ) -> None:
        self.store = store
        self.nodes = nodes
        self.notify = notify
        self.propose_timeout_s = propose_timeout_s
        self.job_timeout_s = job_timeout_s
        self.node_lost_grace_s = node_lost_grace_s
        # After a party reports only a consequence (peer_lost), how long to wait for the
        # party whose fault it is to report its cause (coordinator/root_cause.py).
        self.settle_s = settle_s
        # How long a job may wait for data owners' administrators (manual approval).
        self.approval_timeout_s = approval_timeout_s
        self.admission = Admission(max_jobs_per_party)
        # Jobs with a driver running (drive() starts none for those); the drivers and the
        # jobs' watchers run on threads reused across jobs (coordinator/threads.py).
        self._driving: set[str] = set()
        self.threads = DaemonThreads("scheduler")
        # Parties whose in-flight slots each driven job holds (see Admission).
        self._holding: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- public --------------------------------------------------------------
    def admit_now(self, job_id: str, parties: list[str]) -> bool:
        """Take a new job's place in flight at each of its parties if it may go at once
        (room at every party, no earlier job waiting for one of them), without waiting.

        Why: a job admitted at its submission is stored ``awaiting_approval`` with its
        creation (three audited steps, one commit) and its driver proposes at once, instead
        of a commit of its own for that step first. The caller hands the places to
        :meth:`drive` (``admitted=True``), or gives them back if it could not store the job
        (:meth:`release_admission`)."""
        return self.admission.acquire(job_id, parties, give_up=lambda: True)

    def release_admission(self, parties: list[str]) -> None:
        self.admission.release(parties)

    def drive(self, job_id: str, admitted: list[str] | None = None) -> None:
        """Drive the job on a thread of its own, unless one drives it already.
        ``admitted``: the parties whose places :meth:`admit_now` took for it."""
        with self._lock:
            if job_id in self._driving:
                if admitted:  # cannot happen for a new job; never keep places twice
                    self.admission.release(admitted)
                return
            self._driving.add(job_id)
            if admitted:
                self._holding[job_id] = list(admitted)
        self.threads.run(self._drive, job_id)

    def _drive(self, job_id: str) -> None:
        try:
            self._run(job_id)
        finally:
            with self._lock:
                self._driving.discard(job_id)

    def resume(self) -> int:
        jobs = self.store.list_jobs(limit=10_000, states=LIVE)
        for job in sorted(jobs, key=lambda j: j.created_at):  # oldest first: queue order
            log.info("resuming job %s in state %s", job.id, job.state.value)
            self.drive(job.id)
        return len(jobs)

    def cancel(self, job_id: str, reason: str = "cancelled by the analyst") -> JobRecord:
        job = self.store.get_job(job_id)
        while not job.state.final:
            if self.store.transition(job_id, job.state, JobState.CANCELLED, reason, "cancelled"):
                break
            job = self.store.get_job(job_id)
        self.notify(job_id)
        self._abort_all(self.store.get_job(job_id), reason)
        return self.store.get_job(job_id)

    def stop(self) -> None:
        self._stopping.set()

    # -- driver --------------------------------------------------------------
    @logs.job_scoped("job_id")  # every line of the job's driver carries its id
    def _run(self, job_id: str) -> None:
        admitted: list[str] | None = None
        following: _Following | None = None
        try:
            job = self.store.get_job(job_id)
            if job.state.final:
                return
            admitted = self._holding.get(job_id)  # taken at its submission (admit_now)
            if admitted is None:
                admitted = self._admit(job)
                if admitted is None:  # ended while it waited its turn: nothing was proposed
                    return
                self._holding[job_id] = admitted
                job = self.store.get_job(job_id)
            if job.state in (JobState.SUBMITTED, JobState.VALIDATED, JobState.AWAITING_APPROVAL):
                job = self._approve(job)
            if job.state in (JobState.APPROVED, JobState.SCHEDULED):
                following = self._watch_all(job)  # the streams open while Start travels
                job = self._start(job)
            if job.state == JobState.RUNNING:
                self._follow(job, following)
        except (JobEnded, UnknownNode):
            # Whoever ended it (a cancel, a rejection) may have raced our own calls to the
            # nodes; aborting again is idempotent and releases what a late Propose reserved.
            job = self.store.get_job(job_id)
            if job.state.final and job.state != JobState.SUCCEEDED:
                self._abort_all(job, job.reason or job.state.value)
        except Exception:  # a driver must never die silently with the job still live
            log.exception("job %s: scheduler error", job_id)
            self._fail(job_id, "internal scheduler error; see the coordinator log", "internal")
        finally:
            if following is not None:
                following.stop.set()
            held = self._holding.pop(job_id, None)
            if held:
                self.admission.release(held)
            self.notify(job_id)

    def _admit(self, job: JobRecord) -> list[str] | None:
        """Take the job's place in flight at each of its parties; a job not yet proposed
        waits for one (see :class:`Admission`), within the job's time limit. None if the
        job ended meanwhile (cancelled, out of time) or the coordinator is stopping."""
        parties = list(job.spec.party_order)
        if job.state not in (JobState.SUBMITTED, JobState.VALIDATED):
            self.admission.force(parties)  # proposed before a restart: it holds its ports
            return parties
        limit_at = job.created_at.timestamp() + self.job_timeout_s

        def give_up() -> bool:
            return (
                self._stopping.is_set()
                or time.time() > limit_at
                or self.store.get_job(job.id).state.final
            )

        if self.admission.acquire(job.id, parties, give_up):
            return parties
        if not self._stopping.is_set() and time.time() > limit_at:
            self._fail(
                job.id,
                f"waited its whole time limit of {self.job_timeout_s:.0f}s for a turn "
                f"(at most {self.admission.limit} jobs run at once per party)",
                "timeout",
                abort=False,  # nothing was proposed: no node holds anything for it
            )
        return None

    def _move(
        self, job: JobRecord, new: JobState, reason: str = "", code: str = "", **fields: Any
    ) -> JobRecord:
        if not self.store.transition(job.id, job.state, new, reason, code, **fields):
            raise JobEnded(job.id)
        for state in (new, *fields.get("then", ())):
            log.info("job %s is %s", job.id, state.value)
        self.notify(job.id)
        return self.store.get_job(job.id)

    def _fail(self, job_id: str, reason: str, code: str, abort: bool = True) -> None:
        job = self.store.get_job(job_id)
        while not job.state.final:
            if self.store.transition(job_id, job.state, JobState.FAILED, reason, code):
                log.warning("job %s failed: %s", job_id, reason)
                break
            job = self.store.get_job(job_id)
        self.notify(job_id)
        if abort:
            self._abort_all(self.store.get_job(job_id), reason)

    def _abort_all(self, job: JobRecord, reason: str) -> None:
        for party in job.spec.party_order:
            try:
                self.nodes.abort(party, job.id, reason)
            except (NodeCallFailed, UnknownNode) as exc:
                log.info("job %s: abort at %s not delivered (%s)", job.id, party, exc)

    # -- phases --------------------------------------------------------------
    def _approve(self, job: JobRecord) -> JobRecord:
        if job.state == JobState.SUBMITTED:
            job = self._move(job, JobState.VALIDATED)
        if job.state == JobState.VALIDATED:
            job = self._move(job, JobState.AWAITING_APPROVAL)
        order = list(job.spec.party_order)
        deadline = time.monotonic() + self.propose_timeout_s
        manual_since = time.monotonic()
        while True:
            answers = self._propose_all(job, order)
            if self.store.get_job(job.id).state.final:
                raise JobEnded(job.id)
            rejected = [(p, a) for p, a in answers.items() if isinstance(a, Rejected)]
            if rejected:
                party, ans = rejected[0]
                # Abort the others first (they free their ports and budget reservations),
                # so that whoever sees REJECTED sees nothing still held for the job.
                self._abort_all(job, f"rejected by {party}")
                self._move(job, JobState.REJECTED, f"{party}: {ans.reason}", ans.code)
                raise JobEnded(job.id)
            approved = {p: a for p, a in answers.items() if isinstance(a, Approved)}
            if len(approved) == len(answers):
                if job.id not in self._holding:
                    self._readmit(job, order)
                break
            manual = {p: a.reason for p, a in answers.items() if isinstance(a, AwaitingApproval)}
            if manual:
                # A person decides: wait as long as the approval timeout allows, and say
                # whose approval is missing. Nothing is held at the nodes meanwhile, so the
                # job gives up its in-flight slots (jobs waiting for people must not block
                # the others) and takes them again once approved.
                deadline = max(deadline, manual_since + self.approval_timeout_s)
                self._show_waiting(job, dict(sorted(manual.items())))
                held = self._holding.pop(job.id, None)
                if held:
                    self.admission.release(held)
            else:
                manual_since = time.monotonic()
            if time.monotonic() > deadline:
                waiting = sorted(p for p in answers if p not in approved)
                self._fail(
                    job.id,
                    f"no approval from {', '.join(waiting)} within {self.propose_timeout_s:.0f}s",
                    "approval_timeout",
                )
                raise JobEnded(job.id)
            time.sleep(1.0)
            job = self.store.get_job(job.id)
            if job.state.final:
                raise JobEnded(job.id)
        session = self._session(order, approved, _requested_sessions(job))
        # Approved and scheduled in one commit (two audited steps): nothing happens between.
        return self._move(job, JobState.APPROVED, session=session, then=(JobState.SCHEDULED,))

    def _session(
        self, order: list[str], approved: dict[str, Approved], requested: int = 1
    ) -> dict[str, Any]:
        """What every node needs to start (persisted with the job): the party order, each
        peer's MPC endpoint and certificates, the threshold, each owner's signed
        approval, and the job's parallel sessions per party: the smallest of the
        analyst's request and every node's offer (``ensnif_mpc.jobs.sessions``)."""
        peers = []
        for i, party in enumerate(order):
            ans = approved[party]
            rec = self.store.get_party(party)
            host = "" if rec is not None else (self.store.host_of(party) or "")
            if host:  # an outsourced dataset's owner: the holding node plays its position
                rec = self.store.get_party(host)
            peers.append(
                {
                    "index": i,
                    "party": party,
                    "mpc_address": ans.mpc_address,
                    "mpc_certificate_pem": ans.mpc_certificate_pem,
                    "binding_signature": ans.binding_signature.hex(),
                    "party_certificate_pem": rec.certificate_pem if rec else "",
                    "host": host,
                }
            )
        return {
            "party_order": order,
            "peers": peers,
            "threshold": honest_majority_threshold(len(order)),
            "sessions": sessions.decide(requested, (approved[p].parallel_sessions for p in order)),
            "approvals": [
                {
                    "party": party,
                    "job_id": a.approval.job_id,
                    "decision": a.approval.decision,
                    "approver": a.approval.approver,
                    "at": a.approval.at,
                    "job_hash": a.approval.job_hash,
                    "signature_hex": a.approval.signature,
                    "reason": a.approval.reason,
                }
                for party, a in approved.items()
                if a.approval is not None
            ],
        }

    def _readmit(self, job: JobRecord, order: list[str]) -> None:
        """Take in-flight slots again after a manual approval (the nodes now hold ports and
        reservations; they give them back themselves after their start timeout)."""

        def give_up() -> bool:
            return self._stopping.is_set() or self.store.get_job(job.id).state.final

        if not self.admission.acquire(job.id, order, give_up):
            raise JobEnded(job.id)
        self._holding[job.id] = list(order)

    def _show_waiting(self, job: JobRecord, waiting: dict[str, str]) -> None:
        current = self.store.get_job(job.id).progress
        progress = dict(current)
        for party, reason in waiting.items():
            entry = dict(progress.get(party, {}))
            entry.update(
                state=NodeJobState.AWAITING_APPROVAL.value,
                phase="awaiting approval",
                message=reason,
            )
            progress[party] = entry
        if progress != current:
            self.store.update_job(job.id, progress=progress)
            self.notify(job.id)

    def _propose_all(self, job: JobRecord, order: list[str]) -> dict[str, ProposeAnswer]:
        return self.nodes.propose_all(job, order, self.propose_timeout_s)

    def _start(self, job: JobRecord) -> JobRecord:
        if job.state == JobState.APPROVED:
            job = self._move(job, JobState.SCHEDULED)
        session = job.session
        peers = [
            PeerBinding(
                index=p["index"],
                party=p["party"],
                mpc_address=p["mpc_address"],
                mpc_cert_pem=p["mpc_certificate_pem"],
                binding_signature=bytes.fromhex(p["binding_signature"]),
                party_cert_pem=p["party_certificate_pem"],
                host=p.get("host", ""),
            )
            for p in session["peers"]
        ]
        threshold = int(session["threshold"])
        parallel = int(session.get("sessions", 1))

        order = session["party_order"]
        failed = self.nodes.start_all(order, job.id, peers, threshold, sessions=parallel)
        if failed:
            party = next(p for p in order if p in failed)
            err = failed[party].error
            self._fail(
                job.id,
                f"{party} could not start the job: {err.message}",
                err.reason or "start_failed",
            )
            raise JobEnded(job.id)
        return self._move(job, JobState.RUNNING)

    def _watch_all(self, job: JobRecord) -> _Following:
        """Open a Watch stream to every node of the job's session, each on its own thread.

        Opened before Start is sent (a node answers Watch for an approved job too), so the
        streams are up when the workers begin: a job's end reaches the coordinator as a
        pushed message, with no round trip of its own after Start."""
        following = _Following(self, job)
        following.begin()
        return following

    def _follow(self, job: JobRecord, following: _Following | None = None) -> None:
        """Wait until every node delivered, one failed, or the job timed out (watching
        every node, unless ``following`` already does).

        A failure ends the job with its root cause (:mod:`coordinator.root_cause`): when
        the first report is a consequence (a survivor's ``peer_lost``), the parties are
        followed for ``settle_s`` more, or until all of them ended, for the cause."""
        following = following or self._watch_all(job)
        remaining = self.job_timeout_s - (time.time() - job.created_at.timestamp())
        finished = following.done.wait(timeout=max(remaining, 1.0))
        if finished and following.reports.failed:
            following.settled.wait(self.settle_s)  # the cause may still be on its way
        following.stop.set()
        if self._stopping.is_set():
            return
        if not finished:
            self._fail(
                job.id, f"job exceeded its time limit of {self.job_timeout_s:.0f}s", "timeout"
            )
            return
        with following.lock:
            verdict = following.reports.verdict()
        if verdict is not None:
            reason, code = verdict
            self._fail(job.id, reason, code)
            return
        order: list[str] = job.session["party_order"]
        missing = [p for p in order if p not in self.store.share_parties(job.id)]
        if missing:
            self._fail(job.id, f"no result share from {', '.join(missing)}", "result_incomplete")
            return
        self._move(job, JobState.SUCCEEDED)


class _Following:
    """One job's Watch streams, one thread per node, and what they heard so far: each
    node's status (stored as the job's progress), its delivered share (stored before the
    status says so), and the failures reported (for the root cause)."""

    def __init__(self, scheduler: Scheduler, job: JobRecord) -> None:
        self.s = scheduler
        self.job_id = job.id
        self.order: list[str] = list(job.session["party_order"])
        self.done = threading.Event()  # every party delivered, or a failure was heard
        self.settled = threading.Event()  # a cause was heard, or every party ended
        self.stop = threading.Event()  # the watchers leave
        self.lock = threading.Lock()
        self.statuses: dict[str, dict[str, Any]] = dict(job.progress)
        self.reports = root_cause.Reports()
        self.ended: set[str] = set()

    def begin(self) -> None:
        for party in self.order:
            self.s.threads.run(self._watch, party)

    def _record(self, party: str, st: NodeStatus) -> None:
        store = self.s.store
        # Store the share before the status says "succeeded": the last party to
        # report must never end the job while another's share is still in flight.
        if st.state == NodeJobState.SUCCEEDED and st.sealed_share:
            # Keep the certificate the node signs under now: it may rotate later.
            rec = store.get_party(party) or store.get_party(
                store.host_of(party) or ""
            )  # an outsourced owner's share: signed by the node that played it
            store.put_share(
                self.job_id,
                party,
                st.sealed_share,
                st.share_signature,
                rec.certificate_pem if rec else "",
            )
        with self.lock:
            self.statuses[party] = {
                "state": st.state.value,
                "phase": st.phase,
                "fraction": st.fraction,
                "message": st.message,
                "bytes_sent": st.bytes_sent,
                "messages_sent": st.messages_sent,
                "rounds": st.rounds,
                "cpu_seconds": st.cpu_seconds,
                "reason": st.reason,
            }
            snapshot = dict(self.statuses)
            all_delivered = all(
                snapshot.get(p, {}).get("state") == NodeJobState.SUCCEEDED for p in self.order
            )
            if st.state.ended_badly and party not in self.ended:
                self.reports.add(
                    f"{party}: {st.reason or st.state.value}", st.reason_code or "party_failed"
                )
            if st.state.final:
                self.ended.add(party)
            failed = self.reports.failed
            if self.reports.has_cause or self.ended >= set(self.order):
                self.settled.set()
        # Shown at once, written at most once a second and with the job's state change
        # (Store.set_progress: about 8 statuses per node per job were one commit each).
        store.set_progress(self.job_id, snapshot)
        self.s.notify(self.job_id)
        if failed or all_delivered:
            self.done.set()

    def _fail(self, party: str, message: str, code: str) -> None:
        # (party, message, code): the scheduler's _fail's order, code last, which the
        # reason registry's source check reads by position.
        with self.lock:
            self.reports.add(message, code)
            self.ended.add(party)
            if self.reports.has_cause or self.ended >= set(self.order):
                self.settled.set()
        self.done.set()

    def _watch(self, party: str) -> None:
        lost_since: float | None = None
        while not self.stop.is_set() and not self.s._stopping.is_set():
            try:
                for st in self.s.nodes.watch(party, self.job_id):
                    lost_since = None
                    self._record(party, st)
                    if st.state.final or self.stop.is_set():
                        return
                if self.stop.is_set():
                    return
            except NodeLostJob:
                self._fail(
                    party,
                    f"{party} does not know this job (its state was lost)",
                    "party_lost_job",
                )
                return
            except NodeCallFailed as exc:
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since > self.s.node_lost_grace_s:
                    self._fail(
                        party,
                        f"party {party} is unreachable ({exc.status}); the job cannot finish",
                        "party_unreachable",
                    )
                    return
                time.sleep(0.5)


def _requested_sessions(job: JobRecord) -> int:
    """The analyst's ``params.sessions`` (checked when the job file was parsed)."""
    try:
        return sessions.requested(job.spec.params)
    except ValueError:
        return 1

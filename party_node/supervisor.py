"""The supervisor: the life of an admitted job's worker, from its session to its end.

It owns what a running job holds at this node: its MPC port, its worker process
(launched through the :class:`~party_node.executor.Executor`, one long-lived monitor
thread, so workers die with the node), its progress, its timeouts, and its end: the
ledger settled (spent once a worker started, returned otherwise), the per-job MPC key
scrubbed, then the final state made visible. What to admit is decided before, by
:mod:`party_node.admission`; :mod:`party_node.node` ties the two together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensnif_mpc import logs
from ensnif_mpc.config import PartyConfig
from ensnif_mpc.db import utcnow
from ensnif_mpc.errors import EnsnifError, InvalidArgument, ResourceBusy
from ensnif_mpc.jobs import approvals, member_program, sessions
from ensnif_mpc.jobs.worker_session import (
    ARTIFACTS_FILE,
    RESULT_FILE,
    WorkerSession,
    WorkerStatus,
)
from ensnif_mpc.results import delivery
from ensnif_mpc.results.artifacts import ArtifactShare
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.pki import identity_of, parse_cert
from party_node.executor import Executor, JobHandle, Workspace
from party_node.ledger import Ledger
from party_node.states import NODE_LIVE, WORKER_STARTED, NodeState
from party_node.store import NodeJob, NodeStore

if TYPE_CHECKING:
    from party_node.artifacts import ArtifactStore

log = logging.getLogger(__name__)
S = NodeState


IDLE_TICK_S = 1.0  # the monitor's pace while the node has no live job


class Supervisor:
    """Runs admitted jobs' workers. ``cfg`` (timeouts, port range, name), ``key_pem``
    (signs delivered shares) and ``on_budget_change`` are read at every use, so a reload
    or a rotated key takes effect for the next tick."""

    def __init__(
        self,
        cfg: PartyConfig,
        store: NodeStore,
        ledger: Ledger,
        workspace: Workspace,
        executor: Executor,
        hub: Hub,
        key_pem: bytes,
        monitor_interval_s: float = 0.2,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.ledger = ledger
        self.workspace = workspace
        self.executor = executor
        self.hub = hub
        self.key_pem = key_pem
        self.on_budget_change: Callable[[], None] = lambda: None  # e.g. republish the catalog
        self.artifacts: ArtifactStore | None = None  # set by the node: where kept shares go
        self._handles: dict[str, JobHandle] = {}
        self._started: dict[str, float] = {}
        self._reserved: set[int] = set()  # ports handed out, maybe not yet in the store
        self._launching: set[str] = set()  # jobs stage() is handing to a worker
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stage() so a new worker launches at once
        self._interval = monitor_interval_s
        self._monitor = threading.Thread(target=self._monitor_loop, name="job-monitor", daemon=True)
        # A worker's end is pushed (the fork server reports it, a cold worker's waiter
        # thread sees it): the monitor wakes and delivers its share at once, not on a tick.
        executor.on_exit = self._wake.set

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Settle what a previous run of the node left, then start watching jobs."""
        # A reservation whose job is not live any more may have been opened: count it spent.
        self.ledger.recover({j.job_id for j in self.store.live() if j.state == S.APPROVED})
        for job in self.store.live():
            if job.state in WORKER_STARTED:
                self.end(job, S.FAILED, "the node restarted while the job ran", "node_restarted")
        self._monitor.start()

    def stop(self) -> None:
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
                self.end(job, S.FAILED, "the node was shut down", "node_shutdown")
        # After the workers: a fork server's children die with it (SIGKILL, no grace).
        self.executor.close()

    def running_jobs(self) -> int:
        with self._lock:
            return len(self._handles)

    # -- ports ---------------------------------------------------------------
    @property
    def _block(self) -> int:
        """Ports a job may hold from its job port on: one per parallel session offered."""
        return sessions.capacity(self.cfg.parallel_sessions)

    def offer(self, protocol: str, params: Any, n_parties: int, n_owners: int) -> int:
        """The parallel sessions this node offers a job (``ensnif_mpc.jobs.sessions``)."""
        return sessions.offer(self.cfg.parallel_sessions, protocol, n_parties, n_owners, params)

    def offer_for(self, job: NodeJob) -> int:
        spec = job.data["spec"]
        return self.offer(
            spec["protocol"], spec["params"], len(job.data["party_order"]), len(job.data["owners"])
        )

    def allocate_port(self, count: int = 1) -> int:
        """The first of ``count`` consecutive free MPC ports (a job of k parallel sessions
        listens on its job port + s in session s), all reserved. A live job's port counts
        as the start of a block of the node's largest offer (its k is not stored)."""
        lo, hi = self.cfg.mpc_ports
        count = max(1, count)
        with self._lock:
            used = {
                p + i for p in self.store.ports_in_use() for i in range(self._block)
            } | self._reserved
            for port in range(lo, hi - count + 2):
                block = range(port, port + count)
                if any(p in used for p in block) or not all(map(self._bindable, block)):
                    continue
                self._reserved.update(block)
                return port
        raise ResourceBusy(f"no free MPC port in {lo}-{hi}; too many concurrent jobs")

    @staticmethod
    def _bindable(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As the worker's own listener does: a port whose last job's connections
            # linger in TIME_WAIT is free (without this, a busy node ran out).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                return False
        return True

    def release_port(self, port: int) -> None:
        with self._lock:
            self._reserved.difference_update(range(port, port + self._block))

    # -- a job's session and its end -------------------------------------------
    def stage(
        self,
        job: NodeJob,
        peers: list[mpc_session.PeerBinding],
        threshold: int,
        artifacts: Sequence[dict[str, Any]] = (),
        parallel: int = 1,
    ) -> None:
        """Write the checked session into the job's directory; the monitor launches it.

        ``artifacts``: this node's shares of the artifacts the job reads (checked by the
        node). Every member's consortium certificate goes in too: an output opened to a
        named party is sealed to it. ``parallel``: the job's k from the coordinator, at
        most what this node offered (it reserved that many ports)."""
        job_id = job.job_id
        parallel = max(1, parallel)
        if parallel > self.offer_for(job):
            raise InvalidArgument(
                f"the coordinator asks for {parallel} parallel sessions; this node offered "
                f"{self.offer_for(job)} for the job"
            )
        own = mpc_session.MpcCredential(
            job.data["mpc_cert"], job.data["mpc_key"], bytes.fromhex(job.data["binding_signature"])
        )
        directory = self.workspace.create(job_id)
        mpc_session.write_config(directory, job.party_index, own, peers)
        extra: dict[str, Any] = {}
        if parallel > 1:  # protocols/partitions.py: session 0 starts the others
            extra["sessions"] = parallel
        if (program := job.data["spec"].get("program")) is not None:
            # A member program runs from the job's own directory, never from the node's
            # code paths; the worker checks these files against the hash again.
            member_program.Bundle.from_wire(program).write(directory / member_program.JOB_DIR)
            extra["program"] = program["hash"]
        addresses = [p.mpc_address for p in peers]
        addresses[job.party_index] = f"{self.cfg.mpc_host}:{job.mpc_port}"
        hosted = [p.index for p in peers if p.host]
        if hosted:  # public: the positions an outsourced dataset's holder plays
            extra["outsourced_positions"] = hosted
            if (job.data["input"] or {}).get("outsourced"):  # the owner checks every binding
                extra["peers"] = [
                    {**dataclasses.asdict(p), "binding_signature": p.binding_signature.hex()}
                    for p in peers
                ]
                extra["ca_pem"] = self.cfg.tls.ca.read_text()
                # The peers wait connect_seconds for this worker: the owner must come sooner.
                extra["owner_window_s"] = max(1.0, 0.8 * self.cfg.connect_timeout_s)
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
            input_role_lists=job.data.get("input_role_lists", []),
            release=job.data.get("release", {}),
            extra=extra,
            party_names=[p.party for p in peers],
            party_cert_pems=[p.party_cert_pem for p in peers],
            artifacts=[dict(a) for a in artifacts],
            **(job.data["input"] or {}),
        ).write(directory)
        with self._lock:
            self._launching.add(job_id)  # the monitor leaves it to this thread
        try:
            self.store.transition(job_id, S.APPROVED, S.STARTING)
            self.hub.notify(job_id)
            # A pre-forked worker takes the job at once, on this thread: no wait for the
            # monitor's next turn. Without one the monitor starts it (cold, or after
            # replacing the fork server: only the monitor thread starts processes).
            handle = self.executor.launch_warm(directory)
            if handle is not None:
                self._launched(job_id, handle)
        finally:
            with self._lock:
                self._launching.discard(job_id)
        self._wake.set()

    def abort(self, job: NodeJob, reason: str) -> None:
        with self._lock:
            handle = self._handles.get(job.job_id)
        if handle is not None:
            handle.terminate()
        if job.state in NODE_LIVE:
            self.end(job, S.ABORTED, reason, "aborted")

    def apply_rejection(self, job: NodeJob, decision: approvals.Decision) -> None:
        """The administrator said no to a waiting job (nothing was reserved for it)."""
        reason = f"rejected by {decision.approver}" + (
            f": {decision.reason}" if decision.reason else ""
        )
        self.store.transition(
            job.job_id, S.AWAITING_APPROVAL, S.REJECTED, reason, "rejected_by_owner"
        )
        self.store.mark_applied(job.job_id)
        self.hub.notify(job.job_id)

    def end(self, job: NodeJob, state: NodeState, reason: str, code: str, **fields: Any) -> None:
        """Settle budget and resources first, then make the end visible: whoever sees the
        job ended sees no worker handle, no port and no open reservation left for it."""
        # The budget: once the worker started, its inputs were shared and the others may
        # still deliver enough shares to open the release: spent. Only a job that never
        # started gives its reservation back.
        # An outsourced dataset's holder ends owner_offline / owner_refused before its MPC
        # connects (protocols/he_outsourced.py): nothing of the owner's was shared or opened.
        before_mpc = code in ("owner_offline", "owner_refused")
        if state == S.SUCCEEDED or (job.state in WORKER_STARTED and not before_mpc):
            moved = self.ledger.commit(job.job_id)
        else:
            moved = self.ledger.release(job.job_id)
            # Nothing was computed: the question was not answered, so it does not count
            # toward the owner's repeat limit (an approved job aborted before it started).
            self.store.forget_question(job.job_id)
        with self._lock:
            self._handles.pop(job.job_id, None)
            self._started.pop(job.job_id, None)
            self._reserved.difference_update(range(job.mpc_port, job.mpc_port + self._block))
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

    # -- monitor -------------------------------------------------------------
    def _monitor_loop(self) -> None:
        while not self._stop.is_set():
            watched = True
            try:
                live = self.store.live()
                for job in live:
                    self._tick(job)
                watched = bool(live)
                # Standby workers start here, on this thread: they die with it.
                self.executor.warm()
            except Exception:  # keep watching the other jobs whatever one of them does
                log.exception("job monitor error")
            # A worker's end wakes the loop (Executor.on_exit), as does a staged job; the
            # interval only paces progress relays and timeouts. With no live job it only
            # looks after the fork server: once a second (the scan cost an idle node
            # ~3 ms of CPU a second at five a second).
            self._wake.wait(self._interval if watched else max(self._interval, IDLE_TICK_S))
            self._wake.clear()

    @logs.job_scoped("job")  # this job's id on every line logged for it
    def _tick(self, job: NodeJob) -> None:
        if job.state == S.AWAITING_APPROVAL:
            self._check_waiting(job)
            return
        if job.state == S.APPROVED:
            waited = (utcnow() - job.updated_at).total_seconds() if job.updated_at else 0.0
            if waited > self.cfg.start_timeout_s:
                self.end(
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
            with self._lock:
                if job.job_id in self._launching:  # stage() is handing it over right now
                    return
            self._launched(job.job_id, self.executor.launch(directory))
            return
        if job.state != S.RUNNING or handle is None:
            return
        self._watch(job, handle)

    def _launched(self, job_id: str, handle: JobHandle) -> None:
        with self._lock:
            self._handles[job_id] = handle
            self._started[job_id] = time.monotonic()
        if not self.store.transition(job_id, S.STARTING, S.RUNNING):
            # The job ended while its worker was handed over (an abort between the
            # session's commit and the hand-off): that worker must not run on untracked.
            handle.terminate()
            with self._lock:
                self._handles.pop(job_id, None)
                self._started.pop(job_id, None)
            log.info("job %s ended as its worker %d started; stopped it", job_id, handle.pid)
            return
        self.hub.notify(job_id)
        log.info("job %s: worker %d started", job_id, handle.pid)

    def _keep_artifacts(self, job: NodeJob, directory: Path) -> None:
        """Store this node's shares of the artifacts the worker kept (before the job is
        seen to succeed, so a later job that reads them finds them here)."""
        path = directory / ARTIFACTS_FILE
        if self.artifacts is None or not path.exists():
            return
        try:
            kept = [ArtifactShare.from_dict(a) for a in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"the worker's artifact shares are unreadable ({exc})") from exc
        analyst = identity_of(parse_cert(job.data["analyst_cert"])).name
        for share in kept:
            if share.job_id != job.job_id or share.x != job.party_index + 1:
                raise InvalidArgument(f"artifact share {share.artifact_id!r} is not this job's")
            self.artifacts.put(share, analyst)

    def _check_waiting(self, job: NodeJob) -> None:
        """A job waiting for a person: apply a rejection, or give up after the timeout."""
        decision = self.store.approval(job.job_id)
        if decision is not None and decision.decision == "rejected":
            self.apply_rejection(job, decision)
            return
        waited = (utcnow() - job.updated_at).total_seconds() if job.updated_at else 0.0
        if waited > self.cfg.approval_timeout_s:
            self.end(
                job,
                S.ABORTED,
                f"not approved within {self.cfg.approval_timeout_s:.0f}s",
                "approval_timeout",
            )

    def _watch(self, job: NodeJob, handle: JobHandle) -> None:
        """A running worker: relay its progress, deliver its share, or end it on time."""
        directory = self.workspace.path(job.job_id)
        rc = handle.poll()
        # Read after the poll: a worker that exited wrote its last status before it did, so
        # its reason is never a stale phase's (read before the poll, a worker that failed in
        # between ended as worker_failed with its own reason lost).
        status = WorkerStatus.read(directory)
        progress = _progress(status)
        changed = progress is not None and progress != job.progress
        if changed and rc is None:
            self.store.set_progress(job.job_id, progress or {})
            self.hub.notify(job.job_id)
        if rc is not None:
            # An ended worker's last progress goes with the job's end, in its one commit
            # and one push (it was a commit and a push of its own on every job's path).
            last = {"progress": progress} if changed else {}
            result = directory / RESULT_FILE
            if rc == 0 and result.exists():
                blob = result.read_bytes()
                try:
                    self._keep_artifacts(job, directory)
                except EnsnifError as exc:
                    self.end(job, S.FAILED, exc.message, exc.reason, **last)
                    return
                # Signed for its position: this node's own, or an outsourced owner's it plays.
                position = job.data["party_order"][job.party_index]
                signature = delivery.sign_share(self.key_pem, job.job_id, position, blob)
                data = {**job.data, "share_signature": signature.hex()}
                self.end(job, S.SUCCEEDED, "", "", sealed_share=blob, data=data, **last)
                log.info("job %s: delivered", job.job_id)
            else:
                handle.terminate()  # gone already, unless it said done without a result
                msg = status.message if status and status.phase == "failed" else ""
                code = status.reason_code if status and status.reason_code else "worker_failed"
                self.end(job, S.FAILED, msg or f"worker exited with code {rc}", code, **last)
            return
        elapsed = time.monotonic() - self._started.get(job.job_id, time.monotonic())
        phase = status.phase if status else "starting"
        if phase in ("starting", "loading", "connecting") and elapsed > self.cfg.connect_timeout_s:
            handle.terminate()
            # The worker names the peers it still waits for (and the port): a firewall shows.
            detail = status.message if status and status.message.startswith("waiting:") else ""
            self.end(
                job,
                S.FAILED,
                f"MPC peers did not all connect within {self.cfg.connect_timeout_s:.0f}s"
                + (f" ({detail})" if detail else ""),
                "peer_connect_timeout",
            )
        elif elapsed > self.cfg.job_timeout_s:
            handle.terminate()
            self.end(
                job,
                S.FAILED,
                f"job exceeded the node's limit of {self.cfg.job_timeout_s:.0f}s",
                "timeout",
            )


def _progress(status: WorkerStatus | None) -> dict[str, Any] | None:
    """What a worker's status shows of its progress (None before its first status)."""
    if status is None:
        return None
    return {
        "phase": status.phase,
        "fraction": status.fraction,
        # A failure's message is the job's reason, filtered with its code at the end.
        "message": "" if status.phase == "failed" else status.message,
        "bytes_sent": status.bytes_sent,
        "messages_sent": status.messages_sent,
        "rounds": status.rounds,
        "cpu_seconds": status.cpu_seconds,
    }

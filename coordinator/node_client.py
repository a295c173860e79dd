"""The coordinator's calls to party nodes, in domain terms: the only place that speaks
``PartyService`` protobuf.

Why it exists: the scheduler (coordinator/scheduler.py) decides what to ask each node and
what its answers mean for the job; how a question travels (request messages, stubs, gRPC
status codes, timeouts) is this module's business. Answers come back as dataclasses and
failures as the exceptions below, so the scheduler never sees a protobuf message or a
``grpc.RpcError``. Channels and certificate rotation stay in coordinator/nodes.py
(``NodeDialer``), which tests use directly to reach a node.

A node's answer to a proposal is one of four kinds (:data:`ProposeAnswer`): approved (with
what the session needs), rejected (with the node's reason and its code), awaiting its
administrator's approval, or not available (no decision yet: ask again).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import grpc

from coordinator.store import JobRecord, PartyRecord
from ensnif_mpc.errors import EnsnifError, from_rpc_error
from ensnif_mpc.gen.ensnif.v1 import (
    common_pb2 as pb,
    party_pb2 as ppb,
    party_pb2_grpc,
    scoring_pb2 as spb,
)
from ensnif_mpc.jobs.approvals import Decision
from ensnif_mpc.rpc import convert
from ensnif_mpc.security.mpc_session import PeerBinding

log = logging.getLogger(__name__)

# The reason code a node gives with DECISION_NEEDS_MANUAL when a person must decide.
AWAITING_APPROVAL_CODE = "awaiting_approval"


class NodeJobState(StrEnum):
    """A job's state at one node, as the node reports it.

    The wire carries the node's state as a string (``NodeJobStatus.state``); this is the
    coordinator's typed reading of it. The coordinator never imports party_node (the
    layers forbid it), so the names are the protocol's, not the node's own table.
    """

    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # a state this coordinator does not know (a newer node)

    @property
    def final(self) -> bool:
        """The node is done with the job: its Watch stream ends here."""
        return self in _NODE_FINAL

    @property
    def ended_badly(self) -> bool:
        """The node ended the job without a result: the job fails for everyone."""
        return self in (NodeJobState.FAILED, NodeJobState.ABORTED)

    @classmethod
    def parse(cls, value: str) -> NodeJobState:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


_NODE_FINAL = frozenset(
    {NodeJobState.SUCCEEDED, NodeJobState.FAILED, NodeJobState.ABORTED, NodeJobState.REJECTED}
)


# -- answers to a proposal ----------------------------------------------------------------


@dataclass(frozen=True)
class Approved:
    """The node approved and reserved what the job needs: its MPC endpoint, the per-job
    certificate, the binding signature over it, and the node's signed decision."""

    mpc_address: str
    mpc_certificate_pem: str
    binding_signature: bytes
    approval: Decision | None
    parallel_sessions: int = 1  # the parallel MPC sessions it offers (0 from older: 1)


@dataclass(frozen=True)
class Rejected:
    """The node refused the job (or the call failed in a way asking again cannot fix)."""

    reason: str
    code: str


@dataclass(frozen=True)
class AwaitingApproval:
    """The node's administrator must decide; ``reason`` says how."""

    reason: str


@dataclass(frozen=True)
class NodeUnavailable:
    """No decision yet: the node could not be reached, or did not decide. Ask again."""

    reason: str
    code: str


ProposeAnswer = Approved | Rejected | AwaitingApproval | NodeUnavailable


# -- a node's view of a running job -------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    """One status update from a node; a succeeded one carries the node's sealed share."""

    state: NodeJobState
    phase: str
    fraction: float
    message: str
    bytes_sent: int
    reason: str
    reason_code: str
    sealed_share: bytes
    share_signature: bytes
    messages_sent: int = 0
    rounds: int = 0
    cpu_seconds: float = 0.0


# -- failures -----------------------------------------------------------------------------


class UnknownNode(Exception):
    """The coordinator has no address for this party (it is not registered)."""

    def __init__(self, party: str) -> None:
        super().__init__(party)
        self.party = party


class NodeCallFailed(Exception):
    """A call to a node did not complete. ``status`` is the gRPC status name (e.g.
    ``UNAVAILABLE``); ``error`` the domain error the node sent, with its reason code."""

    def __init__(self, party: str, status: str, error: EnsnifError) -> None:
        super().__init__(f"{party}: {status}: {error.message} ({error.reason})")
        self.party = party
        self.status = status
        self.error = error


class NodeLostJob(NodeCallFailed):
    """The node does not know the job (its state was lost)."""


class Dialer(Protocol):
    """Opens the channel to a node (coordinator/nodes.py's ``NodeDialer``)."""

    def stub(self, party: str, address: str) -> party_pb2_grpc.PartyServiceStub: ...


class PartyDirectory(Protocol):
    """Where registered parties are found (coordinator/store.py's ``Store``)."""

    def get_party(self, name: str) -> PartyRecord | None: ...


class NodeClient:
    """Domain calls to the party nodes: each party is reached at the address ``parties``
    holds for it, over a channel from ``dialer``."""

    def __init__(self, dialer: Dialer, parties: PartyDirectory) -> None:
        self.dialer = dialer
        self.parties = parties

    def propose(
        self, party: str, job: JobRecord, index: int, order: Sequence[str], timeout: float
    ) -> ProposeAnswer:
        """Ask ``party`` (at ``index`` in ``order``) to approve the job. A node that cannot
        be reached, or that did not answer within ``timeout`` (a slow node, say one reading a
        large source for a DP cohort check), has not decided yet: the scheduler asks again
        while its approval window lasts and ends the job ``approval_timeout`` after it,
        never ``rejected`` for a decision nobody made. Any other failed call counts as a
        rejection."""
        return _propose_answer(self._send_propose(party, job, index, order, timeout))

    def propose_all(
        self, job: JobRecord, order: Sequence[str], timeout: float
    ) -> dict[str, ProposeAnswer]:
        """:meth:`propose` to every party of ``order`` at its place, all at once.

        Why at once: the calls go out back to back as gRPC futures, with no thread per
        call (a pool per phase started its threads one after the other, about 1 ms apart
        on a busy machine, and each thread cost CPU). Every node is looked up first:
        :class:`UnknownNode` is raised before anything is sent."""
        stubs = [self._stub(party) for party in order]
        calls = [
            (party, self._send_propose(party, job, i, order, timeout, stubs[i]))
            for i, party in enumerate(order)
        ]
        return {party: _propose_answer(call) for party, call in calls}

    def _send_propose(
        self,
        party: str,
        job: JobRecord,
        index: int,
        order: Sequence[str],
        timeout: float,
        stub: party_pb2_grpc.PartyServiceStub | None = None,
    ) -> grpc.Future:
        req = ppb.ProposeRequest(
            job_id=job.id,
            spec=convert.spec_to_pb(job.spec),
            party_index=index,
            party_order=list(order),
            analyst_certificate_pem=job.analyst_cert,
            bit_length=int(job.sizing["bit_length"]),
            decimals=int(job.sizing["decimals"]),
            release_json=json.dumps(job.sizing.get("release") or {"exact": True}),
        )
        call: grpc.Future = (stub or self._stub(party)).Propose.future(req, timeout=timeout)
        return call

    def start(
        self,
        party: str,
        job_id: str,
        peers: Sequence[PeerBinding],
        threshold: int,
        timeout: float = 30.0,
        sessions: int = 1,
    ) -> None:
        """Start the job's worker at ``party`` with the session's peers and the job's
        parallel sessions; raises :class:`NodeCallFailed` with the node's reason if it
        could not."""
        failed = self.start_all([party], job_id, peers, threshold, timeout, sessions)
        if party in failed:
            raise failed[party]

    def start_all(
        self,
        parties: Sequence[str],
        job_id: str,
        peers: Sequence[PeerBinding],
        threshold: int,
        timeout: float = 30.0,
        sessions: int = 1,
    ) -> dict[str, NodeCallFailed]:
        """:meth:`start` at each of ``parties`` at once (gRPC futures sent back to back, as
        :meth:`propose_all`); returns the parties that could not start, each with its
        :class:`NodeCallFailed`, after every call completed."""
        req = ppb.StartRequest(
            job_id=job_id,
            peers=[peer_to_pb(p) for p in peers],
            threshold=threshold,
            sessions=sessions,
        )
        stubs = [(party, self._stub(party)) for party in parties]
        calls = [(party, stub.Start.future(req, timeout=timeout)) for party, stub in stubs]
        failed: dict[str, NodeCallFailed] = {}
        for party, call in calls:
            try:
                call.result()
            except grpc.RpcError as exc:
                failed[party] = _failed(party, exc)
        return failed

    def abort(self, party: str, job_id: str, reason: str, timeout: float = 5.0) -> None:
        """Tell ``party`` to stop the job and free what it holds for it (idempotent)."""
        stub = self._stub(party)
        try:
            stub.Abort(ppb.AbortRequest(job_id=job_id, reason=reason), timeout=timeout)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc

    def status(self, party: str, job_id: str, timeout: float = 10.0) -> NodeStatus:
        """The node's current view of the job."""
        stub = self._stub(party)
        try:
            reply = stub.Status(ppb.StatusRequest(job_id=job_id), timeout=timeout)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        return status_from_pb(reply.status)

    def watch(self, party: str, job_id: str) -> Iterator[NodeStatus]:
        """The node's updates on the job until it ends there (the stream then closes).
        Raises :class:`NodeLostJob` if the node does not know the job, and
        :class:`NodeCallFailed` if the stream breaks; the caller decides whether to
        watch again. Closing the iterator early cancels the stream."""
        call = self._stub(party).Watch(ppb.WatchRequest(job_id=job_id))
        try:
            for msg in call:
                yield status_from_pb(msg.status)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        finally:
            call.cancel()

    def list_models(self, party: str, timeout: float = 5.0) -> list[spb.ModelInfo]:
        """The models ``party`` serves for encrypted scoring (never their weights)."""
        try:
            reply = self._stub(party).ListModels(spb.ListModelsRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        return list(reply.models)

    def score(
        self, party: str, requests: Iterator[spb.ScoreRequest], timeout: float
    ) -> Iterator[spb.ScoreResponse]:
        """Relay an analyst's scoring stream to ``party`` and its answers back. The
        messages pass as they are (opaque ciphertexts the coordinator cannot read), so
        this is the one call that hands protobuf to its caller. Closing the iterator
        early cancels the node's stream."""
        call = self._stub(party).Score(requests, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        finally:
            call.cancel()

    def list_artifacts(self, party: str, timeout: float = 5.0) -> list[pb.ArtifactInfo]:
        """What ``party`` holds of artifacts (descriptions only, never a share)."""
        try:
            reply = self._stub(party).ListArtifacts(pb.ListArtifactsRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        return list(reply.artifacts)

    def delete_artifact(
        self, party: str, artifact_id: str, requested_by: str, timeout: float = 10.0
    ) -> bool:
        """Ask ``party`` to delete its share of ``artifact_id``; whether it held one."""
        request = pb.DeleteArtifactRequest(id=artifact_id, requested_by=requested_by)
        try:
            reply = self._stub(party).DeleteArtifact(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise _failed(party, exc) from exc
        return party in reply.deleted_at

    def _stub(self, party: str) -> party_pb2_grpc.PartyServiceStub:
        rec = self.parties.get_party(party)
        if rec is None:  # an outsourced dataset's owner: its position is played by its host
            host_of = getattr(self.parties, "host_of", None)  # a directory may not host any
            host = host_of(party) if host_of is not None else None
            rec = self.parties.get_party(host) if host else None
            if rec is None:
                raise UnknownNode(party)
        return self.dialer.stub(rec.name, rec.address)


def _propose_answer(call: grpc.Future) -> ProposeAnswer:
    """A proposal's answer once its call completed (see :meth:`NodeClient.propose`)."""
    try:
        return answer_from_pb(call.result())
    except grpc.RpcError as exc:
        err = from_rpc_error(exc)
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return NodeUnavailable(err.message, err.reason)
        return Rejected(err.message, err.reason or "rejected")


def _failed(party: str, exc: grpc.RpcError) -> NodeCallFailed:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    cls = NodeLostJob if code == grpc.StatusCode.NOT_FOUND else NodeCallFailed
    return cls(party, code.name, from_rpc_error(exc))


# -- conversions --------------------------------------------------------------------------


def answer_from_pb(msg: ppb.ProposeResponse) -> ProposeAnswer:
    if msg.decision == ppb.DECISION_APPROVED:
        return Approved(
            mpc_address=msg.mpc_address,
            mpc_certificate_pem=msg.mpc_certificate_pem,
            binding_signature=bytes(msg.binding_signature),
            approval=decision_from_pb(msg.approval) if msg.HasField("approval") else None,
            parallel_sessions=max(1, msg.parallel_sessions),
        )
    if msg.decision == ppb.DECISION_REJECTED:
        return Rejected(msg.reason, msg.reason_code or "rejected")
    if msg.decision == ppb.DECISION_NEEDS_MANUAL and msg.reason_code == AWAITING_APPROVAL_CODE:
        return AwaitingApproval(msg.reason)
    return NodeUnavailable(msg.reason, msg.reason_code)


def decision_from_pb(msg: pb.Approval) -> Decision:
    return Decision(
        job_id=msg.job_id,
        decision=msg.decision,
        approver=msg.approver,
        at=msg.at,
        job_hash=msg.job_hash,
        signature=msg.signature_hex,
        reason=msg.reason,
    )


def peer_to_pb(peer: PeerBinding) -> ppb.SessionPeer:
    return ppb.SessionPeer(
        index=peer.index,
        party=peer.party,
        mpc_address=peer.mpc_address,
        mpc_certificate_pem=peer.mpc_cert_pem,
        binding_signature=peer.binding_signature,
        party_certificate_pem=peer.party_cert_pem,
        host=peer.host,
    )


def status_from_pb(msg: ppb.NodeJobStatus) -> NodeStatus:
    return NodeStatus(
        state=NodeJobState.parse(msg.state),
        phase=msg.progress.phase,
        fraction=msg.progress.fraction,
        message=msg.progress.message,
        bytes_sent=msg.progress.bytes_sent,
        reason=msg.reason,
        reason_code=msg.reason_code,
        sealed_share=bytes(msg.sealed_share),
        share_signature=bytes(msg.share_signature),
        messages_sent=msg.progress.messages_sent,
        rounds=msg.progress.rounds,
        cpu_seconds=msg.progress.cpu_seconds,
    )

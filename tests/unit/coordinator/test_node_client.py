"""NodeClient: the coordinator's calls to a node in domain terms.

A real gRPC server on an ephemeral port (without TLS: channels and certificates are
coordinator/nodes.py's concern, tested with the PKI) plays the node; each test sets what
it answers. The client must turn every reply and every failure into the dataclasses and
exceptions of coordinator/node_client.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from coordinator.node_client import (
    Approved,
    AwaitingApproval,
    NodeCallFailed,
    NodeClient,
    NodeJobState,
    NodeLostJob,
    NodeStatus,
    NodeUnavailable,
    Rejected,
    UnknownNode,
)
from coordinator.store import JobRecord, PartyRecord
from ensnif_mpc import errors
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb, party_pb2 as ppb, party_pb2_grpc
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.security.mpc_session import PeerBinding
from tests.helpers import wait_for

WAIT_S = 10.0

SPEC = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "privacy": {"exact": True},
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
JOB = JobRecord(
    id="job-1",
    state=JobState.AWAITING_APPROVAL,
    spec=SPEC,
    submitter="alice",
    analyst_cert="ANALYST PEM",
    sizing={"bit_length": 64, "decimals": 2},
    session={},
    progress={},
    reason="",
    reason_code="",
    version=1,
    created_at=NOW,
    updated_at=NOW,
)
ORDER = ["grocery", "logistics", "helper"]


@dataclass
class FakeNode(party_pb2_grpc.PartyServiceServicer):
    """Answers as a test tells it to: a reply, or a domain error sent the node's way."""

    reply: Any = None
    error: errors.EnsnifError | None = None
    stream: list[ppb.NodeJobStatus] = field(default_factory=list)
    stream_error: errors.EnsnifError | None = None
    hold: threading.Event | None = None  # a Watch that waits here after its messages
    requests: list[Any] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def _answer(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if self.hold is not None:
            self.hold.wait(WAIT_S)
        if self.error is not None:
            errors.abort(context, self.error)
        return self.reply

    def Propose(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer(request, context)

    def Start(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer(request, context)

    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer(request, context)

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer(request, context)

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        context.add_callback(self.ended.set)
        for status in self.stream:
            yield ppb.WatchResponse(status=status)
        if self.stream_error is not None:
            errors.abort(context, self.stream_error)
        if self.hold is not None:
            self.hold.wait(WAIT_S)


class Dialer:
    """Plain channels to the fake node (the real dialer adds mTLS)."""

    def __init__(self) -> None:
        self.channels: list[grpc.Channel] = []

    def stub(self, party: str, address: str) -> party_pb2_grpc.PartyServiceStub:
        channel = grpc.insecure_channel(address)
        self.channels.append(channel)
        return party_pb2_grpc.PartyServiceStub(channel)


class Directory:
    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses

    def get_party(self, name: str) -> PartyRecord | None:
        if name not in self.addresses:
            return None
        return PartyRecord(name, "data_owner", self.addresses[name], "PARTY PEM", NOW)


class Forwarder(party_pb2_grpc.PartyServiceServicer):
    """The server's servicer: hands each call to the current test's FakeNode."""

    node = FakeNode()

    def Propose(self, request: Any, context: grpc.ServicerContext) -> Any:
        return Forwarder.node.Propose(request, context)

    def Start(self, request: Any, context: grpc.ServicerContext) -> Any:
        return Forwarder.node.Start(request, context)

    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:
        return Forwarder.node.Abort(request, context)

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        return Forwarder.node.Status(request, context)

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        return Forwarder.node.Watch(request, context)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    party_pb2_grpc.add_PartyServiceServicer_to_server(Forwarder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait()


@pytest.fixture
def node() -> Iterator[FakeNode]:
    Forwarder.node = fake = FakeNode()
    yield fake
    if fake.hold is not None:
        fake.hold.set()


@pytest.fixture
def client(address: str) -> Iterator[NodeClient]:
    dialer = Dialer()
    yield NodeClient(dialer, Directory({p: address for p in ORDER}))
    for channel in dialer.channels:
        channel.close()


def _approval() -> pb.Approval:
    return pb.Approval(
        party="grocery",
        job_id="job-1",
        decision="approved",
        approver="policy",
        at="2026-01-01T00:00:00+00:00",
        job_hash="abc",
        signature_hex="5151",
        reason="",
    )


def _status(state: str, **fields: Any) -> ppb.NodeJobStatus:
    return ppb.NodeJobStatus(
        job_id="job-1",
        state=state,
        progress=pb.Progress(phase="computing", fraction=0.5, message="half", bytes_sent=42),
        **fields,
    )


# -- propose ------------------------------------------------------------------------------


def test_propose_sends_the_job_with_the_partys_place_and_sizes(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.ProposeResponse(decision=ppb.DECISION_APPROVED)

    client.propose("logistics", JOB, 1, ORDER, timeout=WAIT_S)

    (req,) = node.requests
    assert req.job_id == "job-1"
    assert req.spec.protocol == "sum"
    assert (req.party_index, list(req.party_order)) == (1, ORDER)
    assert req.analyst_certificate_pem == "ANALYST PEM"
    assert (req.bit_length, req.decimals) == (64, 2)
    assert json.loads(req.release_json) == {"exact": True}


def test_an_approval_carries_the_session_endpoint_and_the_signed_decision(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.ProposeResponse(
        decision=ppb.DECISION_APPROVED,
        mpc_address="10.0.0.1:7000",
        mpc_certificate_pem="MPC PEM",
        binding_signature=b"\x01\x02",
        approval=_approval(),
    )

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert isinstance(answer, Approved)
    assert (answer.mpc_address, answer.mpc_certificate_pem) == ("10.0.0.1:7000", "MPC PEM")
    assert answer.binding_signature == b"\x01\x02"
    assert answer.approval is not None
    assert (answer.approval.approver, answer.approval.signature) == ("policy", "5151")


def test_an_approval_without_a_signed_decision_has_none(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.ProposeResponse(decision=ppb.DECISION_APPROVED)

    answer = client.propose("helper", JOB, 2, ORDER, timeout=WAIT_S)

    assert isinstance(answer, Approved)
    assert answer.approval is None


def test_a_rejection_keeps_the_nodes_reason_and_code(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.ProposeResponse(
        decision=ppb.DECISION_REJECTED, reason="column not allowed", reason_code="policy_column"
    )

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == Rejected("column not allowed", "policy_column")


def test_a_rejection_without_a_code_is_coded_rejected(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.ProposeResponse(decision=ppb.DECISION_REJECTED, reason="no")

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == Rejected("no", "rejected")


def test_a_node_waiting_for_its_administrator_is_awaiting_approval(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.ProposeResponse(
        decision=ppb.DECISION_NEEDS_MANUAL,
        reason="awaiting approval by the administrator of grocery",
        reason_code="awaiting_approval",
    )

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == AwaitingApproval("awaiting approval by the administrator of grocery")


def test_needs_manual_for_another_reason_is_no_decision_yet(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.ProposeResponse(
        decision=ppb.DECISION_NEEDS_MANUAL, reason="later", reason_code="busy"
    )

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == NodeUnavailable("later", "busy")


def test_a_node_refusing_with_an_error_rejects_with_the_errors_reason(
    client: NodeClient, node: FakeNode
) -> None:
    node.error = errors.PolicyViolation("grocery does not allow sum on basket_total")

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == Rejected("grocery does not allow sum on basket_total", "policy_violation")


def test_a_node_answering_unavailable_has_not_decided_yet(
    client: NodeClient, node: FakeNode
) -> None:
    node.error = errors.SourceFailed("the orders database did not answer")

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert answer == NodeUnavailable("the orders database did not answer", "source_failed")


def test_a_node_that_cannot_be_reached_has_not_decided_yet() -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(0).wait()  # nothing listens on that port any more
    client = NodeClient(Dialer(), Directory({"grocery": f"127.0.0.1:{port}"}))

    answer = client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert isinstance(answer, NodeUnavailable)
    assert answer.code == "unavailable"


def test_a_party_without_an_address_is_an_unknown_node(node: FakeNode) -> None:
    client = NodeClient(Dialer(), Directory({}))

    with pytest.raises(UnknownNode) as raised:
        client.propose("grocery", JOB, 0, ORDER, timeout=WAIT_S)

    assert raised.value.party == "grocery"
    assert node.requests == []


def test_propose_all_asks_every_party_at_its_place_before_any_answers(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.ProposeResponse(decision=ppb.DECISION_APPROVED)
    node.hold = threading.Event()  # no node answers until all three were asked
    answers: dict[str, Any] = {}
    asking = threading.Thread(target=lambda: answers.update(client.propose_all(JOB, ORDER, WAIT_S)))
    asking.start()

    try:  # the three calls in flight together, before any was answered
        wait_for(lambda: len(node.requests) == len(ORDER), WAIT_S, "all three calls in flight")
    finally:
        node.hold.set()
        asking.join(WAIT_S)

    assert sorted(r.party_index for r in node.requests) == [0, 1, 2]
    assert all(list(r.party_order) == ORDER for r in node.requests)
    assert sorted(answers) == sorted(ORDER)
    assert all(isinstance(a, Approved) for a in answers.values())


def test_propose_all_with_an_unregistered_party_sends_nothing(address: str, node: FakeNode) -> None:
    client = NodeClient(Dialer(), Directory({"grocery": address, "helper": address}))

    with pytest.raises(UnknownNode) as raised:
        client.propose_all(JOB, ORDER, WAIT_S)

    assert raised.value.party == "logistics"
    assert node.requests == []


# -- start, abort, status -----------------------------------------------------------------


def test_start_sends_every_peer_and_the_threshold(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.StartResponse(state="starting")
    peers = [
        PeerBinding(i, p, f"10.0.0.{i}:7000", f"MPC {i}", bytes([i]), f"PARTY {i}")
        for i, p in enumerate(ORDER)
    ]

    client.start("grocery", "job-1", peers, threshold=1)

    (req,) = node.requests
    assert (req.job_id, req.threshold) == ("job-1", 1)
    assert [(p.index, p.party, p.mpc_address) for p in req.peers] == [
        (0, "grocery", "10.0.0.0:7000"),
        (1, "logistics", "10.0.0.1:7000"),
        (2, "helper", "10.0.0.2:7000"),
    ]
    assert req.peers[1].mpc_certificate_pem == "MPC 1"
    assert req.peers[1].binding_signature == b"\x01"
    assert req.peers[1].party_certificate_pem == "PARTY 1"


def test_a_start_the_node_refuses_raises_with_its_reason(
    client: NodeClient, node: FakeNode
) -> None:
    node.error = errors.CryptoError("binding of peer 2 does not verify")

    with pytest.raises(NodeCallFailed) as raised:
        client.start("grocery", "job-1", [], threshold=1)

    assert raised.value.status == "PERMISSION_DENIED"
    assert raised.value.error.reason == "crypto_verification_failed"
    assert raised.value.error.message == "binding of peer 2 does not verify"


def test_start_all_names_each_party_that_could_not_start(
    client: NodeClient, node: FakeNode
) -> None:
    node.error = errors.CryptoError("binding of peer 2 does not verify")

    failed = client.start_all(ORDER, "job-1", [], threshold=1)

    assert sorted(failed) == sorted(ORDER)
    assert {f.party for f in failed.values()} == set(ORDER)
    assert all(f.error.reason == "crypto_verification_failed" for f in failed.values())
    assert len(node.requests) == len(ORDER)


def test_start_all_returns_nothing_when_every_party_started(
    client: NodeClient, node: FakeNode
) -> None:
    node.reply = ppb.StartResponse(state="starting")

    failed = client.start_all(ORDER, "job-1", [], threshold=1, sessions=2)

    assert failed == {}
    assert [r.sessions for r in node.requests] == [2, 2, 2]


def test_abort_sends_the_reason(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.AbortResponse(state="aborted")

    client.abort("helper", "job-1", "cancelled by alice")

    (req,) = node.requests
    assert (req.job_id, req.reason) == ("job-1", "cancelled by alice")


def test_an_abort_not_delivered_raises(client: NodeClient, node: FakeNode) -> None:
    node.error = errors.Unavailable("shutting down")

    with pytest.raises(NodeCallFailed) as raised:
        client.abort("helper", "job-1", "cancelled")

    assert raised.value.status == "UNAVAILABLE"


def test_status_is_typed(client: NodeClient, node: FakeNode) -> None:
    node.reply = ppb.StatusResponse(status=_status("running"))

    status = client.status("grocery", "job-1")

    assert status == NodeStatus(
        state=NodeJobState.RUNNING,
        phase="computing",
        fraction=0.5,
        message="half",
        bytes_sent=42,
        reason="",
        reason_code="",
        sealed_share=b"",
        share_signature=b"",
    )


def test_status_of_a_job_the_node_lost_raises_node_lost_job(
    client: NodeClient, node: FakeNode
) -> None:
    node.error = errors.UnknownJob("no job job-1")

    with pytest.raises(NodeLostJob):
        client.status("grocery", "job-1")


# -- watch --------------------------------------------------------------------------------


def test_watch_yields_each_update_until_the_node_ends_the_job(
    client: NodeClient, node: FakeNode
) -> None:
    node.stream = [
        _status("starting"),
        _status("running"),
        _status("succeeded", sealed_share=b"share", share_signature=b"sig"),
    ]

    updates = list(client.watch("grocery", "job-1"))

    assert [u.state for u in updates] == [
        NodeJobState.STARTING,
        NodeJobState.RUNNING,
        NodeJobState.SUCCEEDED,
    ]
    assert (updates[-1].sealed_share, updates[-1].share_signature) == (b"share", b"sig")
    assert updates[-1].state.final
    assert node.requests[0].job_id == "job-1"


def test_a_watch_of_a_job_the_node_lost_raises_node_lost_job(
    client: NodeClient, node: FakeNode
) -> None:
    node.stream_error = errors.UnknownJob("no job job-1")

    with pytest.raises(NodeLostJob) as raised:
        list(client.watch("grocery", "job-1"))

    assert raised.value.status == "NOT_FOUND"


def test_a_watch_that_breaks_yields_what_came_then_raises(
    client: NodeClient, node: FakeNode
) -> None:
    node.stream = [_status("running")]
    node.stream_error = errors.Unavailable("node shutting down")
    updates: list[NodeStatus] = []

    with pytest.raises(NodeCallFailed) as raised:
        updates.extend(client.watch("grocery", "job-1"))

    assert [u.state for u in updates] == [NodeJobState.RUNNING]
    assert not isinstance(raised.value, NodeLostJob)
    assert raised.value.status == "UNAVAILABLE"


def test_closing_a_watch_early_cancels_the_stream(client: NodeClient, node: FakeNode) -> None:
    node.stream = [_status("running")]
    node.hold = threading.Event()  # the node would keep the stream open
    watch = client.watch("grocery", "job-1")

    first = next(watch)
    watch.close()

    assert first.state == NodeJobState.RUNNING
    assert node.ended.wait(WAIT_S), "the node's stream was left open"


# -- node states --------------------------------------------------------------------------


def test_the_node_ends_a_job_in_exactly_four_states() -> None:
    final = {s for s in NodeJobState if s.final}

    assert final == {
        NodeJobState.SUCCEEDED,
        NodeJobState.FAILED,
        NodeJobState.ABORTED,
        NodeJobState.REJECTED,
    }


def test_only_failed_and_aborted_end_the_job_badly() -> None:
    assert {s for s in NodeJobState if s.ended_badly} == {
        NodeJobState.FAILED,
        NodeJobState.ABORTED,
    }


def test_a_state_this_coordinator_does_not_know_is_unknown_and_not_final() -> None:
    state = NodeJobState.parse("migrating")

    assert state == NodeJobState.UNKNOWN
    assert not state.final


def test_the_coordinator_reads_every_state_a_node_can_report() -> None:
    # The coordinator may not import party_node (the layers forbid it), so the two enums
    # are kept in step here: a state added at the node must be added here too.
    states = pytest.importorskip("party_node.states")

    node_states = {s.value: not exits for s, exits in states.NODE_ALLOWED.items()}
    ours = {s.value: s.final for s in NodeJobState if s != NodeJobState.UNKNOWN}

    assert ours == node_states


def test_a_node_that_does_not_answer_within_the_deadline_has_not_decided_yet(
    client: NodeClient, node: FakeNode
) -> None:
    # A slow Propose (a node reading a large source for its cohort check) is no rejection:
    # the scheduler asks again within its window, then ends the job approval_timeout.
    node.hold = threading.Event()
    node.reply = ppb.ProposeResponse(decision=ppb.DECISION_APPROVED)
    try:
        answer = client.propose("grocery", JOB, 0, ORDER, timeout=0.3)
    finally:
        node.hold.set()

    assert isinstance(answer, NodeUnavailable)

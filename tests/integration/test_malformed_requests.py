"""Malformed, wrong-typed and oversized requests get a clean status, never a crash.

A raw channel (no serializer) sends bytes to every RPC of both services: random bytes,
messages with adversarial field values, truncated messages, messages of another type,
and a message above the size limit. Undecodable or wrong-typed requests must be
INVALID_ARGUMENT with reason ``malformed_request``; decodable ones anything but
INTERNAL or UNKNOWN; oversized ones RESOURCE_EXHAUSTED (gRPC's own limit); and the
servers keep serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings, strategies as st

from ensnif_mpc.gen.ensnif.v1 import coordinator_pb2, party_pb2
from ensnif_mpc.rpc import serving
from ensnif_mpc.security import pki
from ensnif_mpc.security.tls import MAX_REQUEST_BYTES
from tests.consortium import Consortium

pytestmark = pytest.mark.slow

FD = FieldDescriptor
SERVICES = {
    "coordinator": coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"],
    "grocery": party_pb2.DESCRIPTOR.services_by_name["PartyService"],
}
METHODS = [(server, m) for server, s in SERVICES.items() for m in s.methods]
# The coordinator's party-only calls (RegisterParty, PublishDataset) as a node makes them.
AS_PARTY = [
    ("coordinator-as-party", SERVICES["coordinator"].methods_by_name[name])
    for name in ("RegisterParty", "PublishDataset", "ListJobs", "GetJob")
]
CRASH = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclass
class Target:
    channels: dict[str, grpc.Channel]

    def call(self, server: str, method: MethodDescriptor, data: bytes) -> grpc.RpcError | None:
        """Send raw bytes; the error the server answered with, or None for OK."""
        path = f"/{method.containing_service.full_name}/{method.name}"
        channel = self.channels[server]
        try:
            if method.server_streaming:
                for _ in channel.unary_stream(path)(data, timeout=5):
                    break  # a valid Watch of a live job would go on: one message is enough
            else:
                channel.unary_unary(path)(data, timeout=5)
        except grpc.RpcError as exc:
            return exc
        return None


@pytest.fixture(scope="module")
def target(consortium: Consortium) -> Iterator[Target]:
    d = consortium.lc.pki_dir

    def member(name: str) -> pki.CertFiles:
        return pki.CertFiles(d / "ca.crt", d / f"{name}.crt", d / f"{name}.key")

    def channel(port: int, identity: str, server_name: str) -> grpc.Channel:
        """Like the daemons' channels, but without a send limit: the server's is tested."""
        ca, cert, key = member(identity).read()
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        options = [
            ("grpc.ssl_target_name_override", server_name),
            ("grpc.max_send_message_length", -1),
        ]
        return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options)

    channels = {
        # an analyst calls the coordinator; the coordinator calls a node (past its checks)
        "coordinator": channel(consortium.coordinator.port, "analyst", "coordinator"),
        "grocery": channel(consortium.nodes["grocery"].port, "coordinator", "grocery"),
        "coordinator-as-party": channel(consortium.coordinator.port, "helper", "coordinator"),
    }
    yield Target(channels)
    for c in channels.values():
        c.close()


def acceptable(method: MethodDescriptor, data: bytes) -> bool:
    """Whether this server should decode ``data`` as the method's request."""
    try:
        serving.parse_request(data, GetMessageClass(method.input_type).FromString)
    except Exception:
        return False
    return True


def assert_clean(target: Target, server: str, method: MethodDescriptor, data: bytes) -> None:
    err = target.call(server, method, data)
    if not acceptable(method, data):
        assert err is not None, f"{method.name} accepted a malformed request"
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, err.details())
        assert dict(err.trailing_metadata() or ())["ensnif-reason"] == "malformed_request"
    else:
        assert err is None or err.code() not in CRASH, (method.name, err.details())


def assert_still_serving(consortium: Consortium, target: Target) -> None:
    for server, service in SERVICES.items():
        reply = health_pb2_grpc.HealthStub(target.channels[server]).Check(
            health_pb2.HealthCheckRequest(service=service.full_name), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with consortium.client() as c:
        assert c.protocols()


# -- messages ---------------------------------------------------------------------------

_INTS = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INTS:
        lo, hi = _INTS[field.type]
        return st.one_of(st.sampled_from([lo, hi, 0, 1]), st.integers(lo, hi))
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(width=64 if field.type == FD.TYPE_DOUBLE else 32)
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type == FD.TYPE_STRING:
        return st.text(max_size=40)
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == FD.TYPE_ENUM:
        return st.integers(-2, 12)  # includes values the enum does not define
    raise AssertionError(field.type)


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 3) -> Message:
    msg = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            kf, vf = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            if vf.message_type is not None:  # a map of messages (e.g. column_lists)
                target = getattr(msg, field.name)
                for key in draw(st.lists(scalar(kf), max_size=3, unique=True)):
                    if depth:
                        target[key].CopyFrom(draw(messages(vf.message_type, depth - 1)))
            else:
                getattr(msg, field.name).update(
                    draw(st.dictionaries(scalar(kf), scalar(vf), max_size=3))
                )
        elif field.message_type is not None:
            if depth == 0:
                continue
            sub = messages(field.message_type, depth - 1)
            if field.is_repeated:
                getattr(msg, field.name).extend(draw(st.lists(sub, max_size=3)))
            else:
                getattr(msg, field.name).CopyFrom(draw(sub))
        elif field.is_repeated:
            getattr(msg, field.name).extend(draw(st.lists(scalar(field), max_size=3)))
        else:
            setattr(msg, field.name, draw(scalar(field)))
    return msg


def filled(descriptor: Descriptor, depth: int = 3) -> Message:
    """A message with every field set to something that is not its default."""
    msg = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:  # a map of messages
                if depth:
                    getattr(msg, field.name)["k"].CopyFrom(
                        filled(value_field.message_type, depth - 1)
                    )
            else:
                getattr(msg, field.name)["k"] = "v"
        elif field.message_type is not None:
            if depth:
                sub = filled(field.message_type, depth - 1)
                target = getattr(msg, field.name)
                target.add().CopyFrom(sub) if field.is_repeated else target.CopyFrom(sub)
        else:
            value: Any = {
                FD.TYPE_STRING: "x",
                FD.TYPE_BYTES: b"x",
                FD.TYPE_BOOL: True,
                FD.TYPE_DOUBLE: 1.5,
                FD.TYPE_FLOAT: 1.5,
            }.get(field.type, 7)
            if field.type == FD.TYPE_ENUM:
                value = field.enum_type.values[-1].number
            if field.is_repeated:
                getattr(msg, field.name).append(value)
            else:
                setattr(msg, field.name, value)
    return msg


REQUEST_TYPES = sorted(
    {m.input_type.full_name: m.input_type for _, m in METHODS}.values(), key=lambda d: d.full_name
)


def foreign(method: MethodDescriptor) -> bytes:
    """A real request of another type that this method's request cannot take as it is."""
    for other in REQUEST_TYPES:
        if other is method.input_type:
            continue
        data = filled(other).SerializeToString()
        if not acceptable(method, data):
            return data
    raise AssertionError(f"no foreign message found for {method.name}")


def truncated(method: MethodDescriptor) -> bytes:
    data = filled(method.input_type).SerializeToString()
    for cut in range(len(data) - 1, 0, -1):
        if not acceptable(method, data[:cut]):
            return data[:cut]
    return b"\x0a\x05ab"  # an empty message type: a field cut short after its length


# -- tests ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(choice=st.sampled_from(METHODS), data=st.binary(max_size=120))
def test_random_bytes_get_invalid_argument_or_a_clean_answer(
    target: Target, choice: tuple[str, MethodDescriptor], data: bytes
) -> None:
    server, method = choice
    assert_clean(target, server, method, data)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_adversarial_field_values_never_crash_a_server(target: Target, data: st.DataObject) -> None:
    server, method = data.draw(st.sampled_from(METHODS + AS_PARTY))
    msg = data.draw(messages(method.input_type))
    assert_clean(target, server, method, msg.SerializeToString())


def test_truncated_and_foreign_messages_are_invalid_at_every_rpc(target: Target) -> None:
    for server, method in METHODS:
        for kind, data in (
            ("truncated", truncated(method)),
            ("foreign", foreign(method)),
            ("bad length", b"\x0a\xff\xff\xff\xff\x0f"),
        ):
            err = target.call(server, method, data)

            assert err is not None, f"{method.name} accepted a {kind} request"
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, kind)
            assert dict(err.trailing_metadata() or ())["ensnif-reason"] == "malformed_request"


def test_oversized_requests_are_refused_and_the_servers_keep_serving(
    consortium: Consortium, target: Target
) -> None:
    size = MAX_REQUEST_BYTES + 1
    data = b"\x0a" + _varint(size) + b"a" * size  # field 1, a string just above the limit
    with ThreadPoolExecutor(max_workers=len(METHODS)) as pool:
        errors = list(pool.map(lambda sm: target.call(sm[0], sm[1], data), METHODS))

    for (_, method), err in zip(METHODS, errors, strict=True):
        assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, method.name
        assert "larger than max" in (err.details() or ""), err.details()
    assert_still_serving(consortium, target)


def test_values_no_request_can_carry_are_invalid(target: Target) -> None:
    coordinator = SERVICES["coordinator"].methods_by_name
    nan = coordinator_pb2.PublishDatasetRequest()
    nan.dataset.name = "orders"
    nan.dataset.columns.add(name="x", lower=float("nan"), upper=1.0)
    huge = coordinator_pb2.PublishDatasetRequest()
    huge.dataset.row_count = 2**64 - 1  # found by the fuzz test: crashed the store
    cases = [
        ("coordinator", coordinator["PublishDataset"], nan),
        ("coordinator-as-party", coordinator["PublishDataset"], huge),
        ("coordinator", coordinator["ListJobs"], coordinator_pb2.ListJobsRequest(states=[99])),
        # found by the fuzz test: an explicit JOB_STATE_UNSPECIFIED crashed ListJobs
        ("coordinator", coordinator["ListJobs"], coordinator_pb2.ListJobsRequest(states=[0])),
    ]
    for server, method, msg in cases:
        err = target.call(server, method, msg.SerializeToString())

        assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, msg
        assert dict(err.trailing_metadata() or ())["ensnif-reason"] == "malformed_request"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

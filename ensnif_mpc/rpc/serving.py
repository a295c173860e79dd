"""What every Ensnif gRPC server has: mTLS, health checking, reflection, clean shutdown.

Every call, on every service of the server (health and reflection included), first
passes :class:`Guard`:

1. the caller's certificate must not be on the consortium's revocation list
   (PERMISSION_DENIED, reason ``certificate_revoked``);
2. the request bytes are parsed here rather than by gRPC, so that a request that does
   not decode (gRPC alone answers INTERNAL "Exception deserializing request!"), or
   decodes with fields this server does not know (another message type, a newer
   client), or with values of the wrong kind (see :func:`check_message`), is answered
   INVALID_ARGUMENT with reason ``malformed_request``, before the servicer sees it.

Requests above ``MAX_REQUEST_BYTES`` (4 MiB) are refused by gRPC itself with
RESOURCE_EXHAUSTED ("Received message larger than max") before any of this runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from types import FrameType
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ensnif_mpc.errors import EnsnifError, InvalidArgument, Unavailable, abort
from ensnif_mpc.security import revocation
from ensnif_mpc.security.pki import CertFiles, identity_of, load_cert, parse_cert
from ensnif_mpc.security.tls import SERVER_OPTIONS, check_not_revoked, server_credentials

log = logging.getLogger(__name__)

MALFORMED = "malformed_request"
EXPIRY_WARNING = dt.timedelta(days=14)
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_UINT64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
_INT64_MAX = 2**63 - 1


def check_message(msg: Message, where: str = "") -> None:
    """Refuse, recursively: unknown fields, non-finite floats, unsigned 64-bit values
    above 2**63 - 1, unknown enum values, and ``*_UNSPECIFIED`` given explicitly in a
    repeated enum field."""
    name = where or msg.DESCRIPTOR.name
    unknown = UnknownFieldSet(msg)
    if len(unknown):
        raise InvalidArgument(
            f"{name}: unknown field number {unknown[0].field_number} "
            "(another message type, or a client newer than this server)",
            reason=MALFORMED,
        )
    for field, value in msg.ListFields():
        path = f"{name}.{field.name}"
        repeated = field.is_repeated
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.message_type is not None:
                    for key, item in value.items():
                        check_message(item, f"{path}[{key!r}]")
                continue
            for i, item in enumerate(value if repeated else [value]):
                check_message(item, f"{path}[{i}]" if repeated else path)
        elif field.type in _UINT64:
            if not all(v <= _INT64_MAX for v in (value if repeated else [value])):
                raise InvalidArgument(
                    f"{path}: above {_INT64_MAX} (what the state databases store)",
                    reason=MALFORMED,
                )
        elif field.type in _FLOATS:
            if not all(math.isfinite(v) for v in (value if repeated else [value])):
                raise InvalidArgument(f"{path}: not a finite number", reason=MALFORMED)
        elif field.enum_type is not None:
            known = dict(field.enum_type.values_by_number)
            zero = known.get(0)
            if repeated and zero is not None and zero.name.endswith("_UNSPECIFIED"):
                del known[0]  # singular 0 means "not set"; in a list it names nothing
            if not all(v in known for v in (value if repeated else [value])):
                raise InvalidArgument(
                    f"{path}: not a value of {field.enum_type.name}", reason=MALFORMED
                )


def parse_request(data: bytes, deserializer: Callable[[bytes], Any]) -> Any:
    try:
        msg = deserializer(data)
    except Exception as exc:  # DecodeError, or whatever a deserializer raises on garbage
        raise InvalidArgument(
            f"the request is not a valid message for this call ({type(exc).__name__})",
            reason=MALFORMED,
        ) from None
    if isinstance(msg, Message):
        check_message(msg)
    return msg


def _check_peer(context: grpc.ServicerContext) -> None:
    pems = context.auth_context().get("x509_pem_cert", [])
    if pems:
        check_not_revoked(parse_cert(pems[0]))


def _refuse(context: grpc.ServicerContext, method: str, err: EnsnifError) -> NoReturn:
    log.info("%s refused: %s (%s)", method, err.message, err.reason)
    abort(context, err)


class Guard(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc's stubs type it loosely
    """Revocation check and request parsing, wrapped around every method handler."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        deserialize = handler.request_deserializer or (lambda b: b)

        def admit(context: grpc.ServicerContext) -> None:
            try:
                _check_peer(context)
            except EnsnifError as err:
                _refuse(context, method, err)

        def parse(data: bytes, context: grpc.ServicerContext) -> Any:
            try:
                return parse_request(data, deserialize)
            except EnsnifError as err:
                _refuse(context, method, err)

        def parse_all(datas: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            # A streamed request is parsed while the servicer reads it, inside its
            # grpc_errors block: raise the refusal for that block to answer (an abort here
            # would surface there as an unexpected exception, i.e. INTERNAL).
            for data in datas:
                try:
                    msg = parse_request(data, deserialize)
                except EnsnifError as err:
                    log.info("%s refused: %s (%s)", method, err.message, err.reason)
                    raise
                yield msg

        serializer = handler.response_serializer
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            def unary_unary(data: bytes, context: grpc.ServicerContext) -> Any:
                admit(context)
                return inner_uu(parse(data, context), context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=serializer)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            def unary_stream(data: bytes, context: grpc.ServicerContext) -> Any:
                admit(context)
                return inner_us(parse(data, context), context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, response_serializer=serializer
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary

            def stream_unary(datas: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                admit(context)
                return inner_su(parse_all(datas, context), context)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, response_serializer=serializer
            )
        inner_ss = handler.stream_stream

        def stream_stream(datas: Iterator[bytes], context: grpc.ServicerContext) -> Any:
            admit(context)
            return inner_ss(parse_all(datas, context), context)

        return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serializer)


def build_server(
    listen: str,
    tls: CertFiles,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    max_workers: int = 32,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start a server on ``listen`` (port 0 picks a free one); returns it with the bound port.

    The certificate files are re-read on each new connection and the revocation list
    on each call (see :mod:`ensnif_mpc.security.tls` and :mod:`ensnif_mpc.security.revocation`).
    """
    revocation.watch(tls.ca, tls.crl_path)  # InvalidConfig if the CRL is not the CA's
    _log_validity(tls)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=SERVER_OPTIONS,
        interceptors=[Guard()],
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    try:
        port = server.add_secure_port(listen, server_credentials(tls))
    except RuntimeError as exc:
        raise Unavailable(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise Unavailable(f"cannot listen on {listen}: address in use or not local")
    server.start()
    for name in [*service_names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def _log_validity(tls: CertFiles) -> None:
    cert = load_cert(tls.cert)
    name = identity_of(cert).name
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    log.info(
        "%s: certificate serial %x valid until %s",
        name,
        cert.serial_number,
        cert.not_valid_after_utc,
    )
    if left < EXPIRY_WARNING:
        log.warning(
            "the certificate of %s expires in %d days: `ensnif pki rotate %s` replaces it "
            "without a restart",
            name,
            left.days,
            name,
        )


def stop_on_signal() -> threading.Event:
    """Turn SIGINT/SIGTERM into an event. Install it before starting anything, so that a
    signal during startup cannot leave server threads running with no one to stop them."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_until(stop: threading.Event, on_stop: Callable[[], None]) -> None:
    while not stop.wait(0.5):
        pass
    on_stop()

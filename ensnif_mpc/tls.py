"""Mutual TLS for every gRPC link, and the peer identity taken from its certificate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from ensnif_mpc.errors import PermissionDenied
from ensnif_mpc.pki import CertFiles, Identity, identity_of, parse_cert

# Keepalives let a server notice a vanished peer on a long-lived Watch stream.
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def server_credentials(files: CertFiles) -> grpc.ServerCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def secure_channel(address: str, files: CertFiles, server_name: str) -> grpc.Channel:
    """Open a channel that only accepts a server whose certificate names ``server_name``.

    The consortium name is a DNS SAN of every server certificate; overriding the
    target name pins the link to that identity whatever host or IP it runs on.
    """
    ca, cert, key = files.read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    options = [*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name)]
    return grpc.secure_channel(address, creds, options=options)


def peer_identity(context: grpc.ServicerContext) -> Identity:
    """The caller's consortium identity, from the certificate TLS verified."""
    auth = context.auth_context()
    pems: Sequence[bytes] = auth.get("x509_pem_cert", [])
    if not pems:
        raise PermissionDenied("no client certificate on this connection")
    return identity_of(parse_cert(pems[0]))


def require_role(context: grpc.ServicerContext, *roles: str) -> Identity:
    ident = peer_identity(context)
    if ident.role not in roles:
        raise PermissionDenied(
            f"{ident.name!r} has role {ident.role!r}; this call needs {' or '.join(roles)}"
        )
    return ident


def peer_certificate_pem(context: grpc.ServicerContext) -> str:
    pems: Sequence[bytes] = context.auth_context().get("x509_pem_cert", [])
    return pems[0].decode() if pems else ""

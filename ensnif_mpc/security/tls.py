"""Mutual TLS for every gRPC link, and the peer identity taken from its certificate.

Certificates are re-read while the daemons run, so that ``ensnif pki rotate`` needs
no restart:

- a server's certificate, key and CA (:func:`server_credentials`) are checked on
  every new connection (gRPC's dynamic server credentials call
  :class:`ServerCertificates` before each TLS handshake): if the files changed, the
  handshake already uses the new pair; connections already open keep the old one;
- a daemon's own client identity (:class:`ClientIdentity`) is re-read when its files
  change; the callers open new channels with it (the coordinator's channels to nodes
  on the next call that picks a stub, a node's channel to the coordinator on its next
  registration round) and leave the calls already running on the old channels.

A new pair is used only once its key matches its certificate, the certificate names
the same identity and role as before, and the CA issued it; until then the old one
stays in use (a half-copied pair is simply not picked up yet).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ensnif_mpc.errors import CryptoError, EnsnifError, PermissionDenied
from ensnif_mpc.security import revocation
from ensnif_mpc.security.pki import CertFiles, Identity, identity_of, load_private_key, parse_cert

log = logging.getLogger(__name__)

# Requests are small (specs, certificates, schemas); responses can carry result shares.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

# Keepalives let a server notice a vanished peer on a long-lived Watch stream.
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
    ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
    # A restarted peer is reached again within seconds: gRPC's default backoff grows to
    # 120 s, longer than the coordinator's whole propose timeout (faults matrix).
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
]

_Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(files: CertFiles) -> _Stamp:
    out: list[tuple[int, int, int] | None] = []
    for path in (files.ca, files.cert, files.key):
        try:
            st = Path(path).stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class Material:
    """One consistent read of a member's TLS files."""

    ca: bytes
    cert: bytes
    key: bytes
    identity: Identity
    serial: int
    stamp: _Stamp


def load_material(files: CertFiles) -> Material:
    """Read CA, certificate and key; refuse a key that does not match the certificate,
    or a certificate the CA did not issue (e.g. files caught in the middle of a copy)."""
    stamp = _stamp(files)
    try:
        ca_pem, cert_pem, key_pem = files.read()
    except OSError as exc:
        raise CryptoError(f"cannot read the TLS files: {exc}") from exc
    cert = parse_cert(cert_pem)
    try:
        key = load_private_key(key_pem)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"{files.key} is not a PEM private key") from exc
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        raise CryptoError(f"{files.key} does not match {files.cert}")
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CryptoError(f"{files.cert} was not issued by the CA in {files.ca}") from exc
    return Material(ca_pem, cert_pem, key_pem, identity_of(cert), cert.serial_number, stamp)


class _Reloader:
    """Holds the current material; ``refresh`` re-reads it if the files changed."""

    def __init__(self, files: CertFiles) -> None:
        self.files = files
        self.material = load_material(files)
        self._seen = self.material.stamp
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """True if a new, valid pair replaced the current one."""
        stamp = _stamp(self.files)
        with self._lock:
            if stamp == self._seen:
                return False
            self._seen = stamp  # a bad pair is reported once, retried when files change
            try:
                new = load_material(self.files)
            except EnsnifError as exc:
                log.warning("TLS files changed but are not usable yet (%s)", exc.message)
                return False
            if new.identity != self.material.identity:
                log.error(
                    "%s is now a certificate of %s (%s), not of %s (%s): not used",
                    self.files.cert,
                    new.identity.name,
                    new.identity.role,
                    self.material.identity.name,
                    self.material.identity.role,
                )
                return False
            if new.serial == self.material.serial and new.ca == self.material.ca:
                return False
            log.info(
                "%s: now using certificate serial %x (was %x)",
                self.material.identity.name,
                new.serial,
                self.material.serial,
            )
            self.material = new
            return True


class ServerCertificates(_Reloader):
    """gRPC's certificate-configuration fetcher: called before every TLS handshake."""

    @staticmethod
    def config(m: Material) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], root_certificates=m.ca)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            return self.config(self.material) if self.refresh() else None
        except Exception:  # never fail a handshake because of a reload: keep the old pair
            log.exception("reloading the server certificate failed; keeping the current one")
            return None


def server_credentials(files: CertFiles) -> grpc.ServerCredentials:
    fetcher = ServerCertificates(files)
    return grpc.dynamic_ssl_server_credentials(
        fetcher.config(fetcher.material), fetcher, require_client_authentication=True
    )


class ClientIdentity(_Reloader):
    """The certificate a daemon dials with; ``refresh()`` says when to open new channels."""

    def channel(self, address: str, server_name: str) -> grpc.Channel:
        return _channel(address, self.material, server_name)


def _channel(address: str, m: Material, server_name: str) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=m.ca, private_key=m.key, certificate_chain=m.cert
    )
    options = [*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name)]
    return grpc.secure_channel(address, creds, options=options)


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


def check_not_revoked(cert: x509.Certificate) -> None:
    if revocation.revoked(cert):
        raise PermissionDenied(
            f"the certificate of {identity_of(cert).name!r} (serial {cert.serial_number:x}) "
            "is revoked by the consortium CA",
            reason=revocation.REVOKED_REASON,
        )


def peer_identity(context: grpc.ServicerContext) -> Identity:
    """The caller's consortium identity, from the certificate TLS verified.

    A certificate on a revocation list the server watches is refused
    (PERMISSION_DENIED, reason ``certificate_revoked``).
    """
    auth = context.auth_context()
    pems: Sequence[bytes] = auth.get("x509_pem_cert", [])
    if not pems:
        raise PermissionDenied("no client certificate on this connection")
    cert = parse_cert(pems[0])
    check_not_revoked(cert)
    return identity_of(cert)


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

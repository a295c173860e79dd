"""Revocation: a CRL signed by the consortium CA, written by ``ensnif pki revoke``.

The CA directory holds ``ca.crl`` (an X.509 CRL, PEM) next to ``ca.crt``.
Servers load the CRL their ``[tls]`` section names (by default ``ca.crl`` next to the
CA certificate), check it on every call, and re-read it whenever the file changes
(stat on each check: no restart, no polling thread). A CRL is accepted only if the
consortium CA signed it; a CRL with a lower CRL number than the one already loaded is
refused, so an older list cannot be put back to un-revoke someone. A missing file
means that nothing is revoked; an unreadable or forged one keeps the last good list
(and a server refuses to start with one).

The same lists serve :func:`ensnif_mpc.security.pki.verify_member`, which checks certificates
that arrive through the coordinator (an analyst's, a peer's for an MPC binding):
the process registers the CRL once (:func:`watch`) and every check consults it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from ensnif_mpc.errors import InvalidArgument, InvalidConfig

log = logging.getLogger(__name__)

CRL_FILE = "ca.crl"
CRL_DAYS = 30  # nextUpdate: informational; Ensnif applies the newest list it has
REVOKED_REASON = "certificate_revoked"
REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
}

_Stamp = tuple[int, int, int] | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _key_id(ca: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest


def authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    except x509.ExtensionNotFound:
        return None
    value = aki.value
    assert isinstance(value, x509.AuthorityKeyIdentifier)
    return value.key_identifier


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        ext = crl.extensions.get_extension_for_class(x509.CRLNumber)
    except x509.ExtensionNotFound:
        return 0
    return ext.value.crl_number


def load_crl(data: bytes, ca: x509.Certificate) -> x509.CertificateRevocationList:
    """Parse a CRL and check that the consortium CA signed it."""
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise InvalidConfig(f"not a PEM certificate revocation list ({exc})") from exc
    public = ca.public_key()
    if crl.issuer != ca.subject or not isinstance(public, ec.EllipticCurvePublicKey):
        raise InvalidConfig("the revocation list was not issued by the consortium CA")
    if not crl.is_signature_valid(public):
        raise InvalidConfig("the revocation list's signature does not verify with the CA")
    return crl


@dataclass(frozen=True)
class Entry:
    serial: int
    revoked_at: dt.datetime
    reason: str


def entries(crl: x509.CertificateRevocationList) -> list[Entry]:
    out = []
    for rc in crl:
        try:
            flag = rc.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reason = flag.name
        except x509.ExtensionNotFound:
            reason = "unspecified"
        out.append(Entry(rc.serial_number, rc.revocation_date_utc, reason))
    return out


def write_crl(
    ca_dir: Path,
    add: Iterable[tuple[int, str]],
    crl_path: Path | None = None,
    days: int = CRL_DAYS,
) -> tuple[Path, list[Entry]]:
    """Add ``(serial, reason)`` entries to the CA's CRL and sign it again (atomically).

    Entries already listed are kept with their first date and reason. Needs ``ca.key``.
    """
    from ensnif_mpc.security import pki  # the PKI imports this module for verify_member

    ca = pki.load_cert(ca_dir / pki.CA_CERT)
    ca_key = pki.load_private_key((ca_dir / pki.CA_KEY).read_bytes())
    path = crl_path or ca_dir / CRL_FILE
    listed: dict[int, Entry] = {}
    number = 0
    if path.exists():
        old = load_crl(path.read_bytes(), ca)
        number = crl_number(old)
        listed = {e.serial: e for e in entries(old)}
    now = _now()
    for serial, reason in add:
        if reason not in REASONS:
            raise InvalidArgument(f"unknown reason {reason!r}; choose one of {', '.join(REASONS)}")
        listed.setdefault(serial, Entry(serial, now, reason))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for e in sorted(listed.values(), key=lambda e: e.serial):
        rc = x509.RevokedCertificateBuilder().serial_number(e.serial).revocation_date(e.revoked_at)
        if e.reason != "unspecified":
            rc = rc.add_extension(x509.CRLReason(REASONS[e.reason]), critical=False)
        builder = builder.add_revoked_certificate(rc.build())
    crl = builder.sign(ca_key, hashes.SHA256())
    pki.write_atomic(path, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return path, sorted(listed.values(), key=lambda e: e.revoked_at)


class RevocationList:
    """One CA's CRL file, re-read when it changes (checked on every lookup)."""

    def __init__(self, ca_path: Path, crl_path: Path) -> None:
        self.ca_path = ca_path
        self.crl_path = crl_path
        self._lock = threading.Lock()
        self._stamps: tuple[_Stamp, _Stamp] | None = None
        self._ca: x509.Certificate | None = None
        self._key_id = b""
        self._serials: frozenset[int] = frozenset()
        self._number = -1

    def load(self) -> None:
        """Read the files now; raise InvalidConfig if the CRL is present but not valid."""
        with self._lock:
            self._refresh(strict=True)

    def _refresh(self, strict: bool) -> None:
        stamps = (_stamp(self.ca_path), _stamp(self.crl_path))
        if stamps == self._stamps:
            return
        try:
            ca = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            if stamps[1] is None:
                serials, number = frozenset[int](), self._number
                if self._serials:
                    log.warning("revocation list %s was removed: nothing is revoked", self.crl_path)
            else:
                crl = load_crl(self.crl_path.read_bytes(), ca)
                number = crl_number(crl)
                if number < self._number:
                    raise InvalidConfig(
                        f"CRL number {number} is older than the list already loaded "
                        f"({self._number})"
                    )
                serials = frozenset(rc.serial_number for rc in crl)
        except (OSError, ValueError, InvalidConfig) as exc:
            message = exc.message if isinstance(exc, InvalidConfig) else str(exc)
            if strict:
                raise InvalidConfig(f"revocation list {self.crl_path}: {message}") from exc
            log.error(
                "revocation list %s not reloaded (%s); keeping the previous one",
                self.crl_path,
                message,
            )
            self._stamps = stamps  # do not retry until the files change again
            return
        if serials != self._serials and self._stamps is not None:
            log.info("revocation list %s reloaded: %d revoked", self.crl_path, len(serials))
        self._ca, self._key_id = ca, _key_id(ca)
        self._serials, self._number, self._stamps = serials, number, stamps

    def revoked(self, cert: x509.Certificate) -> bool:
        """True if this list's CA issued ``cert`` and lists its serial."""
        with self._lock:
            self._refresh(strict=False)
            if self._ca is None or cert.serial_number not in self._serials:
                return False
            aki = authority_key_id(cert)
            if aki is not None:
                return aki == self._key_id
            return cert.issuer == self._ca.subject


_LISTS: dict[Path, RevocationList] = {}
_LISTS_LOCK = threading.Lock()


def watch(ca_path: Path, crl_path: Path) -> RevocationList:
    """Register a CRL for this process (idempotent); servers call it at start."""
    key = Path(os.path.abspath(crl_path))
    with _LISTS_LOCK:
        rl = _LISTS.get(key)
        if rl is None:
            rl = RevocationList(Path(os.path.abspath(ca_path)), key)
            rl.load()
            _LISTS[key] = rl
    return rl


def revoked(cert: x509.Certificate) -> bool:
    """Whether any CRL this process watches revokes ``cert``."""
    with _LISTS_LOCK:
        lists = list(_LISTS.values())
    return any(rl.revoked(cert) for rl in lists)

"""Member-generated keys: the member makes its key and a certificate signing request,
the consortium CA signs the request; the private key never leaves the member's machine.

``ensnif pki request`` (:func:`request`) writes the key (0600) and the request at the
member; ``ensnif pki sign`` (:func:`sign_request`) verifies the request's own signature,
refuses CA powers, unknown extensions, wildcard hosts and another member's identity as a
host, and issues a certificate with the same subject, SANs and lifetime conventions as
:func:`ensnif_mpc.security.pki.issue`, recorded in the CA's ``issued.jsonl`` so that
``pki list`` and ``pki revoke`` see it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ensnif_mpc.errors import CryptoError, InvalidArgument, PermissionDenied
from ensnif_mpc.security import pki

log = logging.getLogger(__name__)

CSR_SUFFIX = ".csr"
# Extensions a request may carry. The CA writes every extension of the certificate
# itself; these are read (SANs) or checked (no CA powers), any other one is refused.
_CLIENT_SERVER = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}


@dataclass(frozen=True)
class Request:
    """What ``ensnif pki request`` wrote at the member: the key stays, the CSR is sent."""

    key: Path
    csr: Path
    fingerprint: str


@dataclass(frozen=True)
class RequestInfo:
    """What a CSR asks for, once its self-signature verified."""

    name: str
    role: str
    hosts: tuple[str, ...]
    fingerprint: str


@dataclass(frozen=True)
class Signed:
    cert: Path
    name: str
    role: str
    hosts: tuple[str, ...]
    serial: int
    not_after: dt.datetime
    fingerprint: str


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the public key (SubjectPublicKeyInfo), in groups of four hex digits:
    read it to the lead over the phone to tie a CSR to the member who made it."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def request(
    name: str,
    role: str,
    out_dir: Path,
    *,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> Request:
    """Write ``<name>.key`` (0600, never leaves this machine) and ``<name>.csr``.

    The request carries the same subject as :func:`issue` writes (common name = the
    identity, organizational unit = the role) and the host names as subject-alternative
    names; the CA signs it with :func:`sign_request`. An existing key is never
    overwritten (it may be the one a daemon uses): write the request elsewhere.
    """
    pki.check_member(name, role)
    key_path, csr_path = out_dir / f"{name}.key", out_dir / f"{name}{CSR_SUFFIX}"
    if key_path.exists():
        raise InvalidArgument(
            f"{key_path} already exists; refusing to overwrite a key (it may be in use). "
            "Choose another --out directory"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(pki.subject(name, role))
        .add_extension(x509.SubjectAlternativeName(pki.sans(name, hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pki.write_private(key_path, pki.key_pem(key))
    pki.write_public(csr_path, csr.public_bytes(serialization.Encoding.PEM))
    return Request(key=key_path, csr=csr_path, fingerprint=fingerprint(key.public_key()))


def _one(subject: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str:
    values = subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise InvalidArgument(f"the request's subject needs exactly one {what}")
    return str(values[0].value)


def read_request(pem: bytes) -> tuple[x509.CertificateSigningRequest, RequestInfo]:
    """Parse a CSR, verify its self-signature, and refuse one that asks for more than a
    member certificate (CA powers, other extensions, other name kinds)."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise InvalidArgument(f"not a PEM certificate signing request ({exc})") from exc
    try:
        valid = csr.is_signature_valid
        public = csr.public_key()
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as exc:
        raise InvalidArgument(f"unreadable certificate signing request ({exc})") from exc
    if not valid:
        raise CryptoError(
            "the request's signature does not verify: it was changed after the member "
            "signed it, or it was not made with the key it carries"
        )
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise InvalidArgument("only ECDSA P-256 keys are used in the consortium")
    allowed = {NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME}
    extra = [a.oid.dotted_string for a in csr.subject if a.oid not in allowed]
    if extra:
        raise InvalidArgument(f"the request's subject may hold only CN and OU, not {extra[0]}")
    name = _one(csr.subject, NameOID.COMMON_NAME, "common name (the identity)")
    role = _one(csr.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit (the role)")
    hosts: list[str] = []
    try:
        extensions = list(csr.extensions)
    except ValueError as exc:
        raise InvalidArgument(f"unreadable extension in the request ({exc})") from exc
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints):
            if value.ca:
                raise PermissionDenied("the request asks for CA powers")
        elif isinstance(value, x509.KeyUsage):
            if value.key_cert_sign or value.crl_sign:
                raise PermissionDenied("the request asks to sign certificates or revocation lists")
        elif isinstance(value, x509.ExtendedKeyUsage):
            if not set(value) <= _CLIENT_SERVER:
                raise InvalidArgument(
                    "the request asks for a key usage other than TLS client and server"
                )
        elif isinstance(value, x509.SubjectAlternativeName):
            for general in value:
                if not isinstance(general, x509.DNSName | x509.IPAddress):
                    raise InvalidArgument(
                        f"the request names {type(general).__name__} {general.value!r}; "
                        "only DNS names and IP addresses are accepted"
                    )
                hosts.append(str(general.value))
        else:
            raise InvalidArgument(
                f"the request asks for extension {ext.oid.dotted_string}; the CA sets the "
                "certificate's extensions itself"
            )
    info = RequestInfo(
        name=name,
        role=role,
        hosts=tuple(h for h in dict.fromkeys(hosts) if h != name),
        fingerprint=fingerprint(public),
    )
    return csr, info


def sign_request(
    directory: Path,
    csr_path: Path,
    *,
    name: str,
    role: str,
    days: int = pki.MEMBER_DAYS,
    out: Path | None = None,
    not_before: dt.datetime | None = None,
) -> Signed:
    """Issue the certificate a member's CSR asks for, if it is what the lead confirmed.

    ``name`` and ``role`` are what the lead expects (from the member, out of band); a
    request for another name or role is refused, as is one whose host names include
    another member's identity (a server certificate for that name would let this member
    pose as it) or a wildcard. The certificate gets the same subject, extensions and
    validity as :func:`issue` gives, and is recorded in the CA's log (``pki list``,
    ``pki revoke NAME``). Written to ``out`` (default: the CSR's path with ``.crt``).
    """
    pki.check_member(name, role)
    csr, info = read_request(csr_path.read_bytes())
    if info.name != name or info.role != role:
        raise InvalidArgument(
            f"the request is for {info.role} {info.name!r}, not {role} {name!r}: not signed"
        )
    pki.check_member(info.name, info.role)
    others = {i.name for i in pki.issued(directory)} - {name}
    for host in info.hosts:
        if "*" in host:
            raise InvalidArgument(f"the request names a wildcard host {host!r}")
        if host in others:
            raise PermissionDenied(
                f"the request names {host!r}, the identity of another member, as a host"
            )
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)  # read_request checked it
    cert = pki.certify(directory, name, role, public, info.hosts, days, not_before)
    target = out or csr_path.with_suffix(".crt")
    pki.write_public(target, cert.public_bytes(serialization.Encoding.PEM))
    log.info("signed the request of %s (%s): serial %x", name, role, cert.serial_number)
    return Signed(
        cert=target,
        name=name,
        role=role,
        hosts=info.hosts,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        fingerprint=info.fingerprint,
    )

"""The consortium PKI: one CA, certificates for the coordinator, nodes and analysts.

A certificate's common name is the member's identity (``grocery``, ``alice``) and
its organizational unit is the role (``coordinator``, ``party``, ``analyst``).
Servers read both from the peer certificate that mutual TLS already verified, so
no request field can claim an identity. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ensnif_mpc.errors import CryptoError, InvalidArgument

ROLES = ("coordinator", "party", "analyst")
CA_CERT = "ca.crt"
CA_KEY = "ca.key"


@dataclass(frozen=True)
class Identity:
    """Who is on the other end of a verified TLS link."""

    name: str
    role: str


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init_ca(directory: Path, name: str = "Ensnif consortium CA", days: int = 3650) -> Path:
    """Create the consortium CA in ``directory``; refuses to overwrite an existing one."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_KEY).exists():
        raise InvalidArgument(f"a CA already exists in {directory}; refusing to overwrite it")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / CA_KEY, _key_pem(key))
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def issue(
    directory: Path,
    name: str,
    role: str,
    *,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 825,
    not_before: dt.datetime | None = None,
    out_dir: Path | None = None,
) -> CertFiles:
    """Issue ``<name>.crt``/``<name>.key`` signed by the CA in ``directory``.

    The name is also a DNS subject-alternative name so that gRPC's hostname check
    can pin a server to its consortium identity (see :func:`ensnif_mpc.tls`).
    """
    if role not in ROLES:
        raise InvalidArgument(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidArgument(f"invalid name {name!r}: use letters, digits, '-', '_' or '.'")
    ca_cert = load_cert(directory / CA_CERT)
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or (_now() - dt.timedelta(minutes=5))
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = out_dir or directory
    _write_private(out / f"{name}.key", _key_pem(key))
    (out / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertFiles(ca=directory / CA_CERT, cert=out / f"{name}.crt", key=out / f"{name}.key")


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def parse_cert(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise CryptoError(f"not a PEM certificate: {exc}") from exc


def identity_of(cert: x509.Certificate) -> Identity:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not cns or not ous:
        raise CryptoError("certificate lacks a common name or a role (OU)")
    return Identity(name=str(cns[0].value), role=str(ous[0].value))


def verify_member(cert_pem: str | bytes, ca_pem: bytes, role: str | None = None) -> Identity:
    """Check that a certificate was issued by the consortium CA, is valid now, and has the role.

    Used where a certificate arrives through the coordinator rather than over TLS
    (an analyst's key to seal results to, a peer's key for an MPC binding), so a
    coordinator cannot slip in a key of its own.
    """
    cert = parse_cert(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CryptoError("certificate was not issued by the consortium CA") from exc
    now = _now()
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise CryptoError(f"certificate of {identity_of(cert).name!r} is expired or not yet valid")
    ident = identity_of(cert)
    if role is not None and ident.role != role:
        raise CryptoError(f"certificate of {ident.name!r} has role {ident.role!r}, not {role!r}")
    return ident


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CryptoError("only EC private keys are supported")
    return key


def sign(key_pem: bytes, message: bytes) -> bytes:
    return load_private_key(key_pem).sign(message, ec.ECDSA(hashes.SHA256()))


def verify_signature(cert_pem: str | bytes, message: bytes, signature: bytes) -> None:
    public = parse_cert(cert_pem).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CryptoError("only EC certificates are supported")
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise CryptoError("signature does not verify") from exc

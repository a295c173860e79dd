"""The consortium PKI: one CA, certificates for the coordinator, nodes and analysts.

A certificate's common name is the member's identity (``grocery``, ``alice``) and
its organizational unit is the role (``coordinator``, ``party``, ``analyst``).
Servers read both from the peer certificate that mutual TLS already verified, so
no request field can claim an identity. Keys are ECDSA P-256.

Member certificates are short-lived (90 days by default) and replaced with
:func:`rotate` (a new key, same name, role and host names) while the daemons run;
the CA directory keeps a log of every certificate it issued (``issued.jsonl``), so
that :func:`revoke` can revoke all of a member's certificates by name. Revocation
lists themselves are in :mod:`ensnif_mpc.security.revocation`.

:func:`issue` makes the member's key at the CA (the local demo does that). In a real
consortium the member makes its own key and a certificate signing request
(:func:`ensnif_mpc.security.csr.request`), and the CA signs it
(:func:`ensnif_mpc.security.csr.sign_request`): the private
key never leaves the member's machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ensnif_mpc.errors import CryptoError, InvalidArgument
from ensnif_mpc.security import revocation

log = logging.getLogger(__name__)

ROLES = ("coordinator", "party", "analyst")
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
ISSUED_LOG = "issued.jsonl"
CA_DAYS = 3650  # the CA: 10 years, its key kept offline
MEMBER_DAYS = 90  # members: short-lived, rotated with `ensnif pki rotate`


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
    crl: Path | None = None  # the CA's revocation list; default: ca.crl next to the CA

    @property
    def crl_path(self) -> Path:
        return self.crl or self.ca.parent / revocation.CRL_FILE

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file in the same directory, then rename it over ``path``:
    a reader sees the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o644)


def init_ca(directory: Path, name: str = "Ensnif consortium CA", days: int = CA_DAYS) -> Path:
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
    write_private(directory / CA_KEY, key_pem(key))
    write_public(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def check_name(name: str) -> None:
    """A member's identity: letters, digits, '-', '_' or '.' (also a DNS name and a file name)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidArgument(f"invalid name {name!r}: use letters, digits, '-', '_' or '.'")


def check_member(name: str, role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    check_name(name)


def subject(name: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        ]
    )


def sans(name: str, hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    """The identity first (a DNS name), then each host as an IP address or a DNS name."""
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for host in hosts:
        if host == name:
            continue
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def _build(
    directory: Path,
    name: str,
    role: str,
    hosts: tuple[str, ...],
    days: int,
    not_before: dt.datetime | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certify(directory, name, role, key.public_key(), hosts, days, not_before)
    return cert, key


def certify(
    directory: Path,
    name: str,
    role: str,
    public_key: ec.EllipticCurvePublicKey,
    hosts: tuple[str, ...],
    days: int,
    not_before: dt.datetime | None,
) -> x509.Certificate:
    """A member certificate for ``public_key``, signed by the CA and recorded in its log."""
    if days < 1:
        raise InvalidArgument(f"--days must be at least 1, not {days}")
    ca_cert = load_cert(directory / CA_CERT)
    ca_key = load_private_key((directory / CA_KEY).read_bytes())
    start = not_before or (_now() - dt.timedelta(minutes=5))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject(name, role))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans(name, hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _record(directory, cert)
    return cert


def issue(
    directory: Path,
    name: str,
    role: str,
    *,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = MEMBER_DAYS,
    not_before: dt.datetime | None = None,
    out_dir: Path | None = None,
) -> CertFiles:
    """Issue ``<name>.crt``/``<name>.key`` signed by the CA in ``directory``.

    The name is also a DNS subject-alternative name so that gRPC's hostname check
    can pin a server to its consortium identity (see :func:`ensnif_mpc.security.tls`).
    """
    check_member(name, role)
    cert, key = _build(directory, name, role, hosts, days, not_before)
    out = out_dir or directory
    write_private(out / f"{name}.key", key_pem(key))
    write_public(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    return CertFiles(ca=directory / CA_CERT, cert=out / f"{name}.crt", key=out / f"{name}.key")


@dataclass(frozen=True)
class Rotation:
    files: CertFiles
    old_serial: int
    new_serial: int
    not_after: dt.datetime
    backup_cert: Path
    backup_key: Path | None


def _hosts_of(cert: x509.Certificate, name: str) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    hosts = [str(g.value) for g in san if isinstance(g, x509.DNSName | x509.IPAddress)]
    if hosts and hosts[0] == name:
        hosts = hosts[1:]  # the identity itself, always added first
    return tuple(hosts)


def rotate(
    directory: Path,
    name: str,
    *,
    days: int = MEMBER_DAYS,
    out_dir: Path | None = None,
    hosts: tuple[str, ...] | None = None,
) -> Rotation:
    """Replace ``<name>.crt``/``<name>.key`` with a new key and certificate, same identity.

    Role and host names are taken from the current certificate (``hosts`` replaces
    the host names). The old pair is kept as ``<name>.old-<UTC time>.crt|key``; the
    new key and then the new certificate are each renamed into place, so a daemon that
    re-reads them (see :mod:`ensnif_mpc.security.tls`) sees either the old or the new pair (it
    checks that key and certificate match before using them). The old certificate is
    not revoked: it stays valid until it expires, unless revoked with :func:`revoke`.
    """
    out = out_dir or directory
    cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
    if not cert_path.exists():
        raise InvalidArgument(
            f"no certificate {cert_path} to rotate; issue one with "
            f"`ensnif pki issue {name} --role ROLE`"
        )
    old = load_cert(cert_path)
    ca = load_cert(directory / CA_CERT)
    try:
        old.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidArgument(f"{cert_path} was not issued by the CA in {directory}") from exc
    ident = identity_of(old)
    if ident.name != name:
        raise InvalidArgument(f"{cert_path} is the certificate of {ident.name!r}, not {name!r}")
    check_member(name, ident.role)
    cert, key = _build(
        directory, name, ident.role, _hosts_of(old, name) if hosts is None else hosts, days, None
    )
    stamp = _now().strftime("%Y%m%dT%H%M%SZ")
    backup_cert = out / f"{name}.old-{stamp}.crt"
    backup_key: Path | None = out / f"{name}.old-{stamp}.key"
    write_public(backup_cert, cert_path.read_bytes())
    if key_path.exists():
        assert backup_key is not None
        write_private(backup_key, key_path.read_bytes())
    else:
        backup_key = None
    write_private(key_path, key_pem(key))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    log.info(
        "rotated %s (%s): serial %x replaces %x",
        name,
        ident.role,
        cert.serial_number,
        old.serial_number,
    )
    return Rotation(
        files=CertFiles(ca=directory / CA_CERT, cert=cert_path, key=key_path),
        old_serial=old.serial_number,
        new_serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        backup_cert=backup_cert,
        backup_key=backup_key,
    )


@dataclass(frozen=True)
class Issued:
    serial: int
    name: str
    role: str
    not_before: dt.datetime
    not_after: dt.datetime


def _record(directory: Path, cert: x509.Certificate) -> None:
    ident = identity_of(cert)
    line = json.dumps(
        {
            "serial": format(cert.serial_number, "x"),
            "name": ident.name,
            "role": ident.role,
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        },
        sort_keys=True,
    )
    fd = os.open(directory / ISSUED_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def issued(directory: Path) -> list[Issued]:
    """Every certificate the CA in ``directory`` issued (since it keeps the log)."""
    path = directory / ISSUED_LOG
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(
                Issued(
                    serial=int(raw["serial"], 16),
                    name=str(raw["name"]),
                    role=str(raw["role"]),
                    not_before=dt.datetime.fromisoformat(raw["not_before"]),
                    not_after=dt.datetime.fromisoformat(raw["not_after"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"{path}:{n}: not an issuance record ({exc})") from exc
    return out


def parse_serial(text: str) -> int:
    """A serial number as ``ensnif pki`` prints it (hexadecimal, optional 0x and colons)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise InvalidArgument(f"serial {text!r}: expected a hexadecimal number") from None
    if value <= 0:
        raise InvalidArgument(f"serial {text!r}: must be positive")
    return value


def revoke(
    directory: Path,
    *,
    name: str | None = None,
    serials: tuple[int, ...] = (),
    cert_path: Path | None = None,
    reason: str = "unspecified",
    crl_path: Path | None = None,
) -> tuple[Path, list[int]]:
    """Revoke certificates and write the CA's CRL again; returns its path and the serials.

    ``name`` revokes every unexpired certificate the CA issued to that member (its
    issuance log) and the one at ``cert_path`` (default ``<directory>/<name>.crt``);
    ``serials`` revokes exactly those.
    """
    chosen = list(serials)
    if name is not None:
        now = _now()
        chosen += [i.serial for i in issued(directory) if i.name == name and i.not_after > now]
        path = cert_path or directory / f"{name}.crt"
        if path.exists():
            cert = load_cert(path)
            if identity_of(cert).name != name:
                raise InvalidArgument(f"{path} is not a certificate of {name!r}")
            chosen.append(cert.serial_number)
    elif cert_path is not None:
        chosen.append(load_cert(cert_path).serial_number)
    if not chosen:
        raise InvalidArgument(
            f"no certificate of {name!r} found (not in {directory / ISSUED_LOG}, "
            f"and no {directory / f'{name}.crt'}); give --serial or --cert"
            if name
            else "nothing to revoke: give a NAME, --serial or --cert"
        )
    unique = sorted(set(chosen))
    written, _ = revocation.write_crl(directory, [(s, reason) for s in unique], crl_path)
    return written, unique


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
    coordinator cannot slip in a key of its own. A certificate that a revocation list
    this process watches (:func:`ensnif_mpc.security.revocation.watch`, done by every server)
    lists is refused with reason ``certificate_revoked``.
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
    if revocation.revoked(cert):
        raise CryptoError(
            f"certificate of {ident.name!r} (serial {cert.serial_number:x}) is revoked",
            reason=revocation.REVOKED_REASON,
        )
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

"""TLS material for a job's MPyC links, bound to the consortium identities.

MPyC (0.11) reads ``.config/party_<i>.crt|key`` and ``.config/mpyc_ca.crt`` from
the worker's working directory and checks the server it dials against the name
``MPyC party <j>``. Node keys are end-entity certificates and cannot sign other
certificates, so each node mints a fresh self-signed certificate per job with
that name, and signs a binding ``(job, index, sha256(cert))`` with its consortium
key. Every node verifies each peer's binding against the peer's CA-issued
certificate before trusting the per-job certificate: the coordinator, which
relays them, cannot insert a certificate of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.security.pki import parse_cert, sign, verify_member, verify_signature


@dataclass(frozen=True)
class MpcCredential:
    cert_pem: str
    key_pem: str
    binding_signature: bytes


@dataclass(frozen=True)
class PeerBinding:
    index: int
    party: str
    mpc_address: str
    mpc_cert_pem: str
    binding_signature: bytes
    party_cert_pem: str
    # The node playing this position for an outsourced dataset's owner (``party``, a member
    # without a node): the binding is that node's, signed with its certificate. "" otherwise.
    host: str = ""

    @property
    def node(self) -> str:
        return self.host or self.party


def mpc_name(index: int) -> str:
    return f"MPyC party {index}"


def binding_message(job_id: str, index: int, cert_pem: str) -> bytes:
    der = parse_cert(cert_pem).public_bytes(serialization.Encoding.DER)
    return b"ensnif-mpc-binding-v1|" + f"{job_id}|{index}|".encode() + hashlib.sha256(der).digest()


def mint(job_id: str, index: int, node_key_pem: bytes, hours: int = 48) -> MpcCredential:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mpc_name(index))])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    signature = sign(node_key_pem, binding_message(job_id, index, cert_pem))
    return MpcCredential(cert_pem=cert_pem, key_pem=key_pem, binding_signature=signature)


def verify_peer(job_id: str, peer: PeerBinding, ca_pem: bytes) -> None:
    ident = verify_member(peer.party_cert_pem, ca_pem, role="party")
    if ident.name != peer.node:
        raise CryptoError(
            f"peer {peer.index} presents the certificate of {ident.name!r}, not of {peer.node!r}"
        )
    cert = parse_cert(peer.mpc_cert_pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != mpc_name(peer.index):
        raise CryptoError(f"MPC certificate of {peer.party!r} is not for party index {peer.index}")
    try:
        verify_signature(
            peer.party_cert_pem,
            binding_message(job_id, peer.index, peer.mpc_cert_pem),
            peer.binding_signature,
        )
    except CryptoError as exc:
        raise CryptoError(
            f"MPC binding of {peer.party!r} does not verify: it was not signed "
            f"by that party for this job"
        ) from exc


def write_config(directory: Path, index: int, own: MpcCredential, peers: list[PeerBinding]) -> None:
    """Write the ``.config/`` MPyC reads: own cert/key, and only this job's peers as trust roots."""
    cfg = directory / ".config"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / f"party_{index}.crt").write_text(own.cert_pem)
    key_path = cfg / f"party_{index}.key"
    key_path.touch(mode=0o600)
    key_path.write_text(own.key_pem)
    (cfg / "mpyc_ca.crt").write_text("".join(p.mpc_cert_pem for p in peers))

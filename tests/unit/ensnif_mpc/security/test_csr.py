"""Member-generated keys: the member writes a key and a CSR, the consortium CA signs it.

The private key never leaves the member's directory; a CSR is signed only for the name
and role the lead confirmed, never with CA powers, and the certificate it gives works
for a real mutual-TLS gRPC call.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ensnif_mpc.cli.main import cli
from ensnif_mpc.errors import CryptoError, InvalidArgument, PermissionDenied
from ensnif_mpc.rpc.serving import build_server
from ensnif_mpc.security import csr, pki
from ensnif_mpc.security.tls import load_material, secure_channel


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    pki.init_ca(directory)
    return directory


def member_request(tmp_path: Path, name: str = "grocery", role: str = "party") -> csr.Request:
    return csr.request(name, role, tmp_path / "member", hosts=("localhost", "127.0.0.1"))


def key_body(path: Path) -> bytes:
    """The base64 body of a PEM key: what would show if the key were copied anywhere."""
    lines = path.read_bytes().splitlines()
    return b"".join(line for line in lines if not line.startswith(b"-----"))


def forged_csr(path: Path, **ext: x509.ExtensionType) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "grocery"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "party"),
            ]
        )
    )
    for value in ext.values():
        builder = builder.add_extension(value, critical=True)
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def test_request_writes_a_key_readable_by_its_owner_only_and_a_csr(tmp_path):
    r = member_request(tmp_path)

    assert r.key.stat().st_mode & 0o077 == 0
    csr = x509.load_pem_x509_csr(r.csr.read_bytes())
    assert csr.is_signature_valid
    assert b"PRIVATE KEY" not in r.csr.read_bytes()


def test_request_refuses_to_overwrite_an_existing_key(tmp_path):
    r = member_request(tmp_path)
    before = r.key.read_bytes()

    with pytest.raises(InvalidArgument, match="refusing to overwrite a key"):
        member_request(tmp_path)

    assert r.key.read_bytes() == before


def test_signed_certificate_has_the_conventions_of_issue(tmp_path, ca):
    r = csr.request("grocery", "party", tmp_path / "m", hosts=("localhost", "10.0.0.7"))

    signed = csr.sign_request(ca, r.csr, name="grocery", role="party")

    cert = pki.load_cert(signed.cert)
    assert pki.identity_of(cert) == pki.Identity("grocery", "party")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(g.value) for g in san] == ["grocery", "localhost", "10.0.0.7"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity == dt.timedelta(days=pki.MEMBER_DAYS)
    cert.verify_directly_issued_by(pki.load_cert(ca / pki.CA_CERT))


def test_signed_certificate_is_recorded_where_pki_list_reads(tmp_path, ca):
    r = member_request(tmp_path)

    signed = csr.sign_request(ca, r.csr, name="grocery", role="party", days=30)

    [record] = pki.issued(ca)
    assert (record.serial, record.name, record.role) == (signed.serial, "grocery", "party")
    assert record.not_after == signed.not_after


def test_the_key_never_reaches_the_ca_directory_or_the_certificate(tmp_path, ca):
    r = member_request(tmp_path)
    body = key_body(r.key)

    signed = csr.sign_request(ca, r.csr, name="grocery", role="party", out=tmp_path / "out.crt")

    assert sorted(p.name for p in ca.iterdir()) == ["ca.crt", "ca.key", "issued.jsonl"]
    for path in [*ca.iterdir(), signed.cert]:
        assert body not in path.read_bytes().replace(b"\n", b"")
    assert b"PRIVATE KEY" not in signed.cert.read_bytes()


def test_certificate_matches_the_members_key(tmp_path, ca):
    r = member_request(tmp_path)

    signed = csr.sign_request(ca, r.csr, name="grocery", role="party")

    material = load_material(pki.CertFiles(ca / pki.CA_CERT, signed.cert, r.key))
    assert material.identity == pki.Identity("grocery", "party")


def test_a_tampered_csr_is_refused(tmp_path, ca):
    r = member_request(tmp_path)
    der = bytearray(
        x509.load_pem_x509_csr(r.csr.read_bytes()).public_bytes(serialization.Encoding.DER)
    )
    at = bytes(der).index(b"grocery")
    der[at : at + 7] = b"grocerz"  # the subject, changed after the member signed it
    body = base64.encodebytes(bytes(der)).decode()
    r.csr.write_text(
        f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    )

    with pytest.raises(CryptoError, match="signature does not verify"):
        csr.sign_request(ca, r.csr, name="grocerz", role="party")

    assert pki.issued(ca) == []


def test_garbage_is_not_a_csr(tmp_path, ca):
    path = tmp_path / "x.csr"
    path.write_text("hello")

    with pytest.raises(InvalidArgument, match="not a PEM certificate signing request"):
        csr.sign_request(ca, path, name="grocery", role="party")


@pytest.mark.parametrize(("name", "role"), [("grocery", "analyst"), ("logistics", "party")])
def test_a_csr_for_another_name_or_role_than_confirmed_is_refused(tmp_path, ca, name, role):
    r = member_request(tmp_path)

    with pytest.raises(InvalidArgument, match="the request is for party 'grocery'"):
        csr.sign_request(ca, r.csr, name=name, role=role)

    assert pki.issued(ca) == []


def test_a_csr_asking_for_ca_powers_is_refused(tmp_path, ca):
    path = forged_csr(tmp_path / "ca.csr", bc=x509.BasicConstraints(ca=True, path_length=None))

    with pytest.raises(PermissionDenied, match="CA powers"):
        csr.sign_request(ca, path, name="grocery", role="party")


def test_a_csr_asking_to_sign_certificates_is_refused(tmp_path, ca):
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    path = forged_csr(tmp_path / "ku.csr", ku=usage)

    with pytest.raises(PermissionDenied, match="sign certificates"):
        csr.sign_request(ca, path, name="grocery", role="party")


def test_a_csr_naming_another_member_as_a_host_is_refused(tmp_path, ca):
    pki.issue(ca, "coordinator", "coordinator")
    r = csr.request("grocery", "party", tmp_path / "m", hosts=("coordinator",))

    with pytest.raises(PermissionDenied, match="identity of another member"):
        csr.sign_request(ca, r.csr, name="grocery", role="party")


def test_a_csr_signed_certificate_works_for_mutual_tls(tmp_path, ca):
    server = csr.request("coordinator", "coordinator", tmp_path / "coord")
    client = member_request(tmp_path)
    server_cert = csr.sign_request(ca, server.csr, name="coordinator", role="coordinator").cert
    client_cert = csr.sign_request(ca, client.csr, name="grocery", role="party").cert
    ca_cert = ca / pki.CA_CERT
    srv, port, _ = build_server(
        "127.0.0.1:0", pki.CertFiles(ca_cert, server_cert, server.key), lambda s: None, []
    )
    try:
        with secure_channel(
            f"127.0.0.1:{port}", pki.CertFiles(ca_cert, client_cert, client.key), "coordinator"
        ) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
    finally:
        srv.stop(0)

    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_certificate_from_another_ca_is_refused_by_the_handshake(tmp_path, ca):
    other = tmp_path / "other"
    pki.init_ca(other)
    server = pki.issue(ca, "coordinator", "coordinator")
    stranger = csr.request("grocery", "party", tmp_path / "m")
    stranger_cert = csr.sign_request(other, stranger.csr, name="grocery", role="party").cert
    srv, port, _ = build_server("127.0.0.1:0", server, lambda s: None, [])
    try:
        files = pki.CertFiles(ca / pki.CA_CERT, stranger_cert, stranger.key)
        with (
            secure_channel(f"127.0.0.1:{port}", files, "coordinator") as channel,
            pytest.raises(grpc.RpcError) as err,
        ):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        srv.stop(0)

    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cli_request_then_sign_prints_what_was_signed(tmp_path, ca):
    runner = CliRunner()
    member = tmp_path / "member"

    asked = runner.invoke(
        cli, ["pki", "request", "grocery", "--role", "party", "--out", str(member)]
    )
    signed = runner.invoke(
        cli,
        ["pki", "sign", str(member / "grocery.csr"), "--ca", str(ca)]
        + ["--name", "grocery", "--role", "party"],
    )

    assert asked.exit_code == 0, asked.output
    assert "never leaves this machine" in asked.output
    assert signed.exit_code == 0, signed.output
    assert "signed party grocery" in signed.output
    assert (member / "grocery.crt").exists()


def test_cli_sign_without_confirmation_refuses_when_not_interactive(tmp_path, ca):
    r = member_request(tmp_path)

    result = CliRunner().invoke(cli, ["pki", "sign", str(r.csr), "--ca", str(ca)])

    assert isinstance(result.exception, InvalidArgument)
    assert "confirm with --name and --role" in result.exception.message
    assert pki.issued(ca) == []

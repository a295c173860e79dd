"""The consortium PKI: CA creation, issuing, identities, membership checks."""

from __future__ import annotations

import datetime as dt

import pytest

from ensnif_mpc.errors import CryptoError, InvalidArgument
from ensnif_mpc.security import pki


def test_verify_member_accepts_a_ca_issued_cert_with_the_right_role(consortium):
    ident = pki.verify_member(consortium.alice.cert.read_bytes(), consortium.ca_pem, "analyst")

    assert ident == pki.Identity(name="alice", role="analyst")


def test_verify_member_without_role_accepts_any_role(consortium):
    ident = pki.verify_member(consortium.grocery.cert.read_text(), consortium.ca_pem)

    assert ident.role == "party"


def test_verify_member_refuses_another_cas_cert(consortium, foreign_consortium):
    cert = foreign_consortium.alice.cert.read_bytes()

    with pytest.raises(CryptoError, match="not issued by the consortium CA"):
        pki.verify_member(cert, consortium.ca_pem, "analyst")


def test_verify_member_refuses_an_expired_cert(tmp_path):
    pki.init_ca(tmp_path)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    files = pki.issue(tmp_path, "old", "analyst", not_before=long_ago, days=1)

    with pytest.raises(CryptoError, match="expired or not yet valid"):
        pki.verify_member(files.cert.read_bytes(), files.ca.read_bytes(), "analyst")


def test_verify_member_refuses_a_not_yet_valid_cert(tmp_path):
    pki.init_ca(tmp_path)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    files = pki.issue(tmp_path, "early", "analyst", not_before=soon)

    with pytest.raises(CryptoError, match="expired or not yet valid"):
        pki.verify_member(files.cert.read_bytes(), files.ca.read_bytes(), "analyst")


def test_verify_member_refuses_the_wrong_role(consortium):
    with pytest.raises(CryptoError, match="has role 'party', not 'analyst'"):
        pki.verify_member(consortium.grocery.cert.read_bytes(), consortium.ca_pem, "analyst")


def test_verify_member_refuses_the_ca_certificate_itself(consortium):
    with pytest.raises(CryptoError):
        pki.verify_member(consortium.ca_pem, consortium.ca_pem, "analyst")


def test_verify_member_refuses_garbage():
    with pytest.raises(CryptoError, match="not a PEM certificate"):
        pki.verify_member(b"garbage", b"also garbage")


def test_init_ca_refuses_to_overwrite_an_existing_ca(tmp_path):
    pki.init_ca(tmp_path)
    before = (tmp_path / pki.CA_KEY).read_bytes()

    with pytest.raises(InvalidArgument, match="refusing to overwrite"):
        pki.init_ca(tmp_path)

    assert (tmp_path / pki.CA_KEY).read_bytes() == before


def test_init_ca_writes_the_key_readable_by_owner_only(tmp_path):
    pki.init_ca(tmp_path)

    assert (tmp_path / pki.CA_KEY).stat().st_mode & 0o077 == 0


def test_issue_refuses_an_unknown_role(consortium):
    with pytest.raises(InvalidArgument, match="unknown role 'admin'"):
        pki.issue(consortium.directory, "mallory", "admin")


@pytest.mark.parametrize("name", ["two words", "", "a/b", "ünïcode-ok?"])
def test_issue_refuses_a_bad_name(consortium, name):
    with pytest.raises(InvalidArgument, match="invalid name"):
        pki.issue(consortium.directory, name, "party")


def test_issue_writes_cert_and_key_to_out_dir(consortium, tmp_path):
    files = pki.issue(consortium.directory, "carol", "analyst", out_dir=tmp_path)

    assert files.cert == tmp_path / "carol.crt"
    assert files.key == tmp_path / "carol.key"
    assert files.key.stat().st_mode & 0o077 == 0
    assert not (consortium.directory / "carol.crt").exists()


def test_identity_of_returns_name_and_role(consortium):
    cert = pki.load_cert(consortium.grocery.cert)

    assert pki.identity_of(cert) == pki.Identity(name="grocery", role="party")


def test_identity_of_refuses_a_cert_without_role(consortium):
    ca = pki.parse_cert(consortium.ca_pem)

    with pytest.raises(CryptoError, match="lacks a common name or a role"):
        pki.identity_of(ca)


def test_signature_verifies_with_the_signers_cert(consortium):
    signature = pki.sign(consortium.grocery.key.read_bytes(), b"message")

    pki.verify_signature(consortium.grocery.cert.read_text(), b"message", signature)


def test_signature_does_not_verify_with_another_cert(consortium):
    signature = pki.sign(consortium.grocery.key.read_bytes(), b"message")

    with pytest.raises(CryptoError, match="does not verify"):
        pki.verify_signature(consortium.helper.cert.read_text(), b"message", signature)


def test_signature_does_not_verify_for_another_message(consortium):
    signature = pki.sign(consortium.grocery.key.read_bytes(), b"message")

    with pytest.raises(CryptoError):
        pki.verify_signature(consortium.grocery.cert.read_text(), b"massage", signature)

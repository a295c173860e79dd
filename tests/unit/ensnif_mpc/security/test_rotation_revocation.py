"""Certificate lifetimes, rotation, revocation lists, and re-reading rotated TLS files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ensnif_mpc.cli.main import cli, main
from ensnif_mpc.errors import CryptoError, InvalidArgument, InvalidConfig
from ensnif_mpc.security import mpc_session, pki, revocation
from ensnif_mpc.security.tls import ClientIdentity, ServerCertificates


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    pki.init_ca(tmp_path / "pki")
    return tmp_path / "pki"


def days_valid(path: Path) -> float:
    cert = pki.load_cert(path)
    return (cert.not_valid_after_utc - cert.not_valid_before_utc) / dt.timedelta(days=1)


# -- lifetimes and rotation ------------------------------------------------------------


def test_members_are_short_lived_and_the_ca_long_lived(ca: Path) -> None:
    files = pki.issue(ca, "grocery", "party")

    assert days_valid(files.cert) == pki.MEMBER_DAYS == 90
    assert days_valid(ca / pki.CA_CERT) > 3000


def test_rotate_gives_a_new_key_with_the_same_identity_and_hosts(ca: Path) -> None:
    old = pki.issue(ca, "grocery", "party", hosts=("grocery.example", "10.0.0.7"))
    old_cert, old_key = old.cert.read_bytes(), old.key.read_bytes()

    r = pki.rotate(ca, "grocery", days=30)

    new = pki.load_cert(r.files.cert)
    assert pki.identity_of(new) == pki.Identity("grocery", "party")
    assert r.files.key.read_bytes() != old_key and new.serial_number == r.new_serial
    assert pki._hosts_of(new, "grocery") == ("grocery.example", "10.0.0.7")  # noqa: SLF001
    assert days_valid(r.files.cert) == 30
    assert r.backup_cert.read_bytes() == old_cert
    assert r.backup_key is not None and r.backup_key.read_bytes() == old_key
    assert r.backup_key.stat().st_mode & 0o777 == 0o600
    pki.verify_member(r.files.cert.read_bytes(), (ca / pki.CA_CERT).read_bytes(), "party")


def test_rotate_refuses_a_member_without_a_certificate(ca: Path) -> None:
    with pytest.raises(InvalidArgument, match="pki issue nobody"):
        pki.rotate(ca, "nobody")


def test_rotate_refuses_a_certificate_of_another_ca(ca: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init_ca(other)
    pki.issue(other, "grocery", "party", out_dir=tmp_path / "member")

    with pytest.raises(InvalidArgument, match="not issued by the CA"):
        pki.rotate(ca, "grocery", out_dir=tmp_path / "member")


# -- revocation -------------------------------------------------------------------------


def test_revoke_by_name_lists_every_unexpired_certificate_of_the_member(ca: Path) -> None:
    first = pki.load_cert(pki.issue(ca, "alice", "analyst").cert).serial_number
    second = pki.rotate(ca, "alice").new_serial
    bob = pki.load_cert(pki.issue(ca, "bob", "analyst").cert).serial_number

    path, revoked = pki.revoke(ca, name="alice", reason="key_compromise")

    crl = revocation.load_crl(path.read_bytes(), pki.load_cert(ca / pki.CA_CERT))
    listed = {e.serial: e.reason for e in revocation.entries(crl)}
    assert set(revoked) == {first, second} == set(listed)
    assert bob not in listed and set(listed.values()) == {"key_compromise"}


def test_revoking_again_keeps_earlier_entries_and_raises_the_crl_number(ca: Path) -> None:
    a = pki.load_cert(pki.issue(ca, "alice", "analyst").cert).serial_number
    b = pki.load_cert(pki.issue(ca, "bob", "analyst").cert).serial_number
    path, _ = pki.revoke(ca, serials=(a,))
    first = revocation.load_crl(path.read_bytes(), pki.load_cert(ca / pki.CA_CERT))

    pki.revoke(ca, serials=(b,))

    second = revocation.load_crl(path.read_bytes(), pki.load_cert(ca / pki.CA_CERT))
    assert {e.serial for e in revocation.entries(second)} == {a, b}
    assert revocation.crl_number(second) == revocation.crl_number(first) + 1


def test_revoke_refuses_an_unknown_member(ca: Path) -> None:
    with pytest.raises(InvalidArgument, match="no certificate of 'nobody'"):
        pki.revoke(ca, name="nobody")


def test_verify_member_refuses_a_revoked_certificate(ca: Path) -> None:
    alice = pki.issue(ca, "alice", "analyst")
    revocation.watch(ca / pki.CA_CERT, ca / revocation.CRL_FILE)
    ca_pem = (ca / pki.CA_CERT).read_bytes()
    pki.verify_member(alice.cert.read_bytes(), ca_pem, "analyst")

    pki.revoke(ca, name="alice")

    with pytest.raises(CryptoError) as info:
        pki.verify_member(alice.cert.read_bytes(), ca_pem, "analyst")
    assert info.value.reason == "certificate_revoked"


def test_a_revoked_members_mpc_binding_is_refused(ca: Path) -> None:
    node = pki.issue(ca, "bakery", "party")
    revocation.watch(ca / pki.CA_CERT, ca / revocation.CRL_FILE)
    cred = mpc_session.mint("job1", 1, node.key.read_bytes())
    peer = mpc_session.PeerBinding(
        1, "bakery", "127.0.0.1:1", cred.cert_pem, cred.binding_signature, node.cert.read_text()
    )
    ca_pem = (ca / pki.CA_CERT).read_bytes()
    mpc_session.verify_peer("job1", peer, ca_pem)  # accepted before

    pki.revoke(ca, name="bakery")

    with pytest.raises(CryptoError) as info:
        mpc_session.verify_peer("job1", peer, ca_pem)
    assert info.value.reason == "certificate_revoked"


def test_revocation_list_refuses_a_crl_from_another_ca(ca: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init_ca(other)
    pki.revoke(other, serials=(12345,))
    shutil.copy(other / revocation.CRL_FILE, ca / revocation.CRL_FILE)

    with pytest.raises(InvalidConfig, match="signature does not verify"):
        revocation.RevocationList(ca / pki.CA_CERT, ca / revocation.CRL_FILE).load()


def test_revocation_list_keeps_the_newer_list_when_an_older_one_is_put_back(ca: Path) -> None:
    alice = pki.issue(ca, "alice", "analyst")
    crl = ca / revocation.CRL_FILE
    pki.revoke(ca, serials=(999,))
    older = crl.read_bytes()
    pki.revoke(ca, name="alice")
    rl = revocation.RevocationList(ca / pki.CA_CERT, crl)
    rl.load()
    cert = pki.load_cert(alice.cert)
    assert rl.revoked(cert)

    crl.write_bytes(older)  # replay: valid signature, lower CRL number

    assert rl.revoked(cert)


def test_revocation_list_reloads_when_the_file_changes_and_a_missing_file_revokes_nothing(
    ca: Path,
) -> None:
    alice = pki.load_cert(pki.issue(ca, "alice", "analyst").cert)
    rl = revocation.RevocationList(ca / pki.CA_CERT, ca / revocation.CRL_FILE)
    rl.load()
    assert not rl.revoked(alice)

    pki.revoke(ca, name="alice")
    assert rl.revoked(alice)

    (ca / revocation.CRL_FILE).unlink()
    assert not rl.revoked(alice)


# -- re-reading rotated files -----------------------------------------------------------


def test_client_identity_picks_up_a_rotated_pair(ca: Path) -> None:
    files = pki.issue(ca, "grocery", "party")
    identity = ClientIdentity(files)
    assert not identity.refresh()

    r = pki.rotate(ca, "grocery")

    assert identity.refresh()
    assert identity.material.serial == r.new_serial
    assert identity.material.key == r.files.key.read_bytes()


def test_a_half_copied_pair_is_not_used_until_it_matches(ca: Path, tmp_path: Path) -> None:
    files = pki.issue(ca, "grocery", "party")
    fetch = ServerCertificates(files)
    before = fetch.material.serial
    other = pki.issue(ca, "grocery", "party", out_dir=tmp_path / "next")

    shutil.copy(other.cert, files.cert)  # the certificate is new, the key still the old one
    assert fetch() is None and fetch.material.serial == before

    shutil.copy(other.key, files.key)
    assert fetch() is not None
    assert fetch.material.serial == pki.load_cert(other.cert).serial_number


def test_a_certificate_for_another_identity_is_not_adopted(ca: Path) -> None:
    files = pki.issue(ca, "grocery", "party")
    identity = ClientIdentity(files)
    mallory = pki.issue(ca, "mallory", "party")

    shutil.copy(mallory.cert, files.cert)
    shutil.copy(mallory.key, files.key)

    assert not identity.refresh()
    assert identity.material.identity == pki.Identity("grocery", "party")


def test_the_crl_path_defaults_to_next_to_the_ca(ca: Path, tmp_path: Path) -> None:
    files = pki.issue(ca, "grocery", "party")

    assert files.crl_path == ca / "ca.crl"
    assert dataclasses.replace(files, crl=tmp_path / "x.crl").crl_path == tmp_path / "x.crl"


# -- the CLI ------------------------------------------------------------------------------


def test_cli_rotate_revoke_and_list(ca: Path) -> None:
    runner = CliRunner()
    d = str(ca)
    issued = runner.invoke(cli, ["pki", "issue", "alice", "--role", "analyst", "--dir", d])
    assert issued.exit_code == 0, issued.output
    assert "valid until" in issued.output

    rotated = runner.invoke(cli, ["pki", "rotate", "alice", "--dir", d, "--json"])
    assert rotated.exit_code == 0, rotated.output
    r = json.loads(rotated.output)
    assert r["old_serial"] != r["serial"] and Path(r["backup_key"]).exists()

    revoked = runner.invoke(cli, ["pki", "revoke", "--serial", r["old_serial"], "--dir", d])
    assert revoked.exit_code == 0, revoked.output

    listed = runner.invoke(cli, ["pki", "list", "--dir", d, "--json"])
    status = {row["serial"]: row["status"] for row in json.loads(listed.output)}
    assert status == {r["old_serial"]: "revoked", r["serial"]: "valid"}


def test_cli_revoke_without_a_target_exits_with_invalid_argument(
    ca: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pki", "revoke", "--dir", str(ca)])

    assert exited.value.code == 2
    assert "nothing to revoke" in capsys.readouterr().err

"""Per-job MPyC TLS material: minting, peer binding verification, the .config directory."""

from __future__ import annotations

import pytest
from cryptography.x509.oid import NameOID

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.mpc_session import PeerBinding, mint, verify_peer, write_config
from ensnif_mpc.security.pki import parse_cert

JOB = "job-1"


def _binding(cred, index, party, party_cert_pem) -> PeerBinding:
    return PeerBinding(
        index=index,
        party=party,
        mpc_address=f"127.0.0.1:{41000 + index}",
        mpc_cert_pem=cred.cert_pem,
        binding_signature=cred.binding_signature,
        party_cert_pem=party_cert_pem,
    )


def test_mint_produces_a_cert_named_after_the_party_index(consortium):
    cred = mint(JOB, 2, consortium.grocery.key.read_bytes())

    cn = parse_cert(cred.cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["MPyC party 2"]


def test_mint_gives_a_fresh_key_each_time(consortium):
    key = consortium.grocery.key.read_bytes()

    assert mint(JOB, 0, key).key_pem != mint(JOB, 0, key).key_pem


def test_verify_peer_accepts_a_correct_binding(consortium):
    cred = mint(JOB, 0, consortium.grocery.key.read_bytes())
    peer = _binding(cred, 0, "grocery", consortium.grocery.cert.read_text())

    verify_peer(JOB, peer, consortium.ca_pem)  # does not raise


def test_verify_peer_refuses_a_binding_signed_by_another_partys_key(consortium):
    cred = mint(JOB, 0, consortium.helper.key.read_bytes())
    peer = _binding(cred, 0, "grocery", consortium.grocery.cert.read_text())

    with pytest.raises(CryptoError, match="MPC binding of 'grocery' does not verify"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_verify_peer_refuses_a_binding_for_another_job(consortium):
    cred = mint("job-0", 0, consortium.grocery.key.read_bytes())
    peer = _binding(cred, 0, "grocery", consortium.grocery.cert.read_text())

    with pytest.raises(CryptoError, match="does not verify"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_verify_peer_refuses_a_cert_minted_for_another_index(consortium):
    cred = mint(JOB, 1, consortium.grocery.key.read_bytes())
    peer = _binding(cred, 0, "grocery", consortium.grocery.cert.read_text())

    with pytest.raises(CryptoError, match="not for party index 0"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_verify_peer_refuses_a_party_cert_from_a_foreign_ca(consortium, foreign_consortium):
    cred = mint(JOB, 0, foreign_consortium.grocery.key.read_bytes())
    peer = _binding(cred, 0, "grocery", foreign_consortium.grocery.cert.read_text())

    with pytest.raises(CryptoError, match="not issued by the consortium CA"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_verify_peer_refuses_a_cert_of_another_party(consortium):
    cred = mint(JOB, 0, consortium.helper.key.read_bytes())
    peer = _binding(cred, 0, "grocery", consortium.helper.cert.read_text())

    with pytest.raises(CryptoError, match="certificate of 'helper', not of 'grocery'"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_verify_peer_refuses_a_non_party_cert(consortium):
    cred = mint(JOB, 0, consortium.alice.key.read_bytes())
    peer = _binding(cred, 0, "alice", consortium.alice.cert.read_text())

    with pytest.raises(CryptoError, match="role 'analyst'"):
        verify_peer(JOB, peer, consortium.ca_pem)


def test_write_config_writes_own_cert_key_and_all_peer_certs(consortium, tmp_path):
    creds = [mint(JOB, i, consortium.grocery.key.read_bytes()) for i in range(3)]
    peers = [
        _binding(c, i, "grocery", consortium.grocery.cert.read_text()) for i, c in enumerate(creds)
    ]

    write_config(tmp_path, 1, creds[1], peers)

    cfg = tmp_path / ".config"
    assert (cfg / "party_1.crt").read_text() == creds[1].cert_pem
    assert (cfg / "party_1.key").read_text() == creds[1].key_pem
    trust = (cfg / "mpyc_ca.crt").read_text()
    assert all(c.cert_pem in trust for c in creds)
    assert trust.count("BEGIN CERTIFICATE") == 3


def test_write_config_keeps_the_key_private(consortium, tmp_path):
    cred = mint(JOB, 0, consortium.grocery.key.read_bytes())

    write_config(tmp_path, 0, cred, [])

    assert (tmp_path / ".config" / "party_0.key").stat().st_mode & 0o077 == 0


def test_binding_message_depends_on_job_and_index(consortium):
    cred = mint(JOB, 0, consortium.grocery.key.read_bytes())

    messages = {
        mpc_session.binding_message(JOB, 0, cred.cert_pem),
        mpc_session.binding_message("job-2", 0, cred.cert_pem),
        mpc_session.binding_message(JOB, 1, cred.cert_pem),
    }

    assert len(messages) == 3

"""Sealing a result to an analyst's certificate key, bound to the job id."""

from __future__ import annotations

import pytest

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.security.sealing import seal, unseal

PLAINTEXT = b'{"job_id": "job-1", "x": 1}'
JOB = b"job-1"


def test_seal_then_unseal_returns_the_plaintext(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    assert unseal(consortium.alice.key.read_bytes(), blob, JOB) == PLAINTEXT


def test_seal_accepts_the_certificate_as_bytes(consortium):
    blob = seal(consortium.alice.cert.read_bytes(), PLAINTEXT, JOB)

    assert unseal(consortium.alice.key.read_bytes(), blob, JOB) == PLAINTEXT


def test_sealed_blob_does_not_contain_the_plaintext(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    assert PLAINTEXT not in blob


def test_sealing_twice_gives_different_blobs(consortium):
    cert = consortium.alice.cert.read_text()

    assert seal(cert, PLAINTEXT, JOB) != seal(cert, PLAINTEXT, JOB)


def test_unseal_with_another_key_fails(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    with pytest.raises(CryptoError, match="another key or was altered"):
        unseal(consortium.bob.key.read_bytes(), blob, JOB)


def test_unseal_with_another_job_id_fails(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    with pytest.raises(CryptoError):
        unseal(consortium.alice.key.read_bytes(), blob, b"job-2")


@pytest.mark.parametrize("position", [1, 70, 80, -1], ids=["point", "nonce", "body", "tag"])
def test_unseal_of_a_tampered_blob_fails(consortium, position):
    blob = bytearray(seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB))
    blob[position] ^= 0x01

    with pytest.raises(CryptoError):
        unseal(consortium.alice.key.read_bytes(), bytes(blob), JOB)


def test_unseal_of_a_truncated_blob_fails(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    with pytest.raises(CryptoError, match="not a sealed"):
        unseal(consortium.alice.key.read_bytes(), blob[:40], JOB)


def test_unseal_of_an_unknown_version_fails(consortium):
    blob = seal(consortium.alice.cert.read_text(), PLAINTEXT, JOB)

    with pytest.raises(CryptoError, match="not a sealed"):
        unseal(consortium.alice.key.read_bytes(), b"\x02" + blob[1:], JOB)


def test_seal_refuses_something_that_is_not_a_certificate():
    with pytest.raises(CryptoError, match="not a PEM certificate"):
        seal("hello", PLAINTEXT, JOB)

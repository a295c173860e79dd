"""Signed delivery of result shares: the analyst can tell a node's share from a forged one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.results import delivery
from ensnif_mpc.security import pki


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    pki.init_ca(tmp_path)
    for name in ("grocery", "helper"):
        pki.issue(tmp_path, name, "party")
    pki.issue(tmp_path, "coordinator", "coordinator")
    return tmp_path


def _material(ca: Path, name: str) -> tuple[bytes, str]:
    return (ca / f"{name}.key").read_bytes(), (ca / f"{name}.crt").read_text()


def test_share_signed_by_its_party_verifies(ca: Path) -> None:
    key, cert = _material(ca, "grocery")
    sig = delivery.sign_share(key, "job1", "grocery", b"blob")

    delivery.verify_share((ca / "ca.crt").read_bytes(), "job1", "grocery", b"blob", sig, cert)


@pytest.mark.parametrize(
    ("job", "party", "blob"),
    [("job2", "grocery", b"blob"), ("job1", "grocery", b"other"), ("job1", "helper", b"blob")],
    ids=["other-job", "altered-blob", "relabelled"],
)
def test_altered_share_is_refused(ca: Path, job: str, party: str, blob: bytes) -> None:
    key, _ = _material(ca, "grocery")
    sig = delivery.sign_share(key, "job1", "grocery", b"blob")
    cert = (ca / f"{party}.crt").read_text()

    with pytest.raises(CryptoError):
        delivery.verify_share((ca / "ca.crt").read_bytes(), job, party, blob, sig, cert)


def test_share_signed_by_the_coordinator_is_refused(ca: Path) -> None:
    key, cert = _material(ca, "coordinator")
    sig = delivery.sign_share(key, "job1", "grocery", b"blob")

    with pytest.raises(CryptoError, match="role"):
        delivery.verify_share((ca / "ca.crt").read_bytes(), "job1", "grocery", b"blob", sig, cert)


def test_certificate_of_another_party_is_refused(ca: Path) -> None:
    key, cert = _material(ca, "helper")
    sig = delivery.sign_share(key, "job1", "grocery", b"blob")

    with pytest.raises(CryptoError, match="certificate of 'helper'"):
        delivery.verify_share((ca / "ca.crt").read_bytes(), "job1", "grocery", b"blob", sig, cert)

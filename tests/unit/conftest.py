"""Shared fixtures for unit tests: one consortium PKI per test session (EC keys, fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ensnif_mpc.security import pki


@dataclass(frozen=True)
class Consortium:
    """A CA directory with certificates for a coordinator, two parties and two analysts."""

    directory: Path
    coordinator: pki.CertFiles
    grocery: pki.CertFiles
    helper: pki.CertFiles
    alice: pki.CertFiles
    bob: pki.CertFiles

    @property
    def ca_pem(self) -> bytes:
        return (self.directory / pki.CA_CERT).read_bytes()


@pytest.fixture(scope="session")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    directory = tmp_path_factory.mktemp("pki")
    pki.init_ca(directory)
    return Consortium(
        directory=directory,
        coordinator=pki.issue(directory, "coordinator", "coordinator"),
        grocery=pki.issue(directory, "grocery", "party"),
        helper=pki.issue(directory, "helper", "party"),
        alice=pki.issue(directory, "alice", "analyst"),
        bob=pki.issue(directory, "bob", "analyst"),
    )


@pytest.fixture(scope="session")
def foreign_consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """Another CA with the same default name, issuing the same member names."""
    directory = tmp_path_factory.mktemp("foreign_pki")
    pki.init_ca(directory)
    return Consortium(
        directory=directory,
        coordinator=pki.issue(directory, "coordinator", "coordinator"),
        grocery=pki.issue(directory, "grocery", "party"),
        helper=pki.issue(directory, "helper", "party"),
        alice=pki.issue(directory, "alice", "analyst"),
        bob=pki.issue(directory, "bob", "analyst"),
    )

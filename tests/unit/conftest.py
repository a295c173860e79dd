"""Shared fixtures for unit tests: one consortium PKI per test session (EC keys, fast).

Here ``consortium`` is certificates only; the running consortium of the integration and
end-to-end tests is tests/consortium.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ensnif_mpc.security import pki
from tests.helpers import issue_pki

MEMBERS = {
    "coordinator": "coordinator",
    "grocery": "party",
    "helper": "party",
    "alice": "analyst",
    "bob": "analyst",
}


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

    @classmethod
    def issue(cls, directory: Path) -> Consortium:
        return cls(directory=directory, **issue_pki(directory, MEMBERS))


@pytest.fixture(scope="session")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return Consortium.issue(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def foreign_consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """Another CA with the same default name, issuing the same member names."""
    return Consortium.issue(tmp_path_factory.mktemp("foreign_pki"))

"""Fixtures for the deploy/ tests: the repository's deploy folder, a throwaway PKI, and
configs rewritten to point at it. No container engine and no cluster are used: these
tests validate the files (schemas, renderers, verifiers) and run the health probe
against a real mTLS gRPC server on 127.0.0.1."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ensnif_mpc.security import pki

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "ensnif"
MEMBERS = ("grocery", "logistics", "helper")


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consortium CA with the coordinator and the three members, as docs/deploy.md makes it."""
    directory = tmp_path_factory.mktemp("pki")
    pki.init_ca(directory)
    for name, role in (("coordinator", "coordinator"), *((m, "party") for m in MEMBERS)):
        pki.issue(directory, name, role, out_dir=directory / name)
    return directory


def with_tls(text: str, ca_dir: Path, name: str) -> str:
    """A config's text with its [tls] table pointed at ``ca_dir``'s files for ``name``."""
    tls = (
        f'[tls]\nca = "{ca_dir / "ca.crt"}"\n'
        f'cert = "{ca_dir / name / (name + ".crt")}"\nkey = "{ca_dir / name / (name + ".key")}"\n'
    )
    out, n = re.subn(r"(?ms)^\[tls\][^\n]*\n(?:(?:ca|cert|key) = [^\n]*\n)+", tls, text)
    assert n == 1, "the config has exactly one [tls] table with ca, cert and key"
    return out


def load_toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())

"""`ensnif outsource keygen | encrypt | verify` as a member without a node runs them (the real
CLI in a subprocess, a real profile with the owner's consortium certificate), and the
search for the owner's secret key in everything else an outsourced job touches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.he import bfv
from tests.helpers import issue_pki
from tests.protocols.he_outsourced_run import run

pytestmark = pytest.mark.slow

SCHEMA = """
[[columns]]
name = "amount"
type = "float"
lower = 0
upper = 1000
decimals = 2
bins = [0, 100, 500, 1000]

[policy]
max_rho = 0.5
exact_protocols = ["sum"]
"""


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["ENSNIF_PROFILE"] = str(tmp / "profile.toml")
    return subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[4],
    )


@pytest.fixture
def owner(tmp_path: Path) -> Path:
    certs = issue_pki(tmp_path / "pki", {"cityoffice": "analyst"})
    (tmp_path / "profile.toml").write_text(
        f'coordinator = "127.0.0.1:1"\n[tls]\nca = "{certs["cityoffice"].ca}"\n'
        f'cert = "{certs["cityoffice"].cert}"\nkey = "{certs["cityoffice"].key}"\n'
    )
    (tmp_path / "schema.toml").write_text(SCHEMA)
    rng = np.random.default_rng(3)
    amounts = rng.integers(0, 100_000, size=9000, endpoint=True) / 100
    (tmp_path / "payments.csv").write_text(
        "amount\n" + "\n".join(f"{a:.2f}" for a in amounts) + "\n"
    )
    return tmp_path


def test_keygen_encrypt_verify_from_the_cli_and_a_tampered_file_is_refused(owner):
    keygen = _cli(owner, "outsource", "keygen", "--key", str(owner / "key"), "--json")
    assert keygen.returncode == 0, keygen.stderr
    enc = _cli(
        owner,
        *("outsource", "encrypt", "--dataset", str(owner / "payments.csv")),
        *("--name", "payments", "--schema", str(owner / "schema.toml")),
        *("--key", str(owner / "key"), "--out", str(owner / "upload"), "--json"),
    )
    assert enc.returncode == 0, enc.stderr
    summary = json.loads(enc.stdout)
    # 9000 rows: two ciphertexts per series; the value, and per bin a count and a sum
    assert (summary["rows"], summary["series"], summary["ciphertexts"]) == (9000, 7, 14)
    assert summary["owner"] == "cityoffice"

    ca = str(owner / "pki" / "ca.crt")
    ok = _cli(owner, "outsource", "verify", "--dir", str(owner / "upload"), "--ca", ca, "--json")
    assert (
        ok.returncode == 0
        and json.loads(ok.stdout)["manifest_sha256"] == (summary["manifest_sha256"])
    )

    target = owner / "upload" / "ct" / "amount@binsum1" / "1.bin"
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 0x40
    target.write_bytes(bytes(blob))
    bad = _cli(owner, "outsource", "verify", "--dir", str(owner / "upload"), "--ca", ca)
    assert bad.returncode == 4  # PERMISSION_DENIED
    assert "he_ciphertext_tampered" in bad.stderr


def _windows(data: bytes, size: int = 48, count: int = 6) -> list[bytes]:
    step = (len(data) - size) // (count + 1)
    return [data[step * (i + 1) : step * (i + 1) + size] for i in range(count)]


def test_the_secret_key_is_nowhere_but_in_the_owners_key_directory(tmp_path):
    rng = np.random.default_rng(11)
    values = rng.integers(0, 100_000, size=5000, endpoint=True) / 100
    run(tmp_path, values[:1000], values[1000:], (0.0, 500.0, 1000.0))  # a whole job

    key = bfv.load_key(tmp_path / "owner-key")
    saved = tmp_path / "sk.bin"
    key.context.secret_key().data.save(str(saved))  # SEAL's own bytes of the secret key
    needles = _windows(saved.read_bytes())
    saved.unlink()
    secret_file = (tmp_path / "owner-key" / "secret.ctx").read_bytes()
    assert all(n in secret_file for n in needles)  # the search would find a copy
    haystack = [
        p for p in tmp_path.rglob("*") if p.is_file() and (tmp_path / "owner-key") not in p.parents
    ]
    # the helper's stored dataset, the probe's job directory (batch, sealed shares, logs)
    assert any(p.suffix == ".bin" for p in haystack) and any(p.suffix == ".out" for p in haystack)
    found = [p for p in haystack if any(n in p.read_bytes() for n in needles)]
    assert found == []

"""A member without a node and a real helper node (its production start(), mTLS), through the
real CLI: `ensnif outsource keygen | encrypt | verify | upload | list | serve`. The node
stores and lists an upload and refuses a tampered one and one sent by another member; a
job's conversion goes through the node to the owner's `serve` and back, and equals numpy;
a job the owner does not allow is refused; the owner's secret key is found nowhere else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.config import PartyConfig
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.he import bfv
from ensnif_mpc.security import pki
from party_node import server as node_server
from tests.protocols.he_outsourced_run import partials, run

pytestmark = pytest.mark.slow
EDGES = (0.0, 250.0, 500.0, 1000.0)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = """
[[columns]]
name = "amount"
type = "float"
lower = 0
upper = 1000
decimals = 2
bins = [0, 250, 1000]

[policy]
exact_protocols = ["sum"]
"""


def _profile(root: Path, lc: LocalConsortium, name: str) -> Path:
    files = pki.issue(lc.pki_dir, name, "analyst")
    path = root / f"{name}-profile.toml"
    path.write_text(
        f'coordinator = "127.0.0.1:1"\n[tls]\nca = "{files.ca}"\n'
        f'cert = "{files.cert}"\nkey = "{files.key}"\n'
    )
    return path


def _cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["ENSNIF_PROFILE"] = str(profile)
    return subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("outsource")
    lc = LocalConsortium(root / "net", rows=50).setup()
    running = node_server.start(PartyConfig.load(lc.root / "party-helper.toml"))
    try:
        yield root, lc, running
    finally:
        running.stop(grace=0.5)


def _encrypt(root: Path, profile: Path, name: str) -> Path:
    (root / "schema.toml").write_text(SCHEMA)
    rng = np.random.default_rng(5)
    values = rng.integers(0, 100_000, size=9000, endpoint=True) / 100
    (root / "payments.csv").write_text("amount\n" + "\n".join(f"{v:.2f}" for v in values) + "\n")
    assert _cli(profile, "outsource", "keygen", "--key", str(root / f"{name}-key")).returncode == 0
    out = root / f"{name}-upload"
    enc = _cli(
        profile,
        *("outsource", "encrypt", "--dataset", str(root / "payments.csv"), "--name", "payments"),
        *("--schema", str(root / "schema.toml"), "--key", str(root / f"{name}-key")),
        *("--out", str(out)),
    )
    assert enc.returncode == 0, enc.stderr
    return out


@pytest.fixture(scope="module")
def encrypted(helper):
    """smallshop's profile and the directory `ensnif outsource encrypt` wrote for it."""
    root, lc, _ = helper
    owner = _profile(root, lc, "smallshop")
    return owner, _encrypt(root, owner, "smallshop")


def test_the_owner_uploads_and_the_helper_stores_and_lists_it(helper, encrypted):
    _, _, running = helper
    owner, upload = encrypted
    node = f"127.0.0.1:{running.port}"

    sent = _cli(
        owner, "outsource", "upload", "--dir", str(upload), "--node", node,
        "--node-name", "helper", "--json",
    )  # fmt: skip

    assert sent.returncode == 0, sent.stderr
    stored = json.loads(sent.stdout)
    assert (stored["owner"], stored["dataset"], stored["rows"]) == ("smallshop", "payments", 9000)
    assert stored["ciphertexts"] == 2 * 5 and stored["policy"] == {"exact_protocols": ["sum"]}
    on_disk = running.node.cfg.state_dir / "outsourced" / "smallshop" / "payments"
    assert (on_disk / "sums.json").is_file()  # accepted, and its sums precomputed
    listed = _cli(owner, "outsource", "list", "--node", node, "--node-name", "helper", "--json")
    assert stored["manifest_sha256"] in [d["manifest_sha256"] for d in json.loads(listed.stdout)]


def test_a_tampered_upload_and_another_members_upload_are_refused(helper, encrypted):
    root, lc, running = helper
    owner, upload = encrypted
    node = f"127.0.0.1:{running.port}"
    tampered = root / "tampered"
    shutil.copytree(upload, tampered)
    target = tampered / "ct" / "amount" / "1.bin"
    blob = bytearray(target.read_bytes())
    blob[7000] ^= 1
    target.write_bytes(bytes(blob))
    held = running.node.cfg.state_dir / "outsourced" / "smallshop"
    before = sorted(p.read_bytes() for p in held.rglob("manifest.json"))

    checked = _cli(owner, "outsource", "verify", "--dir", str(tampered), "--ca",
                   str(lc.pki_dir / "ca.crt"))  # fmt: skip
    bad = _cli(owner, "outsource", "upload", "--dir", str(tampered), "--node", node,
               "--node-name", "helper")  # fmt: skip
    other = _profile(root, lc, "intruder")
    foreign = _cli(other, "outsource", "upload", "--dir", str(upload), "--node", node,
                   "--node-name", "helper")  # fmt: skip

    assert checked.returncode == 4 and "he_ciphertext_tampered" in checked.stderr
    assert bad.returncode == 4 and "he_ciphertext_tampered" in bad.stderr
    assert foreign.returncode == 4 and "permission_denied" in foreign.stderr
    assert sorted(p.read_bytes() for p in held.rglob("manifest.json")) == before


def _serve_once(
    profile: Path, node: str, key: Path, *allow: str
) -> subprocess.CompletedProcess[str]:
    flags = [a for p in allow for a in ("--allow-protocol", p)]
    return _cli(
        profile, "outsource", "serve", "--once", "--node", node, "--node-name", "helper",
        "--key", str(key), "--wait", "120", "--interval", "0.2", "--json", *flags,
    )  # fmt: skip


def _job_through_the_node(tmp_path, helper, allow: str, job_id: str, online: bool):
    """The helper's worker (the probe) leaves its request in the node's job directory; the
    owner's real `ensnif outsource serve --once` takes it from the node and answers."""
    root, lc, running = helper
    node = f"127.0.0.1:{running.port}"
    profile = root / "cityoffice-serve-profile.toml"
    work = tmp_path / "job"
    served: list[subprocess.CompletedProcess[str]] = []

    def upload(directory: Path) -> Path:
        profile.write_text(
            f'coordinator = "127.0.0.1:1"\n[tls]\nca = "{lc.pki_dir / "ca.crt"}"\n'
            f'cert = "{lc.pki_dir / "cityoffice.crt"}"\nkey = "{lc.pki_dir / "cityoffice.key"}"\n'
        )
        sent = _cli(profile, "outsource", "upload", "--dir", str(directory), "--node", node,
                    "--node-name", "helper")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        return running.node.cfg.state_dir / "outsourced" / "cityoffice" / "payments"

    rng = np.random.default_rng(21)
    live = rng.integers(0, 100_000, size=1_500, endpoint=True) / 100
    outsourced = rng.integers(0, 100_000, size=9_000, endpoint=True) / 100
    result = run(
        work, live, outsourced, EDGES, job_id=job_id, pki_dir=lc.pki_dir,
        job_dir=running.node.cfg.state_dir / "jobs" / job_id, dataset_dir=upload,
        owner=lambda: served.append(_serve_once(profile, node, work / "owner-key", allow)),
        owner_online=online,
    )  # fmt: skip
    return result, served[0], np.concatenate([live, outsourced])


@pytest.fixture(scope="module")
def served_job(helper, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("served")
    return work, *_job_through_the_node(work, helper, "sum", "job-serve-1", True)


def test_the_owners_serve_client_answers_a_job_through_the_helper_node(served_job):
    _, result, served, values = served_job

    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout.splitlines()[0])["approved"] is True
    assert result.totals == [int(v) for v in partials(values, EDGES)]


def _windows(data: bytes, size: int = 48, count: int = 6) -> list[bytes]:
    step = (len(data) - size) // (count + 1)
    return [data[step * (i + 1) : step * (i + 1) + size] for i in range(count)]


def test_the_secret_key_is_only_in_the_owners_key_directory_after_a_job(served_job, helper):
    """Searched: the helper node's whole state (its database, logs, stored dataset and
    precomputed sums, the job directory with the request, batch and sealed shares), the
    consortium's files, and the job's probe directory with every party's output."""
    work, *_ = served_job
    root, _, running = helper
    key_dir = work / "job" / "owner-key"
    saved = work / "sk.bin"
    bfv.load_key(key_dir).context.secret_key().data.save(str(saved))  # SEAL's own bytes
    needles = _windows(saved.read_bytes())
    saved.unlink()
    assert all(n in (key_dir / "secret.ctx").read_bytes() for n in needles)
    haystack = [
        p
        for base in (root, work, running.node.cfg.state_dir)
        for p in base.rglob("*")
        if p.is_file() and key_dir not in p.parents
    ]
    job_dir = running.node.cfg.state_dir / "jobs" / "job-serve-1" / "outsourced"
    assert {job_dir / "batch.bin", job_dir / "sealed.json"} <= set(haystack)
    assert [p for p in haystack if any(n in p.read_bytes() for n in needles)] == []


def test_a_job_the_owner_does_not_allow_is_refused_and_nothing_opens(tmp_path, helper):
    result, served, _ = _job_through_the_node(tmp_path, helper, "mean", "job-serve-2", False)

    answer = json.loads(served.stdout.splitlines()[0])
    assert answer["approved"] is False and "protocol 'sum'" in answer["refusal"]
    assert result.reason == "owner_refused" and result.totals == []

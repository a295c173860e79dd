"""``ensnif init``: the written configurations load with the real loaders.

Each member's flow, through the real CLI: ``init`` writes the commented file, ``pki
request`` makes the key and CSR at the member, the lead's ``pki sign`` returns the
certificate, and the file then loads with :mod:`ensnif_mpc.config` as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ensnif_mpc.config import ClientProfile, CoordinatorConfig, PartyConfig
from ensnif_mpc.demo import sample_data
from ensnif_mpc.demo.localnet import _free_range, free_port
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.sdk.client import Client
from ensnif_mpc.security import csr, pki
from tests.helpers import wait_for


def ensnif(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    return subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def enrol(member: Path, ca: Path, name: str, role: str) -> None:
    """The member's request, the lead's signature, the certificate and ca.crt sent back."""
    asked = ensnif("pki", "request", name, "--role", role, "--out", "pki", cwd=member)
    assert asked.returncode == 0, asked.stderr
    signed = ensnif(
        "pki", "sign", str(member / "pki" / f"{name}.csr"), "--ca", str(ca),
        "--name", name, "--role", role, cwd=ca,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    shutil.copy(ca / pki.CA_CERT, member / "pki" / pki.CA_CERT)


def uncomment_example_dataset(path: Path) -> None:
    """Remove the "# " of the example dataset's lines (between the two markers)."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("# --- "):
            inside = not inside
            continue
        lines.append((line[2:] if line.startswith("# ") else line.lstrip("#")) if inside else line)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    directory = tmp_path / "lead"
    pki.init_ca(directory)
    return directory


def test_init_coordinator_loads_once_its_certificate_is_in_place(tmp_path, ca):
    host = tmp_path / "coordinator-host"

    written = ensnif("init", "coordinator", "--dir", str(host), cwd=tmp_path)
    enrol(host, ca, "coordinator", "coordinator")

    assert written.returncode == 0, written.stderr
    cfg = CoordinatorConfig.load(host / "coordinator.toml")
    assert cfg.tls.cert == host / "pki" / "coordinator.crt"
    assert cfg.database == f"sqlite:///{host / 'coordinator.db'}"
    assert (cfg.propose_timeout_s, cfg.job_timeout_s) == (30, 3600)


def test_init_party_loads_as_a_compute_node_once_its_certificate_is_in_place(tmp_path, ca):
    host = tmp_path / "grocery-host"

    written = ensnif("init", "party", "--dir", str(host), "--name", "grocery", cwd=tmp_path)
    enrol(host, ca, "grocery", "party")

    assert written.returncode == 0, written.stderr
    assert "ensnif pki request grocery --role party" in written.stdout
    cfg = PartyConfig.load(host / "party.toml")
    assert (cfg.name, cfg.role, cfg.mpc_ports) == ("grocery", "compute", (41000, 41099))
    assert cfg.state_dir == host / "state"
    assert pki.identity_of(pki.load_cert(cfg.tls.cert)) == pki.Identity("grocery", "party")


def test_init_party_example_dataset_loads_when_uncommented(tmp_path, ca):
    host = tmp_path / "grocery-host"
    ensnif("init", "party", "--dir", str(host), "--name", "grocery", cwd=tmp_path)
    request = csr.request("grocery", "party", host / "pki")  # as `enrol`, without the CLI
    csr.sign_request(ca, request.csr, name="grocery", role="party")
    shutil.copy(ca / pki.CA_CERT, host / "pki" / pki.CA_CERT)
    path = host / "party.toml"
    uncomment_example_dataset(path)

    cfg = PartyConfig.load(path)

    [orders] = cfg.datasets
    assert cfg.role == "data_owner"
    assert orders.path == host / "data" / "orders.csv"
    assert [c.name for c in orders.columns] == ["customer_id", "basket_total"]
    assert orders.privacy.budget_rho == 1.0
    assert orders.policy.approval == "auto"


def test_init_analyst_profile_loads_once_its_certificate_is_in_place(tmp_path, ca):
    host = tmp_path / "alice-laptop"

    written = ensnif("init", "analyst", "--dir", str(host), "--name", "alice", cwd=tmp_path)
    enrol(host, ca, "alice", "analyst")

    assert written.returncode == 0, written.stderr
    profile = ClientProfile.load(host / "profile.toml")
    assert (profile.coordinator, profile.coordinator_name) == ("127.0.0.1:50051", "coordinator")
    assert profile.tls.key == host / "pki" / "alice.key"


def test_init_refuses_to_overwrite_an_existing_file(tmp_path):
    target = tmp_path / "party.toml"
    target.write_text("# mine\n")

    refused = ensnif("init", "party", "--dir", str(tmp_path), cwd=tmp_path)

    assert refused.returncode == 2
    assert "refusing to overwrite" in refused.stderr
    assert target.read_text() == "# mine\n"


def test_init_force_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "profile.toml"
    target.write_text("# mine\n")

    forced = ensnif("init", "analyst", "--dir", str(tmp_path), "--force", "--json", cwd=tmp_path)

    assert forced.returncode == 0, forced.stderr
    assert 'cert = "pki/analyst.crt"' in target.read_text()


def test_init_files_run_a_consortium_that_doctor_finds_healthy(tmp_path, ca):
    """Coordinator, a node with the example dataset and an analyst, each from `init` with
    a member-generated key, run as real daemons: the node registers, doctor passes."""
    coord_dir, node_dir, alice_dir = tmp_path / "c", tmp_path / "n", tmp_path / "a"
    for role, where, name in (
        ("coordinator", coord_dir, "coordinator"),
        ("party", node_dir, "grocery"),
        ("analyst", alice_dir, "alice"),
    ):
        written = ensnif("init", role, "--dir", str(where), "--name", name, cwd=tmp_path)
        assert written.returncode == 0, written.stderr
        request = csr.request(name, role, where / "pki")  # as `enrol`, without the CLI
        csr.sign_request(ca, request.csr, name=name, role=role)
        shutil.copy(ca / pki.CA_CERT, where / "pki" / pki.CA_CERT)
    # What an operator edits: the addresses (free ports here), the MPC range, the data.
    address, node_listen, lo = (
        f"127.0.0.1:{free_port()}",
        f"127.0.0.1:{free_port()}",
        _free_range(10),
    )
    party = node_dir / "party.toml"
    uncomment_example_dataset(party)
    text = party.read_text().replace('"41000-41099"', f'"{lo}-{lo + 9}"')
    party.write_text(text.replace("127.0.0.1:50051", address))
    sample_data.generate(node_dir / "data", rows=50)  # data/orders.csv, as the example names
    profile_path = alice_dir / "profile.toml"
    profile_path.write_text(profile_path.read_text().replace("127.0.0.1:50051", address))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    commands = {
        "coordinator": ["coordinator", "serve", "--config", str(coord_dir / "coordinator.toml")],
        "grocery": ["party", "serve", "--config", str(party)],
    }
    listen = {"coordinator": address, "grocery": node_listen}
    daemons = []
    try:
        for name, args in commands.items():
            with (tmp_path / f"{name}.log").open("w") as log:
                daemons.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "ensnif_mpc.cli.main",
                            *args,
                            "--listen",
                            listen[name],
                        ],
                        cwd=tmp_path,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        profile = ClientProfile.load(profile_path)

        def registered() -> bool:
            try:
                with Client(profile, timeout_s=5) as c:
                    return [p.name for p in c.parties()] == ["grocery"] and len(c.datasets()) == 1
            except EnsnifError:
                return False

        wait_for(
            registered,
            60,
            lambda: "the node registering: " + (tmp_path / "grocery.log").read_text()[-2000:],
            interval=0.3,
        )
        node = ensnif("doctor", "--config", str(party), "--json", cwd=tmp_path)
        analyst = ensnif("doctor", "--profile", str(profile_path), cwd=tmp_path)
    finally:
        for proc in daemons:
            proc.terminate()
        for proc in daemons:
            proc.wait(timeout=30)

    assert node.returncode == 0, node.stdout + node.stderr
    statuses = {c["check"]: c["status"] for c in json.loads(node.stdout)}
    assert statuses["coordinator"] == statuses["dataset orders"] == "ok"
    assert analyst.returncode == 0, analyst.stdout + analyst.stderr

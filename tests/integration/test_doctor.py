"""``ensnif doctor`` at a member, against a real coordinator on an ephemeral port.

The consortium's files are the local consortium's (PKI, sample data, configs); only the
coordinator runs (in this process, the production ``start()``): doctor needs no node.
Each failing setup is a copy of the grocery node's config with one thing broken, and
must give the failing line and exit code 1.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from coordinator import server as coordinator_server
from ensnif_mpc.cli import doctor as doctor_checks
from ensnif_mpc.cli.main import cli
from ensnif_mpc.config import CoordinatorConfig
from ensnif_mpc.demo.localnet import LocalConsortium, free_port
from ensnif_mpc.security import pki, revocation

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    lc: LocalConsortium
    coordinator: coordinator_server.RunningCoordinator

    @property
    def grocery(self) -> Path:
        return self.lc.root / "party-grocery.toml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    lc = LocalConsortium(tmp_path_factory.mktemp("doctor"), rows=200).setup()
    coord = coordinator_server.start(CoordinatorConfig.load(lc.root / "coordinator.toml"))
    try:
        yield Setup(lc, coord)
    finally:
        coord.stop(grace=0.5)


def doctor(*args: str) -> Result:
    return CliRunner().invoke(cli, ["doctor", "--timeout", "3", *args])


def lines(result: Result) -> dict[str, str]:
    """Check name -> its line, from the text output."""
    out = {}
    for line in result.output.splitlines()[:-1]:
        mark, name_and_message = line[:4].strip(), line[6:]
        out[name_and_message[:20].strip()] = f"{mark} {name_and_message[20:].strip()}"
    return out


def variant(setup: Setup, tmp: Path, **changes: str) -> Path:
    """The grocery node's config with some top-level lines replaced (key = "value"),
    written next to the original so that its relative paths still resolve."""
    text = setup.grocery.read_text()
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in changes and "=" in line:
            line = f"{key} = {changes.pop(key)}"
        out.append(line)
    assert not changes, f"no such lines: {changes}"
    path = setup.lc.root / f"party-{tmp.name}.toml"
    path.write_text("\n".join(out) + "\n")
    return path


def test_a_healthy_node_passes_every_check(setup):
    result = doctor("--config", str(setup.grocery))

    assert result.exit_code == 0, result.output
    found = lines(result)
    assert found["config"].startswith("ok ")
    assert found["certificate"].startswith("ok grocery (party)")
    assert found["coordinator"].startswith("ok coordinator at 127.0.0.1:")
    assert found["dataset orders"].startswith("ok 200 rows readable")
    assert found["mpc ports"].startswith("ok ")
    assert found["clock"].startswith("skip skew against the coordinator not measured")


def test_json_gives_one_object_per_check(setup):
    result = doctor("--config", str(setup.grocery), "--json")

    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    assert [c["check"] for c in checks] == [
        "config",
        "certificate",
        "crl",
        "coordinator",
        "clock",
        "dataset orders",
        "mpc ports",
    ]
    assert {c["status"] for c in checks} <= {"ok", "skip"}


def test_an_analyst_profile_passes(setup):
    result = doctor("--profile", str(setup.lc.profile))

    assert result.exit_code == 0, result.output
    assert lines(result)["coordinator"].startswith("ok ")


def test_an_expired_certificate_fails_the_certificate_and_the_coordinator(setup, tmp_path):
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    old = pki.issue(setup.lc.pki_dir, "grocery", "party", not_before=long_ago, days=1,
                    out_dir=tmp_path)  # fmt: skip
    path = variant(
        setup,
        tmp_path,
        cert=f'"{old.cert}"',
        key=f'"{old.key}"',
    )

    result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    found = lines(result)
    assert found["certificate"].startswith("FAIL ")
    assert "expired on" in found["certificate"]
    assert found["coordinator"].startswith("FAIL cannot reach coordinator")


def test_a_certificate_near_expiry_is_a_warning(setup, tmp_path):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=80)
    soon = pki.issue(setup.lc.pki_dir, "grocery", "party", not_before=start, days=90,
                     out_dir=tmp_path)  # fmt: skip
    path = variant(setup, tmp_path, cert=f'"{soon.cert}"', key=f'"{soon.key}"')

    result = doctor("--config", str(path))

    assert result.exit_code == 0, result.output
    assert lines(result)["certificate"].startswith("warn ")
    assert "expires soon" in lines(result)["certificate"]


def test_a_missing_data_file_fails_its_dataset_line(setup, tmp_path):
    path = variant(setup, tmp_path, path='"data/gone.csv"')

    result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    line = lines(result)["dataset orders"]
    assert line.startswith("FAIL ")
    assert "cannot read" in line


def test_a_value_outside_its_declared_bounds_fails_its_dataset_line(setup, tmp_path):
    orders = (setup.lc.root / "data" / "orders.csv").read_text().splitlines()
    header = orders[0].split(",")
    row = orders[1].split(",")
    row[header.index("basket_total")] = "9999"
    bad = setup.lc.root / "data" / f"orders-{tmp_path.name}.csv"
    bad.write_text("\n".join([orders[0], ",".join(row), *orders[2:]]) + "\n")
    path = variant(setup, tmp_path, path=f'"{bad}"')

    result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    line = lines(result)["dataset orders"]
    assert line.startswith("FAIL ")
    assert "basket_total" in line


def test_a_coordinator_that_is_down_fails_the_coordinator_line(setup, tmp_path):
    path = variant(setup, tmp_path, coordinator=f'"127.0.0.1:{free_port()}"')

    result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    line = lines(result)["coordinator"]
    assert line.startswith("FAIL cannot reach coordinator at 127.0.0.1:")
    assert lines(result)["certificate"].startswith("ok ")


def test_an_mpc_port_range_in_use_fails_the_ports_line(setup, tmp_path):
    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = variant(setup, tmp_path, mpc_ports=f'"{port}-{port}"')

        result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    assert lines(result)["mpc ports"].startswith(f"FAIL MPC ports {port}-{port}: none bindable")


def test_a_config_that_does_not_load_fails_and_skips_the_rest(setup, tmp_path):
    path = variant(setup, tmp_path, mpc_ports='"10-20"')

    result = doctor("--config", str(path), "--json")

    assert result.exit_code == 1, result.output
    checks = json.loads(result.output)
    assert checks[0]["check"] == "config" and checks[0]["status"] == "fail"
    assert "mpc_ports" in checks[0]["message"]
    assert {c["status"] for c in checks[1:]} == {"skip"}


def test_a_revoked_certificate_fails_the_crl_and_the_coordinator(setup, tmp_path):
    # A member of its own, so that revoking it changes nothing for the other tests.
    mallory = pki.issue(setup.lc.pki_dir, "mallory", "party", out_dir=tmp_path)
    pki.revoke(setup.lc.pki_dir, name="mallory", cert_path=mallory.cert)
    path = variant(
        setup,
        tmp_path,
        name='"mallory"',
        cert=f'"{mallory.cert}"',
        key=f'"{mallory.key}"',
    )

    result = doctor("--config", str(path))

    assert result.exit_code == 1, result.output
    found = lines(result)
    assert found["crl"].startswith("FAIL ")
    assert "revokes this member's own certificate" in found["crl"]
    assert found["coordinator"].startswith("FAIL coordinator at 127.0.0.1:")
    assert "refused this member's certificate" in found["coordinator"]


def test_a_stale_revocation_list_is_a_warning(tmp_path):
    pki.init_ca(tmp_path)
    member = pki.issue(tmp_path, "grocery", "party")
    spare = pki.issue(tmp_path, "spare", "party")
    revocation.write_crl(tmp_path, [(pki.load_cert(spare.cert).serial_number, "superseded")])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=revocation.CRL_DAYS + 1)

    check = doctor_checks.check_crl(member, now=later)

    assert check.status is doctor_checks.Status.WARN
    assert "stale" in check.message


@pytest.mark.parametrize(
    ("seconds", "status"),
    [(0.5, "ok"), (-10, "warn"), (600, "fail")],
)
def test_a_measured_clock_skew_is_judged_by_its_size(seconds, status):
    check = doctor_checks.check_clock(dt.timedelta(seconds=seconds))

    assert str(check.status) == status

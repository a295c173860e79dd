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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from coordinator import server as coordinator_server
from ensnif_mpc.cli import doctor as doctor_checks, doctor_peers, probe as doctor_probe
from ensnif_mpc.cli.main import cli
from ensnif_mpc.config import CoordinatorConfig, PartyConfig
from ensnif_mpc.demo.localnet import LocalConsortium, free_port
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
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
    assert found["clock"].startswith("ok the coordinator's clock is ")
    assert "round trip" in found["clock"]
    assert found["peers"].startswith("skip no other member registered")


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
        "peers",
        "dataset orders",
        "mpc ports",
    ]
    assert {c["status"] for c in checks} <= {"ok", "skip"}


def test_an_analyst_profile_passes(setup):
    result = doctor("--profile", str(setup.lc.profile))

    assert result.exit_code == 0, result.output
    assert lines(result)["coordinator"].startswith("ok ")
    assert lines(result)["clock"].startswith("ok ")


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
    assert lines(result)["clock"] == "skip not checked: the coordinator cannot be reached"


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
    [(0.5, "ok"), (-29, "ok"), (-31, "warn"), (299, "warn"), (301, "fail"), (-600, "fail")],
)
def test_a_measured_clock_skew_is_judged_by_its_size(seconds, status):
    check = doctor_checks.check_clock(dt.timedelta(seconds=seconds))

    assert str(check.status) == status


def test_a_skew_within_the_round_trip_of_a_threshold_is_not_judged_over_it():
    check = doctor_checks.check_clock(dt.timedelta(seconds=31), rtt=dt.timedelta(seconds=4))

    assert check.status is doctor_checks.Status.OK  # at least 29 s: not provably over 30 s
    assert "\u00b12000 ms" in check.message


def _grocery_tls(setup: Setup) -> tuple[str, str, pki.CertFiles]:
    cfg = PartyConfig.load(setup.grocery)
    return cfg.coordinator, cfg.coordinator_name, cfg.tls


def test_the_skew_is_measured_against_the_real_coordinator(setup):
    view = doctor_checks.query_coordinator(*_grocery_tls(setup), timeout_s=3)

    assert isinstance(view, doctor_checks.CoordinatorView)
    assert abs(view.skew.total_seconds()) < 1 + view.rtt.total_seconds()
    assert view.rtt < dt.timedelta(seconds=3)


def test_a_host_clock_10_minutes_ahead_fails_the_clock_check(setup):
    ahead = lambda: time.time() + 600  # noqa: E731 - this host's wall clock, 10 minutes fast

    view = doctor_checks.query_coordinator(*_grocery_tls(setup), timeout_s=3, wall_clock=ahead)
    assert isinstance(view, doctor_checks.CoordinatorView)
    check = doctor_checks.check_clock(view.skew, view.rtt)

    assert -601 < view.skew.total_seconds() < -599
    assert check.status is doctor_checks.Status.FAIL
    assert "600.0 s behind this host's" in check.message


@pytest.fixture
def peered(
    setup: Setup, tmp_path: Path
) -> Iterator[tuple[Path, coordinator_server.RunningCoordinator]]:
    """A coordinator of its own (so that its registry does not leak into other tests) and
    the grocery node's config pointing at it."""
    cfg = CoordinatorConfig.load(
        setup.lc.root / "coordinator.toml",
        {"listen": "127.0.0.1:0", "database": f"sqlite:///{tmp_path}/peered.db"},
    )
    coord = coordinator_server.start(cfg)
    try:
        yield variant(setup, tmp_path, coordinator=f'"127.0.0.1:{coord.port}"'), coord
    finally:
        coord.stop(grace=0.5)


def test_every_other_members_mpc_range_is_probed(setup, peered):
    path, coord = peered
    with socket.socket() as worker:  # a job's worker listening on logistics' only port
        worker.bind(("127.0.0.1", 0))
        worker.listen()
        busy = worker.getsockname()[1]
        closed = free_port()  # helper's: nobody listens, the host refuses
        coord.store.upsert_party("grocery", "party", "127.0.0.1:1", "pem", "127.0.0.1", (1, 1))
        coord.store.upsert_party("logistics", "party", "127.0.0.1:2", "pem", "127.0.0.1",
                                 (busy, busy))  # fmt: skip
        coord.store.upsert_party("helper", "party", "127.0.0.1:3", "pem", "127.0.0.1",
                                 (closed, closed))  # fmt: skip
        coord.store.upsert_party("legacy", "party", f"127.0.0.1:{coord.port}", "pem")

        result = doctor("--config", str(path))

    assert result.exit_code == 0, result.output
    found = lines(result)
    assert "peer grocery" not in found  # not itself
    assert found["peer logistics"] == (
        f"ok MPC 127.0.0.1:{busy}-{busy}: its only port answers (1 listening, 0 refused: no "
        "job on them now)"
    )
    assert found["peer helper"].startswith(f"ok MPC 127.0.0.1:{closed}-{closed}: its only port")
    assert "1 refused" in found["peer helper"]
    assert found["peer legacy"].startswith(f"warn gRPC 127.0.0.1:{coord.port} reachable; its MPC")
    assert "not probed" in found["peer legacy"]


def test_a_large_mpc_range_is_probed_at_spread_ports():
    assert doctor_probe.sample(41000, 41999, limit=4) == [41000, 41333, 41666, 41999]
    assert doctor_probe.sample(41000, 41002) == [41000, 41001, 41002]


def test_a_port_that_does_not_answer_is_reported_dropped_by_name(monkeypatch):
    def dropped(targets, timeout_s):
        return {t: doctor_probe.Outcome.TIMEOUT if t[1] >= 41008 else doctor_probe.Outcome.REFUSED
                for t in targets}  # fmt: skip

    monkeypatch.setattr(doctor_probe, "probe", dropped)
    party = pb.Party(name="helper", address="10.0.0.3:50061", mpc_host="10.0.0.3",
                     mpc_port_first=41000, mpc_port_last=41009)  # fmt: skip

    (check,) = doctor_peers.check_peers([party], "grocery", timeout_s=3)

    assert check.status is doctor_checks.Status.FAIL
    assert check.message.startswith("MPC 10.0.0.3:41000-41009: port(s) 41008-41009 dropped")

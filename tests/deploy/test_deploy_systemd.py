"""deploy/systemd: `systemd-analyze verify` and `systemd-analyze security --offline` on the
units (with /opt/ensnif/ pointed at this virtualenv, so the executables it checks exist),
the hardening directives, and the commands the units run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

UNITS = DEPLOY / "systemd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)
UNIT_FILES = ("ensnif-coordinator.service", "ensnif-party@.service")


def directives(name: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units as an operator installs them, /opt/ensnif/ being this virtualenv."""
    directory = tmp_path_factory.mktemp("units")
    prefix = str(Path(sys.executable).parent.parent) + "/"
    for name in UNIT_FILES:
        (directory / name).write_text((UNITS / name).read_text().replace("/opt/ensnif/", prefix))
    (directory / "ensnif-party@grocery.service").symlink_to("ensnif-party@.service")
    return directory


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(installed: Path) -> None:
    result = subprocess.run(
        [
            str(SYSTEMD_ANALYZE),
            "verify",
            "ensnif-coordinator.service",
            "ensnif-party@grocery.service",
        ],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_systemd_analyze
@pytest.mark.parametrize("unit", ["ensnif-coordinator.service", "ensnif-party@grocery.service"])
def test_units_exposure_is_low_by_systemd_analyze_security(installed: Path, unit: str) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--threshold=20", "--no-pager", unit],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level" in result.stdout
    level = float(result.stdout.split("Overall exposure level for")[1].split(":")[1].split()[0])
    assert level <= 2.0, result.stdout[-600:]


HARDENING = {
    "NoNewPrivileges": ["yes"],
    "PrivateTmp": ["yes"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "CapabilityBoundingSet": [""],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
}


@pytest.mark.parametrize("unit", UNIT_FILES)
def test_units_carry_the_hardening_directives(unit: str) -> None:
    found = directives(unit)

    for key, value in HARDENING.items():
        assert found.get(key) == value, key
    assert found["SystemCallFilter"][0] == "@system-service"
    assert found["User"] == ["ensnif"]
    assert "root" not in found["User"] + found["Group"]


@pytest.mark.parametrize("unit", UNIT_FILES)
def test_state_directory_is_the_only_writable_path(unit: str) -> None:
    found = directives(unit)

    (state,) = found["StateDirectory"]
    assert found["ReadWritePaths"] == [f"/var/lib/{state}"]
    assert found["WorkingDirectory"] == [f"/var/lib/{state}"]


def test_party_reload_sends_sighup_to_the_node() -> None:
    found = directives("ensnif-party@.service")

    assert found["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert found["ExecStart"] == [
        "/opt/ensnif/bin/ensnif party serve --config /etc/ensnif/party-%i.toml"
    ]


def test_coordinator_unit_runs_the_coordinator() -> None:
    found = directives("ensnif-coordinator.service")

    assert found["ExecStart"] == [
        "/opt/ensnif/bin/ensnif coordinator serve --config /etc/ensnif/coordinator.toml"
    ]

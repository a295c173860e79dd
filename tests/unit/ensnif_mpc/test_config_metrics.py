"""``metrics_listen`` in coordinator.toml and party.toml: off by default, a port means
127.0.0.1, flag > ``ENSNIF_METRICS_LISTEN`` > file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.config import CoordinatorConfig, PartyConfig
from ensnif_mpc.errors import InvalidConfig
from tests.unit.conftest import Consortium


def coordinator_toml(directory: Path, pki: Consortium, extra: str = "") -> Path:
    path = directory / "coordinator.toml"
    path.write_text(
        f'name = "coordinator"\n{extra}\n[tls]\n'
        f'ca = "{pki.directory / "ca.crt"}"\n'
        f'cert = "{pki.coordinator.cert}"\nkey = "{pki.coordinator.key}"\n'
    )
    return path


def party_toml(directory: Path, pki: Consortium, extra: str = "") -> Path:
    path = directory / "party.toml"
    path.write_text(
        f'name = "helper"\n{extra}\n[tls]\n'
        f'ca = "{pki.directory / "ca.crt"}"\n'
        f'cert = "{pki.helper.cert}"\nkey = "{pki.helper.key}"\n'
    )
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENSNIF_METRICS_LISTEN", raising=False)


def test_metrics_are_off_unless_configured(tmp_path: Path, consortium: Consortium) -> None:
    assert CoordinatorConfig.load(coordinator_toml(tmp_path, consortium)).metrics_listen == ""
    assert PartyConfig.load(party_toml(tmp_path, consortium)).metrics_listen == ""


def test_a_bare_port_binds_loopback(tmp_path: Path, consortium: Consortium) -> None:
    cfg = PartyConfig.load(party_toml(tmp_path, consortium, "metrics_listen = 9464"))
    assert cfg.metrics_listen == "127.0.0.1:9464"
    path = coordinator_toml(tmp_path, consortium, 'metrics_listen = "9465"')
    assert CoordinatorConfig.load(path).metrics_listen == "127.0.0.1:9465"


def test_flag_beats_environment_beats_file(
    tmp_path: Path, consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = coordinator_toml(tmp_path, consortium, 'metrics_listen = "127.0.0.1:9001"')
    monkeypatch.setenv("ENSNIF_METRICS_LISTEN", "0.0.0.0:9002")
    assert CoordinatorConfig.load(path).metrics_listen == "0.0.0.0:9002"
    flagged = CoordinatorConfig.load(path, {"metrics_listen": "127.0.0.1:9003"})
    assert flagged.metrics_listen == "127.0.0.1:9003"


@pytest.mark.parametrize("bad", ['"localhost"', '"host:port"', "70000", "true", '":9464"'])
def test_a_bad_address_is_refused_naming_the_key(
    tmp_path: Path, consortium: Consortium, bad: str
) -> None:
    with pytest.raises(InvalidConfig, match="metrics_listen"):
        PartyConfig.load(party_toml(tmp_path, consortium, f"metrics_listen = {bad}"))

"""``console_listen`` (and ``console_cert``/``console_key``) in coordinator.toml and
party.toml: the web console is off by default, a bare port means 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.config import CoordinatorConfig, PartyConfig
from ensnif_mpc.errors import InvalidConfig
from tests.unit.conftest import Consortium
from tests.unit.ensnif_mpc.test_config_metrics import coordinator_toml, party_toml


def test_the_console_is_off_unless_configured(tmp_path: Path, consortium: Consortium) -> None:
    assert CoordinatorConfig.load(coordinator_toml(tmp_path, consortium)).console.listen == ""
    node = PartyConfig.load(party_toml(tmp_path, consortium))
    assert node.console.listen == "" and node.console.cert is None


def test_a_bare_port_binds_loopback(tmp_path: Path, consortium: Consortium) -> None:
    cfg = PartyConfig.load(party_toml(tmp_path, consortium, "console_listen = 9443"))
    assert cfg.console.listen == "127.0.0.1:9443"
    path = coordinator_toml(tmp_path, consortium, 'console_listen = "127.0.0.1:0"')
    assert CoordinatorConfig.load(path).console.listen == "127.0.0.1:0"


def test_a_console_certificate_is_read_relative_to_the_config(
    tmp_path: Path, consortium: Consortium
) -> None:
    extra = f'console_cert = "{consortium.helper.cert}"\nconsole_key = "{consortium.helper.key}"'
    cfg = PartyConfig.load(party_toml(tmp_path, consortium, 'console_listen = "9443"\n' + extra))
    assert cfg.console.cert == consortium.helper.cert
    assert cfg.console.key == consortium.helper.key


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('console_listen = "nowhere"', "console_listen: expected"),
        ('console_listen = "127.0.0.1:99999"', "is not a port"),
        ('console_cert = "a.crt"', "go together"),
        ('console_cert = "a.crt"\nconsole_key = "a.key"', "does not exist"),
    ],
)
def test_a_bad_console_setting_is_named(
    tmp_path: Path, consortium: Consortium, extra: str, message: str
) -> None:
    with pytest.raises(InvalidConfig, match=message):
        PartyConfig.load(party_toml(tmp_path, consortium, extra))

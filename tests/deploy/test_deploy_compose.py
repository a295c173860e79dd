"""deploy/compose.yaml against the Compose Specification's JSON schema (the copy that the
PyPI package check-jsonschema vendors, read offline), plus what the schema cannot say:
every member has its own volume and only its own key, the configs the services mount
load with ensnif's own config loaders, and every file the compose file names exists or
is made by `ensnif pki` (docs/deploy.md)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from ensnif_mpc.config import CoordinatorConfig, PartyConfig
from tests.deploy.conftest import DEPLOY, MEMBERS, ROOT, with_tls

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("check_jsonschema", reason="check-jsonschema (dev extra) ships the schema")

COMPOSE = DEPLOY / "compose.yaml"
ENV = {"ENSNIF_DB_PASSWORD": "not-a-real-password"}


def compose_schema() -> dict[str, Any]:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    return dict(json.loads(text))


def interpolate(value: Any) -> Any:
    """Compose's ${VAR:?message} and ${VAR:-default}, for the variables this file uses."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, str):
        value = value.replace("${ENSNIF_IMAGE:-ensnif:0.1.0}", "ensnif:0.1.0")
        marker = "${ENSNIF_DB_PASSWORD:?write ENSNIF_DB_PASSWORD to deploy/.env}"
        value = value.replace(marker, ENV["ENSNIF_DB_PASSWORD"])
        assert "${" not in value, f"an interpolation this test does not know: {value}"
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(interpolate(yaml.safe_load(COMPOSE.read_text())))


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)

    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]

    assert errors == []


def test_schema_check_catches_an_invalid_service(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    broken = {**compose, "services": {**compose["services"], "helper": {"image": 3}}}

    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))

    assert errors


def test_consortium_has_postgres_a_coordinator_and_three_members(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert set(services) == {"postgres", "coordinator", *MEMBERS}
    assert services["coordinator"]["environment"]["ENSNIF_DATABASE"].startswith(
        "postgresql+psycopg://ensnif:"
    )
    assert services["coordinator"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in services:
        assert "healthcheck" in services[name], name


@pytest.mark.parametrize("member", MEMBERS)
def test_each_member_has_its_own_state_volume_and_only_its_own_key(
    compose: dict[str, Any], member: str
) -> None:
    service = compose["services"][member]

    assert f"{member}-state:/var/lib/ensnif" in service["volumes"]
    assert sorted(service["secrets"]) == sorted(["ca_crt", f"{member}_crt", f"{member}_key"])
    assert service["user"] == "10001:10001"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["command"] == ["party", "serve", "--config", "/etc/ensnif/party.toml"]


def test_no_secret_is_the_ca_key(compose: dict[str, Any]) -> None:
    files = [s["file"] for s in compose["secrets"].values()]

    assert not any(f.endswith("ca.key") for f in files)
    assert all(f.startswith("./pki/") for f in files)


def test_mounted_files_exist_in_the_repository(compose: dict[str, Any]) -> None:
    configs = [DEPLOY / c["file"] for c in compose["configs"].values()]
    binds = [
        DEPLOY / v.split(":")[0]
        for s in compose["services"].values()
        for v in s.get("volumes", [])
        if v.startswith(".")
    ]

    missing = [str(p.relative_to(ROOT)) for p in [*configs, *binds] if not p.resolve().exists()]

    assert missing == []


@pytest.mark.parametrize("member", MEMBERS)
def test_member_config_loads_with_the_node_config_loader(
    compose: dict[str, Any], member: str, ca_dir: Path, tmp_path: Path
) -> None:
    (mount,) = compose["services"][member]["configs"]
    source = DEPLOY / compose["configs"][mount["source"]]["file"]
    text = with_tls(source.read_text(), ca_dir, member)
    text = text.replace("/srv/ensnif/data", str(ROOT / "examples" / "data"))
    path = tmp_path / "party.toml"
    path.write_text(text)

    loaded = PartyConfig.load(path)

    assert mount["target"] == "/etc/ensnif/party.toml"
    assert loaded.name == member
    assert loaded.coordinator == "coordinator:50051"
    assert loaded.mpc_host == member
    lo, hi = loaded.mpc_ports
    assert f"{lo}-{hi}" in compose["services"][member]["expose"]


def test_coordinator_config_loads_and_the_environment_selects_postgres(
    compose: dict[str, Any], ca_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose["services"]["coordinator"]
    source = DEPLOY / compose["configs"][service["configs"][0]["source"]]["file"]
    path = tmp_path / "coordinator.toml"
    path.write_text(with_tls(source.read_text(), ca_dir, "coordinator"))
    monkeypatch.setenv("ENSNIF_DATABASE", service["environment"]["ENSNIF_DATABASE"])

    loaded = CoordinatorConfig.load(path)

    assert loaded.database == "postgresql+psycopg://ensnif:not-a-real-password@postgres:5432/ensnif"
    assert os.environ["ENSNIF_DATABASE"].endswith("@postgres:5432/ensnif")

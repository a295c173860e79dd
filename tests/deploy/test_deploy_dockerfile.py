"""deploy/Dockerfile and .dockerignore, read as text (no container engine here, so the
image is not built): pinned base, multi-stage, non-root, a health check, and commands
that exist in the `ensnif` CLI."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib

import click
import pytest

from ensnif_mpc.cli.main import cli
from tests.deploy.conftest import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
# Instructions with their continuation lines joined.
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
STAGES: list[list[str]] = []
for _ins in INSTRUCTIONS:
    if _ins.startswith("FROM "):
        STAGES.append([])
    if STAGES:
        STAGES[-1].append(_ins)
FINAL = STAGES[-1]


def args_of(keyword: str, stage: list[str]) -> list[str]:
    return [i[len(keyword) + 1 :] for i in stage if i.split()[0] == keyword]


def test_base_image_is_an_exact_python_slim_tag() -> None:
    (arg,) = [i for i in INSTRUCTIONS if i.startswith("ARG PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]

    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    assert all(i.split()[1] == "${PYTHON_IMAGE}" for i in INSTRUCTIONS if i.startswith("FROM "))


def test_build_is_multi_stage_building_a_wheel() -> None:
    assert len(STAGES) == 2
    assert STAGES[0][0].endswith(" AS build")
    assert any("pip wheel" in i for i in STAGES[0])
    assert any(i.startswith("COPY --from=build ") for i in FINAL)


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = args_of("USER", FINAL)

    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root")
    assert FINAL.index(f"USER {users[-1]}") < FINAL.index(
        next(i for i in FINAL if i.startswith("ENTRYPOINT"))
    )


def test_healthcheck_runs_the_probe_the_image_installs() -> None:
    (health,) = args_of("HEALTHCHECK", FINAL)

    assert '"ensnif-healthcheck"' in health
    assert any(
        i.startswith("COPY") and "deploy/healthcheck.py /usr/local/bin/ensnif-healthcheck" in i
        for i in FINAL
    )


def test_every_package_and_file_the_wheel_needs_is_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {src for i in STAGES[0] if i.startswith("COPY ") for src in i.split()[1:-1]}

    for needed in [*packages, "pyproject.toml", project["project"]["readme"]]:
        assert needed in copied, needed


def test_dockerignore_keeps_secrets_out_and_the_copied_paths_in() -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    copied = ["pyproject.toml", "README.md", "ensnif_mpc/config.py", "deploy/healthcheck.py"]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p)
            or fnmatch.fnmatch(path, p.removeprefix("**/"))
            or path.startswith(p.removeprefix("**/") + "/")
            for p in patterns
        )

    assert [p for p in copied if ignored(p)] == []
    for secret in ("pki/ca.key", "deploy/pki/grocery/grocery.key", ".venv/bin/python", ".git"):
        assert ignored(secret), secret


def _command(words: list[str]) -> click.Command:
    command: click.Command = cli
    for word in words:
        assert isinstance(command, click.Group), f"{word}: not a command group"
        found = command.get_command(click.Context(command), word)
        assert found is not None, f"`ensnif {' '.join(words)}`: no such command"
        command = found
    return command


@pytest.mark.parametrize(
    "argv",
    [
        ["coordinator", "serve", "--config", "/etc/ensnif/coordinator.toml"],
        ["party", "serve", "--config", "/etc/ensnif/party.toml"],
        ["pki", "init", "--dir", "/pki"],
        ["pki", "issue", "grocery", "--role", "party", "--dir", "/pki", "--out", "/pki/grocery"],
    ],
    ids=["coordinator", "party", "pki-init", "pki-issue"],
)
def test_image_commands_exist_in_the_cli(argv: list[str]) -> None:
    words = [w for w in argv if not w.startswith("-") and not w.startswith("/")][:2]
    command = _command(words)
    options = {o for p in command.params for o in getattr(p, "opts", [])}

    assert {a for a in argv if a.startswith("--")} <= options


def test_entrypoint_is_the_ensnif_console_script_and_its_help_runs() -> None:
    (entrypoint,) = args_of("ENTRYPOINT", FINAL)
    (cmd,) = args_of("CMD", FINAL)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert entrypoint == '["ensnif"]'
    assert "ensnif" in project["project"]["scripts"]
    result = subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *json.loads(cmd)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "coordinator" in result.stdout and "party" in result.stdout


def test_the_worker_module_the_node_starts_is_in_the_image() -> None:
    assert (ROOT / "protocols" / "worker.py").is_file()
    assert "COPY protocols ./protocols" in STAGES[0]

"""The layers hold: import-linter's contracts (pyproject.toml) pass on the tree, and fail
as soon as a module imports a package above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("ensnif_mpc", "coordinator", "party_node", "protocols")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(where / "pyproject.toml"), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(where)},
    )


def test_the_tree_keeps_every_layer_contract() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def _copy(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_an_upward_import_from_the_core_breaks_the_lint(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    pki = tree / "ensnif_mpc" / "security" / "pki.py"
    pki.write_text(pki.read_text() + "\nfrom coordinator import store as _upward  # noqa\n")

    run = _lint(tree)

    assert run.returncode != 0
    assert "The core imports nothing above it BROKEN" in run.stdout
    assert "ensnif_mpc.security.pki -> coordinator.store" in run.stdout


def test_a_node_importing_the_coordinator_breaks_the_lint(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    policy = tree / "party_node" / "policy.py"
    policy.write_text(policy.read_text() + "\nimport coordinator.scheduler  # noqa\n")

    run = _lint(tree)

    assert run.returncode != 0
    assert "never import each other BROKEN" in run.stdout


def test_a_server_importing_mpyc_breaks_the_lint(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    servicer = tree / "coordinator" / "servicer.py"
    servicer.write_text(servicer.read_text() + "\nfrom protocols import worker  # noqa\n")

    run = _lint(tree)

    assert run.returncode != 0
    assert "never import MPyC or TenSEAL" in run.stdout
    assert "BROKEN" in run.stdout

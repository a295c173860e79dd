"""The committed gRPC stubs match proto/ (regenerated and compared by `make proto`'s script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_stubs_are_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stale stubs: {proc.stderr}"


def test_servers_never_import_mpyc() -> None:
    code = (
        "import sys, coordinator.server, party_node.server, ensnif_mpc.cli.main, "
        "protocols.registry; sys.exit(1 if 'mpyc' in sys.modules else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, "a server module imports mpyc: " + proc.stderr

"""`ensnif demo` (what `make demo` runs) answers correctly and leaves no process behind."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _our_daemons(root: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmd and ("serve" in cmd or "protocols.worker" in cmd):
            found.append(cmd)
    return found


def test_demo_matches_plaintext_and_stops_everything(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ensnif_mpc.cli.main",
            "demo",
            "--dir",
            str(root),
            "--rows",
            "500",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    body = json.loads(proc.stdout)
    assert {r["protocol"] for r in body["results"]} == {
        "sum",
        "mean",
        "count",
        "intersection_size",
        "intersection_sum",
        "join_group_by",
        "join_regression",
    }
    for r in body["results"]:
        if r["ci95"]:  # the DP job: noisy, within 3 CI half-widths (~5.9σ) of the truth
            assert abs(r["mpc"] - r["plaintext"]) <= 3 * r["ci95"], r
        elif math.isnan(r["plaintext"]):  # a zip with no big-basket customer
            assert math.isnan(r["mpc"]), r
        else:
            assert r["mpc"] == pytest.approx(r["plaintext"], rel=1e-6, abs=1e-9), r
    assert any(r["ci95"] for r in body["results"])
    live = [b for b in body["budgets"] if not b["outsourced"]]  # no DP job reads the shop's
    # orders, deliveries and each owner's customer file (the DP logistic model's)
    assert len(live) == 4 and all(b["remaining_rho"] < b["budget_rho"] for b in live)
    model = body["logistic"]  # the DP join_logistic next to scikit-learn on the same join
    assert model["rows"] > 0 and len(model["dp"]["coef"]) == len(model["features"]) == 2
    assert all(math.isfinite(c) for c in [*model["dp"]["coef"], model["dp"]["intercept"]])
    assert model["sklearn"] is not None and 0 <= model["dp"]["accuracy"] <= 1
    shared = next(r for r in body["results"] if r["protocol"] == "intersection_size")
    assert shared["plaintext"] > 0  # the sample owners do share customers
    scored = body["scoring"]  # encrypted scoring: CKKS error, and the sigmoid's stated one
    assert len(scored["rows"]) == 8 and scored["max_ckks_error"] <= 1e-3
    for r in scored["rows"]:
        assert abs(r["encrypted"] - r["sigmoid"]) <= scored["sigmoid_max_error"] + 1e-3, r
    shop = body["outsourced"]  # a member without a node: BFV at the helper, its client online
    assert shop["exact_match"] and shop["mpc"] == shop["plaintext"] > 0, shop
    assert shop["job"] in shop["approved"] and shop["rows"] > 0
    assert body["killed"] == []
    assert _our_daemons(root) == []

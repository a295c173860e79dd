"""`ensnif program check` (a member program run with three local worker processes against its
plaintext reference) and the registry read without a coordinator, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ensnif_mpc.jobs.member_program import Bundle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "programs" / "big_baskets"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    env["ENSNIF_PROFILE"] = str(cwd / "no-such-profile.toml")  # nothing to reach
    return subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_the_example_runs_with_three_parties_and_matches_its_reference(tmp_path: Path) -> None:
    r = _cli("program", "check", str(EXAMPLE), "--json", "--param", "threshold=35", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["hash"] == Bundle.from_path(EXAMPLE).digest
    assert report["parties"] == 3 and report["ok"] is True
    assert report["mpc"]["count_above"] == report["reference"]["count_above"] > 0
    assert abs(report["mpc"]["sum_above"] - report["reference"]["sum_above"]) < 1e-9


def test_a_manifest_that_does_not_match_the_code_fails_before_anything_runs(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(EXAMPLE, broken)
    manifest = broken / "program.toml"
    manifest.write_text(manifest.read_text().replace('name = "sum_above"', 'name = "total"'))
    r = _cli("program", "check", str(broken), cwd=tmp_path)
    assert r.returncode == 2, r.stdout  # INVALID_ARGUMENT
    assert "program_invalid" in r.stderr and "cover every declared output" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_protocol_registry_is_listed_and_described_without_a_coordinator(
    tmp_path: Path,
) -> None:
    listed = _cli("protocols", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"sum", "mean", "millionaires"} <= {p["name"] for p in json.loads(listed.stdout)}
    described = _cli("protocols", "describe", "sum", cwd=tmp_path)
    assert described.returncode == 0 and "leakage:" in described.stdout


@pytest.mark.slow
def test_a_member_program_s_dp_release_is_noised_by_its_declared_blocks(tmp_path: Path) -> None:
    """The manifest's sensitivities become the release plan every party noises with: the
    noisy answers sit within 6 standard deviations of the plaintext ones."""
    import numpy as np

    from ensnif_mpc.cli.program_cmd import generated_owner
    from ensnif_mpc.demo import local_run
    from ensnif_mpc.jobs import checks, program_lint
    from ensnif_mpc.privacy import dp

    bundle = Bundle.from_path(EXAMPLE)
    manifest = program_lint.check(bundle)
    definition = manifest.definition(bundle.digest)
    assert definition.dp_sensitivity is not None
    owners = [generated_owner(manifest, k, 50, np.random.default_rng(k)) for k in range(2)]
    grid_bound = checks.grid_bound(100.0, 2)
    plan = dp.plan(0.5, definition.dp_sensitivity([(1, grid_bound)] * 2, {}), 3, 1)
    sizing = checks.sizing_for([(50, 100.0, 2)] * 2, 2)
    result = local_run.run(
        tmp_path,
        [*owners, None],
        protocol="program",
        params={"threshold": 50},
        bit_length=sizing.bit_length + plan.headroom_bits(),
        decimals=2,
        program=bundle,
        release=plan.to_dict(),
    )
    assert result.ok, result.message
    values = np.concatenate([o.data[o.roles["value"]] for o in owners])
    big = values[values >= 50]
    count_sd, sum_sd = plan.output_sigmas()  # on the integer grid: sums in cents
    assert abs(float(result.outputs["count_above"]) - big.size) <= 6 * count_sd
    assert abs(float(result.outputs["sum_above"]) - big.sum()) <= 6 * sum_sd / 100
    assert float(result.outputs["sum_above"]) != round(float(big.sum()), 2)  # it was noised

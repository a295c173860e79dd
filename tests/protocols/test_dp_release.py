"""DP releases inside MPC with real workers: noise added before the analyst opens anything.

The expected values are the plaintext references; the tolerance is derived from the
noise scale the plan fixes (6σ: a false alarm has probability below 2e-9 per output).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from protocols.registry import catalog
from tests.protocols.harness import OwnerTable, draw, run_parties

pytestmark = pytest.mark.slow


def _plan(protocol: str, owners: list[tuple[int, int]], params: dict, rho: float) -> dict:
    blocks = catalog()[protocol].dp_sensitivity(owners, params)
    return dp.plan(rho, blocks, 3, 1).to_dict()


def test_noisy_mean_releases_sum_and_count_with_their_own_scales(tmp_path):
    rng = np.random.default_rng(31)
    values = [draw(rng, 2000, 0.0, 100.0, 1), draw(rng, 3000, 0.0, 100.0, 1), None]
    release = _plan("mean", [(1, 1000), (1, 1000)], {}, rho=0.5)

    run = run_parties(tmp_path, "mean", values, decimals=1, lower=0.0, upper=100.0, release=release)

    kept = np.concatenate([v for v in values if v is not None])
    sigmas = dp.ReleasePlan.from_dict(release).output_sigmas()  # grid units: sum, then count
    outputs = {o.name: o for o in run.parts[0].outputs}
    assert set(outputs) == {"sum", "count"}  # the fixed-point mean is not what gets opened
    assert outputs["sum"].noise_sd == pytest.approx(sigmas[0])
    assert outputs["count"].noise_sd == pytest.approx(sigmas[1])
    assert sigmas[0] > 100 * sigmas[1]  # each block calibrated to its own sensitivity
    got_sum, got_count = float(run.outputs["sum"]), float(run.outputs["count"])
    assert abs(got_sum - kept.sum()) <= 6 * sigmas[0] / 10  # sum is on the 1-decimal grid
    assert abs(got_count - kept.size) <= 6 * sigmas[1]
    assert (got_sum, got_count) != (pytest.approx(kept.sum()), kept.size)
    assert float(run.outputs["mean"]) == pytest.approx(got_sum / got_count)


def test_noisy_group_by_adds_noise_to_every_group_and_stays_near_pandas(tmp_path):
    rng = np.random.default_rng(8)
    groups = ["a", "b", "c"]

    def owner(rows: int) -> OwnerTable:
        return OwnerTable(
            {"g": rng.choice(groups, rows).astype(object), "v": rng.integers(0, 50, rows)},
            (Column("g", "string"), Column("v", "int", 0, 50)),
            {"group": "g", "value": "v"},
        )

    a, b = owner(800), owner(500)
    params = {"groups": groups}
    release = _plan("group_by", [(1, 50), (1, 50)], params, rho=1.0)

    run = run_parties(tmp_path, "group_by", [a, b, None], params, release=release)

    want = catalog()["group_by"].reference([a.role_values(), b.role_values()], params)
    sigmas = dp.ReleasePlan.from_dict(release).output_sigmas()
    differs = 0
    for i, g in enumerate(groups):
        for kind, sigma in (("count", sigmas[i]), ("sum", sigmas[len(groups) + i])):
            got = float(run.outputs[f"{kind}[{g}]"])
            assert abs(got - want[f"{kind}[{g}]"]) <= 6 * sigma, (kind, g)
            differs += got != want[f"{kind}[{g}]"]
    assert differs >= 4  # noise on (nearly) every output; P(all 6 exact) is negligible
    assert not math.isnan(float(run.outputs["mean[a]"]))


def test_no_party_opens_anything_in_a_dp_sum_and_a_join_opens_only_masks(tmp_path, monkeypatch):
    """The outputs reach only the analyst: no party calls open at all for an aggregate;
    a private join on the PRF path opens its masked products r·(k+x) (one array), then only
    the masked values of the joint cohort's comparison, and pseudonyms are points, not
    openings; on the tagged-helper path the only openings are
    the masked values inside MPyC's secure comparisons, as many and as shaped whatever the
    data."""
    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")
    rng = np.random.default_rng(3)
    values = [draw(rng, 500, 0.0, 10.0, 0), draw(rng, 400, 0.0, 10.0, 0), None]
    release = _plan("sum", [(1, 10), (1, 10)], {}, rho=0.5)

    run = run_parties(tmp_path, "sum", values, lower=0.0, upper=10.0, release=release)

    assert not any((d / "openings.log").exists() for d in run.dirs)

    def tables(lo: int, hi: int, shift: int) -> list[OwnerTable | None]:
        keys = OwnerTable(
            {"k": np.arange(50), "v": (np.arange(50) + shift) % 7},
            (Column("k", "int", 0, 100), Column("v", "int", 0, 10)),
            {"key": "k", "value": "v"},
        )
        other = OwnerTable({"k": np.arange(lo, hi)}, (Column("k", "int", 0, 100),), {"key": "k"})
        return [keys, other, None]

    prf_logs = []
    for n, (lo, hi, shift) in enumerate([(25, 90, 0), (40, 45, 3)]):
        prf = run_parties(
            tmp_path / f"prf{n}",
            "intersection_sum",
            tables(lo, hi, shift),
            {"join_path": "prf-shuffle"},
            job_id="join",
        )
        assert prf.outputs["keys"] == len(set(range(50)) & set(range(lo, hi)))
        prf_logs.append([(d / "openings.log").read_text().splitlines() for d in prf.dirs])
    for d_lines in prf_logs[0]:
        # First the masked products r·(k+x) of all keys, one array; after it only the
        # masked values inside the joint minimum cohort's secure comparison
        # (protocols.joint_cohort), as many and as shaped whatever the data.
        first = d_lines[0].split()
        assert first[0].startswith("ArraySecFld") and first[1] == str(50 + 65)
        assert not any(line.startswith("ArraySecFld") for line in d_lines[1:])
    # (the products' count is the two tables' sizes, public; the rest must not move)
    assert [sorted(x[1:]) for x in prf_logs[0]] == [sorted(x[1:]) for x in prf_logs[1]]

    logs = []
    for n, (lo, hi, shift) in enumerate([(25, 90, 0), (40, 45, 3)]):
        tagged = run_parties(
            tmp_path / f"tagged{n}", "intersection_sum", tables(lo, hi, shift), job_id="join"
        )
        assert tagged.outputs["keys"] == len(set(range(50)) & set(range(lo, hi)))
        logs.append([(d / "openings.log").read_text() for d in tagged.dirs])
    shapes = [[sorted(log.splitlines()) for log in run_logs] for run_logs in logs]
    assert shapes[0] == shapes[1], shapes  # the same openings (in any order) whatever the data
    assert all(
        line.split()[0] in ("list",) or line.startswith(("GF(", "ArrayGF("))
        for line in logs[0][0].splitlines()
    )

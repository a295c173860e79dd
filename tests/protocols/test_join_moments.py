"""join_moments with three real worker processes: the means, variances and covariance of
two owners' per-key values over matched keys, against pandas on the same rows; the DP
release's six noisy sums within 6σ of the exact ones (a false alarm below 2e-9 each)."""

from __future__ import annotations

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from protocols.join import moments
from protocols.registry import catalog
from tests.protocols.harness import OwnerTable, run_parties

pytestmark = pytest.mark.slow


def _owner(rng: np.random.Generator, rows: int, offset: int, value: str) -> OwnerTable:
    data = {"k": rng.integers(offset, offset + 60, rows), value: rng.integers(0, 5000, rows) / 100}
    columns = (Column("k", "int", 0, 1000), Column(value, "float", 0, 50, 2))
    return OwnerTable(data, columns, {"key": "k", "value": value})


def _tables(owners: list[OwnerTable]) -> list[dict]:
    return [o.role_values() for o in owners]


def test_join_moments_equal_pandas_over_the_matched_keys(tmp_path):
    """On the PRF route (the contract suite runs the helper route on its example)."""
    rng = np.random.default_rng(21)
    a, b = _owner(rng, 90, 0, "x"), _owner(rng, 80, 30, "y")
    params = {"per_key": "sum", "join_path": "prf-shuffle"}

    run = run_parties(tmp_path, "join_moments", [a, b, None], params, decimals=2, timeout=300)

    want = moments.reference(_tables([a, b]), params)
    assert want["pairs"] >= 10
    for name, value in want.items():
        assert float(run.outputs[name]) == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_dp_join_moments_noise_the_six_sums_within_their_scales(tmp_path):
    rng = np.random.default_rng(22)
    a, b = _owner(rng, 300, 0, "x"), _owner(rng, 300, 20, "y")
    params = {"per_key": "mean"}
    blocks = catalog()["join_moments"].dp_sensitivity([(1, 5000), (1, 5000)], params)
    release = dp.plan(20.0, blocks, 3, 1).to_dict()

    run = run_parties(
        tmp_path, "join_moments", [a, b, None], params, decimals=2, release=release, timeout=300
    )

    plan = dp.ReleasePlan.from_dict(release)
    sd = [plan.block_sd(blk) for blk in plan.blocks]
    opened = {o.name.split("@")[0]: o for o in run.parts[0].outputs if o.name != "withheld"}
    assert list(opened) == ["pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy"]
    raw = {k.split("@")[0]: float(run.outputs[k]) for k in (o.name for o in opened.values())}
    per_key = [
        o.role_values() for o in (a, b)
    ]  # the exact sums on the grid: per-key means rounded half up to 2 decimals
    import pandas as pd

    means = [
        pd.DataFrame({"k": t["key"], "v": np.rint(t["value"] * 100).astype(int)})
        .groupby("k")["v"]
        .agg(lambda s: (2 * int(s.sum()) + len(s)) // (2 * len(s)))
        for t in per_key
    ]
    j = pd.concat(means, axis=1, join="inner").to_numpy(dtype=float)
    x, y = j[:, 0], j[:, 1]
    exact = [len(x), x.sum(), y.sum(), x @ x, y @ y, x @ y]
    grid = [1, 100, 100, 1, 1, 1]  # Σx, Σy come back in units; the squares on their grid
    for (name, got), want, s, g in zip(raw.items(), exact, sd, grid, strict=True):
        assert abs(got * g - want) <= 6 * s, name
    assert float(run.outputs["mean_x"]) == pytest.approx(raw["sum_x"] / raw["pairs"])

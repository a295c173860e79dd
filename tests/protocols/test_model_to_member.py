"""A model released to a named member (``keep = "to:<member>"``) with real workers: the
coefficients reach that data owner only, sealed to its key; the analyst's part and the
other parties' are empty. Exact: equal to scikit-learn's. DP: the member's noisy
statistics are the job's release (each within 6 σ of the exact statistic)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from ensnif_mpc.data.schema import Column
from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy import dp
from protocols import registry
from tests.protocols.harness import OwnerTable, RunResult, run_parties

FEATURES = ["x1", "x2"]
DECIMALS = 1


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.round(rng.uniform(-10, 10, size=(n, 2)), DECIMALS)
    y = np.round(np.clip(2 + x @ np.array([1.5, -0.5]) + rng.normal(0, 1, n), -50, 50), 1)
    return np.column_stack([x, y])


def _owner(rows: np.ndarray) -> OwnerTable:
    data = {n: rows[:, j] for j, n in enumerate([*FEATURES, "y"])}
    columns = tuple(Column(n, "float", -10, 10, DECIMALS) for n in FEATURES)
    columns += (Column("y", "float", -50, 50, DECIMALS),)
    return OwnerTable(data, columns, {"label": "y"}, lists={"features": FEATURES})


RNG = np.random.default_rng(41)
A, B = _rows(RNG, 300), _rows(RNG, 200)


def _plan() -> dp.ReleasePlan:
    bounds = {"features": (100, 100), "label": (500,)}
    blocks = registry.get("linear_regression").dp_sensitivity(
        [OwnerBounds(1, bounds), OwnerBounds(1, bounds)], {"ridge": 0.0}
    )
    return dp.plan(4.0, blocks, 3, 1)


def _run(root: Path, kind: str) -> RunResult:
    return run_parties(
        root / kind,
        "linear_regression",
        [_owner(A), _owner(B), None],
        {"ridge": 0.0, "keep": "to:party1"},  # the harness names its parties party<i>
        decimals=DECIMALS,
        job_id=f"member{kind}",
        timeout=300,
        release=_plan().to_dict() if kind == "dp" else None,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("to_member")
    with ThreadPoolExecutor(2) as pool:
        kinds = ("exact", "dp")
        return dict(zip(kinds, pool.map(lambda k: _run(root, k), kinds), strict=True))


@pytest.mark.parametrize("kind", ["exact", "dp"])
def test_only_the_named_member_opens_anything(runs, kind):
    run = runs[kind]

    assert run.outputs == {}
    assert all(not p.outputs for p in run.parts)  # the analyst's part of every share
    assert set(run.party_outputs) == {1}


def test_the_member_s_exact_model_is_scikit_learn_s(runs):
    got = registry.finalize("linear_regression", runs["exact"].party_outputs[1])
    model = LinearRegression().fit(np.vstack([A, B])[:, :2], np.vstack([A, B])[:, 2])

    coef = np.array([float(got[f"coef[{j}]"]) for j in range(3)])
    np.testing.assert_allclose(coef, [model.intercept_, *model.coef_], rtol=1e-6, atol=1e-6)


def test_the_member_s_dp_statistics_are_the_noisy_release(runs):
    opened = runs["dp"].party_outputs[1]
    plan = _plan()
    rows = np.vstack([A, B])

    assert float(opened["n"]) == pytest.approx(
        len(rows), abs=6 * plan.blocks[0].sigma_share * np.sqrt(3)
    )
    fit = registry.finalize("linear_regression", opened)
    assert {"coef[0]", "coef[1]", "coef[2]"} <= set(fit)

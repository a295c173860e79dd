"""linear_regression with real workers (two owners and a helper: three MPyC processes),
against scikit-learn and numpy on the same rows.

Exact release: coefficients within 1e-6 (relative, or absolute near zero) of scikit-learn's
LinearRegression / Ridge — the fixed-point solve works at 2^-48 on entries scaled to at
most 1 by the declared bounds, and this data's condition number is small, so its error is
far below that; standard errors and R² within the same of numpy's closed form. A
collinear feature fails the job with ``singular_system`` and nothing sealed. DP release:
every noisy statistic within 6 σ of the exact one (σ from the release plan), and the
coefficients the client solves within 6 σ of scikit-learn's, σ from redrawing the plan's
noise through the same solve.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from ensnif_mpc.data.schema import Column
from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy import dp
from protocols.models import solve
from protocols.models.gram import triangle
from protocols.models.regression import CROSS
from protocols.registry import catalog
from tests.protocols.harness import (
    OwnerTable,
    RunResult,
    Workers,
    make_consortium,
    run_parties,
    status_of,
    write_sessions,
)

pytestmark = pytest.mark.slow

DECIMALS = 2
FEATURES = ["x1", "x2", "x3"]
X_BOUND, Y_BOUND = 10.0, 200.0
TRUE = np.array([3.0, 1.5, -2.0, 0.5])
TOL = 1e-6


def _rows(rng: np.random.Generator, n: int, collinear: bool = False) -> np.ndarray:
    x = np.round(rng.uniform(-X_BOUND, X_BOUND, size=(n, 3)), DECIMALS)
    if collinear:
        x[:, 2] = x[:, 0] + x[:, 1]
        x = np.clip(x, -X_BOUND, X_BOUND)
        x[:, 2] = x[:, 0] + x[:, 1]  # keep it exactly collinear inside the bounds
        x[:, :2] = np.clip(x[:, :2], -X_BOUND / 2, X_BOUND / 2)
        x[:, 2] = x[:, 0] + x[:, 1]
    y = np.round(TRUE[0] + x @ TRUE[1:] + rng.normal(0, 2.0, n), DECIMALS)
    return np.column_stack([x, np.clip(y, -Y_BOUND, Y_BOUND)])


def _owner(rows: np.ndarray) -> OwnerTable:
    data = {name: rows[:, j] for j, name in enumerate([*FEATURES, "y"])}
    columns = tuple(Column(n, "float", -X_BOUND, X_BOUND, DECIMALS) for n in FEATURES) + (
        Column("y", "float", -Y_BOUND, Y_BOUND, DECIMALS),
    )
    return OwnerTable(data, columns, {"label": "y"}, lists={"features": FEATURES})


RNG = np.random.default_rng(2026)
A, B = _rows(RNG, 400), _rows(RNG, 300)
ALL = np.vstack([A, B])
BAD_A, BAD_B = _rows(RNG, 60, collinear=True), _rows(RNG, 50, collinear=True)


REG = catalog()["linear_regression"]


def _plan(rho: float = 2.0) -> dp.ReleasePlan:
    bounds = {"features": (1000,) * 3, "label": (20000,)}
    owners = [OwnerBounds(1, bounds), OwnerBounds(1, bounds)]
    blocks = REG.dp_sensitivity(owners, {"ridge": 0.0})
    return dp.plan(rho, blocks, 3, 1)


def _run(root: Path, kind: str) -> RunResult:
    params = {"ridge": 5.0 if kind == "ridge" else 0.0}
    release = _plan().to_dict() if kind == "dp" else None
    return run_parties(
        root / kind,
        "linear_regression",
        [_owner(A), _owner(B), None],
        params,
        decimals=DECIMALS,
        job_id=f"reg{kind}",
        timeout=300,
        release=release,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("regression")
    kinds = ("ols", "ridge", "dp")
    with ThreadPoolExecutor(len(kinds)) as pool:
        done = dict(zip(kinds, pool.map(lambda k: _run(root, k), kinds), strict=True))
    return done


def _coefs(run: RunResult) -> np.ndarray:
    return np.array([float(run.outputs[f"coef[{j}]"]) for j in range(4)])


def _close(got: np.ndarray, want: np.ndarray, tol: float = TOL) -> None:
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_exact_coefficients_are_scikit_learn_s(runs):
    model = LinearRegression().fit(ALL[:, :3], ALL[:, 3])

    _close(_coefs(runs["ols"]), [model.intercept_, *model.coef_])


def test_exact_standard_errors_and_r2_are_the_closed_form_s(runs):
    want = solve.from_rows(ALL[:, :3], ALL[:, 3])
    out = runs["ols"].outputs

    _close(np.array([float(out[f"se[{j}]"]) for j in range(4)]), np.sqrt(want["se2"]))
    _close(np.array(float(out["r2"])), want["r2"])
    assert "se2[0]" not in out  # the squares are turned into standard errors


def test_exact_ridge_coefficients_are_scikit_learn_s(runs):
    model = Ridge(alpha=5.0).fit(ALL[:, :3], ALL[:, 3])

    _close(_coefs(runs["ridge"]), [model.intercept_, *model.coef_])


def test_the_exact_release_opens_only_coefficients_errors_and_r2(runs):
    names = {p.name for p in runs["ols"].parts[0].outputs}

    assert names == {f"coef[{j}]" for j in range(4)} | {f"se2[{j}]" for j in range(4)} | {"r2"}


def _exact_stats() -> dict[str, float]:
    z = np.round(ALL * 10**DECIMALS).astype(np.int64).astype(object)
    out = {"n": float(len(z))}
    out.update({f"sum[{j}]": float(z[:, j].sum()) / 10**DECIMALS for j in range(4)})
    gram = z.T @ z
    for j, col in triangle(4):
        out[f"{CROSS}{2 * DECIMALS}[{j},{col}]"] = float(gram[j, col])
    return out


def test_dp_statistics_are_within_six_sigma_of_the_exact_ones(runs):
    run, exact = runs["dp"], _exact_stats()
    sigmas = {p.name: p.noise_sd for p in run.parts[0].outputs}
    assert set(sigmas) == set(exact)

    for name, value in exact.items():
        scale = 10**DECIMALS if name.startswith("sum[") else 1
        off = abs(float(run.outputs[name]) - value) * scale
        assert off <= 6 * sigmas[name], (name, off, sigmas[name])


def test_dp_coefficients_are_within_their_noise_of_scikit_learn_s(runs):
    run = runs["dp"]
    sigmas = {p.name: p.noise_sd for p in run.parts[0].outputs}
    exact = _exact_stats()
    rng = np.random.default_rng(5)
    draws = 400
    # The plan's noise, redrawn around the exact statistics and solved as the client does.
    noisy = {
        k: v + rng.normal(0, sigmas[k], draws) / (10**DECIMALS if k.startswith("sum[") else 1)
        for k, v in exact.items()
    }
    grid = 10 ** (2 * DECIMALS)
    names = [f"{CROSS}{2 * DECIMALS}[{j},{col}]" for j, col in triangle(4)]
    cross = np.stack([noisy[name] / grid for name in names], axis=-1)
    sums = np.stack([noisy[f"sum[{j}]"] for j in range(4)], axis=-1)
    spread = np.nanstd(solve.solve(noisy["n"], sums, cross)["coef"], axis=0)
    model = LinearRegression().fit(ALL[:, :3], ALL[:, 3])

    off = np.abs(_coefs(run) - [model.intercept_, *model.coef_])

    assert np.all(off <= 6 * spread + TOL), (off, spread)


def test_a_collinear_feature_fails_with_singular_system_and_seals_nothing(tmp_path):
    root = tmp_path / "singular"
    consortium = make_consortium(root, 3)
    dirs = write_sessions(
        root,
        consortium,
        job_id="regsingular",
        protocol="linear_regression",
        owner_values=[_owner(BAD_A), _owner(BAD_B), None],
        params={"ridge": 0.0},
        decimals=DECIMALS,
    )
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=300)

    assert all(code != 0 for code in codes.values()), codes
    assert {status_of(d).reason_code for d in dirs} == {"singular_system"}
    assert not any((d / "result.sealed").exists() for d in dirs)

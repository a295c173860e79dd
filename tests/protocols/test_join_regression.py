"""join_regression with real workers (two owners and a helper: three MPyC processes),
against scikit-learn on the pandas join of the same rows.

Owner A (logistics) holds a customer id and the delivery minutes, one row per customer;
owner B (grocery) a customer id, the basket value (label) and the items bought, several
rows per customer, and customers the other does not have. The plaintext side reduces
each owner's rows per key as the protocol does (the mean rounded half up to the grid,
or the sum), joins them with pandas and fits scikit-learn. Exact release: coefficients
within 1e-6 (the fixed-point solve works at 2^-48 on entries scaled to at most 1), on the
tagged-helper route (mean, OLS) and the PRF route (sum, ridge). DP release: the noisy
statistics within 6 σ of the exact ones, σ from the release plan, and the
coefficients the client's solve of exactly those statistics. A feature of B
collinear with A's over the matched keys fails with ``singular_system``, nothing sealed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from ensnif_mpc.data.schema import Column
from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy import dp, withheld
from ensnif_mpc.results.shares import combine
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

DECIMALS = 1
MINUTES, ITEMS, BASKET = 120.0, 120.0, 800.0
TOL = 1e-6


def _owners(rng: np.random.Generator, collinear: bool = False) -> tuple[OwnerTable, OwnerTable]:
    ids = rng.permutation(600)[:260]
    minutes = np.round(rng.uniform(10, 100, len(ids)), DECIMALS)
    logistics = OwnerTable(
        {"customer": ids, "minutes": minutes},
        (Column("customer", "int", 0, 1000), Column("minutes", "float", 0, MINUTES, DECIMALS)),
        {"key": "customer"},
        lists={"features": ["minutes"]},
    )
    theirs = np.concatenate([ids[:200], rng.integers(600, 900, 60)])  # 200 shared customers
    by_id = dict(zip(ids, minutes, strict=True))
    visits = rng.integers(1, 4, len(theirs))
    customer = np.repeat(theirs, visits)
    delivery = np.array([by_id.get(c, 50.0) for c in customer])
    items = np.round(rng.uniform(1, 30, len(customer)), DECIMALS)
    if collinear:
        items = delivery.copy()  # per key, exactly A's minutes
    basket = 20 + 1.5 * delivery + 3.0 * items + rng.normal(0, 8, len(customer))
    grocery = OwnerTable(
        {"customer": customer, "items": items, "basket": np.round(basket, DECIMALS)},
        (
            Column("customer", "int", 0, 1000),
            Column("items", "float", 0, ITEMS, DECIMALS),
            Column("basket", "float", 0, BASKET, DECIMALS),
        ),
        {"key": "customer", "label": "basket"},
        lists={"features": ["items"]},
    )
    return logistics, grocery


RNG = np.random.default_rng(13)
A, B = _owners(RNG)
BAD_A, BAD_B = _owners(RNG, collinear=True)
REG = catalog()["join_regression"]


def _per_key(table: OwnerTable, columns: list[str], how: str) -> pd.DataFrame:
    """The owner's per-key rows on the grid: sums, or means rounded half up (exact)."""
    scale = 10**DECIMALS
    frame = pd.DataFrame({"key": table.data["customer"]})
    for c in columns:
        frame[c] = np.round(np.asarray(table.data[c]) * scale).astype(np.int64)
    grouped = frame.groupby("key")
    sums, counts = grouped.sum(), grouped.size()
    if how == "sum":
        return sums / scale
    means = (2 * sums.to_numpy() + counts.to_numpy()[:, None]) // (2 * counts.to_numpy()[:, None])
    return pd.DataFrame(means / scale, index=sums.index, columns=columns)


def _joined(a: OwnerTable, b: OwnerTable, how: str) -> np.ndarray:
    left = _per_key(a, ["minutes"], how)
    return left.join(_per_key(b, ["items", "basket"], how), how="inner").to_numpy()


def _plan(rho: float = 64.0) -> dp.ReleasePlan:
    owners = [
        OwnerBounds(1, {"features": (1200,)}),
        OwnerBounds(1, {"features": (1200,), "label": (8000,)}),
    ]
    return dp.plan(rho, REG.dp_sensitivity(owners, {"per_key": "mean"}), 3, 1)


RUNS = {
    "ols": {"per_key": "mean"},
    "ridge": {"per_key": "sum", "ridge": 30.0, "join_path": "prf-shuffle"},
    "dp": {"per_key": "mean"},
}


def _run(root: Path, kind: str) -> RunResult:
    return run_parties(
        root / kind,
        "join_regression",
        [A, B, None],
        RUNS[kind],
        decimals=DECIMALS,
        job_id=f"vreg{kind}",
        timeout=300,
        release=_plan().to_dict() if kind == "dp" else None,
    )


def _singular(root: Path) -> list[Path]:
    """The collinear job's party directories, once its workers have exited."""
    root = root / "singular"
    consortium = make_consortium(root, 3)
    dirs = write_sessions(
        root,
        consortium,
        job_id="vregsingular",
        protocol="join_regression",
        owner_values=[BAD_A, BAD_B, None],
        params={"per_key": "mean"},
        decimals=DECIMALS,
    )
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=300)
    assert all(code != 0 for code in codes.values()), codes
    return dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every job of this module at once (four consortia of three workers)."""
    root = tmp_path_factory.mktemp("join_regression")
    with ThreadPoolExecutor(len(RUNS) + 1) as pool:
        singular = pool.submit(_singular, root)
        done: dict[str, Any] = dict(zip(RUNS, pool.map(lambda k: _run(root, k), RUNS), strict=True))
        done["singular"] = singular.result()
    return done


def _coefs(run: RunResult) -> np.ndarray:
    return np.array([float(run.outputs[f"coef[{j}]"]) for j in range(3)])


def test_exact_coefficients_on_the_helper_route_are_scikit_learn_s(runs):
    z = _joined(A, B, "mean")
    model = LinearRegression().fit(z[:, :2], z[:, 2])

    got = _coefs(runs["ols"])

    np.testing.assert_allclose(got, [model.intercept_, *model.coef_], rtol=TOL, atol=TOL)
    assert abs(got[1] - 1.5) < 0.2  # the slope on delivery minutes is really there
    residual = z[:, 2] - model.predict(z[:, :2])
    r2 = 1 - residual @ residual / ((z[:, 2] - z[:, 2].mean()) ** 2).sum()
    assert float(runs["ols"].outputs["r2"]) == pytest.approx(r2, abs=TOL)


def test_exact_ridge_on_the_prf_route_is_scikit_learn_s(runs):
    z = _joined(A, B, "sum")
    model = Ridge(alpha=30.0).fit(z[:, :2], z[:, 2])

    got = _coefs(runs["ridge"])

    np.testing.assert_allclose(got, [model.intercept_, *model.coef_], rtol=TOL, atol=TOL)


def test_the_reference_is_the_same_fit_on_the_raw_join():
    tables = [
        {"key": A.data["customer"], "features": A.data["minutes"]},
        {"key": B.data["customer"], "features": B.data["items"], "label": B.data["basket"]},
    ]
    z = _joined(A, B, "sum")
    model = Ridge(alpha=30.0).fit(z[:, :2], z[:, 2])

    ref = REG.reference(tables, {"per_key": "sum", "ridge": 30.0})

    want = [model.intercept_, *model.coef_]
    np.testing.assert_allclose([ref[f"coef[{j}]"] for j in range(3)], want, rtol=1e-9)


def test_dp_statistics_are_within_six_sigma_of_the_exact_ones(runs):
    run = runs["dp"]
    z = np.round(_joined(A, B, "mean") * 10**DECIMALS).astype(np.int64).astype(object)
    exact = {"n": float(len(z))}
    exact.update({f"sum[{j}]": float(z[:, j].sum()) / 10**DECIMALS for j in range(3)})
    gram = z.T @ z
    for j, col in triangle(3):
        exact[f"{CROSS}{2 * DECIMALS}[{j},{col}]"] = float(gram[j, col])
    sigmas = {p.name: p.noise_sd for p in run.parts[0].outputs if not withheld.is_marker(p.name)}
    assert set(sigmas) == set(exact)
    assert combine(run.parts)["withheld"] == 0  # no minimum cohort set: nothing withheld

    for name, value in exact.items():
        scale = 10**DECIMALS if name.startswith("sum[") else 1
        off = abs(float(run.outputs[name]) - value) * scale
        assert off <= 6 * sigmas[name], (name, off, sigmas[name])
    # The analyst's client solved exactly the noisy statistics it opened (NaN where the
    # noisy system is not positive definite, as solve.solve says).
    grid = 10 ** (2 * DECIMALS)
    names = [f"{CROSS}{2 * DECIMALS}[{j},{col}]" for j, col in triangle(3)]
    fit = solve.solve(
        np.asarray(float(run.outputs["n"])),
        np.array([float(run.outputs[f"sum[{j}]"]) for j in range(3)]),
        np.array([float(run.outputs[k]) / grid for k in names]),
    )
    np.testing.assert_allclose(_coefs(run), fit["coef"], rtol=1e-9, equal_nan=True)


def test_a_collinear_feature_across_the_join_fails_with_singular_system(runs):
    dirs = runs["singular"]

    assert {status_of(d).reason_code for d in dirs} == {"singular_system"}
    assert not any((d / "result.sealed").exists() for d in dirs)

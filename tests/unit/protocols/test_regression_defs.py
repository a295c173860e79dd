"""linear_regression's declarations without MPC: the job checks, the owner's exact local
statistics, the solve against scikit-learn, the finalize steps and the DP blocks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.jobs import checks, jobspec
from ensnif_mpc.jobs.protocol import OwnerBounds
from protocols.models import solve
from protocols.models.gram import moments, triangle
from protocols.registry import catalog

REG = catalog()["linear_regression"]
COLUMNS = (
    Column("x1", "float", -10, 10, 1),
    Column("x2", "float", -10, 10, 1),
    Column("y", "float", -100, 100, 1),
)


def _spec(*features, ridge=0.0):
    inputs = [
        {"party": f"p{i}", "dataset": "d", "features": list(f), "label": "y"}
        for i, f in enumerate(features)
    ]
    return jobspec.from_dict(
        {
            "protocol": "linear_regression",
            "inputs": inputs,
            "helpers": ["h"],
            "params": {"ridge": ridge},
        }
    )


def _catalog(rows):
    def dataset(party, name):
        return DatasetSchema(party, name, COLUMNS, rows, policy=PrivacyPolicy())

    return (lambda party: "member"), dataset


def test_owners_listing_different_numbers_of_features_are_refused():
    spec = _spec(["x1", "x2"], ["x1"])

    with pytest.raises(InvalidJobSpec, match="same number of features"):
        checks.check_job(REG, spec, *_catalog(100))


def test_a_negative_ridge_penalty_is_refused():
    with pytest.raises(InvalidJobSpec, match=r"params\.ridge"):
        checks.check_job(REG, _spec(["x1"], ["x1"], ridge=-1.0), *_catalog(100))


def test_no_more_rows_than_coefficients_is_refused_before_it_runs():
    with pytest.raises(FailedPrecondition) as info:
        checks.check_job(REG, _spec(["x1", "x2"], ["x1", "x2"]), *_catalog(1))

    assert info.value.reason == "too_few_rows"


def test_the_session_holds_the_largest_cross_product_of_the_declared_bounds():
    sizing = checks.check_job(REG, _spec(["x1", "x2"], ["x1", "x2"]), *_catalog(5000))

    assert sizing.bit_length >= checks.sum_bits(2 * 5000 * 1000 * 1000)  # y·y at 10^1


@pytest.mark.parametrize("bits", [3, 15, 16, 31, 45, 52])
def test_an_owner_s_statistics_are_exact_at_every_width(bits):
    rng = np.random.default_rng(bits)
    z = rng.integers(-(2**bits) + 1, 2**bits, size=(2500, 4), dtype=np.int64)

    m = moments(z, bits)

    exact = z.astype(object)
    gram = exact.T @ exact
    assert m.n == 2500
    assert m.sums == list(exact.sum(axis=0))
    assert m.cross == [gram[j, col] for j, col in triangle(4)]


@pytest.mark.parametrize("ridge", [0.0, 3.5])
def test_the_solve_from_statistics_is_scikit_learn_s(ridge):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    y = x @ [1.0, -2.0, 0.5] + 4 + rng.normal(size=300)

    fit = solve.from_rows(x, y, ridge)

    model = (Ridge(alpha=ridge) if ridge else LinearRegression()).fit(x, y)
    np.testing.assert_allclose(fit["coef"], [model.intercept_, *model.coef_], rtol=1e-10)
    if not ridge:
        assert float(fit["r2"]) == pytest.approx(model.score(x, y), rel=1e-12)


def test_a_singular_or_indefinite_noisy_system_gives_nan_not_an_error():
    x = np.column_stack([np.arange(10.0), 2 * np.arange(10.0)])

    fit = solve.from_rows(x, np.arange(10.0))

    assert np.isnan(fit["coef"]).all() and np.isnan(fit["r2"])


def test_the_exact_finalize_turns_squared_errors_into_standard_errors():
    out = REG.finalize({"coef[0]": Fraction(1), "se2[0]": Fraction(9, 4), "r2": Fraction(1, 2)})

    assert out == {"coef[0]": Fraction(1), "se[0]": 1.5, "r2": Fraction(1, 2)}


def test_one_owner_alone_never_claims_more_than_the_whole_release():
    a = OwnerBounds(2, {"features": (100, 50), "label": (1000,)})
    b = OwnerBounds(1, {"features": (10, 10), "label": (500,)})

    alone, both = REG.dp_sensitivity([a], {}), REG.dp_sensitivity([a, b], {})

    assert [s.dims for s in both] == [1, 3, 3, 2, 1]
    assert all(x.l2 <= y.l2 and x.l1 <= y.l1 for x, y in zip(alone, both, strict=True))
    assert both[0].l2 == 3  # n: one per row of the person, at both owners
    assert both[4].l2 == 2 * 1000**2 + 500**2  # yᵀy
    assert both[1].l2 == pytest.approx(
        2 * math.sqrt(100**2 + 50**2 + 1000**2) + math.sqrt(10**2 + 10**2 + 500**2)
    )

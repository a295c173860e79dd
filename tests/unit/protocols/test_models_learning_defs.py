"""The logistic-regression and k-means entries' checks, DP blocks and local steps, without
MPC (the three-party runs are in tests/protocols/test_models_learning.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import ColumnTypeMismatch, InvalidJobSpec
from ensnif_mpc.jobs import checks
from ensnif_mpc.privacy import dp
from protocols.models import kmeans as km, logistic as lr
from protocols.models.secure_math import (
    SIGMOID_MAX_ERROR,
    SIGMOID_RANGE,
    newton_schulz_steps,
    sigmoid_poly,
)
from protocols.registry import OwnerBounds, catalog
from protocols.rounds import NoisyRounds

FEATURES = (Column("x1", "float", -5, 5, 1), Column("x2", "int", 0, 9))


@pytest.mark.parametrize("bounds", [(0, 5), (-1, 1)])
def test_a_label_not_declared_within_zero_and_one_is_refused_before_it_runs(bounds):
    columns = (*FEATURES, Column("y", "int", *bounds))
    roles = {"features": ["x1", "x2"], "label": "y"}

    with pytest.raises(ColumnTypeMismatch, match=r"declared within \[0, 1\]"):
        checks.check_input_columns(catalog()["logistic_regression"], 0, roles, columns, "a/d")


def test_a_label_declared_within_zero_and_one_is_read():
    columns = (*FEATURES, Column("y", "int", 0, 1))
    roles = {"features": ["x1", "x2"], "label": "y"}

    read = checks.check_input_columns(catalog()["logistic_regression"], 0, roles, columns, "a/d")

    assert [c.name for c in read["label"]] == ["y"]


def test_the_cubic_sigmoid_stays_within_its_stated_error_on_its_range():
    z = np.linspace(-SIGMOID_RANGE, SIGMOID_RANGE, 10001)

    assert np.max(np.abs(sigmoid_poly(z) - 1 / (1 + np.exp(-z)))) <= SIGMOID_MAX_ERROR


def test_newton_schulz_steps_reach_the_stated_accuracy():
    for condition in (3.0, 1e3, 2.75e6):
        k = newton_schulz_steps(condition, 40)
        assert (1 - 1 / condition) ** (2**k) <= 2.0**-40


@pytest.mark.parametrize(
    ("protocol", "params", "match"),
    [
        ("logistic_regression", {"lower": [0], "upper": [1, 2]}, "one bound per feature"),
        ("logistic_regression", {"lower": [0, 0], "upper": [1, 0]}, "must exceed"),
        ("kmeans", {"lower": [0, 0], "upper": [1, 1], "k": 1}, "at least 2"),
        ("kmeans", {"lower": [0, 0], "upper": [1, 1], "k": 2, "initial": [1, 2, 3]}, "k·d"),
    ],
)
def test_bad_parameters_are_refused_by_the_entry(protocol, params, match):
    from types import SimpleNamespace

    inputs = [SimpleNamespace(column_lists={"features": ["a", "b"]})]
    spec = SimpleNamespace(params=params, inputs=inputs)
    check = catalog()[protocol].check_spec
    assert check is not None

    with pytest.raises(InvalidJobSpec, match=match):
        check(spec)


def test_dp_logistic_charges_a_count_and_every_step():
    params = {"lower": [0, 0, 0], "upper": [1, 1, 1], "steps": 7}
    sensitivity = catalog()["logistic_regression"].dp_sensitivity
    assert sensitivity is not None

    blocks = sensitivity([OwnerBounds(2), OwnerBounds(3)], params)

    assert [(b.l2, b.dims) for b in blocks] == [(5.0, 1)] + [(5.0 * 2**20, 4)] * 7
    plan = dp.plan(0.7, blocks, 3, 1)
    assert plan.charge() == pytest.approx(0.7)  # the whole run, split over 8 blocks
    assert all(b.rho == pytest.approx(0.7 / 8) for b in plan.blocks)


def test_dp_kmeans_charges_counts_and_sums_per_iteration():
    params = {"lower": [0, 0], "upper": [1, 1], "k": 3, "iterations": 4}
    sensitivity = catalog()["kmeans"].dp_sensitivity
    assert sensitivity is not None

    blocks = sensitivity([OwnerBounds(1), OwnerBounds(1)], params)

    assert len(blocks) == 8
    assert (blocks[0].l2, blocks[0].dims) == (2.0, 3)
    assert blocks[1].l2 == pytest.approx(2 * 2**12 * math.sqrt(2)) and blocks[1].dims == 6


def test_a_row_s_clipped_gradient_never_exceeds_the_grid_bound():
    rng = np.random.default_rng(4)
    x = lr.design_matrix(rng.uniform(-9, 9, (50, 3)), np.full(3, -9.0), np.full(3, 9.0))
    y = rng.integers(0, 2, 50).astype(float)
    w = rng.normal(0, 5, 4)

    for i in range(50):
        row = lr.clipped_gradient_sum(x[i : i + 1], y[i : i + 1], w, 0.5).astype(float)
        assert np.linalg.norm(row) <= 2**lr.DP_GRID


def test_kmeans_local_step_counts_every_row_once():
    rng = np.random.default_rng(5)
    g = rng.integers(0, 2**km.FK, (40, 2))
    counts, sums = km.local_stats(g, np.array([[100.0, 100.0], [3000.0, 3000.0]]))

    assert sum(counts) == 40
    assert sum(sums) == g.sum()


def test_an_iterative_program_must_open_every_planned_block():
    plan = dp.plan(1.0, [dp.BlockSpec(1.0, 1), dp.BlockSpec(1.0, 2)], 3, 1)
    rounds = NoisyRounds(None, plan)
    rounds.used = 1

    with pytest.raises(ValueError, match="opened 1 of the release's 2 blocks"):
        rounds.finish([])


def test_join_moments_statistics_from_the_six_sums():
    from fractions import Fraction

    from protocols.join import moments

    x, y = np.array([1.0, 2.0, 4.0]), np.array([3.0, 1.0, 2.0])
    values = {
        "pairs": Fraction(3),
        "sum_x": Fraction(7),
        "sum_y": Fraction(6),
        "sumsq_x@decimals=4": Fraction(21 * 10**4),
        "sumsq_y@decimals=4": Fraction(14 * 10**4),
        "sum_xy@decimals=4": Fraction(13 * 10**4),
    }

    out = moments.finalize(values)

    assert out["mean_x"] == pytest.approx(x.mean()) and out["var_y"] == pytest.approx(y.var(ddof=1))
    assert out["cov"] == pytest.approx(np.cov(x, y)[0, 1])
    assert out["sd_x"] == pytest.approx(x.std(ddof=1))
    one = moments.finalize({**values, "pairs": Fraction(1)})
    assert math.isnan(one["var_x"]) and math.isnan(one["cov"])


def _logistic_job(box: int, rho: float | None = 0.5):
    from ensnif_mpc.data.schema import DatasetSchema, PrivacyPolicy
    from ensnif_mpc.jobs import jobspec

    columns = (*FEATURES, Column("y", "int", 0, 1))
    policy = PrivacyPolicy(rows_per_person=2)
    schema = {p: DatasetSchema(p, "d", columns, 500, policy=policy) for p in ("a", "b")}
    inputs = [
        {"party": p, "dataset": "d", "features": ["x1", "x2"], "label": "y"} for p in ("a", "b")
    ]
    spec = jobspec.from_dict(
        {
            "protocol": "logistic_regression",
            "params": {"lower": [-5.0] * box, "upper": [5.0] * box, "steps": 5},
            "inputs": inputs,
            "helpers": ["h"],
            **({"privacy": {"rho": rho}} if rho else {}),
        }
    )
    return spec, (lambda party: "member"), (lambda party, name: schema.get(party))


def test_a_logistic_job_passes_the_catalog_checks_and_plans_every_step():
    spec, party_role, dataset = _logistic_job(2)
    definition = catalog()["logistic_regression"]

    sizing = checks.check_job(definition, spec, party_role, dataset)
    plan = checks.release_plan(
        definition, spec, [dataset("a", "d"), dataset("b", "d")], sizing.decimals
    )

    assert [b.dims for b in plan.blocks] == [1] + [3] * 5
    assert plan.blocks[0].l2_sensitivity == 4  # two rows per person at each of two owners
    assert plan.charge() == pytest.approx(0.5)


def test_a_logistic_job_whose_box_misses_a_feature_is_refused_before_it_runs():
    spec, party_role, dataset = _logistic_job(3)

    with pytest.raises(InvalidJobSpec, match="bound"):
        checks.check_job(catalog()["logistic_regression"], spec, party_role, dataset)

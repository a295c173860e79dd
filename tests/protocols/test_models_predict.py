"""A logistic model kept secret-shared, then used on held-out rows, with three real MPyC
worker processes: ``predict``'s scores (opened to the row owner only) against the same
cubic σ in the clear with the plaintext reference's weights, and against scikit-learn's
exact σ with those weights within the cubic's stated error; ``model_accuracy`` on the
held-out labels against numpy's accuracy with the same weights.

Tolerances: the weights differ from the float64 mirror by their fixed-point error (~1e-5,
tests/protocols/test_models_learning.py); a score by at most that times Σ|x_j| plus one
truncation at 2^-40, so 1e-3 on features within [−50, 120] scaled by weights ~0.05.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import log_loss

from ensnif_mpc.data.schema import Column
from ensnif_mpc.results.model_artifacts import from_metadata
from ensnif_mpc.sdk.models import from_values
from protocols.models import logistic as lr, predict
from protocols.models.secure_math import SIGMOID_MAX_ERROR
from tests.protocols.harness import OwnerTable, run_parties

pytestmark = pytest.mark.slow

LOWER, UPPER = -50.0, 120.0


def _owner(x: np.ndarray, y: np.ndarray) -> OwnerTable:
    names = [f"x{j}" for j in range(x.shape[1])]
    data = {n: np.round(x[:, j], 2) for j, n in enumerate(names)}
    data["y"] = y.astype(np.int64)
    columns = [Column(n, "float", LOWER, UPPER, 2) for n in names] + [Column("y", "int", 0, 1)]
    return OwnerTable(data, tuple(columns), {"label": "y"}, lists={"features": names})


def test_a_kept_logistic_model_scores_held_out_rows_for_their_owner_only(tmp_path):
    rng = np.random.default_rng(5)
    x = np.round(rng.uniform(LOWER, UPPER, (160, 2)), 2)
    y = (rng.uniform(size=160) < 1 / (1 + np.exp(-((x - 35) @ [0.05, -0.04])))).astype(int)
    train, test = slice(0, 100), slice(100, 160)
    params = {"lower": [LOWER] * 2, "upper": [UPPER] * 2, "steps": 6, "keep": "artifact"}

    trained = run_parties(
        tmp_path,
        "logistic_regression",
        [_owner(x[train], y[train]), None, None],
        params,
        decimals=2,
        job_id="train",
        timeout=300,
    )
    assert trained.outputs == {}  # nothing opened to the analyst
    (meta,) = [a for a in trained.kept[0] if a["name"] == "model"]
    model = from_metadata(meta)
    assert (model.kind, model.features, model.frac_bits) == ("logistic", 2, lr.FOUT)

    held_out = [_owner(x[test], y[test]), None, None]
    scored = run_parties(
        tmp_path,
        "predict",
        held_out,
        {},
        decimals=2,
        job_id="score",
        artifacts=trained.kept,
        timeout=300,
    )
    assert scored.outputs == {}  # the analyst's part is empty
    assert all(not v for k, v in scored.party_outputs.items() if k != 0)  # row owner only
    got = np.array([float(scored.party_outputs[0][f"score[{i}]"]) for i in range(60)])

    ref = lr.reference([{"features": x[train], "label": y[train]}], params)
    coef, intercept = np.array([ref["coef[0]"], ref["coef[1]"]]), ref["intercept"]
    np.testing.assert_allclose(got, predict.scores("logistic", intercept, coef, x[test]), atol=1e-3)
    # scikit-learn's exact σ with the same weights: within the cubic's stated error.
    released = from_values(
        "logistic_regression", {"coef[0]": coef[0], "coef[1]": coef[1], "intercept": intercept}
    )
    exact = released.to_sklearn().predict_proba(x[test])[:, 1]
    assert np.max(np.abs(got - exact)) <= SIGMOID_MAX_ERROR
    assert np.array_equal(got > 0.5, released.to_sklearn().predict(x[test]) == 1)

    measured = run_parties(
        tmp_path,
        "model_accuracy",
        held_out,
        {},
        decimals=2,
        job_id="measure",
        artifacts=trained.kept,
        timeout=300,
    )
    want = predict.aggregate("logistic", intercept, coef, x[test], y[test])["accuracy"]
    assert measured.outputs["accuracy"] == pytest.approx(want, abs=1e-9)
    assert isinstance(measured.outputs["accuracy"], Fraction)
    # The log-loss of the exact σ (scikit-learn's) with the same weights: within the stated
    # polynomial error, plus the secret weights' fixed-point distance from the reference's.
    expected = log_loss(y[test], exact, labels=[0, 1])
    got_loss = float(measured.outputs["log_loss"])
    assert abs(got_loss - expected) <= predict.LOG_LOSS_MAX_ERROR + 1e-4
    assert 0.0 < got_loss < np.log(2.0)  # better than chance on these separable rows


def test_a_model_kept_by_one_session_scores_in_another_order_of_its_parties(tmp_path):
    """Trained with owners (A, B) and a helper; scored on B's rows with B first: the
    parties reshare the artifact to the new order (one input round) and B's scores are
    numpy's with the same weights. The same order skips the resharing."""
    rng = np.random.default_rng(9)
    x = np.round(rng.uniform(LOWER, UPPER, (140, 2)), 2)
    y = (rng.uniform(size=140) < 1 / (1 + np.exp(-((x - 35) @ [0.05, -0.04])))).astype(int)
    a, b = slice(0, 70), slice(70, 140)
    params = {"lower": [LOWER] * 2, "upper": [UPPER] * 2, "steps": 5, "keep": "artifact"}
    trained = run_parties(
        tmp_path,
        "logistic_regression",
        [_owner(x[a], y[a]), _owner(x[b], y[b]), None],
        params,
        decimals=2,
        job_id="train2",
        timeout=300,
    )
    ref = lr.reference(
        [{"features": x[a], "label": y[a]}, {"features": x[b], "label": y[b]}], params
    )
    coef, intercept = np.array([ref["coef[0]"], ref["coef[1]"]]), ref["intercept"]
    want = predict.scores("logistic", intercept, coef, x[b])
    kept = trained.kept

    # B (the training session's party 1) is the new party 0; A is party 1; the helper stays.
    swapped = run_parties(
        tmp_path,
        "predict",
        [_owner(x[b], y[b]), None, None],
        {},
        decimals=2,
        job_id="score2",
        artifacts=[kept[1], kept[0], kept[2]],
        timeout=300,
    )

    got = np.array([float(swapped.party_outputs[0][f"score[{i}]"]) for i in range(70)])
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert set(swapped.party_outputs) == {0}


def test_a_dp_accuracy_is_the_noisy_count_of_correct_rows_over_the_noisy_row_count(tmp_path):
    """model_accuracy under DP: the correctly classified rows and the rows, each within 6 σ
    of numpy's with the reference weights (one borderline row may flip with the weights'
    fixed-point error), and the analyst's accuracy is their ratio."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.registry import catalog

    rng = np.random.default_rng(13)
    x = np.round(rng.uniform(LOWER, UPPER, (220, 2)), 2)
    y = (rng.uniform(size=220) < 1 / (1 + np.exp(-((x - 35) @ [0.05, -0.04])))).astype(int)
    train, test = slice(0, 100), slice(100, 220)
    params = {"lower": [LOWER] * 2, "upper": [UPPER] * 2, "steps": 5, "keep": "artifact"}
    trained = run_parties(
        tmp_path,
        "logistic_regression",
        [_owner(x[train], y[train]), None, None],
        params,
        decimals=2,
        job_id="train3",
        timeout=300,
    )
    blocks = catalog()["model_accuracy"].dp_sensitivity([OwnerBounds(1, {})], {})
    plan = dp.plan(8.0, blocks, 3, 1)
    measured = run_parties(
        tmp_path,
        "model_accuracy",
        [_owner(x[test], y[test]), None, None],
        {},
        decimals=2,
        job_id="measure3",
        artifacts=trained.kept,
        timeout=300,
        release=plan.to_dict(),
    )

    ref = lr.reference([{"features": x[train], "label": y[train]}], params)
    coef, intercept = np.array([ref["coef[0]"], ref["coef[1]"]]), ref["intercept"]
    z = x[test] @ coef + intercept
    correct = int(np.sum((z >= 0) == (y[test] == 1)))
    sigma = [b.sigma_share * np.sqrt(3) for b in plan.blocks]
    out = measured.outputs
    assert abs(float(out["correct"]) - correct) <= 6 * sigma[0] + 1
    assert abs(float(out["rows"]) - 120) <= 6 * sigma[1]
    assert sigma[0] > 0.5  # the noise is real
    assert float(out["accuracy"]) == pytest.approx(
        min(max(float(out["correct"]) / float(out["rows"]), 0.0), 1.0)
    )
    assert "log_loss" not in out  # not released under DP

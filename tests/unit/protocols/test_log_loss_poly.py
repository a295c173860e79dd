"""The stated error of model_accuracy's log-loss: the written-out polynomial for
ln(1 + e^-a) against numpy, and the log-loss it gives against scikit-learn's."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss

from protocols.models import predict


def test_the_polynomial_is_within_its_stated_error_on_its_range():
    a = np.linspace(0.0, predict.SOFTPLUS_RANGE, 400_001)

    err = np.abs(predict.softplus_tail(a) - np.log1p(np.exp(-a)))

    assert err.max() <= 7.8e-6
    assert err.max() > 1e-7  # the check can fail: it measures a real approximation


def test_beyond_the_range_the_error_is_at_most_the_tail_bound():
    a = np.linspace(predict.SOFTPLUS_RANGE, 60.0, 10_001)

    err = np.abs(predict.softplus_tail(a) - np.log1p(np.exp(-a)))

    assert err.max() <= np.log1p(np.exp(-predict.SOFTPLUS_RANGE)) + 7.8e-6
    assert err.max() + 7.8e-6 <= predict.LOG_LOSS_MAX_ERROR


def test_the_log_loss_of_the_programs_formula_matches_scikit_learn():
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 6.0, 5_000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(float)

    positive = np.maximum(z, 0.0)
    ours = np.mean(positive + predict.softplus_tail(np.abs(z)) - y * z)
    exact = log_loss(y, 1 / (1 + np.exp(-z)))

    assert abs(ours - exact) <= predict.LOG_LOSS_MAX_ERROR
    x = np.column_stack([z, np.zeros_like(z)])
    ref = predict.aggregate("logistic", 0.0, np.array([1.0, 0.0]), x, y)
    assert abs(ref["log_loss"] - exact) < 1e-9

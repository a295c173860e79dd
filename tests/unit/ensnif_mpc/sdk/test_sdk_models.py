"""The SDK's released-model objects against scikit-learn fitted on the same rows: the
weights a training job releases (here scikit-learn's own, by output name as the jobs name
them) give an estimator whose predictions are scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from ensnif_mpc.errors import FailedPrecondition, InvalidArgument
from ensnif_mpc.sdk.models import from_values

RNG = np.random.default_rng(3)
X = RNG.normal(size=(80, 3))


def test_a_linear_regression_release_predicts_as_scikit_learn() -> None:
    y = X @ [1.5, -2.0, 0.5] + 4 + RNG.normal(size=80)
    sk = LinearRegression().fit(X, y)
    values = {"coef[0]": sk.intercept_, **{f"coef[{j + 1}]": c for j, c in enumerate(sk.coef_)}}
    values |= {"se[0]": 0.1, "r2": 0.9}
    model = from_values("linear_regression", values)
    assert model.coef.shape == (3,) and model.intercept == pytest.approx(sk.intercept_)
    np.testing.assert_allclose(model.to_sklearn().predict(X), sk.predict(X), atol=1e-12)
    np.testing.assert_allclose(model.predict(X), sk.predict(X), atol=1e-12)
    ridge = from_values("linear_regression", values, ridge=2.0).to_sklearn()
    assert isinstance(ridge, Ridge) and ridge.alpha == 2.0


def test_a_logistic_release_predicts_classes_and_probabilities_as_scikit_learn() -> None:
    y = (X @ [1.0, -1.0, 0.5] + RNG.normal(size=80) > 0).astype(int)
    sk = LogisticRegression().fit(X, y)
    values = {f"coef[{j}]": c for j, c in enumerate(sk.coef_[0])} | {"intercept": sk.intercept_[0]}
    model = from_values("logistic_regression", values)
    est = model.to_sklearn()
    np.testing.assert_array_equal(est.predict(X), sk.predict(X))
    np.testing.assert_allclose(est.predict_proba(X), sk.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X), sk.predict_proba(X)[:, 1], atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), sk.predict(X))


def test_kmeans_releases_exact_and_dp_give_scikit_learns_assignment() -> None:
    sk = KMeans(n_clusters=3, n_init=1, random_state=0).fit(X)
    c = sk.cluster_centers_
    exact = {f"centroid[{j},{i}]": c[j, i] for j in range(3) for i in range(3)}
    dp = {f"centroid[{m}]": v for m, v in enumerate(c.ravel())}
    dp |= {f"count{t}[{j}]": 10.0 for t in range(2) for j in range(3)}
    for values in (exact, dp):
        model = from_values("kmeans", values)
        np.testing.assert_array_equal(model.to_sklearn().predict(X), sk.predict(X))
        np.testing.assert_array_equal(model.predict(X), sk.predict(X))


def test_what_is_not_a_released_model_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="trains no model"):
        from_values("mean", {"mean": 1.0})
    with pytest.raises(InvalidArgument, match="predict job"):
        from_values("linear_regression", {})  # kept as an artifact: nothing released
    model = from_values("linear_regression", {"coef[0]": 1.0, "coef[1]": 2.0})
    with pytest.raises(FailedPrecondition) as err:
        model.predict(np.ones((2, 3)))
    assert err.value.reason == "model_feature_mismatch"

"""The sigmoid polynomial's stated error, and one batch evaluated against numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ensnif_mpc import errors
from ensnif_mpc.he import ckks, scoring
from ensnif_mpc.he.sigmoid import fit, logit_range, sigmoid


@pytest.mark.parametrize("radius", [1.0, 4.0, 8.0])
def test_the_stated_maximum_error_holds_on_the_range(radius: float) -> None:
    poly = fit(-radius, radius)
    z = np.random.default_rng(1).uniform(-radius, radius, 1_000_000)

    err = np.abs(poly(z) - sigmoid(z))

    assert err.max() <= poly.max_error
    assert err.max() >= 0.99 * poly.max_error  # the statement is tight, not padded


def test_the_fit_is_minimax_better_than_least_squares() -> None:
    poly = fit(-8, 8)
    z = np.linspace(-8, 8, 20001)
    lsq = np.polynomial.polynomial.polyfit(z, sigmoid(z), 3)

    assert poly.max_error < np.max(np.abs(np.polynomial.polynomial.polyval(z, lsq) - sigmoid(z)))


def test_an_asymmetric_range_is_fitted_on_its_symmetric_hull() -> None:
    assert fit(-2, 6).radius == 6


def test_the_logit_range_is_the_extremes_over_the_feature_box() -> None:
    w, b = [0.5, -2.0, 1.0], 0.3
    low, high = [-1.0, 0.0, 2.0], [1.0, 3.0, 4.0]
    corners = [b + np.dot(w, c) for c in itertools.product(*zip(low, high, strict=True))]

    assert logit_range(w, b, low, high) == pytest.approx((min(corners), max(corners)))


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_a_partial_batch_scores_as_numpy(kind: str) -> None:
    rng = np.random.default_rng(5)
    model = scoring.Model(kind, kind, tuple(rng.normal(0, 0.4, 6)), -0.2, (-3.0, 3.0))
    ctx = ckks.new_context(model.params)
    public = ckks.public_bytes(ctx)
    digest = ckks.context_hash(public)
    x = rng.uniform(-1, 1, (333, 6))

    out = scoring.evaluate(
        model,
        model.sigmoid(),
        ckks.load_public(public),
        digest,
        ckks.encrypt_columns(ctx, digest, x.T),
        333,
    )

    (got,) = ckks.decrypt(ctx, digest, [out])  # a result holds every slot
    np.testing.assert_allclose(got[:333], model.plaintext(x), atol=1e-3, rtol=0)


def test_a_batch_with_another_feature_count_is_refused() -> None:
    model = scoring.Model("m", "linear", (1.0, 2.0), 0.0, (-1.0, 1.0))
    ctx = ckks.new_context(model.params)
    public = ckks.public_bytes(ctx)
    digest = ckks.context_hash(public)

    with pytest.raises(errors.InvalidArgument) as err:
        scoring.evaluate(
            model,
            None,
            ckks.load_public(public),
            digest,
            ckks.encrypt_columns(ctx, digest, np.ones((3, 5))),
            5,
        )
    assert err.value.reason == "he_feature_count"


def test_a_ciphertext_holding_other_rows_than_declared_is_refused() -> None:
    model = scoring.Model("m", "linear", (1.0,), 0.0, (-1.0, 1.0))
    ctx = ckks.new_context(model.params)
    public = ckks.public_bytes(ctx)
    digest = ckks.context_hash(public)
    blobs = ckks.encrypt_columns(ctx, digest, np.ones((1, 50)))

    with pytest.raises(errors.InvalidArgument) as err:
        scoring.evaluate(model, None, ckks.load_public(public), digest, blobs, 10)
    assert err.value.reason == "he_ciphertext_invalid"

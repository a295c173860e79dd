"""A vertical model kept secret-shared: join_regression with keep = "artifact" through real
workers (two owners and a helper, three MPyC processes), on the rows of
tests/protocols/test_join_regression.py.

Nothing is opened to the analyst, and the kept vector [intercept, A's weight, B's weight]
(combined from all three parties' shares: a test's privilege) is scikit-learn's
LinearRegression on the pandas join of the owners' per-key means, within 1e-6 (the
fixed-point solve at 2^-48, kept at 2^-48 too). Its metadata reads as a linear vertical
model of two features, which ``predict`` and ``model_accuracy`` refuse at Propose
(``model_vertical``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from ensnif_mpc.results import model_artifacts
from ensnif_mpc.results.artifacts import ArtifactShare
from tests.protocols.harness import run_parties
from tests.protocols.test_join_regression import DECIMALS, TOL, A, B, _joined

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("vertical_kept")
    return run_parties(
        root,
        "join_regression",
        [A, B, None],
        {"per_key": "mean", "keep": "artifact"},
        decimals=DECIMALS,
        job_id="vregkept",
        timeout=300,
    )


def test_a_kept_vertical_regression_opens_nothing_and_is_scikit_learn_s(kept):
    z = _joined(A, B, "mean")
    model = LinearRegression().fit(z[:, :2], z[:, 2])

    got = [float(kept.artifacts[f"model[{i}]"]) for i in range(3)]

    assert kept.outputs == {}
    assert not kept.party_outputs
    np.testing.assert_allclose(got, [model.intercept_, *model.coef_], rtol=TOL, atol=TOL)


def test_every_party_keeps_a_vertical_linear_model_of_two_features(kept):
    assert len(kept.kept) == 3
    for party in kept.kept:
        (share,) = [ArtifactShare.from_dict(a) for a in party]
        m = model_artifacts.from_metadata(share.metadata())
        assert (m.kind, m.features, m.protocol, m.vertical) == (
            "linear",
            2,
            "join_regression",
            True,
        )

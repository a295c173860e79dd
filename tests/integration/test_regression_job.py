"""Regression jobs from a TOML file with `features = [...]`, through a real consortium (a
coordinator and three nodes over mTLS, real MPyC workers), against scikit-learn on the
owner's rows. The sample deliveries' fee is exactly 2.5 + 0.6 · distance, so the two
features are collinear with the intercept: ordinary least squares fails with
`singular_system` (found inside MPC), ridge solves it as scikit-learn's Ridge does. A role
given the wrong number of columns is refused at submission with its reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=150)]

JOB = """
name = "delivery minutes on distance and fee"
protocol = "linear_regression"
helpers = ["grocery", "helper"]

[[inputs]]
party = "logistics"
dataset = "deliveries"
features = ["distance_km", "fee"]
label = "delivery_minutes"

[params]
ridge = RIDGE

[privacy]
exact = true
"""


def _load(tmp_path: Path, ridge: float) -> jobspec.JobSpec:
    path = tmp_path / "regression.toml"
    path.write_text(JOB.replace("RIDGE", repr(ridge)))
    return jobspec.load(path)


def test_a_ridge_job_from_toml_matches_scikit_learn(
    consortium: Consortium, client: Client, tmp_path: Path
) -> None:
    spec = _load(tmp_path, 2.0)
    assert spec.inputs[0].column_lists == {"features": ["distance_km", "fee"]}

    final = client.wait(client.submit(spec).id, timeout_s=180)

    assert state_name(final) == "succeeded", final.reason
    got = client.result(final.id)
    data = consortium.lc.data
    assert data is not None
    rows = pd.read_csv(data.deliveries)
    model = Ridge(alpha=2.0).fit(rows[["distance_km", "fee"]], rows["delivery_minutes"])
    want = [model.intercept_, *model.coef_]
    np.testing.assert_allclose([got[f"coef[{j}]"] for j in range(3)], want, rtol=1e-6, atol=1e-6)


def test_collinear_features_fail_with_singular_system(client: Client, tmp_path: Path) -> None:
    final = client.wait(client.submit(_load(tmp_path, 0.0)).id, timeout_s=180)

    assert state_name(final) == "failed"
    assert final.reason_code == "singular_system"


def test_a_single_column_role_given_a_list_is_refused_at_submission(client: Client) -> None:
    spec = jobspec.from_dict(
        {
            "protocol": "linear_regression",
            "helpers": ["grocery", "helper"],
            "inputs": [
                {
                    "party": "logistics",
                    "dataset": "deliveries",
                    "features": ["distance_km"],
                    "label": ["delivery_minutes", "fee"],
                }
            ],
            "privacy": {"exact": True},
        }
    )

    with pytest.raises(InvalidArgument) as info:
        client.submit(spec)

    assert info.value.reason == "role_column_count"
    assert "inputs[0].label" in info.value.message

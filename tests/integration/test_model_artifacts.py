"""Models kept secret-shared and predict jobs, through a real consortium.

A coordinator and three nodes over mTLS, real MPyC workers. logistics trains a linear
regression of its delivery fee on minutes and distance, kept as the artifact
``<job>/model`` (nothing opened); a ``predict`` job scores logistics' rows with it and
only logistics opens the scores (the analyst's part is empty, grocery has no part); a
``model_accuracy`` job gives the analyst the mean squared error, which equals numpy's
with the same weights; the same fit released instead gives the SDK's model object whose
scikit-learn estimator predicts what the MPC predict job scored. `ensnif model
list|show|delete`; a feature count mismatch and a deleted model are refused at Propose.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensnif_mpc.cli.main import cli
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.errors import CryptoError
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from protocols.models import regression
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=120)]

FEATURES = ["delivery_minutes", "distance_km"]
HELPERS = ["grocery", "helper"]  # logistics first: the session order logistics, grocery, helper


def spec(
    protocol: str,
    features: list[str],
    params: dict[str, Any] | None = None,
    artifacts: list[str] | None = None,
    label: bool = True,
) -> jobspec.JobSpec:
    given: dict[str, Any] = {"party": "logistics", "dataset": "deliveries", "features": features}
    if label:
        given["label"] = "fee"
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": HELPERS,
        "inputs": [given],
        "params": params or {},
        "privacy": {"exact": True},
    }
    if artifacts:
        raw["artifacts"] = artifacts
    return jobspec.from_dict(raw)


def rows(consortium: Consortium) -> tuple[np.ndarray, np.ndarray]:
    data = consortium.lc.data
    assert data is not None
    frame = pd.read_csv(data.deliveries)
    return frame[FEATURES].to_numpy(dtype=float), frame["fee"].to_numpy(dtype=float)


def plain_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    design = np.column_stack([np.ones(len(x)), x])
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    return float(beta[0]), beta[1:]


def member(consortium: Consortium, name: str) -> Client:
    analyst = ClientProfile.load(consortium.lc.profile)
    tls = consortium.party_config(name).tls
    return Client(dataclasses.replace(analyst, tls=tls), timeout_s=20)


def run(client: Client, s: jobspec.JobSpec) -> Any:
    return client.wait(client.submit(s).id, timeout_s=180)


def cli_json(consortium: Consortium, *args: str) -> Any:
    out = CliRunner().invoke(cli, ["--profile", str(consortium.lc.profile), *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_train_keep_predict_to_the_row_owner_accuracy_to_the_analyst_then_delete(
    consortium: Consortium, client: Client
) -> None:
    x, y = rows(consortium)
    intercept, coef = plain_fit(x, y)

    trained = run(client, spec("linear_regression", FEATURES, {"keep": "artifact"}))
    assert state_name(trained) == "succeeded", trained.reason
    assert client.result(trained.id) == {}  # nothing opened: the weights stay shared
    model_id = f"{trained.id}/model"

    listed = cli_json(consortium, "model", "list", "--json")
    mine = {m["id"]: m for m in listed["trained"]}[model_id]
    assert (mine["kind"], mine["features"], mine["precision_bits"]) == (
        "linear",
        2,
        regression.KEPT_FRAC,
    )
    assert mine["parties"] == ["logistics", *HELPERS] and mine["owners"] == ["logistics"]
    shown = cli_json(consortium, "model", "show", model_id, "--json")
    assert (shown["job_id"], shown["protocol"]) == (trained.id, "linear_regression")

    scored = run(client, spec("predict", FEATURES, artifacts=[model_id], label=False))
    assert state_name(scored) == "succeeded", scored.reason
    assert client.result(scored.id) == {}  # the analyst opens nothing of the scores
    with member(consortium, "grocery") as grocery, pytest.raises(CryptoError):
        grocery.result(scored.id)
    with member(consortium, "logistics") as logistics:
        got = logistics.result_details(scored.id).array("score")
    want = intercept + x @ coef
    # The fit's fixed-point solve (2^-32) and one truncation per score: far below a cent.
    np.testing.assert_allclose(got, want, atol=1e-4)

    # The same fit released: the SDK's model and its scikit-learn estimator score alike.
    released = run(client, spec("linear_regression", FEATURES))
    assert state_name(released) == "succeeded", released.reason
    model = client.model(released.id)
    np.testing.assert_allclose(model.coef, coef, rtol=1e-6, atol=1e-6)
    estimator = model.to_sklearn()
    np.testing.assert_allclose(estimator.predict(x), got, atol=1e-4)
    np.testing.assert_allclose(estimator.predict(x), model.predict(x), atol=1e-12)

    accuracy = run(client, spec("model_accuracy", FEATURES, artifacts=[model_id]))
    assert state_name(accuracy) == "succeeded", accuracy.reason
    mse = client.result(accuracy.id)["mse"]
    assert mse == pytest.approx(float(np.mean((want - y) ** 2)), rel=1e-5, abs=1e-6)

    one = run(client, spec("predict", FEATURES[:1], artifacts=[model_id], label=False))
    assert (state_name(one), one.reason_code) == ("rejected", "model_feature_mismatch")

    deleted = cli_json(consortium, "model", "delete", model_id, "--json")
    assert sorted(deleted["deleted_at"]) == sorted(["logistics", *HELPERS])
    assert model_id not in {
        m["id"] for m in cli_json(consortium, "model", "list", "--json")["trained"]
    }
    gone = run(client, spec("predict", FEATURES, artifacts=[model_id], label=False))
    assert (state_name(gone), gone.reason_code) == ("rejected", "artifact_not_found")


def test_a_kept_model_needs_an_exact_release(client: Client) -> None:
    raw = spec("linear_regression", FEATURES, {"keep": "artifact"})
    dp = dataclasses.replace(raw, privacy=jobspec.Privacy(rho=0.1))
    with pytest.raises(Exception, match="exact release"):
        client.submit(dp)


def test_a_model_released_to_a_member_reaches_it_alone_and_scores_encrypted_rows(
    consortium: Consortium, client: Client, tmp_path: Path
) -> None:
    """keep = "to:logistics": the fit is sealed to logistics only; logistics registers it at
    its own node from its `job result --json`, and the analyst scores encrypted rows with
    it (issue 13's model released to a named member, issue 14's encrypted scoring)."""
    from ensnif_mpc.cli.render import result_dict

    x, y = rows(consortium)
    intercept, coef = plain_fit(x, y)

    trained = run(client, spec("linear_regression", FEATURES, {"keep": "to:logistics"}))
    assert state_name(trained) == "succeeded", trained.reason
    assert client.result(trained.id) == {}  # the analyst's part is empty
    with member(consortium, "grocery") as grocery, pytest.raises(CryptoError):
        grocery.result(trained.id)
    with member(consortium, "logistics") as logistics:
        details = logistics.result_details(trained.id)
        model = logistics.model(trained.id)
    np.testing.assert_allclose(model.intercept, intercept, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.coef, coef, rtol=1e-6, atol=1e-6)

    released = tmp_path / "released.json"
    released.write_text(json.dumps(result_dict(trained.id, details)))
    config = str(consortium.lc.root / "party-logistics.toml")
    out = CliRunner().invoke(
        cli,
        [
            "model", "register", "--config", config, "--name", f"fee-{trained.id}",
            "--from-result", str(released), "--features", ",".join(FEATURES),
            "--feature-bounds", "0,1000", "--json",
        ],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    scored = client.score(f"fee-{trained.id}", x[:16], key_dir=tmp_path / "k")
    np.testing.assert_allclose(scored.values, intercept + x[:16] @ coef, atol=1e-3)

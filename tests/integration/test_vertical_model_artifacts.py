"""A vertical model kept secret-shared, through a real consortium (a coordinator and three
nodes over mTLS, real MPyC workers): a regression of logistics' fee on grocery's basket
and its own distance across the private join by customer id.

The same job released gives coefficients equal to numpy's least squares on the pandas join
of the owners' per-key means (the session's grid); kept (``keep = "artifact"``) it opens
nothing, and `ensnif model list|show` describe it as a vertical linear model of two
features held at the three parties; a predict job with it is refused at Propose
(``model_vertical``), before anything runs; `ensnif model delete` removes it at every node.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensnif_mpc.cli.main import cli
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from protocols.models import vertical_defs
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=160)]

PARTIES = ["grocery", "logistics", "helper"]


def training(params: dict[str, Any]) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "join_regression",
            "helpers": ["helper"],
            "inputs": [
                {
                    "party": "grocery",
                    "dataset": "orders",
                    "key": "customer_id",
                    "features": ["basket_total"],
                },
                {
                    "party": "logistics",
                    "dataset": "deliveries",
                    "key": "customer_id",
                    "label": "fee",
                    "features": ["distance_km"],
                },
            ],
            "params": {"per_key": "mean", **params},
            "privacy": {"exact": True},
        }
    )


def scoring(model_id: str) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "predict",
            "helpers": ["grocery", "helper"],
            "inputs": [
                {
                    "party": "logistics",
                    "dataset": "deliveries",
                    "features": ["delivery_minutes", "distance_km"],  # as many as the weights
                }
            ],
            "artifacts": [model_id],
            "privacy": {"exact": True},
        }
    )


def run(client: Client, s: jobspec.JobSpec) -> Any:
    return client.wait(client.submit(s).id, timeout_s=300)


def cli_json(consortium: Consortium, *args: str) -> Any:
    out = CliRunner().invoke(cli, ["--profile", str(consortium.lc.profile), *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def numpy_fit(consortium: Consortium, decimals: int) -> np.ndarray:
    data = consortium.lc.data
    assert data is not None
    orders = pd.read_csv(data.orders, dtype={"customer_id": str})
    deliveries = pd.read_csv(data.deliveries, dtype={"customer_id": str})
    tables = [
        {"key": orders["customer_id"].to_numpy(), "features": orders[["basket_total"]].to_numpy()},
        {
            "key": deliveries["customer_id"].to_numpy(),
            "features": deliveries[["distance_km"]].to_numpy(),
            "label": deliveries["fee"].to_numpy(),
        },
    ]
    ref = vertical_defs.reference_on_grid(tables, {"per_key": "mean"}, decimals)
    return np.array([ref[f"coef[{j}]"] for j in range(3)])


def test_a_kept_vertical_model_is_listed_refused_by_predict_and_deleted(
    consortium: Consortium, client: Client
) -> None:
    released = run(client, training({}))
    assert state_name(released) == "succeeded", released.reason
    got = client.result(released.id)
    coef = np.array([float(got[f"coef[{j}]"]) for j in range(3)])
    np.testing.assert_allclose(coef, numpy_fit(consortium, 2), rtol=1e-6, atol=1e-6)

    kept = run(client, training({"keep": "artifact"}))
    assert state_name(kept) == "succeeded", kept.reason
    assert client.result(kept.id) == {}  # nothing opened: the weights stay shared
    model_id = f"{kept.id}/model"

    listed = {m["id"]: m for m in cli_json(consortium, "model", "list", "--json")["trained"]}
    mine = listed[model_id]
    assert (mine["kind"], mine["features"], mine["partition"]) == ("linear", 2, "vertical")
    assert mine["owners"] == ["grocery", "logistics"] and mine["parties"] == PARTIES
    assert sorted(mine["holders"]) == sorted(PARTIES)
    shown = cli_json(consortium, "model", "show", model_id, "--json")
    assert (shown["job_id"], shown["protocol"]) == (kept.id, "join_regression")

    refused = run(client, scoring(model_id))
    assert (state_name(refused), refused.reason_code) == ("rejected", "model_vertical")

    deleted = cli_json(consortium, "model", "delete", model_id, "--json")
    assert sorted(deleted["deleted_at"]) == sorted(PARTIES)
    after = cli_json(consortium, "model", "list", "--json")["trained"]
    assert model_id not in {m["id"] for m in after}

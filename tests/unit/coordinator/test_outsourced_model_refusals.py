"""The models over an outsourced dataset at submit and at the helper's admission: predict
and model_accuracy refused at submit with their reason and why (issue 14); k-means and the
logistic regression (exact and DP) admitted, k-means converting the features only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from coordinator.outsourced import NOT_SERVED, check_job
from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.jobs import jobspec
from party_node import outsourced_admission as adm

HOSTS = {"shop": "helper"}.get


def _spec(protocol: str, parties: list[str]) -> jobspec.JobSpec:
    inputs = [{"party": p, "dataset": "d", "features": ["x0"]} for p in parties]
    return jobspec.from_dict({"protocol": protocol, "inputs": inputs, "params": {}})


@pytest.mark.parametrize("protocol", sorted(NOT_SERVED))
def test_a_model_no_helper_serves_is_refused_at_submit_saying_why(protocol: str):
    with pytest.raises(InvalidArgument) as refused:
        check_job(_spec(protocol, ["grocery", "shop"]), HOSTS)
    assert refused.value.reason == "outsourced_not_served"
    assert "shop's dataset is outsourced" in str(refused.value)
    assert NOT_SERVED[protocol] in str(refused.value)
    check_job(_spec(protocol, ["grocery", "logistics"]), HOSTS)  # no outsourced input


@pytest.mark.parametrize("protocol", ["linear_regression", "logistic_regression", "kmeans"])
def test_the_horizontal_models_pass_submit_and_the_helper_serves_them(protocol: str):
    check_job(_spec(protocol, ["grocery", "shop"]), HOSTS)
    assert protocol in adm.CONVERTIBLE and protocol not in NOT_SERVED


def test_kmeans_converts_the_features_only_and_needs_the_box_to_hold_them():
    x0, x1 = Column("x0", "float", -5.0, 5.0, 1), Column("x1", "int", 0, 300)
    p = SimpleNamespace(spec=SimpleNamespace(protocol="kmeans", params={}), decimals=2)
    inp = SimpleNamespace(party="shop", dataset="d", columns={}, column_lists={})
    out = adm._conversion(p, inp, SimpleNamespace(), {"features": (x0, x1)}, "shop/d")
    assert out["mode"] == "rows" and out["columns"] == ["x0", "x1"]
    assert out["scales"] == [10, 100] and out["bounds"] == [500, 30_000]
    box = {"lower": [-5, 0], "upper": [5, 300]}
    adm._check_box(box, {"features": (x0, x1)}, "shop/d")
    with pytest.raises(InvalidArgument, match="must contain them"):
        adm._check_box({"lower": [-4, 0], "upper": [5, 300]}, {"features": (x0, x1)}, "shop/d")

"""A node's policy sees every column a job reads, those of a role given a list included: an
owner that lets jobs read only some columns refuses a features list naming another."""

from __future__ import annotations

import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.errors import PolicyViolation
from ensnif_mpc.jobs import jobspec
from party_node.admission import read_columns
from party_node.policy import Request, evaluate


def _input(features):
    spec = jobspec.from_dict(
        {
            "protocol": "linear_regression",
            "inputs": [{"party": "a", "dataset": "d", "features": features, "label": "y"}],
            "helpers": ["h", "i"],
        }
    )
    return spec.inputs[0]


def _request(features) -> Request:
    return Request("d", "linear_regression", read_columns(_input(features)), "analyst")


def test_every_listed_column_is_named_by_its_place():
    assert read_columns(_input(["x2", "x1"])) == {
        "label": "y",
        "features[0]": "x2",
        "features[1]": "x1",
    }


def test_a_listed_column_the_policy_does_not_allow_is_refused():
    policy = AccessPolicy(columns=("x1", "y"))

    with pytest.raises(PolicyViolation) as info:
        evaluate(("linear_regression",), policy, _request(["x1", "secret"]))

    assert info.value.reason == "column_not_allowed"


def test_listed_columns_the_policy_allows_pass():
    policy = AccessPolicy(columns=("x1", "x2", "y"))

    assert not evaluate(("linear_regression",), policy, _request(["x1", "x2"])).manual

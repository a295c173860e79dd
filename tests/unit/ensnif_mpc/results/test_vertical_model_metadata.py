"""A model kept from a training across a private join (join_regression, join_logistic):
read from its metadata as a vertical model, listed by `ensnif model list` like a
horizontal one, and refused by predict and model_accuracy at Propose (model_vertical)."""

from __future__ import annotations

from typing import Any

import pytest

from ensnif_mpc.cli.model_cmd import trained_rows
from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.results import model_artifacts as ma
from protocols.registry import catalog

META: dict[str, Any] = {
    "artifact_id": "v1/model",
    "name": "model",
    "job_id": "v1",
    "protocol": "join_logistic",
    "shape": [4],
    "frac_bits": 40,
    "owners": ["grocery", "logistics"],
    "parties": ["grocery", "logistics", "helper"],
}


def _scoring(protocol: str) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["logistics", "helper"],
            "inputs": [
                {"party": "grocery", "dataset": "d", "features": ["x", "y", "z"], "label": "l"}
            ],
            "params": {},
            "privacy": {"exact": True},
            "artifacts": ["v1/model"],
        }
    )


@pytest.mark.parametrize(
    ("protocol", "kind"), [("join_logistic", "logistic"), ("join_regression", "linear")]
)
def test_a_vertical_model_reads_as_its_kind_with_both_owners_features(protocol, kind):
    m = ma.from_metadata({**META, "protocol": protocol})
    assert (m.kind, m.features, m.vertical) == (kind, 3, True)
    assert not ma.from_metadata({**META, "protocol": "logistic_regression"}).vertical


@pytest.mark.parametrize("scorer", ["predict", "model_accuracy"])
def test_scoring_one_owners_rows_with_a_vertical_model_is_refused(scorer):
    definition = catalog()[scorer]
    ma.check_fits(definition, _scoring(scorer), [{**META, "protocol": "logistic_regression"}])
    with pytest.raises(FailedPrecondition) as err:
        ma.check_fits(definition, _scoring(scorer), [META])
    assert err.value.reason == "model_vertical"
    assert "join_logistic" in err.value.message


def test_model_list_shows_a_vertical_model_beside_a_horizontal_one():
    def info(ident: str, protocol: str) -> pb.ArtifactInfo:
        return pb.ArtifactInfo(
            id=ident,
            name="model",
            job_id=ident.split("/")[0],
            protocol=protocol,
            shape=[4],
            kind="fixed",
            frac_bits=40,
            owners=["grocery", "logistics"],
            parties=["grocery", "logistics", "helper"],
            analyst="ana",
            holders=["grocery", "logistics", "helper"],
        )

    rows = trained_rows(
        [
            info("v1/model", "join_logistic"),
            info("h1/model", "logistic_regression"),
            info("s1/totals", "stash_sum"),
        ]
    )

    assert [(r["id"], r["partition"]) for r in rows] == [
        ("v1/model", "vertical"),
        ("h1/model", "horizontal"),
    ]
    assert "model_vertical" in rows[0]["scoring"]


@pytest.mark.parametrize("protocol", ["join_regression", "join_logistic"])
def test_both_vertical_models_take_keep_and_refuse_it_under_dp(protocol):
    definition = catalog()[protocol]
    assert "keep" in {p.name for p in definition.parameters}
    box = {"lower": [0, 0], "upper": [1, 1]} if protocol == "join_logistic" else {}
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": ["helper"],
        "inputs": [
            {"party": "a", "dataset": "d", "key": "k", "features": ["x"]},
            {"party": "b", "dataset": "e", "key": "k", "label": "y", "features": ["z"]},
        ],
        "params": {**box, "keep": "artifact"},
        "privacy": {"exact": True},
    }
    assert definition.check_spec is not None
    definition.check_spec(jobspec.from_dict(raw))
    with pytest.raises(InvalidJobSpec, match="exact release"):
        definition.check_spec(jobspec.from_dict({**raw, "privacy": {"rho": 0.5}}))

"""A model artifact read from its metadata, and the check every node runs at Propose."""

from __future__ import annotations

from typing import Any

import pytest

from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.results import model_artifacts as ma
from protocols.models import keep
from protocols.registry import catalog

META = {
    "artifact_id": "j1/model",
    "name": "model",
    "job_id": "j1",
    "protocol": "logistic_regression",
    "shape": [4],
    "frac_bits": 40,
    "owners": ["a"],
    "parties": ["a", "b", "c"],
}


def _spec(
    protocol: str,
    features: list[str],
    params: dict[str, Any] | None = None,
    privacy: dict[str, Any] | None = None,
) -> jobspec.JobSpec:
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": ["b", "c"],
        "inputs": [{"party": "a", "dataset": "d", "features": features, "label": "y"}],
        "params": params or {},
        "privacy": privacy or {"exact": True},
    }
    if protocol in ("predict", "model_accuracy"):
        raw["artifacts"] = ["j1/model"]
    return jobspec.from_dict(raw)


def test_the_metadata_names_kind_features_precision_and_session() -> None:
    m = ma.from_metadata(META)
    assert (m.kind, m.features, m.frac_bits, m.parties) == ("logistic", 3, 40, ("a", "b", "c"))
    assert m.layout == "[intercept, w_1, w_2, w_3]"
    with pytest.raises(FailedPrecondition) as err:
        ma.from_metadata({**META, "protocol": "stash_sum", "name": "totals"})
    assert err.value.reason == "model_mismatch"


def test_a_feature_count_other_than_the_models_is_refused() -> None:
    definition = catalog()["predict"]
    ma.check_fits(definition, _spec("predict", ["x", "y", "z"]), [META])
    with pytest.raises(FailedPrecondition) as err:
        ma.check_fits(definition, _spec("predict", ["x", "y"]), [META])
    assert err.value.reason == "model_feature_mismatch"
    assert "2 column(s)" in err.value.message and "3 feature" in err.value.message
    ma.check_fits(catalog()["stash_add"], _spec("predict", ["x"]), [META])  # not a scorer


def test_keep_is_checked_and_needs_an_exact_release() -> None:
    box = {"lower": [0, 0], "upper": [1, 1]}
    keep.check_keep(_spec("logistic_regression", ["x", "y"], {**box, "keep": "artifact"}))
    with pytest.raises(InvalidJobSpec, match="exact release"):
        keep.check_keep(
            _spec("logistic_regression", ["x", "y"], {**box, "keep": "artifact"}, {"rho": 0.1})
        )
    with pytest.raises(InvalidJobSpec, match="params.keep"):
        keep.check_keep(_spec("linear_regression", ["x"], {"keep": "yes"}))


def test_a_dp_accuracy_of_a_linear_model_is_refused_a_logistic_one_is_not() -> None:
    definition = catalog()["model_accuracy"]
    linear = {**META, "protocol": "linear_regression"}
    dp = {"rho": 0.5}

    ma.check_fits(definition, _spec("model_accuracy", ["x", "y", "z"], privacy=dp), [META])
    ma.check_fits(definition, _spec("model_accuracy", ["x", "y", "z"]), [linear])  # exact
    with pytest.raises(FailedPrecondition) as err:
        ma.check_fits(definition, _spec("model_accuracy", ["x", "y", "z"], privacy=dp), [linear])
    assert err.value.reason == "dp_unavailable"

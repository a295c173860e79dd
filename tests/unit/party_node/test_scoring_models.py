"""The node's model registry: what the catalog shows, who may score, the row quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc import errors
from party_node import models


def test_the_public_description_carries_no_weight(tmp_path: Path) -> None:
    rec = models.build("m", "logistic", [0.123456, -7.5], 0.987654, input_range=(-4, 4))
    shown = str(rec.public("grocery"))

    assert "0.123456" not in shown and "7.5" not in shown and "0.987654" not in shown
    assert rec.public("grocery")["features"] == 2
    assert 0 < rec.public("grocery")["sigmoid_max_error"] < 0.05


def test_a_registered_model_round_trips(tmp_path: Path) -> None:
    reg = models.ModelRegistry(tmp_path)
    rec = models.build("m", "linear", [1.0, 2.0], 3.0, feature_names=("a", "b"))
    reg.register(rec)

    assert reg.get("m") == rec
    assert [r.model.name for r in reg.all()] == ["m"]
    assert (tmp_path / "models" / "m.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(errors.InvalidArgument):
        reg.register(rec)  # no silent overwrite


def test_a_logistic_model_needs_a_range() -> None:
    with pytest.raises(errors.InvalidArgument):
        models.build("m", "logistic", [1.0], 0.0)


def test_the_range_derives_from_the_feature_bounds() -> None:
    rec = models.build("m", "logistic", [2.0, -1.0], 0.5, feature_bounds=([0.0, 0.0], [1.0, 3.0]))

    assert rec.model.input_range == (-2.5, 2.5)


def test_only_allowed_analysts_score_and_the_quota_is_charged(tmp_path: Path) -> None:
    reg = models.ModelRegistry(tmp_path)
    rec = models.build("m", "linear", [1.0], 0.0, allow=("alice",), row_quota=100)
    reg.register(rec)

    assert reg.admit(rec, "alice", 60) == 60
    with pytest.raises(errors.PermissionDenied) as denied:
        reg.admit(rec, "bob", 1)
    with pytest.raises(errors.BudgetExhausted) as quota:
        reg.admit(rec, "alice", 41)
    assert reg.admit(rec, "alice", 40) == 100

    assert denied.value.reason == "model_not_allowed"
    assert quota.value.reason == "model_row_quota"


def test_an_unknown_model_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(errors.NotFound) as err:
        models.ModelRegistry(tmp_path).get("nope")
    assert err.value.reason == "unknown_model"

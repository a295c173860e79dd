"""`ensnif model register --from-result`: a released model's job result read as a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ensnif_mpc import errors
from ensnif_mpc.cli.score_cmd import read_released


def _result(tmp_path: Path, outputs: dict[str, float | None]) -> Path:
    path = tmp_path / "r.json"
    body = {k: {"value": v, "exact": str(v)} for k, v in outputs.items()}
    path.write_text(json.dumps({"job_id": "j", "outputs": body}))
    return path


def test_a_linear_regression_has_its_intercept_first(tmp_path: Path) -> None:
    path = _result(tmp_path, {"coef[0]": 2.0, "coef[1]": 0.5, "coef[2]": -1.0, "r2": 0.9})

    assert read_released(path) == ("linear", [0.5, -1.0], 2.0)


def test_a_logistic_regression_has_a_named_intercept(tmp_path: Path) -> None:
    path = _result(tmp_path, {"coef[0]": 0.5, "coef[1]": -1.0, "intercept": 0.1})

    assert read_released(path) == ("logistic", [0.5, -1.0], 0.1)


@pytest.mark.parametrize(
    "outputs",
    [{"sum": 3.0}, {"coef[0]": 1.0, "coef[2]": 2.0}, {"coef[0]": None, "coef[1]": 1.0}],
)
def test_what_is_not_a_released_model_is_refused(
    tmp_path: Path, outputs: dict[str, float | None]
) -> None:
    with pytest.raises(errors.InvalidArgument):
        read_released(_result(tmp_path, outputs))

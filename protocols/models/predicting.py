"""Registry entries for scoring with a model artifact: ``predict`` (scores to the row
owner) and ``model_accuracy`` (an aggregate to the analyst). Declarations only: the
programs are in ``protocols.models.predict``, imported by the worker.

Exact release only (no DP: a score is one row's value; the model's owners and the row
owner allow it in their policies' ``exact_protocols``). Each example says which training
run makes its artifact (``extra["artifacts_from"]`` with ``extra["artifacts_params"]``):
the contract suite runs that training first on the same parties and rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from ensnif_mpc.jobs.protocol import party_destination
from ensnif_mpc.privacy.dp import BlockSpec
from protocols.models import predict
from protocols.models.declarations import FEATURES, LABEL
from protocols.registry import Example, ProtocolDef, Role, Table

_OPTIONAL_LABEL = Role(
    "label", LABEL.types, "not used by predict (a dataset may list it)", required=False
)
_LINEAR = {"keep": "artifact", "ridge": 0.0}
_LOGISTIC = {"keep": "artifact", "lower": [0, 0], "upper": [1, 1], "steps": 4}
_KINDS = {"linear_regression": "linear", "logistic_regression": "logistic"}


def _ref_predict(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    """The producer's plaintext model on the same rows, then numpy's scores."""
    intercept, coef = predict.trained("linear", tables, _LINEAR)
    got = predict.scores("linear", intercept, coef, predict._rows(tables))
    return {f"score[{i}]": float(s) for i, s in enumerate(got)}


def _ref_accuracy(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    intercept, coef = predict.trained("logistic", tables, _LOGISTIC)
    y = tables[predict.ROW_OWNER]["label"]
    return predict.aggregate("logistic", intercept, coef, predict._rows(tables), y)


def _dp_accuracy(owners: Sequence[Any], params: Mapping[str, Any]) -> list[BlockSpec]:
    """A person with k rows at the row owner moves the number of correctly classified rows
    and the number of rows by at most k each (the model is fixed: it is not their data)."""
    k = float(sum(int(o[0]) for o in owners))
    return [BlockSpec(k, 1), BlockSpec(k, 1)]


def _finalize_accuracy(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """DP release: the noisy counts divided here, clipped to [0, 1] (post-processing)."""
    if "correct" not in values:
        return dict(values)
    rows = values["rows"]
    share = values["correct"] / rows if rows > 0 else math.nan
    clipped = share if isinstance(share, float) else min(max(share, Fraction(0)), Fraction(1))
    return {"accuracy": clipped, **values}


_WHO = (
    "one data owner (the job's first party: one of the training session's parties): "
    "features = [columns…] in the model's order{label}; the other parties of the training "
    "session, in its order, as helpers; the job lists the artifact `<training job>/model`"
)
_LEAKS = (
    " Nothing else is opened; the weights stay secret-shared. The row count (public in the "
    "catalog) and the feature count (signed in the job) are public; a mismatch between "
    "the features listed and the model's weights is refused at every node before anything "
    "runs (model_feature_mismatch)."
)

DEFINITIONS: tuple[ProtocolDef, ...] = (
    ProtocolDef(
        name="predict",
        family="models",
        summary="Score the row owner's rows with a model kept secret-shared; the scores go "
        "to the row owner only",
        inputs=_WHO.format(label=""),
        outputs=("score[<i>]",),
        leakage="Each row's score (linear: intercept + x·w; logistic: the cubic σ of the "
        "clamped logit, error at most 0.115), opened to the row owner only; the analyst "
        "opens nothing." + _LEAKS,
        program="protocols.models.predict:predict",
        reference=_ref_predict,
        roles=((FEATURES, _OPTIONAL_LABEL),),
        max_data_owners=1,
        artifacts_in=("model",),
        destinations={"score[<i>]": party_destination(predict.ROW_OWNER)},
        extra={
            "artifacts_from": "linear_regression",
            "artifacts_params": _LINEAR,
            "scores_with": "model",
        },
        examples=(
            # Both fixed-point steps: the fit's 2^-48 solve (~1e-7 on these sizes) and one
            # truncation per score; features within ±50, so |score error| ≪ 1e-4.
            Example(
                owners=1,
                rows=(30,),
                lower=-20.0,
                upper=40.0,
                decimals=1,
                columns={"features": 2},
                optional_roles=frozenset({"label"}),
                abs_error=1e-4,
                rel_error=1e-6,
            ),
        ),
    ),
    ProtocolDef(
        name="model_accuracy",
        family="models",
        summary="A model kept secret-shared, on the row owner's labelled rows: its accuracy "
        "and log-loss (logistic) or mean squared error (linear), to the analyst",
        inputs=_WHO.format(label=" and a label column (0/1 for a logistic model)"),
        outputs=("accuracy", "log_loss", "mse"),
        leakage="To the analyst, for a logistic model two numbers: the share of rows whose "
        "predicted class (logit ≥ 0) equals the label, and the mean log-loss of the exact "
        "sigmoid (within 6e-5: a stated polynomial for ln(1 + e^-|z|)); for a linear model "
        "one: the mean squared error. DP release (logistic models): a noisy count of the "
        "correctly classified rows and a noisy row count, divided by the analyst's client. "
        "No score is opened to anyone." + _LEAKS,
        program="protocols.models.predict:model_accuracy",
        reference=_ref_accuracy,
        roles=((FEATURES, LABEL),),
        max_data_owners=1,
        artifacts_in=("model",),
        finalize=_finalize_accuracy,
        dp_sensitivity=_dp_accuracy,
        extra={
            "artifacts_from": "logistic_regression",
            "artifacts_params": _LOGISTIC,
            "scores_with": "model",
        },
        examples=(
            # A row whose logit is within the weights' fixed-point error (~1e-5) of 0 may
            # fall on either side: at most one such row in 24, hence 1/24.
            Example(
                owners=1,
                rows=(24,),
                lower=0.0,
                upper=1.0,
                decimals=0,
                columns={"features": 2},
                abs_error=1 / 24 + 1e-9,
            ),
        ),
    ),
)

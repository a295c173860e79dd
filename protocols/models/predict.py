"""Scoring rows with a model kept secret-shared (the artifact ``model`` a linear or
logistic regression kept with ``keep = "artifact"``): ``predict`` and ``model_accuracy``.

Who provides what: one data owner, the job's first party, its feature rows (and, for
``model_accuracy``, their labels); the other parties of the training session take part as
helpers (an artifact's shares are points of that session, in its party order).

The model is ``[intercept, w_1..w_d]`` in the secure fixed-point type it was trained in
(linear: 48 fractional bits, logistic: 40). The owner secret-shares its rows in that type;
every product is MPyC's fixed-point product (one truncation per score, error below
d·2^-f). ``predict`` opens each row's score to the row owner only: the linear prediction
z = intercept + x·w, or for a logistic model σ(z) by the odd cubic the training uses
(``secure_math.sigmoid_poly``) after clamping z into [−8, 8] (two secure comparisons per
row), whose largest error against the exact σ is 0.115 (0.02 on average on [−8, 8];
beyond it the clamped value is σ(±8) ± 0.115). ``model_accuracy`` opens one aggregate to
the analyst: the mean squared error (linear), or for a logistic model the share of rows
whose predicted class (z ≥ 0, exact: a comparison, not the cubic) equals the 0/1 label
and the mean log-loss (cross-entropy) of the exact σ(z). The log-loss per row is
softplus(z) − y·z with softplus(z) = max(z, 0) + g(|z|), g(a) = ln(1 + e^-a): max(z, 0)
reuses the class comparison, and g is a degree-12 polynomial in min(|z|, 10)/10 (one more
comparison per row, 12 products by Horner's rule); its error is at most 7.8e-6 on
[0, 10] and, beyond 10, at most g(10) = 4.6e-5, so the released mean log-loss is within
LOG_LOSS_MAX_ERROR = 6e-5 of the exact one for the secret weights (before fixed-point
rounding, about d·2^-f).

What is revealed: ``predict`` the n scores, to the row owner only (the analyst's part is
empty); ``model_accuracy`` one number, to the analyst. What leaks: the owner's row count
(public in the catalog) and the feature count (signed in the job); nothing else is opened,
the weights stay secret-shared. n scores tell the row owner about the model what n exact
predictions tell (d + 1 independent rows determine a linear model): the model's owners'
``[artifacts] analysts`` policy decides who may ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.errors import DataError
from ensnif_mpc.results.artifacts import ArtifactShare
from ensnif_mpc.results.model_artifacts import MODEL_NAME, from_metadata
from protocols.models import logistic
from protocols.models.secure_math import SIGMOID_C1, SIGMOID_C3, SIGMOID_RANGE, sigmoid_poly
from protocols.program import Program, program

ROW_OWNER = 0  # the job's only data owner is MPC party 0 (owners come first)

# g(a) = ln(1 + e^-a) on [0, SOFTPLUS_RANGE] as a polynomial in u = a / SOFTPLUS_RANGE:
# coefficients of u^0 … u^12 (a Chebyshev least-squares fit, written out so that every
# party uses the same public constants bit for bit). Largest error 7.8e-6 on the range
# (tests/unit/protocols/test_log_loss_poly.py); beyond it g(a) < g(10) = 4.54e-5.
SOFTPLUS_RANGE = 10.0
SOFTPLUS_TAIL = (
    0.6931403017043,
    -4.997738125259,
    12.38033044019,
    2.355093972128,
    -73.57724594573,
    86.15643576149,
    368.3869317707,
    -1576.760285027,
    2909.382539267,
    -3145.09355774,
    2058.970562834,
    -759.5301132066,
    121.6339560234,
)
LOG_LOSS_MAX_ERROR = 6e-5


def _kind(p: Program) -> str:
    """The model's kind, from the metadata of this party's share (the same at every party)."""
    held = [ArtifactShare.from_dict(a) for a in p.ctx.artifacts]
    (share,) = [a for a in held if a.name == MODEL_NAME]
    return from_metadata(share.metadata()).kind


async def _logits(p: Program) -> tuple[str, Any, Any]:
    """The model's kind, its secure type and z = intercept + x·w for every row."""
    kind = _kind(p)
    w = await p.import_shares(MODEL_NAME)
    sectype = type(w).sectype
    x = await p.input_from(ROW_OWNER, sectype, role="features")
    if x.shape[1] != w.shape[0] - 1:  # the nodes refuse this at Propose (model_feature_mismatch)
        raise ValueError(f"{x.shape[1]} feature columns for a model of {w.shape[0] - 1}")
    return kind, sectype, x @ w[1:] + w[0]


def _clamped_sigmoid(p: Program, sectype: Any, z: Any) -> Any:
    n = z.shape[0]
    lo = sectype.array(np.full(n, -SIGMOID_RANGE), integral=False)
    hi = sectype.array(np.full(n, SIGMOID_RANGE), integral=False)
    c = p.mpc.np_minimum(p.mpc.np_maximum(z, lo), hi)
    return 0.5 + c * SIGMOID_C1 + c * c * c * SIGMOID_C3


def _softplus_tail(p: Program, sectype: Any, a: Any) -> Any:
    """g(a) = ln(1 + e^-a) for a secure array a ≥ 0: the polynomial on min(a, range)."""
    top = sectype.array(np.full(a.shape[0], SOFTPLUS_RANGE), integral=False)
    u = p.mpc.np_minimum(a, top) * (1 / SOFTPLUS_RANGE)
    t = u * SOFTPLUS_TAIL[-1] + SOFTPLUS_TAIL[-2]
    for c in reversed(SOFTPLUS_TAIL[:-2]):
        t = t * u + c
    return t


@program
async def predict(p: Program) -> None:
    """Every row's score, opened to the row owner only."""
    kind, sectype, z = await _logits(p)
    score = _clamped_sigmoid(p, sectype, z) if kind == "logistic" else z
    p.reveal_to(ROW_OWNER, "score", score)


@program
async def model_accuracy(p: Program) -> None:
    """One aggregate of the model on the owner's labelled rows, to the analyst."""
    kind, sectype, z = await _logits(p)
    if kind == "logistic" and p.ctx.index == p.owner_party(ROW_OWNER) and p.ctx.local:
        y_own = np.asarray(p.ctx.local.column("label"), dtype=float)
        if not np.all((y_own == 0) | (y_own == 1)):  # before anything of it is shared
            raise DataError("the label column holds a value other than 0 or 1")
    y = await p.input_from(ROW_OWNER, sectype, role="label")
    n = int(z.shape[0])
    inv_n = 1.0 / max(n, 1)
    if p.ctx.dp:  # the nodes refuse a DP release of a linear model's error (dp_unavailable)
        if kind != "logistic":
            raise ValueError("model_accuracy has a DP release for a logistic model only")
        _dp_accuracy(p, z, y)
        return
    if kind == "logistic":
        predicted = z >= 0
        wrong = predicted + y - 2 * predicted * y  # 1 where class and label differ
        p.reveal_to_analyst("accuracy", 1 - p.mpc.np_sum(wrong) * inv_n)
        positive = predicted * z  # max(z, 0)
        tail = _softplus_tail(p, sectype, 2 * positive - z)  # g(|z|)
        p.reveal_to_analyst("log_loss", p.mpc.np_sum(positive + tail - y * z) * inv_n)
    else:
        error = z - y
        p.reveal_to_analyst("mse", p.mpc.np_sum(error * error * inv_n))


def _dp_accuracy(p: Program, z: Any, y: Any) -> None:
    """DP release: the numbers of correctly classified rows and of rows, as secure integers
    the worker noises (two blocks: a person with k rows moves each by at most k); the
    analyst's client divides. The bounded row count is noised too: under contribution
    bounding it depends on the data."""
    from protocols.io import SecureOutput

    mpc = p.mpc
    predicted = z >= 0
    wrong = predicted + y - 2 * predicted * y
    n = int(z.shape[0])
    secint = mpc.SecInt(p.ctx.bit_length)
    correct = mpc.convert(n - mpc.np_sum(wrong), secint)
    p.outputs.append(SecureOutput("correct", correct, on_value_scale=False))
    p.outputs.append(SecureOutput("rows", secint(n), on_value_scale=False))


# -- the same computations in the clear ----------------------------------------------------------


def clamped_sigmoid(z: np.ndarray) -> np.ndarray:
    """The score ``predict`` computes for a logistic model, in float64."""
    out: np.ndarray = sigmoid_poly(np.clip(z, -SIGMOID_RANGE, SIGMOID_RANGE))
    return out


def scores(kind: str, intercept: float, coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    z: np.ndarray = np.asarray(x, dtype=float) @ np.asarray(coef, dtype=float) + intercept
    return clamped_sigmoid(z) if kind == "logistic" else z


def aggregate(
    kind: str, intercept: float, coef: np.ndarray, x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    z = np.asarray(x, dtype=float) @ np.asarray(coef, dtype=float) + intercept
    y = np.asarray(y, dtype=float)
    if kind == "logistic":
        return {
            "accuracy": float(np.mean((z >= 0) == (y == 1))),
            "log_loss": float(np.mean(np.logaddexp(0.0, z) - y * z)),  # exact σ's
        }
    return {"mse": float(np.mean((z - y) ** 2))}


def softplus_tail(a: np.ndarray) -> np.ndarray:
    """What the program computes for g(|z|), in float64."""
    u = np.minimum(np.asarray(a, dtype=float), SOFTPLUS_RANGE) / SOFTPLUS_RANGE
    out: np.ndarray = np.polynomial.polynomial.polyval(u, SOFTPLUS_TAIL)
    return out


def trained(
    kind: str, tables: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> tuple[float, np.ndarray]:
    """The reference model the producer of the artifact trains on ``tables`` (its own
    plaintext reference): (intercept, coefficients)."""
    from protocols.models.declarations import _ref_regression

    if kind == "logistic":
        ref = logistic.reference(tables, params)
        d = sum(1 for k in ref if k.startswith("coef["))
        return ref["intercept"], np.array([ref[f"coef[{j}]"] for j in range(d)])
    ref = _ref_regression(tables, params)
    d = sum(1 for k in ref if k.startswith("coef[")) - 1
    return ref["coef[0]"], np.array([ref[f"coef[{j + 1}]"] for j in range(d)])


def _rows(tables: Sequence[Mapping[str, Any]]) -> np.ndarray:
    x = np.asarray(tables[ROW_OWNER]["features"], dtype=float)
    return x.reshape(len(x), -1)

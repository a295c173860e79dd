"""A released model on the analyst's side: coefficients as numpy arrays, scores in the
clear, and a scikit-learn estimator with the same weights.

Built from a training job's :class:`~ensnif_mpc.sdk.result.Result` (``Result.model()`` or
``Client.model(job_id)``, which also reads the job's ridge penalty): ``linear_regression``
(``coef[0]`` is the intercept, ``coef[1..d]`` the features'), ``logistic_regression``
(``coef[j]`` and ``intercept``) and ``kmeans`` (``centroid[j,i]`` exact, or the DP
release's ``centroid[m]`` row by row with k from its counts). The weights are what the job
released (exactly or with DP noise); nothing is refitted here. ``to_sklearn()`` sets
``coef_``/``intercept_``/``cluster_centers_`` on an unfitted estimator so ``predict`` works
(``LinearRegression``, or ``Ridge`` when the job had a ridge penalty; ``LogisticRegression``
with classes 0 and 1; ``KMeans``). scikit-learn is imported only there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition, InvalidArgument

KINDS = {
    "linear_regression": "linear",
    "logistic_regression": "logistic",
    "join_logistic": "logistic",  # the same outputs: coef[j] (both owners'), intercept
    "kmeans": "kmeans",
}


@dataclass(frozen=True)
class TrainedModel:
    kind: str  # "linear" | "logistic" | "kmeans"
    coef: np.ndarray  # the features' weights (d,); empty for k-means
    intercept: float  # 0.0 for k-means
    centers: np.ndarray  # k-means: (k, d) centroids; empty otherwise
    ridge: float = 0.0  # the job's ridge penalty (linear only)
    job_id: str = ""

    @property
    def features(self) -> int:
        return int(self.centers.shape[1] if self.kind == "kmeans" else self.coef.size)

    def decision(self, x: Any) -> np.ndarray:
        """intercept + x·coef, for each row of ``x`` (rows × features)."""
        z: np.ndarray = self._rows(x) @ self.coef + self.intercept
        return z

    def predict(self, x: Any) -> np.ndarray:
        """Linear: the prediction; logistic: the class (1 where the logit is > 0,
        scikit-learn's rule); k-means: the nearest centroid's index."""
        if self.kind == "kmeans":
            rows = self._rows(x)
            d2 = ((rows[:, None, :] - self.centers[None, :, :]) ** 2).sum(axis=2)
            out: np.ndarray = np.argmin(d2, axis=1)
            return out
        z = self.decision(x)
        return (z > 0).astype(np.int64) if self.kind == "logistic" else z

    def predict_proba(self, x: Any) -> np.ndarray:
        """A logistic model's probability of class 1 (the exact σ of the logit)."""
        if self.kind != "logistic":
            raise InvalidArgument(f"a {self.kind} model has no probabilities")
        p: np.ndarray = 1.0 / (1.0 + np.exp(-self.decision(x)))
        return p

    def to_sklearn(self) -> Any:
        """A scikit-learn estimator with these weights (its ``predict`` works as fitted)."""
        from sklearn.cluster import KMeans
        from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

        est: Any
        if self.kind == "kmeans":
            est = KMeans(n_clusters=self.centers.shape[0], n_init=1)
            est.cluster_centers_ = self.centers.copy()
            est._n_threads = 1  # set by fit; predict reads it
        elif self.kind == "logistic":
            est = LogisticRegression()
            est.coef_ = self.coef.reshape(1, -1).copy()
            est.intercept_ = np.array([self.intercept])
            est.classes_ = np.array([0, 1])
        else:
            est = Ridge(alpha=self.ridge) if self.ridge > 0 else LinearRegression()
            est.coef_ = self.coef.copy()
            est.intercept_ = float(self.intercept)
        est.n_features_in_ = self.features
        return est

    def _rows(self, x: Any) -> np.ndarray:
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.shape[1] != self.features:
            raise FailedPrecondition(
                f"{rows.shape[1]} feature column(s) for a model of {self.features}",
                reason="model_feature_mismatch",
            )
        return rows


_INDEXED = re.compile(r"^(\w+)\[(\d+)(?:,(\d+))?\]$")


def _indexed(values: Mapping[str, float], base: str) -> dict[tuple[int, ...], float]:
    out: dict[tuple[int, ...], float] = {}
    for name, value in values.items():
        m = _INDEXED.match(name)
        if m and m.group(1) == base:
            key = tuple(int(g) for g in m.groups()[1:] if g is not None)
            out[key] = float(value)
    return out


def _vector(found: Mapping[tuple[int, ...], float]) -> np.ndarray:
    return np.array([found[k] for k in sorted(found)], dtype=np.float64)


def from_values(
    protocol: str, values: Mapping[str, float], ridge: float = 0.0, job_id: str = ""
) -> TrainedModel:
    """The model a training job released (its result's values, by output name)."""
    kind = KINDS.get(protocol)
    if kind is None:
        raise InvalidArgument(f"job {job_id or '?'} ran {protocol!r}, which trains no model")
    empty = np.zeros(0)
    if kind == "kmeans":
        grid = _indexed(values, "centroid")
        if grid and all(len(k) == 2 for k in grid):
            k, d = (max(i[n] for i in grid) + 1 for n in (0, 1))
            centers = np.array([[grid[(j, i)] for i in range(d)] for j in range(k)])
        else:  # the DP release: centroid[m] row by row, k from the last iteration's counts
            counts = [n for n in values if re.match(r"^count\d+\[", n)]
            last = max((n.split("[")[0] for n in counts), key=lambda s: int(s[5:]), default="")
            k = sum(1 for n in counts if n.startswith(last + "["))
            flat = _vector(grid)
            if not k or not flat.size or flat.size % k:
                raise InvalidArgument(f"job {job_id or '?'}: no centroids in the result")
            centers = flat.reshape(k, -1)
        return TrainedModel(kind, empty, 0.0, centers, job_id=job_id)
    coef = _vector(_indexed(values, "coef"))
    if not coef.size:
        raise InvalidArgument(
            f"job {job_id or '?'}: no coefficients in the result (a model kept as an "
            "artifact is not released: score with a predict job)"
        )
    if kind == "linear":
        return TrainedModel(kind, coef[1:], float(coef[0]), empty, ridge, job_id)
    return TrainedModel(kind, coef, float(values["intercept"]), empty, job_id=job_id)

"""Registry entries of the iterative models: logistic regression and k-means (what each
takes, releases and leaks, its DP blocks and its plaintext reference). Declarations only:
the programs (``protocols.models.logistic``, ``protocols.models.kmeans``) import MPyC
through the worker's runtime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from ensnif_mpc.errors import InvalidJobSpec
from protocols.models import keep, kmeans, logistic
from protocols.models.secure_math import feature_box
from protocols.registry import (
    BlockSpec,
    Example,
    OwnerBounds,
    Param,
    ProtocolDef,
    Role,
    sampler_safe,
)

MAX_FEATURES = 20
MAX_STEPS = 100
FEATURES = Role(
    "features",
    frozenset({"int", "float"}),
    "the feature columns, in the order of params.lower/params.upper and of the coefficients",
    many=True,
    min_columns=1,
    max_columns=MAX_FEATURES,
)
BINARY_LABEL = Role(
    "label",
    frozenset({"int"}),
    "the 0/1 outcome (an integer column declared within [0, 1])",
    within=(0.0, 1.0),
)

_BOX = (
    Param(
        "lower",
        "numbers",
        "per feature, the lower bound of the public box each owner clamps its rows into",
        required=True,
    ),
    Param("upper", "numbers", "per feature, the upper bound of that box", required=True),
)


def _widths(spec: Any) -> list[int]:
    return [len(i.column_lists.get("features", [])) or 1 for i in spec.inputs]


def _check_box(spec: Any) -> int:
    """Every owner lists as many features as the box has bounds; returns that number."""
    lower, _ = feature_box(spec.params)
    widths = _widths(spec)
    if any(w != lower.size for w in widths):
        raise InvalidJobSpec(
            f"inputs: every owner lists the {lower.size} features params.lower/upper bound; "
            f"got {', '.join(map(str, widths))}"
        )
    return int(lower.size)


def _check_steps(params: Mapping[str, Any], name: str, default: int) -> None:
    steps = int(params.get(name, default))
    if not 1 <= steps <= MAX_STEPS:
        raise InvalidJobSpec(f"params.{name}: between 1 and {MAX_STEPS}, got {steps}")


def _positive(params: Mapping[str, Any], name: str, default: float) -> None:
    value = float(params.get(name, default))
    if not value > 0:
        raise InvalidJobSpec(f"params.{name}: must be positive, got {value!r}")


def _check_logistic(spec: Any) -> None:
    keep.check_keep(spec)
    _check_box(spec)
    _check_steps(spec.params, "steps", 10)
    for name, default in (("l2", 1.0), ("clip", 1.0), ("learning_rate", 1.0)):
        _positive(spec.params, name, default)


def _check_kmeans(spec: Any) -> None:
    _check_box(spec)
    _check_steps(spec.params, "iterations", 10)
    kmeans.check_params(spec.params)


def _persons(owners: Sequence[OwnerBounds | tuple[int, int]]) -> int:
    """Rows one person may have in all: Σ rows per person over the owners."""
    return max(1, sum(int(o[0]) for o in owners))


def _dp_logistic(owners: Sequence[OwnerBounds], params: Mapping[str, Any]) -> list[BlockSpec]:
    """A noisy count, then one block per step of d + 1 gradient sums.

    A row contributes 1 to the count and, per step, a gradient clipped to norm ``clip``
    on the grid 2^20/clip, truncated toward zero: at most 2^20 in L2. A person with K rows
    in all moves the count by K and each step's block by at most K·2^20 in L2 (a step's
    weights are public and the same with or without the person: adaptive composition).
    """
    lower, _ = feature_box(params)
    k = _persons(owners)
    step = BlockSpec(float(k * (1 << logistic.DP_GRID)), lower.size + 1)
    return sampler_safe(
        "logistic_regression", [BlockSpec(float(k), 1)] + [step] * logistic.steps_of(params)
    )


def _dp_kmeans(owners: Sequence[OwnerBounds], params: Mapping[str, Any]) -> list[BlockSpec]:
    """Per iteration, the k noisy counts, then the k·d noisy sums on the box grid.

    Each row adds 1 to one count and its box-grid vector (each coordinate in [0, 2^12]) to
    one cluster's sums: a person with K rows moves the counts by at most K (L2 and L1) and
    the sums by at most K·2^12·√d in L2 (K·2^12·d in L1), wherever its rows fall.
    """
    lower, _ = feature_box(params)
    k, d, rows = kmeans.clusters(params), lower.size, _persons(owners)
    counts = BlockSpec(float(rows), k, float(rows))
    grid = float(1 << kmeans.FK)
    sums = BlockSpec(rows * grid * math.sqrt(d), k * d, rows * grid * d)
    return sampler_safe("kmeans", [counts, sums] * kmeans.iterations(params))


def _finalize_logistic(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """The DP release's published intercept is ``intercept[0]``; everything else as opened."""
    out: dict[str, Fraction | float] = dict(values)
    if "intercept[0]" in out:
        out["intercept"] = out.pop("intercept[0]")
    return out


_LOGISTIC_LEAKAGE = (
    "Exact release: the coefficients and the intercept, to the analyst only; the weights "
    "stay secret-shared through every step and only the owners' local Gram matrices, rows "
    "and labels are input. DP release: a noisy row count and every step's noisy gradient "
    "sum are opened to every party and the analyst (each owner computes its clipped "
    "per-row gradients locally against the public weights of the step), and the weights "
    "from them. The owners' row counts (public in the catalog) are announced in the clear; "
    "the number of steps is a public parameter, so the run's length does not depend on the data."
    ' With keep = "artifact" (exact only): nothing is opened to anyone; the model stays '
    "secret-shared at the parties as the artifact `model`."
)
_KMEANS_LEAKAGE = (
    "Exact release: the final centroids and cluster sizes, to the analyst only; every "
    "row's distances, assignment and every intermediate centroid stay secret-shared. DP "
    "release: each iteration's noisy per-cluster counts and sums, opened to every party "
    "and the analyst (owners assign their own rows to the public noisy centroids "
    "locally), and the centroids from them. The owners' row counts (public in the "
    "catalog) are announced in the clear; no row's cluster is ever opened. A job that "
    "reads an outsourced dataset runs the exact iterations all in MPyC whatever the "
    "session (never the two-owner dealer route: the helper plays the outsourced owner), and "
    "under DP assigns the outsourced rows to the public centroids inside MPC."
)

DEFINITIONS: tuple[ProtocolDef, ...] = (
    ProtocolDef(
        name="logistic_regression",
        family="models",
        summary="Logistic regression of a 0/1 label on 1 to 20 features, rows split between "
        "owners (horizontal): fixed-Hessian Newton steps in MPC, or DP noisy gradient descent",
        inputs="per owner: features = [columns…] and a 0/1 label column, the same at every owner",
        outputs=("coef[<i>]", "intercept"),
        leakage=_LOGISTIC_LEAKAGE,
        program="protocols.models.logistic:logistic_regression",
        reference=logistic.reference,
        roles=((FEATURES, BINARY_LABEL),),
        parameters=(
            *_BOX,
            Param(
                "steps", "int", "Newton steps (exact) or gradient steps (DP), 1 to 100", default=10
            ),
            Param(
                "l2",
                "number",
                "exact release: ridge penalty λ > 0 on the normalized weights",
                default=1.0,
            ),
            Param(
                "clip",
                "number",
                "DP release: each row's gradient is clipped to this L2 norm",
                default=1.0,
            ),
            Param("learning_rate", "number", "DP release: the gradient step size", default=1.0),
            keep.KEEP_PARAM,
        ),
        destinations=keep.DESTINATIONS,
        finalize=_finalize_logistic,
        check_spec=_check_logistic,
        dp_sensitivity=_dp_logistic,
        examples=(
            Example(
                params={"lower": [0, 0], "upper": [1, 1], "steps": 4},
                rows=(20, 16),
                lower=0.0,
                upper=1.0,
                decimals=0,
                columns={"features": 2},
                abs_error=1e-5,
                rel_error=1e-5,
            ),
        ),
    ),
    ProtocolDef(
        name="kmeans",
        family="models",
        summary="k-means (Lloyd's iterations, a fixed number) on rows split between owners: "
        "exact in MPC (secure argmin, division) or DP (noisy counts and sums per iteration)",
        inputs="per owner: features = [columns…], the same at every owner",
        outputs=("centroid[<i>]", "size[<i>]"),
        leakage=_KMEANS_LEAKAGE,
        program="protocols.models.kmeans:kmeans",
        reference=kmeans.reference,
        roles=((FEATURES,),),
        parameters=(
            *_BOX,
            Param("k", "int", "the number of clusters (at least 2)", required=True),
            Param("iterations", "int", "Lloyd iterations, 1 to 100", default=10),
            Param(
                "initial",
                "numbers",
                "the initial centroids, k·d numbers row by row (else drawn from seed)",
            ),
            Param(
                "seed",
                "int",
                "the public seed the initial centroids are drawn from in the box",
                default=0,
            ),
        ),
        check_spec=_check_kmeans,
        dp_sensitivity=_dp_kmeans,
        examples=(
            Example(
                params={
                    "lower": [-50, -50],
                    "upper": [120, 120],
                    "k": 2,
                    "iterations": 2,
                    "seed": 3,
                },
                rows=(16, 14),
                columns={"features": 2},
                # Centroids are rounded to 2^-20 of the box each iteration: 3 units of
                # 170 · 2^-20 = 1.6e-4 (sizes exact).
                abs_error=5e-4,
            ),
        ),
    ),
)

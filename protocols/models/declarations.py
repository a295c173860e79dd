"""The models family's registry entries: what each takes, releases and leaks, its DP
sensitivities, its sizing and its plaintext reference. Declarations only: the MPC
programs (``protocols.models.regression`` …) are imported by the worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.jobs.protocol import OwnerSize
from protocols.models import keep, solve
from protocols.models.gram import triangle
from protocols.models.regression import CROSS
from protocols.registry import (
    NUMERIC,
    BlockSpec,
    Example,
    OwnerBounds,
    Param,
    ProtocolDef,
    Role,
    Table,
    sampler_safe,
)

MAX_FEATURES = 20
FEATURES = Role(
    "features",
    NUMERIC,
    "the feature columns, in the order their coefficients come back",
    many=True,
    min_columns=1,
    max_columns=MAX_FEATURES,
)
LABEL = Role("label", NUMERIC, "the column the model predicts")


def _features(spec: Any) -> list[int]:
    return [len(i.column_lists.get("features", [])) or 1 for i in spec.inputs]


def _check_regression(spec: Any) -> None:
    keep.check_keep(spec)
    ridge = spec.params.get("ridge", 0.0)
    if ridge < 0:
        raise InvalidJobSpec(f"params.ridge: must be at least 0, got {ridge!r}")
    widths = _features(spec)
    if len(set(widths)) > 1:
        raise InvalidJobSpec(
            "inputs: every owner lists the same number of features (rows are split between "
            f"owners, columns are not); got {', '.join(map(str, widths))}"
        )


def _check_rows(spec: Any, rows: Sequence[int]) -> None:
    """More coefficients than rows in the whole catalog: refused before anything runs."""
    coefficients = _features(spec)[0] + 1
    if sum(rows) <= coefficients:
        raise FailedPrecondition(
            f"inputs: the owners' datasets have {sum(rows)} rows in all, not more than the "
            f"model's {coefficients} coefficients (the intercept and one per feature)",
            reason="too_few_rows",
        )


def _z_bounds(owner: OwnerBounds) -> tuple[list[int], int]:
    """The feature and label bounds; a plain (k, b) pair (a one-column caller) reads as one
    feature and a label, both bounded by b."""
    if not isinstance(owner, OwnerBounds):
        return [int(owner[1])], int(owner[1])
    return list(owner.role("features")), (owner.role("label") or (0,))[0]


def _dp_regression(owners: Sequence[OwnerBounds], params: Mapping[str, Any]) -> list[BlockSpec]:
    """Blocks n; Σz; XᵀX's upper triangle; Xᵀy; yᵀy (ρ/5 each: their scales differ).

    A person with k rows at an owner whose columns are bounded by B_j (label B_y) on the
    grid changes each row's contribution to a block by at most that row's norm, so the
    block moves by at most Σ k·(row norm) over the owners: L2 per row √(Σ B_j²) for Σz,
    √(Σ_{j≤l} B_j² B_l²) for XᵀX, B_y·√(Σ B_j²) for Xᵀy, B_y² for yᵀy, and 1 for n; L1 per
    row Σ B_j, Σ_{j≤l} B_j B_l, B_y·Σ B_j, B_y² and 1. (Adding or removing the person; the
    ridge penalty on the diagonal is a public constant.)
    """
    blocks = np.zeros((5, 2))  # per block: L2, L1
    dims = [0] * 5
    for owner in owners:
        bx, by = _z_bounds(owner)
        k = owner[0]  # rows per person
        x = np.array(bx, dtype=float)
        z = np.append(x, by)
        pairs = np.array([x[j] * x[col] for j, col in triangle(len(x))])
        blocks += k * np.array(
            [
                [1.0, 1.0],
                [np.linalg.norm(z), z.sum()],
                [np.linalg.norm(pairs), pairs.sum()],
                [by * np.linalg.norm(x), by * x.sum()],
                [by * by, by * by],
            ]
        )
        d = len(x)
        dims = [1, d + 1, d * (d + 1) // 2, d, 1]
    specs = [
        BlockSpec(max(1.0, l2), dim, max(1.0, l1))
        for (l2, l1), dim in zip(blocks, dims, strict=True)
    ]
    return sampler_safe("linear_regression", specs)


def _sizing(owners: Sequence[OwnerSize], params: Mapping[str, Any]) -> int:
    """The largest cross product Σ z_j·z_l over every owner's rows (n and Σz are smaller)."""
    total = 0
    for o in owners:
        z = [*o.bounds.get("features", ()), *o.bounds.get("label", ())]
        total += o.rows * max((a * b for a in z for b in z), default=1)
    return total


def _ref_regression(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    """numpy's least squares on the rows (ridge as rows √λ·I appended to the features,
    with target 0 and no intercept column), then the residuals' R² and standard errors."""
    x = np.concatenate(
        [np.asarray(t["features"], dtype=float).reshape(len(t["label"]), -1) for t in tables]
    )
    y = np.concatenate([np.asarray(t["label"], dtype=float) for t in tables])
    ridge = float(params.get("ridge", 0.0))
    n, d = x.shape
    design = np.column_stack([np.ones(n), x])
    penalty = np.column_stack([np.zeros(d), math.sqrt(ridge) * np.eye(d)])
    beta = np.linalg.lstsq(
        np.vstack([design, penalty]), np.concatenate([y, np.zeros(d)]), rcond=None
    )[0]
    residual = y - design @ beta
    rss = float(residual @ residual + ridge * beta[1:] @ beta[1:])
    tss = float(((y - y.mean()) ** 2).sum())
    reg = design.T @ design + np.diag([0.0, *[ridge] * d])
    se2 = rss / (n - d - 1) * np.diag(np.linalg.inv(reg))
    out = {f"coef[{j}]": float(b) for j, b in enumerate(beta)}
    out.update({f"se[{j}]": float(math.sqrt(v)) for j, v in enumerate(se2)})
    out["r2"] = 1 - rss / tss
    return out


def _cross_name(name: str) -> tuple[int, int, int] | None:
    """``cross@decimals=4[0,2]`` → (4, 0, 2)."""
    if not name.startswith(CROSS):
        return None
    grid, rest = name[len(CROSS) :].split("[", 1)
    j, col = rest.rstrip("]").split(",")
    return int(grid), int(j), int(col)


def _finalize_regression(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """Exact release: the standard errors from their squares. DP release: the noisy
    statistics solved here, on the analyst's side (post-processing)."""
    if "n" not in values:
        out: dict[str, Fraction | float] = {
            k: v for k, v in values.items() if not k.startswith("se2[")
        }
        for k, v in values.items():
            if k.startswith("se2["):
                out["se" + k[3:]] = math.sqrt(max(float(v), 0.0))
        return out
    w = sum(1 for k in values if k.startswith("sum["))
    cross = np.zeros(w * (w + 1) // 2)
    index = {jl: i for i, jl in enumerate(triangle(w))}
    for k, v in values.items():
        parsed = _cross_name(k)
        if parsed is not None:
            grid, j, col = parsed
            cross[index[(j, col)]] = float(v) / 10**grid
    sums = np.array([float(values[f"sum[{j}]"]) for j in range(w)])
    fit = solve.solve(np.asarray(float(values["n"])), sums, cross)
    result: dict[str, Fraction | float] = dict(values)
    result.update({f"coef[{j}]": float(c) for j, c in enumerate(fit["coef"])})
    result.update(
        {f"se[{j}]": math.sqrt(v) if v >= 0 else math.nan for j, v in enumerate(fit["se2"])}
    )
    result["r2"] = float(fit["r2"])
    return result


_REGRESSION_LEAKAGE = (
    "Exact release: the coefficients, their standard errors and R² to the analyst; to every "
    "party one bit, whether the system is singular (a constant or collinear feature, or no "
    "more rows than coefficients), which then fails the job with nothing else opened. DP "
    "release: the noisy n, Σz, XᵀX (ridge penalty on its diagonal), Xᵀy and yᵀy. Each owner "
    "secret-shares only its local sufficient statistics (one vector whose length depends on "
    "the number of features only). The owners' row counts and the columns' declared bounds "
    "(public in the catalog) are announced in the clear; the MPC work does not depend on "
    "the data."
    ' With keep = "artifact" (exact only): nothing is opened to anyone; the model stays '
    "secret-shared at the parties as the artifact `model`."
)

DEFINITIONS: tuple[ProtocolDef, ...] = (
    ProtocolDef(
        name="linear_regression",
        family="models",
        summary="Linear or ridge regression of a label on 1 to 20 features, rows split "
        "between owners (horizontal)",
        inputs="per owner: features = [columns…] and a label column, the same at every owner",
        outputs=("coef[<i>]", "se[<i>]", "r2"),
        leakage=_REGRESSION_LEAKAGE,
        program="protocols.models.regression:linear_regression",
        reference=_ref_regression,
        roles=((FEATURES, LABEL),),
        parameters=(
            Param(
                "ridge",
                "number",
                "ridge penalty λ ≥ 0 on the features' coefficients (not the intercept); "
                "0: ordinary least squares",
                default=0.0,
            ),
            keep.KEEP_PARAM,
        ),
        destinations=keep.DESTINATIONS,
        finalize=_finalize_regression,
        check_spec=_check_regression,
        check_rows=_check_rows,
        dp_sensitivity=_dp_regression,
        sizing=_sizing,
        examples=(
            Example(
                params={"ridge": 0.0},
                rows=(30, 25),
                lower=-20.0,
                upper=40.0,
                decimals=1,
                columns={"features": 3},
                rel_error=1e-6,
                abs_error=1e-6,
            ),
            Example(
                params={"ridge": 4.0},
                rows=(20,),
                columns={"features": 2},
                rel_error=1e-6,
                abs_error=1e-6,
            ),
        ),
    ),
)

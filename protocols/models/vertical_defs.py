"""The registry entries of ``join_regression`` (``protocols.models.vertical``) and, from
``protocols.models.vertical_logistic_defs``, ``join_logistic``: roles,
parameters, leakage, DP sensitivity, sizing and the plaintext reference. Declarations
only; the worker imports the program."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.privacy import withheld
from protocols import joint_cohort
from protocols.join.common import row_cap
from protocols.models.vertical import MAX_SIDE


def _sizing(owners: Sequence[Any], params: Mapping[str, Any]) -> int:
    """The largest |Σ z_j z_l| over the matched keys: keys · B_j · B_l for means; for sums
    (or per_key unknown) Σ_k s_k t_k ≤ (Σ_k |s_k|)·max|t_k| ≤ (rows · B) of each side."""
    per = []
    for o in owners:
        z = [*o.bounds.get("features", ()), *o.bounds.get("label", ())]
        per.append((o.rows, max(z, default=1)))
    keys = min((r for r, _ in per), default=1)
    largest = max((b for _, b in per), default=1)
    if params.get("per_key") == "mean":
        return max(1, keys * largest * largest)
    cap = int(params.get("max_rows_per_key", 1))
    side = max((r * b for r, b in per), default=1)
    return max(1, side * side, keys * (cap * largest) ** 2)


def _finalize_vertical(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """The regression's finalize, after the joint cohort's marker: a DP release whose
    matched set was withheld opened zeros, so nothing is solved from them and every output,
    the coefficients included, is NaN (suppressed, not 0)."""
    from protocols.models.declarations import _finalize_regression

    kept, labels = withheld.split(values)
    if not labels:
        return _finalize_regression(kept)
    w = sum(1 for k in kept if k.startswith("sum["))
    out: dict[str, Fraction | float] = {k: math.nan for k in kept}
    out.update({f"{name}[{j}]": math.nan for name in ("coef", "se") for j in range(w)})
    out["r2"] = math.nan
    return out


def _z_of(owner: Any, position: int) -> tuple[int, list[int]]:
    """(rows per person, the grid bounds of this owner's columns in Z); a plain (k, b) pair
    reads as one feature (A) or a label (B) bounded by b."""
    from ensnif_mpc.jobs.protocol import OwnerBounds

    if not isinstance(owner, OwnerBounds):
        return int(owner[0]), [int(owner[1])] if owner[1] else []
    label = [] if position == 0 else list(owner.role("label"))
    return owner[0], [*owner.role("features"), *label]


def _dp_vertical(owners: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    """Blocks n; Σz; XᵀX's upper triangle; Xᵀy; yᵀy (``linear_regression``'s, ρ/5 each).

    A key's row is its means within the declared bounds B_j, or under DP its sums capped at
    c = max_rows_per_key rows (within c·B_j). A person with k_A rows at A and k_B at B
    touches at most K = k_A + k_B keys, so at most K matched rows of Z appear, vanish or
    change (one owner's part replaced, the other's kept). A row added or removed moves a
    block by its contribution's norm; a row changed, by at most twice that (each entry
    anywhere within ± its bound; a square only within [0, B²], kept at 2 for simplicity).
    So per block: n K; Σz 2K·‖b‖; XᵀX 2K·‖(b_j b_l)_{j≤l}‖; Xᵀy 2K·B_y·‖b_x‖; yᵀy 2K·B_y²,
    L1 the same with sums for norms, b = (c·B_1 … c·B_d, c·B_y).
    """
    from protocols.models.gram import triangle
    from protocols.registry import BlockSpec, sampler_safe

    (k_a, z_a), (k_b, z_b) = _z_of(owners[0], 0), _z_of(owners[1], 1)
    c = row_cap(params) if params.get("per_key", "mean") == "sum" else 1
    k = k_a + k_b
    z = c * np.array([*z_a, *z_b], dtype=float)
    if len(z) < 2:  # a one-owner check (the other side empty): one feature and a label
        z = np.concatenate([z, np.zeros(2 - len(z))])
    x, y = z[:-1], z[-1]
    pairs = np.array([x[j] * x[col] for j, col in triangle(len(x))])
    d = len(x)
    rows = [
        (1.0, 1.0, 1),
        (2 * np.linalg.norm(z), 2 * z.sum(), d + 1),
        (2 * np.linalg.norm(pairs), 2 * pairs.sum(), d * (d + 1) // 2),
        (2 * y * np.linalg.norm(x), 2 * y * x.sum(), d),
        (2 * y * y, 2 * y * y, 1),
    ]
    specs = [BlockSpec(max(1.0, k * l2), dim, max(1.0, k * l1)) for l2, l1, dim in rows]
    return sampler_safe("join_regression", specs)


def _per_key_frame(
    table: Mapping[str, np.ndarray], names: list[str], how: str, decimals: int | None
) -> Any:
    """One row per key: sums, or means (with ``decimals``, rounded half up to that grid as
    the owners do; without, pandas' float means)."""
    import pandas as pd

    keys = np.asarray(table["key"])
    data: dict[str, Any] = {"key": keys}
    for name in names:
        values = np.asarray(table[name], dtype=float).reshape(len(keys), -1)
        if decimals is not None:
            values = np.round(values * 10**decimals)
        data.update({f"{name}{j}": values[:, j] for j in range(values.shape[1])})
    grouped = pd.DataFrame(data).groupby("key")
    if how == "sum" or decimals is None:
        frame = grouped.sum() if how == "sum" else grouped.mean()
    else:
        counts = grouped.size().to_numpy()[:, None]
        frame = np.floor((2 * grouped.sum() + counts) / (2 * counts))
    return frame if decimals is None else frame / 10**decimals


def _ref_vertical(tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]) -> Any:
    """numpy's least squares (``linear_regression``'s reference) on the pandas inner join of
    the two owners' per-key aggregates (A's features, B's features, B's label)."""
    return reference_on_grid(tables, params, None)


def reference_on_grid(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any], decimals: int | None
) -> dict[str, float]:
    """The reference with the owners' per-key means rounded half up to ``decimals`` (what
    the protocol computes exactly; None: float means)."""
    from protocols.models.declarations import _ref_regression

    x, y = joined_rows(tables, params, decimals)
    return _ref_regression([{"features": x, "label": y}], params)


def joined_rows(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any], decimals: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The pandas inner join of the two owners' per-key rows: (features, label)."""
    how = str(params.get("per_key", "mean"))
    a = _per_key_frame(tables[0], ["features"], how, decimals)
    b_names = ["features", "label"] if "features" in tables[1] else ["label"]
    b = _per_key_frame(tables[1], b_names, how, decimals).add_prefix("b_")
    joined = a.join(b, how="inner").to_numpy(dtype=float)
    return joined[:, :-1], joined[:, -1]


def _check_vertical(spec: Any) -> None:
    from ensnif_mpc.errors import InvalidJobSpec
    from protocols.join.declarations import _check_correlation
    from protocols.models import keep

    _check_correlation(spec)  # per_key, the row cap, the route
    keep.check_keep(spec)  # release, to:<member>, or kept (exact only) as the artifact model
    ridge = spec.params.get("ridge", 0.0)
    if ridge < 0:
        raise InvalidJobSpec(f"params.ridge: must be at least 0, got {ridge!r}")


def _check_rows(spec: Any, rows: Sequence[int]) -> None:
    """Matched keys are at most the smaller owner's rows: refused when that is not more
    than the coefficients (the keys themselves are only counted inside MPC)."""
    from ensnif_mpc.errors import FailedPrecondition

    c_a = len(spec.inputs[0].column_lists.get("features", [])) or 1
    c_b = len(spec.inputs[1].column_lists.get("features", []))
    coefficients = c_a + c_b + 1
    if min(rows) <= coefficients:
        raise FailedPrecondition(
            f"inputs: an owner's dataset has {min(rows)} rows, so the join has at most that "
            f"many keys, not more than the model's {coefficients} coefficients",
            reason="too_few_rows",
        )


def _definitions() -> tuple[Any, ...]:
    from ensnif_mpc.jobs import join_path
    from protocols.join.common import KEY
    from protocols.join.declarations import _ROUTE_PARAM, _cap
    from protocols.models import keep
    from protocols.models.declarations import LABEL
    from protocols.registry import NUMERIC, Example, Param, ProtocolDef, Role, positional

    def features(required: bool, low: int) -> Role:
        return Role(
            "features",
            NUMERIC,
            "this owner's feature columns, in the order their coefficients come back "
            "(the first owner's, then the second's)",
            required=required,
            many=True,
            min_columns=low,
            max_columns=MAX_SIDE,
        )

    leakage = (
        "Exact release: the coefficients, their standard errors and R² to the analyst; to "
        "every party one bit, whether the system is singular (a constant or collinear "
        "feature over the matched keys, or no more matched keys than coefficients), which "
        "then fails the job with nothing else opened. DP release: the noisy n (matched "
        "keys), Σz, XᵀX (ridge penalty on its diagonal), Xᵀy and yᵀy. No party learns which "
        'keys matched or any value. With keep = "artifact" (exact only) nothing but the '
        "cohort and singular bits is opened: [intercept, A's weights, B's weights] stay "
        "secret-shared as the artifact `model` (listed by `ensnif model list`; predict and "
        "model_accuracy refuse it, model_vertical). The owners' catalog row counts and "
        "declared bounds (public) are announced in the clear. Routes "
        "(ensnif_mpc.jobs.join_path; the manifest names the one taken): a session of two "
        "owners and one helper with t = 1 "
        f"takes the {join_path.DESCRIPTIONS[join_path.ALIGNED]}; any other session, or "
        "params.join_path = 'prf-shuffle', takes the "
        f"{join_path.DESCRIPTIONS[join_path.PRF]}."
    )
    return (
        ProtocolDef(
            name="join_regression",
            family="models",
            summary="Linear or ridge regression of one owner's column on another's (and its "
            "own) columns across a private join by key (vertical)",
            inputs="first owner: key and features = [columns…]; second owner: key, label and "
            "optionally features = [columns…]",
            outputs=("coef[<i>]", "se[<i>]", "r2"),
            leakage=leakage,
            program="protocols.models.vertical:join_regression",
            reference=_ref_vertical,
            roles=((KEY, features(True, 1)), (KEY, LABEL, features(False, 1))),
            parameters=(
                Param(
                    "ridge",
                    "number",
                    "ridge penalty λ ≥ 0 on the features' coefficients (not the intercept); "
                    "0: ordinary least squares",
                    default=0.0,
                ),
                Param(
                    "per_key",
                    "string",
                    "how a key's rows become one row: each column's mean or sum",
                    default="mean",
                ),
                _cap("an owner's (with per_key = sum)"),
                _ROUTE_PARAM,
                keep.KEEP_PARAM,
            ),
            destinations=keep.DESTINATIONS,
            min_data_owners=2,
            max_data_owners=2,
            finalize=_finalize_vertical,
            extra=joint_cohort.step("on_noisy_n"),  # the owners' min_cohort on the match
            check_spec=_check_vertical,
            check_rows=_check_rows,
            dp_sensitivity=positional(_dp_vertical),
            sizing=_sizing,
            examples=(
                Example(
                    params={"per_key": "sum"},
                    rows=(40, 36),
                    lower=-20.0,
                    upper=40.0,
                    decimals=1,
                    keys=30,
                    overlap=0.8,
                    columns={"features": 2},
                    optional_roles=frozenset({"features"}),
                    rel_error=1e-6,
                    abs_error=1e-6,
                ),
            ),
        ),
    )


def _all() -> tuple[Any, ...]:
    from protocols.models import vertical_logistic_defs  # join_logistic's entry

    return _definitions() + vertical_logistic_defs.DEFINITIONS


DEFINITIONS = _all()

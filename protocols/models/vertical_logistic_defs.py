"""The registry entry of ``join_logistic`` (``protocols.models.vertical_logistic``): roles,
parameters, leakage, DP sensitivity and the plaintext reference. Declarations only; the
worker imports the program."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protocols import joint_cohort
from protocols.models import logistic

NAME = "join_logistic"


def _widths(spec: Any) -> tuple[int, int]:
    c_a = len(spec.inputs[0].column_lists.get("features", [])) or 1
    return c_a, len(spec.inputs[1].column_lists.get("features", []))


def _check(spec: Any) -> None:
    """The join's parameters (per_key, the row cap, the route), and the logistic fit's:
    one box bound per feature (A's then B's), steps, l2, learning_rate, keep."""
    from ensnif_mpc.errors import InvalidJobSpec
    from protocols.join.declarations import _check_correlation
    from protocols.models import keep
    from protocols.models.learning import _check_steps, _positive
    from protocols.models.secure_math import feature_box

    _check_correlation(spec)
    keep.check_keep(spec)
    c_a, c_b = _widths(spec)
    lower, _ = feature_box(spec.params)
    if lower.size != c_a + c_b:
        raise InvalidJobSpec(
            f"params.lower/params.upper: one bound per feature, the first owner's {c_a} then "
            f"the second's {c_b}; got {lower.size}"
        )
    _check_steps(spec.params, "steps", 10)
    for name, default in (("l2", 1.0), ("learning_rate", 1.0)):
        _positive(spec.params, name, default)


def _check_rows(spec: Any, rows: Sequence[int]) -> None:
    """Matched keys are at most the smaller owner's rows: refused when that is not more
    than the coefficients."""
    from ensnif_mpc.errors import FailedPrecondition

    c_a, c_b = _widths(spec)
    coefficients = c_a + c_b + 1
    if min(rows) <= coefficients:
        raise FailedPrecondition(
            f"inputs: an owner's dataset has {min(rows)} rows, so the join has at most that "
            f"many keys, not more than the model's {coefficients} coefficients",
            reason="too_few_rows",
        )


def _dp_blocks(owners: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    """The noisy matched count, then one block of D = features + 1 gradient sums per step.

    A person with k_A rows at A and k_B at B touches at most K = k_A + k_B keys, so at
    most K matched rows appear, vanish or change (``join_regression``'s argument): the
    count moves by at most K. A row's gradient r·x has |r| ≤ 1 (the public factor s_t of
    the program) and x in [−1, 1]^d with the intercept 1, so at most √D in L2 (D in L1),
    2^DP_GRID units each on the grid; a changed row moves it by at most twice that, and
    the truncation of the sum to the grid by less than 2 units per coordinate. Per step:
    L2 2K·√D·2^DP_GRID + 2√D, L1 2K·D·2^DP_GRID + 2D, at public weights (adaptive
    composition: the next weights are post-processing of this step's noisy output)."""
    from protocols.registry import BlockSpec, sampler_safe

    lower = np.asarray(params["lower"], dtype=float)
    d = lower.size + 1
    k = sum(int(o[0]) for o in owners[:2])
    unit = float(1 << logistic.DP_GRID)
    step = BlockSpec(
        max(1.0, 2 * k * math.sqrt(d) * unit + 2 * math.sqrt(d)),
        d,
        max(1.0, 2 * k * d * unit + 2 * d),
    )
    count = BlockSpec(max(1.0, float(k)), 1, max(1.0, float(k)))
    return sampler_safe(NAME, [count] + [step] * logistic.steps_of(params))


def joined(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any], decimals: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The pandas inner join of the owners' per-key rows: (A's then B's features, the
    key's majority label), the features' per-key means rounded half up to ``decimals`` as
    the owners compute them (None: float means), or their sums."""
    from protocols.models.vertical_defs import _per_key_frame

    how = str(params.get("per_key", "mean"))
    a = _per_key_frame(tables[0], ["features"], how, decimals)
    if "features" in tables[1]:
        b = _per_key_frame(tables[1], ["features"], how, decimals).add_prefix("b_")
        a = a.join(b, how="inner")
    label = _per_key_frame(tables[1], ["label"], "mean", None)
    both = a.join((label >= 0.5).astype(float).add_prefix("y_"), how="inner")
    values = both.to_numpy(dtype=float)
    return values[:, :-1], values[:, -1]


def reference_on_grid(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any], decimals: int | None
) -> dict[str, float]:
    """``logistic_regression``'s float64 mirror of the exact fit (same box, grid, σ and
    Newton steps) on the joined rows."""
    from protocols.models.secure_math import feature_box

    x, y = joined(tables, params, decimals)
    lower, upper = feature_box(params)
    w = logistic.reference_fit(
        x, y, lower, upper, logistic.ridge(params), logistic.steps_of(params)
    )
    coef, intercept = logistic.to_raw(w, lower, upper)
    return {**{f"coef[{j}]": float(c) for j, c in enumerate(coef)}, "intercept": intercept}


def _reference(
    tables: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]
) -> dict[str, float]:
    return reference_on_grid(tables, params, None)


def _definitions() -> tuple[Any, ...]:
    from ensnif_mpc.jobs import join_path
    from protocols.join.common import KEY
    from protocols.join.declarations import _ROUTE_PARAM, _cap
    from protocols.models import keep
    from protocols.models.learning import _BOX, BINARY_LABEL, _finalize_logistic
    from protocols.models.vertical import MAX_SIDE
    from protocols.registry import NUMERIC, Example, Param, ProtocolDef, Role, positional

    def features(required: bool) -> Role:
        return Role(
            "features",
            NUMERIC,
            "this owner's feature columns, in the order of params.lower/upper and of the "
            "coefficients (the first owner's, then the second's)",
            required=required,
            many=True,
            min_columns=1,
            max_columns=MAX_SIDE,
        )

    leakage = (
        "Exact release: the coefficients and the intercept to the analyst (or, with keep = "
        '"artifact", nothing: the model stays secret-shared as the artifact `model`); the '
        "weights stay secret-shared through every Newton step. To every party three bits, "
        "each failing the job with nothing else opened when set: fewer matched keys than an "
        "owner's min_cohort (cohort_too_small), a feature constant over the matched keys "
        "(singular_system), the weights leaving the fixed point's range "
        "(model_out_of_range). DP release: the noisy matched count and every step's noisy "
        "gradient sum, computed inside MPC on the matched rows at the public weights of the "
        "step, opened to every party and the analyst, the bit 'noisy count below the "
        "owners' min_cohort' to every party, and the weights from them. No party learns "
        "which keys matched or any value. The owners' catalog row counts (public) are "
        "announced in the clear. Routes (ensnif_mpc.jobs.join_path; the manifest names the "
        "one taken): a session of two owners and one helper with t = 1 takes the "
        f"{join_path.DESCRIPTIONS[join_path.ALIGNED]}; any other session, or "
        "params.join_path = 'prf-shuffle', takes the "
        f"{join_path.DESCRIPTIONS[join_path.PRF]}."
    )
    return (
        ProtocolDef(
            name=NAME,
            family="models",
            summary="Logistic regression of one owner's 0/1 label on both owners' features "
            "across a private join by key (vertical): Newton steps in MPC, or DP noisy "
            "gradient descent with the gradients computed in MPC",
            inputs="first owner: key and features = [columns…]; second owner: key, a 0/1 "
            "label and optionally features = [columns…]",
            outputs=("coef[<i>]", "intercept"),
            leakage=leakage,
            program="protocols.models.vertical_logistic:join_logistic",
            reference=_reference,
            roles=((KEY, features(True)), (KEY, BINARY_LABEL, features(False))),
            parameters=(
                *_BOX,
                Param(
                    "steps",
                    "int",
                    "Newton steps (exact) or gradient steps (DP), 1 to 100",
                    default=10,
                ),
                Param(
                    "l2",
                    "number",
                    "exact release: ridge penalty λ > 0 on the normalized weights",
                    default=1.0,
                ),
                Param("learning_rate", "number", "DP release: the gradient step size", default=1.0),
                Param(
                    "per_key",
                    "string",
                    "how a key's rows become one row: each feature's mean or sum (the "
                    "label: the majority of the key's rows)",
                    default="mean",
                ),
                _cap("an owner's (with per_key = sum)"),
                _ROUTE_PARAM,
                keep.KEEP_PARAM,
            ),
            destinations=keep.DESTINATIONS,
            min_data_owners=2,
            max_data_owners=2,
            finalize=_finalize_logistic,
            extra=joint_cohort.EXTRA,  # the owners' min_cohort, held inside the program
            check_spec=_check,
            check_rows=_check_rows,
            dp_sensitivity=positional(_dp_blocks),
            examples=(
                Example(
                    params={"lower": [0, 0], "upper": [3, 3], "steps": 4, "per_key": "sum"},
                    rows=(40, 36),
                    lower=0.0,
                    upper=1.0,
                    decimals=0,
                    keys=30,
                    overlap=0.8,
                    columns={"features": 1},
                    optional_roles=frozenset({"features"}),
                    abs_error=1e-5,
                    rel_error=1e-5,
                ),
            ),
        ),
    )


DEFINITIONS = _definitions()

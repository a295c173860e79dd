"""Join-restricted statistics: the mean, variance and standard deviation of owner A's and
owner B's per-key values over the keys both have, and their covariance.

Who provides what: owners A and B each a ``key`` and a ``value`` column; each first reduces
its rows to one value per key (``params.per_key``: mean rounded half up to the session's
decimals, or sum). The join and the six sufficient statistics of the matched pairs — n, Σx,
Σy, Σx², Σy², Σxy — are ``join_correlation``'s, on either of its routes (this program runs
that protocol's join and moment code; nothing is duplicated). The statistics are integers
on the grid, opened as such; the analyst's side divides (``finalize``).

What is revealed: exact — the six sums, equivalently n, both means, both variances and
the covariance (a one-to-one map given n), to the analyst. DP — the same six sums with
noise (``join_correlation``'s blocks, ρ/6 each); the SDK's intervals redraw that noise
through the same finalize. Minimum cohort: as ``join_correlation``'s, on the matched
pairs inside MPC (the ``withheld`` marker; ``protocols.joint_cohort``). What leaks: as
``join_correlation``: both per-key table sizes and (on the PRF route) the number of
matched keys to every party. Under per_key = sum, a key's sum counts at most
``max_rows_per_key`` rows in a DP release (its mean kept); an exact release takes every
row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from protocols.io import Context, SecureOutput
from protocols.join.common import CAP, KEY
from protocols.join.correlation import MOMENTS
from protocols.registry import Table

STATISTICS = ("pairs", "mean_x", "mean_y", "var_x", "var_y", "sd_x", "sd_y", "cov")
SECOND_ORDER = ("sumsq_x", "sumsq_y", "sum_xy")
GRID = "@decimals="  # a second-order sum's name says its grid: 10^(2·decimals)
UNCAPPED = 1 << 62  # exact release: a key's whole sum (no DP row cap)


async def join_moments(ctx: Context) -> list[SecureOutput]:
    from protocols import joint_cohort
    from protocols.join.correlation import correlation_outputs

    params = dict(ctx.params)
    if not ctx.dp:
        params[CAP] = UNCAPPED
    # join_correlation's DP branch is the one that returns the six moments as integers.
    outputs = await correlation_outputs(dataclasses.replace(ctx, dp=True, params=params))
    by_name = {o.name: o.value for o in outputs}
    out = [SecureOutput("pairs", by_name["pairs"], on_value_scale=False, noisy=ctx.dp)]
    for name in ("sum_x", "sum_y"):
        out.append(SecureOutput(name, by_name[name], on_value_scale=True, noisy=ctx.dp))
    for name in SECOND_ORDER:
        label = f"{name}{GRID}{2 * ctx.decimals}"
        out.append(SecureOutput(label, by_name[name], on_value_scale=False, noisy=ctx.dp))
    return out + joint_cohort.markers([None], type(by_name["pairs"]))


def _moments(values: Mapping[str, Fraction]) -> dict[str, Fraction]:
    """The six sums in the values' own units (each second-order sum off its grid)."""
    out = {k: values[k] for k in ("pairs", "sum_x", "sum_y")}
    for k, v in values.items():
        base, sep, grid = k.partition(GRID)
        if sep and base in SECOND_ORDER:
            out[base] = v / 10 ** int(grid)
    return out


def statistics(
    n: Fraction, sx: Fraction, sy: Fraction, qx: Fraction, qy: Fraction, sxy: Fraction
) -> dict[str, float]:
    """Means, sample variances (n − 1), standard deviations and the sample covariance from
    the six sums, exactly on fractions: NaN where n < 1 (means) or n < 2 (the rest); a
    negative noisy variance reads as 0 (post-processing)."""
    nan = math.nan
    if n < 1:
        return dict.fromkeys(STATISTICS[1:], nan)
    mean_x, mean_y = float(sx / n), float(sy / n)
    if n < 2:
        return {"mean_x": mean_x, "mean_y": mean_y} | dict.fromkeys(STATISTICS[3:], nan)
    d = n * (n - 1)
    var_x = max(Fraction(0), (n * qx - sx * sx) / d)
    var_y = max(Fraction(0), (n * qy - sy * sy) / d)
    return {
        "mean_x": mean_x,
        "mean_y": mean_y,
        "var_x": float(var_x),
        "var_y": float(var_y),
        "sd_x": math.sqrt(var_x),
        "sd_y": math.sqrt(var_y),
        "cov": float((n * sxy - sx * sy) / d),
    }


def finalize(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    m = _moments(values)
    out: dict[str, Fraction | float] = {**values, "pairs": round(m["pairs"])}
    out.update(statistics(*(Fraction(m[k]) for k in MOMENTS)))
    return out


def reference(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    import pandas as pd

    how = params.get("per_key", "mean")
    per_key = [
        pd.DataFrame({"key": t["key"], "value": np.asarray(t["value"], dtype=float)})
        .groupby("key")["value"]
        .agg("sum" if how == "sum" else "mean")
        for t in tables[:2]
    ]
    joined = pd.concat(per_key, axis=1, join="inner").to_numpy(dtype=float)
    x, y = joined[:, 0], joined[:, 1]
    nan = math.nan
    out = {"pairs": float(len(x)), "mean_x": nan, "mean_y": nan}
    if len(x):
        out.update(mean_x=float(x.mean()), mean_y=float(y.mean()))
    if len(x) < 2:
        return out | dict.fromkeys(STATISTICS[3:], nan)
    var_x, var_y = float(x.var(ddof=1)), float(y.var(ddof=1))
    cov = float(np.cov(x, y, ddof=1)[0, 1])
    return out | {
        "var_x": var_x,
        "var_y": var_y,
        "sd_x": math.sqrt(var_x),
        "sd_y": math.sqrt(var_y),
        "cov": cov,
    }


def _definitions() -> tuple[Any, ...]:
    from ensnif_mpc.privacy.withheld import finalizing
    from protocols import joint_cohort
    from protocols.join.correlation import _dp_correlation
    from protocols.join.declarations import _ROUTE_PARAM, OUTSOURCED, _cap, _check_correlation
    from protocols.registry import VALUE, Example, Param, ProtocolDef, positional

    return (
        ProtocolDef(
            name="join_moments",
            family="private-join",
            summary="Mean, variance and standard deviation of each of two owners' columns over "
            "the keys both have, and their covariance",
            inputs="two data owners, each `key` and `value`",
            outputs=STATISTICS,
            leakage=(
                "Leaks what join_correlation leaks (both per-key table sizes, and on the PRF "
                "route the number of matching keys, to every party); no party learns which "
                "of its keys matched or any value. Exact release: the six sums n, Σx, Σy, "
                "Σx², Σy², Σxy of the matched pairs to the analyst, which is the same as n, "
                "both means, both variances and the covariance. DP release: the six sums "
                "noised inside MPC (join_correlation's blocks); the analyst's side divides. "
                "Minimum cohort: held inside MPC on the matched pairs against the largest of "
                "the owners' secret min_cohort; below it every output opens as 0 and the "
                "public `withheld` marker as 1 (exact: says only that pairs < k; DP: decided "
                "by the noisy pair count, no extra budget)." + OUTSOURCED
            ),
            program="protocols.join.moments:join_moments",
            reference=reference,
            roles=((KEY, VALUE), (KEY, VALUE)),
            parameters=(
                Param(
                    "per_key",
                    "string",
                    "how a key's rows become one value: mean or sum",
                    default="mean",
                ),
                _cap("an owner's (with per_key = sum)"),
                _ROUTE_PARAM,  # join_correlation's routes
            ),
            min_data_owners=2,
            max_data_owners=2,
            finalize=finalizing(finalize),
            check_spec=_check_correlation,
            dp_sensitivity=positional(_dp_correlation),
            extra=joint_cohort.step("on_pairs"),
            # Exact sums of the grid values, then exact fractions: float rounding only.
            examples=(Example({"per_key": "sum"}, rel_error=1e-9, abs_error=1e-9),),
        ),
    )


DEFINITIONS = _definitions()

"""The registry entries of the statistics: roles, parameters, leakage, DP sensitivity."""

from __future__ import annotations

from typing import Any

from ensnif_mpc.privacy.withheld import finalizing
from protocols import joint_cohort
from protocols.registry import (
    Example,
    Param,
    ProtocolDef,
)
from protocols.statistics.common import MAX_BINS
from protocols.statistics.histogram import _dp_counts, _ref_histogram, check_edges
from protocols.statistics.minmax import _dp_minmax, _finalize_minmax, _ref_minmax
from protocols.statistics.quantile import _finalize_quantile, _ref_quantile, check_grid
from protocols.statistics.spread import _dp_moments, _finalize_spread, _ref_stdev, _ref_variance

# -- declarations --------------------------------------------------------------------------------


def _check_histogram(spec: Any) -> None:
    check_edges(spec.params)


def _check_quantile(spec: Any) -> None:
    check_grid(spec.params)


_FILTER = (
    Param("min", "number", "only rows whose value is >= min (evaluated locally by each owner)"),
    Param("max", "number", "only rows whose value is <= max (evaluated locally by each owner)"),
)
_NOTHING = (
    "Nothing to any party: each owner pre-aggregates its own rows locally and secret-shares "
    "only {what}; no party, the coordinator included, sees another owner's partials or the "
    "result, which reaches only the analyst."
)
_SPREAD_LEAK = (
    _NOTHING.format(what="its (count, sum, sum of squares)")
    + " Count, sum and sum of squares are never opened: the division and square root run in "
    "MPC in fixed point (relative error below 1e-9). The analyst also learns whether fewer "
    "than two rows were selected (the output is then NaN). DP release: instead, a noisy "
    "count, sum and sum of squares are opened by the analyst, whose side computes the "
    "sample variance from them (0 where the noise makes it negative, NaN below two rows)."
)

DEFINITIONS = (
    ProtocolDef(
        name="variance",
        family="statistics",
        summary="Sample variance (n − 1) of a numeric column over the rows of all data owners",
        inputs="one numeric column per data owner",
        outputs=("variance",),
        leakage=_SPREAD_LEAK,
        program="protocols.statistics.spread:variance",
        reference=_ref_variance,
        parameters=_FILTER,
        finalize=_finalize_spread("variance"),
        examples=(Example({"min": -12.5, "max": 80.25}, rows=(30, 50), rel_error=1e-6),),
        dp_sensitivity=_dp_moments("variance"),
    ),
    ProtocolDef(
        name="stdev",
        family="statistics",
        summary="Sample standard deviation (n − 1) of a numeric column over all data owners",
        inputs="one numeric column per data owner",
        outputs=("stdev",),
        leakage=_SPREAD_LEAK,
        program="protocols.statistics.spread:stdev",
        reference=_ref_stdev,
        parameters=_FILTER,
        finalize=_finalize_spread("stdev"),
        examples=(Example({"min": -12.5, "max": 80.25}, rows=(30, 50), rel_error=1e-6),),
        dp_sensitivity=_dp_moments("stdev"),
    ),
    ProtocolDef(
        name="minmax",
        family="statistics",
        summary="Minimum and maximum of a numeric column over the rows of all data owners",
        inputs="one numeric column per data owner",
        outputs=("min", "max"),
        leakage=_NOTHING.format(what="its own minimum and maximum (and whether it has rows)")
        + " The analyst also learns whether no row was selected (both outputs are then NaN). "
        "Note that a minimum or maximum is one owner's actual value. DP release: both ends "
        "clipped to the largest owner's bound and noised at the scale of the whole declared "
        "range (a minimum is one person's value), so the answer is honest but wide; no "
        "emptiness bit. For an informative DP answer, use quantile with q near 0 or 1.",
        program="protocols.statistics.minmax:minmax",
        reference=_ref_minmax,
        parameters=_FILTER,
        finalize=_finalize_minmax,
        examples=(Example({"min": 0.0}, rows=(30, 50)),),
        dp_sensitivity=_dp_minmax,
    ),
    ProtocolDef(
        name="histogram",
        family="statistics",
        summary="Row counts per bin [e_i, e_(i+1)) of public edges (the last bin closed)",
        inputs="one numeric column per data owner",
        outputs=("count[<i>]",),
        leakage=_NOTHING.format(what="its vector of counts per bin")
        + " Rows outside [edges[0], edges[-1]] are not counted; the edges are public. "
        "DP release: every bin's count is noised (one block, sensitivity Σ rows per person). "
        "Minimum cohort: each owner inputs its min_cohort as a secret; a bin whose joint count "
        "(noisy under DP) is below the largest opens as 0 with its public withheld[<i>] marker "
        "set (exact: says only that the count is below k; DP: decided by the noisy count).",
        program="protocols.statistics.histogram:histogram",
        reference=_ref_histogram,
        parameters=(
            Param(
                "edges",
                "numbers",
                f"bin edges, strictly increasing, at most {MAX_BINS} bins",
                required=True,
            ),
        ),
        check_spec=_check_histogram,
        examples=(Example({"edges": [-50.0, -12.5, 0.0, 0.29, 33.33, 80.0, 119.99]}),),
        finalize=finalizing(),
        dp_sensitivity=_dp_counts(lambda params: len(check_edges(params)) - 1),
        extra=joint_cohort.step("on_count"),
    ),
    ProtocolDef(
        name="quantile",
        family="statistics",
        summary=(
            "The q-quantile (inverted CDF, as numpy's method='inverted_cdf') of a numeric "
            "column, on a public grid lower..upper by step"
        ),
        inputs="one numeric column per data owner",
        outputs=("quantile",),
        leakage=_NOTHING.format(what="its counts per grid point")
        + " The row count stays secret. The analyst learns the quantile only to the grid's "
        "resolution (values are rounded down onto the grid; below lower they count at lower, "
        "beyond the last grid point at that point), and whether no row was selected (NaN). "
        "DP release: instead, noisy counts per grid point are opened by the analyst, whose "
        "side takes the quantile of them (noisy counts summed as they are, an isotonic fit "
        "of the cumulative counts where noise makes them decrease; NaN when the total is not "
        "positive).",
        program="protocols.statistics.quantile:quantile",
        reference=_ref_quantile,
        parameters=(
            Param("q", "number", "the quantile, strictly between 0 and 1", default=0.5),
            Param("lower", "number", "the grid's first point", required=True),
            Param("upper", "number", "the grid's end (its last point is <= upper)", required=True),
            Param("step", "number", f"the grid's step (at most {MAX_BINS} points)", required=True),
        ),
        finalize=_finalize_quantile,
        check_spec=_check_quantile,
        # A grid finer than the data: its point is formed in fixed point (error < 1e-12).
        examples=(
            Example({"q": 0.3, "lower": -40.005, "upper": 100.0, "step": 0.25}, rel_error=1e-12),
        ),
        dp_sensitivity=_dp_counts(lambda params: check_grid(params).points),
    ),
)

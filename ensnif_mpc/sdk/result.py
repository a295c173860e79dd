"""A job's answer on the analyst's side: values, noise, 95% intervals, a DataFrame.

Built by :meth:`ensnif_mpc.sdk.client.Client.result_details` from the combined shares.
Values are floats (``exact_values`` keeps the exact fractions); every output of a DP
release has a noise standard deviation and an interval whose method is named (see
:mod:`ensnif_mpc.sdk.intervals`); every value is post-processed to what the columns'
declared bounds allow.

An output the owners' minimum cohort withheld inside MPC (its public marker,
:mod:`ensnif_mpc.privacy.withheld`) is in ``withheld``: its value is NaN (it was
suppressed, not 0), it has no interval (method ``withheld``) and ``to_pandas`` says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ensnif_mpc.privacy import withheld as markers
from ensnif_mpc.sdk import intervals
from ensnif_mpc.sdk.intervals import NONE, NORMAL, SIMULATION, SUMSQ, Bounds, Interval
from ensnif_mpc.sdk.noise import NoiseLaw

if TYPE_CHECKING:
    import pandas as pd

    from ensnif_mpc.sdk.models import TrainedModel

FALLBACK_DRAWS = 400  # a derived number this module has no vectorised form of: finalize per draw
WITHHELD = "withheld"  # the interval method (and the printed value) of a withheld output


@dataclass(frozen=True)
class Result:
    # The protocol's answers, exact (fractions; NaN where undefined), post-processed.
    exact_values: dict[str, Fraction | float]
    # Standard deviation of the DP noise per output in the output's unit (absent: exact).
    # For a derived answer, that of its simulated values.
    noise_sd: dict[str, float]
    # The DP mechanism ("gaussian" or "laplace"), which decides the intervals' quantiles.
    mechanism: str = "gaussian"
    # The integer grid step of each opened noisy output, in the output's unit.
    grid: dict[str, float] = field(default_factory=dict)
    job_id: str = ""
    protocol: str = ""
    # The job whose computed shares answer this one, when it was served from the cache.
    cached_from: str = ""
    # Decimals to print each output at (its columns' declared decimals; None: no unit).
    decimals: dict[str, int | None] = field(default_factory=dict)
    # The column name for group labels in ``to_pandas`` (the job's group column, or "group").
    group_column: str = "group"
    # What the intervals are computed from: the opened statistics and their noise laws.
    raw: dict[str, Fraction] = field(default_factory=dict, compare=False, repr=False)
    # The answers before the bounds' clipping (an exact interval is centred on them).
    unclipped: dict[str, Fraction | float] = field(default_factory=dict, compare=False, repr=False)
    laws: dict[str, NoiseLaw] = field(default_factory=dict, compare=False, repr=False)
    bounds: Bounds | None = field(default=None, compare=False)
    # Outputs the owners' minimum cohort withheld inside MPC (NaN here, no interval).
    withheld: frozenset[str] = frozenset()
    _cis: dict[tuple[str, float], Interval] = field(default_factory=dict, compare=False, repr=False)

    @property
    def values(self) -> dict[str, float]:
        """Every output as a float (NaN where undefined)."""
        return {k: float(v) for k, v in self.exact_values.items()}

    def array(self, output: str) -> np.ndarray:
        """Every value of one output as a float array, in release order: ``array("mean")``
        of a group-by is the means of its groups (``labels("mean")`` names them), of a
        histogram ``array("count")`` its bins."""
        return np.array(
            [v for k, v in self.values.items() if intervals.base_name(k) == output],
            dtype=np.float64,
        )

    def labels(self, output: str) -> list[str | None]:
        """The group labels of :meth:`array`'s entries (None for an ungrouped output)."""
        return [intervals.group_label(k) for k in self.values if intervals.base_name(k) == output]

    def model(self, ridge: float = 0.0) -> TrainedModel:
        """The model a training job released: coefficients as numpy arrays, ``predict``
        and ``to_sklearn()`` (ensnif_mpc.sdk.models; ``Client.model`` reads the ridge)."""
        from ensnif_mpc.sdk.models import from_values

        return from_values(self.protocol, self.values, ridge=ridge, job_id=self.job_id)

    @property
    def dp(self) -> bool:
        return bool(self.laws)

    def ci(self, name: str, confidence: float = 0.95) -> Interval:
        """The central ``confidence`` interval of an output, within its declared limits."""
        key = (name, confidence)
        if key not in self._cis:
            self._cis[key] = self._compute(name, confidence)[0]
        return self._cis[key]

    def interval(self, name: str, confidence: float = 0.95) -> float:
        """Half-width of an output's interval (0 for an exact release): the exact quantile
        of its noise law for an opened statistic, half the simulated interval otherwise;
        NaN for a withheld output (it has none)."""
        if name in self.withheld:
            return math.nan
        if not self.dp:
            return _sd_only_half_width(self, name, confidence)
        law = self._law(name)
        if law is not None:
            return law.half_width(confidence)
        return self.ci(name, confidence).half_width

    def population_ci(self, name: str, confidence: float = 0.95) -> Interval:
        """A regression coefficient's interval for the population's coefficient: its
        sampling error (the classical standard error) and, in a DP release, the noise.
        :meth:`ci` covers the exact fit on the joint rows (the noise only); this one also
        the rows being a sample (independent rows, homoscedastic errors). Exact release:
        coefficient ± z·se (method ``normal``); DP release: the noise redrawn through the
        solve with a normal draw of the sampling error per draw (``simulation``, see
        :func:`ensnif_mpc.sdk.intervals.with_sampling`). Only for ``coef[j]`` of a
        regression that releases its standard errors."""
        if name in self.withheld:
            return Interval(math.nan, math.nan, WITHHELD, confidence)
        value = float(self.unclipped.get(name, self.exact_values[name]))
        if not self.dp:
            se = self.values.get("se" + name[len("coef") :])
            if intervals.base_name(name) != "coef" or se is None:
                raise ValueError(f"{name!r}: not a regression coefficient with a standard error")
            h = statistics.NormalDist().inv_cdf(0.5 + confidence / 2) * float(se)
            return Interval(value - h, value + h, NORMAL, confidence)
        raw = {k: float(v) for k, v in self.raw.items()}
        seed = intervals.seed_for(f"{self.cached_from or self.job_id}/{name}/sampling")
        derive = intervals.with_sampling(name, raw, seed)
        if derive is None:
            raise ValueError(f"{name!r}: not a regression coefficient with a standard error")
        samples = intervals.simulate(derive, raw, self.laws, seed=seed)
        lower, upper, _ = intervals.from_draws(samples, confidence, value)
        return Interval(lower, upper, SIMULATION, confidence)

    def _law(self, name: str) -> NoiseLaw | None:
        if name in self.laws:
            return self.laws[name]
        if name == "sumsq":  # variance's finalize reads the sum of squares on its own grid
            squares = [k for k in self.laws if k.startswith(SUMSQ)]
            if len(squares) == 1:
                return self.laws[squares[0]].scaled(10.0 ** -int(squares[0][len(SUMSQ) :]))
        return None

    def _compute(self, name: str, confidence: float) -> tuple[Interval, float]:
        """(interval, noise sd) of one output."""
        if name in self.withheld:
            return Interval(math.nan, math.nan, WITHHELD, confidence), math.nan
        value = float(self.unclipped.get(name, self.exact_values[name]))
        lo, hi = intervals.limits(name, self.bounds)
        if not self.dp:
            return Interval(value, value, NONE, confidence), 0.0
        law = self._law(name)
        if law is not None:
            return intervals.exact_interval(value, law, lo, hi, confidence), law.sd
        raw = {k: float(v) for k, v in self.raw.items()}
        # Seeded by the job that computed the shares: a cached answer gets the same intervals.
        seed = intervals.seed_for(f"{self.cached_from or self.job_id}/{name}")
        derive = intervals.derivation(name, raw)
        if derive is not None:
            samples = intervals.simulate(derive, raw, self.laws, seed=seed)
        else:
            samples = self._finalize_draws(name, raw, seed)
        lower, upper, sd = intervals.from_draws(samples, confidence, value)
        clipped = (intervals.clip(lower, lo, hi), intervals.clip(upper, lo, hi))
        return Interval(*clipped, SIMULATION, confidence), sd

    def _finalize_draws(self, name: str, raw: Mapping[str, float], seed: int) -> np.ndarray:
        """The protocol's own finalize, once per draw (any derived output, slower)."""
        from protocols import registry

        rng = np.random.default_rng(seed)
        names = tuple(raw)
        drawn = intervals.perturbed(raw, self.laws, names, FALLBACK_DRAWS, rng)
        out = np.empty(FALLBACK_DRAWS)
        for i in range(FALLBACK_DRAWS):
            values = {n: Fraction(float(drawn[n][i])) for n in names}
            out[i] = float(registry.finalize(self.protocol, values).get(name, math.nan))
        return out

    def rows(self, confidence: float = 0.95) -> list[dict[str, Any]]:
        """One dict per output: output, group label, value, noise sd, interval, method, and
        whether it was withheld (value, sd and interval then NaN, method ``withheld``)."""
        out = []
        for name in self.exact_values:
            ci = self.ci(name, confidence)
            held = name in self.withheld
            out.append(
                {
                    "output": intervals.base_name(name),
                    self.group_column: intervals.group_label(name),
                    "value": self.values[name],
                    "noise_sd": math.nan if held else self.noise_sd.get(name, 0.0),
                    "ci_lower": ci.lower,
                    "ci_upper": ci.upper,
                    "interval_method": ci.method,
                    "withheld": held,
                }
            )
        return out

    def to_pandas(self, confidence: float = 0.95) -> pd.DataFrame:
        """One row per output: ``output``, the group label (a column named after the job's
        group column, absent without groups), ``value``, ``noise_sd``, the interval's
        ``ci95_lower`` and ``ci95_upper`` (at another confidence: ``ci90_…``),
        ``interval_method`` ('exact', 'simulation', 'none', or 'withheld') and, where the
        owners' minimum cohort suppressed outputs inside MPC, ``withheld`` (True for those:
        value NaN, no interval)."""
        import pandas as pd

        tag = f"ci{round(confidence * 100):d}"
        frame = pd.DataFrame(self.rows(confidence))
        frame = frame.rename(columns={"ci_lower": f"{tag}_lower", "ci_upper": f"{tag}_upper"})
        if frame[self.group_column].isna().all():
            frame = frame.drop(columns=[self.group_column])
        if not self.withheld:  # as the group column: only where it says something
            frame = frame.drop(columns=["withheld"])
        return frame


def _sd_only_half_width(result: Result, name: str, confidence: float) -> float:
    """A result made from standard deviations alone (no noise laws): the discrete Laplace
    quantile on the output's grid, else the normal quantile."""
    from statistics import NormalDist

    from ensnif_mpc.privacy import dlaplace

    sd = result.noise_sd.get(name, 0.0)
    if not sd:
        return 0.0
    step = result.grid.get(name)
    if result.mechanism == "laplace" and step:
        return dlaplace.half_width(dlaplace.q_from_sd(sd / step), confidence) * step
    if result.mechanism == "laplace":
        return sd * math.log(1 / (1 - confidence)) / math.sqrt(2)
    return NormalDist().inv_cdf(0.5 + confidence / 2) * sd


def build(
    combined: dict[str, Fraction],
    protocol: str,
    laws: dict[str, NoiseLaw],
    *,
    job_id: str = "",
    mechanism: str = "gaussian",
    bounds: Bounds | None = None,
    decimals: int | None = None,
    group_column: str = "group",
    cached_from: str = "",
) -> Result:
    """A result from the combined outputs and the noise law of each opened one: the
    protocol's finalize, then the bounds' post-processing, the noise sd and the 95% interval
    of every answer."""
    from protocols import registry

    finalized = registry.finalize(protocol, dict(combined))
    # The minimum cohort's markers: the protocol's finalize made those outputs NaN.
    opened, labels = markers.split(combined)
    held = frozenset(markers.names(finalized, labels))
    clipped = {
        k: intervals.clip_exact(v, *intervals.limits(k, bounds)) if laws and k not in held else v
        for k, v in finalized.items()
    }
    result = Result(
        exact_values=clipped,
        noise_sd={},
        mechanism=mechanism,
        grid={k: law.step for k, law in laws.items()},
        job_id=job_id,
        protocol=protocol,
        cached_from=cached_from,
        decimals={k: print_decimals(k, decimals) for k in clipped},
        group_column=group_column,
        raw=opened,
        unclipped=dict(finalized),
        laws=laws,
        bounds=bounds,
        withheld=held,
    )
    for name in clipped:
        ci, sd = result._compute(name, 0.95)
        result._cis[(name, 0.95)] = ci
        if laws and name not in held:
            result.noise_sd[name] = sd
    return result


def print_decimals(name: str, column_decimals: int | None) -> int | None:
    """Decimals an output is printed at: none for counts, the column's for values in its
    unit, twice them for squared units; None (significant digits) for a correlation."""
    kind = intervals.base_name(name)
    if kind in intervals.COUNT_LIKE:
        return 0
    if kind == "r" or column_decimals is None:
        return None
    if kind in ("variance", "sumsq"):
        return 2 * column_decimals
    return column_decimals


def format_value(value: float, decimals: int | None, withheld: bool = False) -> str:
    """A value as printed: at its decimals, ``withheld`` for an output the minimum cohort
    suppressed, ``NaN`` where undefined."""
    if withheld:
        return WITHHELD
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if decimals is None:
        return f"{value:.4g}"
    return f"{value:,.{decimals}f}"

"""Intervals for every number of a DP release, and the post-processing the bounds allow.

A DP release opens noisy sufficient statistics (counts, sums, sums of squares, counts per
grid point, cross-products); the protocol's ``finalize`` turns them into the answers the
analyst asked for (means, variances, standard deviations, quantiles, correlations). Every
answer gets a 95% interval here, with its method named:

- ``exact``: the output is an opened statistic itself (a noisy count or sum): the exact
  central quantile of its noise law (:class:`ensnif_mpc.sdk.noise.NoiseLaw`);
- ``simulation``: a number derived from several noisy statistics. The noise of every
  statistic it is made of is drawn again from its law (2,000 draws, seeded by the job id),
  added to the opened values, the number recomputed for each draw (vectorised), and the
  interval is the central quantiles of those draws (a parametric bootstrap), widened to
  hold the released value if it falls outside;
- ``none``: an exact release, no noise.

Post-processing (free under DP: it reads only released numbers and public bounds): each
answer, and its interval's ends, are clipped to what the declared column bounds allow — a
mean, minimum, maximum or quantile within [lower, upper], counts, sums of squares and
variances ≥ 0, a sum of non-negative values ≥ 0, a correlation within [−1, 1]. The truth
always lies within those limits, so clipping an interval never loses coverage.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ensnif_mpc.sdk.noise import NoiseLaw

DRAWS = 2000
EXACT, SIMULATION, NONE = "exact", "simulation", "none"
NORMAL = "normal"  # an exact release's sampling interval: estimate ± z·se

SUMSQ = "sumsq@decimals="  # as protocols.statistics names the opened sum of squares
GRID_COUNT = re.compile(r"^count\[(?P<x>[^\]]+)\]@q=(?P<q>\d+(?:/\d+)?)$")
MOMENTS = ("pairs", "sum_x", "sum_y", "sumsq_x", "sumsq_y", "sum_xy")  # join_correlation
CROSS = "cross@decimals="  # as protocols.models.regression names its opened cross products
REGRESSION = ("coef", "se", "r2")  # linear_regression's answers, solved from its statistics


@dataclass(frozen=True)
class Interval:
    """A central interval for one output: [lower, upper] at ``confidence``, and how."""

    lower: float
    upper: float
    method: str  # "exact", "simulation" or "none"
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2 if math.isfinite(self.upper - self.lower) else 0.0


@dataclass(frozen=True)
class Bounds:
    """The declared [lower, upper] of the value column(s) a job reads (over all its inputs)."""

    lower: float
    upper: float


def base_name(name: str) -> str:
    """``mean[10115]`` → ``mean``; ``sumsq@decimals=4`` → ``sumsq``."""
    return name.split("[", 1)[0].split("@", 1)[0]


def group_label(name: str) -> str | None:
    """``mean[10115]`` → ``10115``; ``mean`` → None."""
    if "[" in name and name.endswith("]"):
        return name[name.index("[") + 1 : -1]
    return None


COUNT_LIKE = frozenset({"count", "rows", "keys", "pairs"})


def limits(name: str, bounds: Bounds | None, count: float | None = None) -> tuple[float, float]:
    """What the declared bounds allow for an output (−inf, inf when nothing is known)."""
    kind = base_name(name)
    lo, hi = -math.inf, math.inf
    if kind in COUNT_LIKE or kind in ("sumsq", "variance", "stdev"):
        lo = 0.0
    if kind == "r":
        return -1.0, 1.0
    if bounds is None:
        return lo, hi
    spread = bounds.upper - bounds.lower
    if kind in ("mean", "min", "max", "quantile"):
        return bounds.lower, bounds.upper
    if kind == "sum":
        if bounds.lower >= 0:
            lo = 0.0
        if bounds.upper <= 0:
            hi = 0.0
    if kind == "variance":  # a sample variance of values in [a, b] is at most (b − a)²/2
        hi = spread * spread / 2
    if kind == "stdev":
        hi = spread / math.sqrt(2)
    return lo, hi


def clip(value: float, lo: float, hi: float) -> float:
    return value if math.isnan(value) else min(max(value, lo), hi)


def clip_exact(value: Fraction | float, lo: float, hi: float) -> Fraction | float:
    """As :func:`clip`, keeping an exact fraction exact."""
    if isinstance(value, float):
        return clip(value, lo, hi)
    if math.isfinite(lo) and value < Fraction(lo):
        return Fraction(lo)
    if math.isfinite(hi) and value > Fraction(hi):
        return Fraction(hi)
    return value


# -- derived numbers, vectorised over draws ------------------------------------------------------

Derivation = tuple[tuple[str, ...], Callable[[Mapping[str, np.ndarray]], np.ndarray]]


def _mean(total: str, count: str) -> Derivation:
    def f(v: Mapping[str, np.ndarray]) -> np.ndarray:
        c = v[count]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 0, v[total] / np.where(c > 0, c, 1), np.nan)

    return (total, count), f


def _spread(name: str, sumsq: str) -> Derivation:
    scale = 10.0 ** -int(sumsq[len(SUMSQ) :])

    def f(v: Mapping[str, np.ndarray]) -> np.ndarray:
        n, s, q = v["count"], v["sum"], v[sumsq] * scale
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.maximum(0.0, (n * q - s * s) / (n * (n - 1)))
        var = np.where(n >= 2, var, np.nan)
        return var if name == "variance" else np.sqrt(var)

    return ("count", "sum", sumsq), f


def _quantile(points: list[str]) -> Derivation:
    parsed = [GRID_COUNT.match(p) for p in points]
    xs = np.array([float(Fraction(m["x"])) for m in parsed if m is not None])
    q = float(Fraction(parsed[0]["q"])) if parsed and parsed[0] is not None else 0.5
    order = np.argsort(xs, kind="stable")
    ordered = tuple(points[i] for i in order)
    grid = xs[order]

    def f(v: Mapping[str, np.ndarray]) -> np.ndarray:
        # The noisy counts as opened, negative ones included: their running sums are the
        # unbiased noisy CDF. (The protocol's finalize reads negative counts as 0, which
        # moves mass into empty bins; an interval from clipped draws would follow that
        # drift and miss the truth, see tests/unit/ensnif_mpc/sdk/test_sdk_coverage.py.)
        counts = np.stack([v[p] for p in ordered], axis=-1)
        cumulative = np.cumsum(counts, axis=-1)
        total = cumulative[..., -1:]
        index = np.argmax(cumulative >= q * total, axis=-1)
        return np.where(total[..., 0] > 0, grid[index], np.nan)

    return ordered, f


def _correlation(v: Mapping[str, np.ndarray]) -> np.ndarray:
    n, sx, sy, sxx, syy, sxy = (v[m] for m in MOMENTS)
    num = n * sxy - sx * sy
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    ok = (n >= 2) & (vx > 0) & (vy > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sign(num) * np.sqrt(np.minimum(num * num / (vx * vy), 1.0))
    return np.where(ok, r, np.nan)


def derivation(name: str, raw: Mapping[str, object]) -> Derivation | None:
    """How an answer the client derives is made of opened statistics (None: not known
    here; the protocol's own ``finalize`` is then simulated, see :func:`simulate`)."""
    kind, label = base_name(name), group_label(name)
    suffix = "" if label is None else f"[{label}]"
    if kind == "mean":
        for count in (f"count{suffix}", f"rows{suffix}"):
            if f"sum{suffix}" in raw and count in raw:
                return _mean(f"sum{suffix}", count)
    if kind in ("variance", "stdev") and "count" in raw and "sum" in raw:
        squares = [k for k in raw if k.startswith(SUMSQ)]
        if len(squares) == 1:
            return _spread(kind, squares[0])
    if kind == "quantile":
        points = [k for k in raw if GRID_COUNT.match(k)]
        if points:
            return _quantile(points)
    if kind == "r" and all(m in raw for m in MOMENTS):
        return MOMENTS, _correlation
    if kind in REGRESSION and "n" in raw and any(k.startswith(CROSS) for k in raw):
        return _regression(kind, int(label or 0), raw)
    return None


def _regression(kind: str, index: int, raw: Mapping[str, object]) -> Derivation:
    """linear_regression's DP release: the noisy n, Σz and cross products solved per draw
    (the protocol's own solve, batched over the draws)."""
    from protocols.models.solve import solve  # numpy only; the client's side of the protocol

    sums = sorted((k for k in raw if k.startswith("sum[")), key=lambda k: int(group_label(k) or 0))
    parsed = []
    for k in raw:
        if k.startswith(CROSS):
            grid, pair = k[len(CROSS) :].split("[", 1)
            j, other = (int(v) for v in pair.rstrip("]").split(","))
            parsed.append(((j, other), k, 10.0 ** -int(grid)))
    parsed.sort()  # (j, l) in row-major order: the upper triangle as the solve reads it
    names = ("n", *sums, *(k for _, k, _ in parsed))

    def f(v: Mapping[str, np.ndarray]) -> np.ndarray:
        fit = solve(
            v["n"],
            np.stack([v[k] for k in sums], axis=-1),
            np.stack([v[k] * scale for _, k, scale in parsed], axis=-1),
        )
        if kind == "r2":
            return fit["r2"]
        if kind == "se":
            with np.errstate(invalid="ignore"):
                return np.asarray(np.sqrt(fit["se2"][..., index]))
        return np.asarray(fit["coef"][..., index])

    return names, f


def with_sampling(name: str, raw: Mapping[str, object], seed: int) -> Derivation | None:
    """A DP regression coefficient with its sampling error: per noise draw, the protocol's
    solve gives the coefficient and its standard error (the classical one, from the noisy
    residual sum of squares), and one standard normal draw of the sampling error times that
    standard error is added (seeded; independent of the noise draws). The quantiles of the
    result are an interval for the population's coefficient (rows an independent sample of
    it, homoscedastic errors), not only for the exact fit on these rows. None for any
    other output."""
    if base_name(name) != "coef" or "n" not in raw or not any(k.startswith(CROSS) for k in raw):
        return None
    index = int(group_label(name) or 0)
    names, coef = _regression("coef", index, raw)
    _, se = _regression("se", index, raw)

    def f(v: Mapping[str, np.ndarray]) -> np.ndarray:
        c, e = coef(v), se(v)
        z = np.random.default_rng(seed).standard_normal(np.shape(c))
        return np.asarray(c + z * e)

    return names, f


def seed_for(job_id: str) -> int:
    """The same job always gets the same simulated intervals."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big")


def perturbed(
    raw: Mapping[str, float],
    noise: Mapping[str, NoiseLaw],
    names: tuple[str, ...],
    draws: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The opened values plus fresh noise from each one's law: ``draws`` copies of each
    (outputs of one law, e.g. a histogram's counts, drawn in one vectorised call)."""
    by_law: dict[NoiseLaw, list[str]] = {}
    for n in names:
        if n in noise:
            by_law.setdefault(noise[n], []).append(n)
    out = {n: np.full(draws, raw[n], dtype=np.float64) for n in names}
    for law, members in by_law.items():
        drawn = law.draw(draws * len(members), rng).reshape(len(members), draws)
        for n, z in zip(members, drawn, strict=True):
            out[n] += z
    return out


def simulate(
    derive: Derivation,
    raw: Mapping[str, float],
    noise: Mapping[str, NoiseLaw],
    draws: int = DRAWS,
    seed: int = 0,
) -> np.ndarray:
    """``draws`` values of a derived number under fresh noise on what it is made of."""
    names, f = derive
    rng = np.random.default_rng(seed)
    return np.asarray(f(perturbed(raw, noise, names, draws, rng)), dtype=np.float64)


def from_draws(
    samples: np.ndarray, confidence: float, estimate: float
) -> tuple[float, float, float]:
    """(lower, upper, sd) from simulated values of a number whose released value is
    ``estimate``: the central quantiles of the draws (the percentile interval), widened to
    hold the estimate where it falls outside; NaN when most draws leave it undefined."""
    finite = samples[np.isfinite(samples)]
    if finite.size < samples.size / 2 or not math.isfinite(estimate):
        return math.nan, math.nan, math.nan
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(finite, [alpha, 1 - alpha])
    sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return min(float(q_lo), estimate), max(float(q_hi), estimate), sd


def exact_interval(
    value: float, law: NoiseLaw, lo: float, hi: float, confidence: float
) -> Interval:
    h = law.half_width(confidence)
    return Interval(clip(value - h, lo, hi), clip(value + h, lo, hi), EXACT, confidence)

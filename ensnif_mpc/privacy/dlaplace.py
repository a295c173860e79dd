"""Pure ε-DP: the discrete Laplace mechanism, sampled jointly inside MPC (parameters and δ).

The sampler itself runs in ``protocols/dlaplace.py``; this module fixes everything
public about it (digits, bits, thresholds, the δ it costs) and has a plaintext
reference of the same algorithm. It never imports MPyC.

**The mechanism.** A block of ``d`` integer outputs whose L1 sensitivity is Δ₁ (on
the integer grid: a person changes the outputs by at most Δ₁ in total) gets independent
noise on every output from the discrete Laplace distribution

    P(Z = z) = (1 − q)/(1 + q) · q^|z|,   q = e^(−ε/Δ₁),   Var(Z) = 2q/(1 − q)²

(Inusah and Kozubowski 2006; its privacy: Canonne, Kamath and Steinke 2020, §2.2).
Output vectors a, a' at L1 distance ≤ Δ₁ give density ratios Π q^(|z−a_i| − |z−a'_i|)
≤ q^(−Δ₁) = e^ε: the ideal block is ε-DP, hence ε²/2-zCDP (Bun and Steinke 2016).

**Sampling from joint random bits.** Z = G₁ − G₂ with G₁, G₂ independent geometrics,
P(G = g) = (1 − q)·q^g. Writing g = Σ_j b_j·2^j, q^g = Π_j (q^(2^j))^(b_j): the binary
digits of G are independent, digit j being 1 with probability

    p_j = q^(2^j) / (1 + q^(2^j)) = 1 / (1 + e^(x_j)),   x_j = 2^j·ε/Δ₁.

Inside MPC every digit is one biased coin c_j = [u < T_j]: u a uniform L-bit integer
whose bits are joint random bits no party knows (``mpc.np_random_bits``), T_j =
⌊p_j·2^L⌋ public, so P(c_j = 1) = T_j / 2^L. Every output always draws K digits of
both geometrics (constant time, nothing branches on a secret): G̃ = Σ_{j<K} c_j·2^j,
Z̃ = G̃₁ − G̃₂, and |Z̃| ≤ 2^K − 1.

**The error, charged as δ.** Z̃ departs from Z in two ways.

1. Truncation. Σ_{j<K} b_j·2^j = G mod 2^K, whose law is that of G conditioned on
   G < 2^K (P(G mod 2^K = g) ∝ q^g on [0, 2^K)); its total variation distance (TV)
   from G is P(G ≥ 2^K) = q^(2^K).
2. Rounding. |T_j/2^L − p_j| < 2^−L for each coin, and the TV between two products
   of independent coins is at most the sum of the coins' TVs: < K·2^−L.

By the triangle inequality TV(G̃, G) ≤ q^(2^K) + K·2^−L, and a block of d outputs
(2d independent geometrics) is within β = 2d·(q^(2^K) + K·2^−L) of the ideal block.
If a mechanism M̃ is within TV β of an ε-DP mechanism M on every input, then for
neighbours x, x' and any set S: P[M̃(x) ∈ S] ≤ P[M(x) ∈ S] + β ≤ e^ε·P[M(x') ∈ S] + β
≤ e^ε·P[M̃(x') ∈ S] + (1 + e^ε)·β. So a block is (ε_b, δ_b)-DP with

    δ_b = (1 + e^(ε_b)) · 2d · (q^(2^K) + K·2^−L),

and the job's B blocks (ε split evenly, ε_b ≤ ε/B, Σ ε_b ≤ ε) compose to (ε, Σ δ_b)-DP.
K is the smallest that keeps the truncation term within half of δ/B, and L the
smallest that keeps the sum within δ/B (the rounding term gets at least the other half):

    2^K ≥ Δ₁ · ln(4d(1 + e^(ε_b)) / (δ/B)) / ε_b,     2^L ≳ 4dK(1 + e^(ε_b)) / (δ/B).

E.g. at δ = 10⁻¹⁰, one output: Δ₁ = 2, ε = 1 gives K = 6, L = 39; Δ₁ = 56,000 (a sum
in cents), ε = 0.45 gives K = 22, L = 41.
The bound is evaluated in floating point with a relative margin of 10⁻⁹ (far above the
few ulps of error of the operations involved).

**Exact thresholds.** T_j = ⌊2^L / (1 + e^(x_j))⌋ with x_j rational (ε and Δ₁ are
binary floats). It is computed with decimal arithmetic that brackets e^(x_j)
from below and above (Python's ``Decimal.exp`` is correctly rounded; one step outward
makes the brackets strict) and divides with directed rounding; when both brackets floor
to the same integer that integer is T_j exactly, otherwise the precision is doubled.
Floating point never touches a threshold or the noise.

**What the ledger charges.** ρ = ε²/2 for the job's ε (ε-DP implies ε²/2-zCDP), as an
exact fraction of the float ε. The δ is not in the ledger: it is the sampler's distance
from the ideal mechanism, fixed per job (default 10⁻¹⁰, at most 10⁻⁶). Over many jobs the
real releases stay within the sum of their β of the ideal ones, whose guarantee the
ledger's ρ accounts for.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from fractions import Fraction
from typing import Any

from ensnif_mpc.errors import InvalidJobSpec

DEFAULT_DELTA = 1e-10
MAX_DELTA = 1e-6  # beyond this the release would not be pure ε-DP in any useful sense
MIN_DELTA = 1e-30  # L grows as log2(1/δ); below this the cost is pointless
MAX_EPSILON = 50.0  # ρ = 1,250: no policy allows it, and e^ε must stay finite
MAX_DIGITS = 64  # |noise| < 2^K; more digits would mean an absurd noise scale
MIN_SEC_PARAM = 60  # MPyC's statistical security parameter for jobs with this mechanism
_MARGIN = 1 + 1e-9  # relative slack on the floating-point δ bound


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJobSpec(f"{where}: expected a finite positive number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidJobSpec(f"{where}: expected a finite positive number, got {value!r}")
    if value <= 0:
        raise InvalidJobSpec(f"{where}: must be positive, got {value!r}")
    return float(value)


def check_epsilon(epsilon: Any, where: str = "privacy.epsilon") -> float:
    """A usable ε: finite, positive, at most MAX_EPSILON."""
    value = _number(epsilon, where)
    if value > MAX_EPSILON:
        raise InvalidJobSpec(f"{where}: at most {MAX_EPSILON:g} (got {epsilon!r})")
    return value


def check_delta(delta: Any, where: str = "privacy.delta") -> float:
    """A usable δ for the sampler's error: MIN_DELTA ≤ δ ≤ MAX_DELTA."""
    value = _number(delta, where)
    if not MIN_DELTA <= value <= MAX_DELTA:
        raise InvalidJobSpec(
            f"{where}: must be between {MIN_DELTA:g} and {MAX_DELTA:g} (got {delta!r}); "
            "it bounds how far the sampled noise is from the exact discrete Laplace"
        )
    return value


def charge(epsilon: float) -> Fraction:
    """The zCDP cost of a pure ε-DP release, ρ = ε²/2, exactly (ε as the float it is)."""
    return Fraction(epsilon) ** 2 / 2


def split(epsilon: float, blocks: int) -> float:
    """ε / blocks rounded down, so the blocks' ε add up to at most ε."""
    exact = Fraction(epsilon) / blocks
    share = float(exact)
    if Fraction(share) > exact:
        share = math.nextafter(share, 0.0)
    return share


def l1_bound(l2: float, dims: int, l1: float | None = None) -> float:
    """The block's L1 sensitivity: the declared one, or the sound default ⌊√dims · ⌈L2⌉⌋.

    A change of L2 norm ≤ L2 in d outputs has L1 norm ≤ √d · L2 (Cauchy–Schwarz); the
    outputs are integers, so the L1 change is an integer and the floor is still a bound.
    For one output it is L2 itself. Protocols whose blocks know better (a person's rows
    each land in one group) may declare L1 as a third element of the block.
    """
    if l1 is not None:
        if not math.isfinite(l1) or l1 <= 0:
            raise ValueError(f"L1 sensitivity must be positive, got {l1!r}")
        return float(l1)
    if not math.isfinite(l2) or l2 <= 0 or dims < 1:
        raise ValueError(f"bad block: L2 sensitivity {l2!r}, {dims} outputs")
    return float(math.isqrt(dims * math.ceil(l2) ** 2))


def _log_one_plus_exp(epsilon: float) -> float:
    return epsilon + math.log1p(math.exp(-epsilon))


def delta_bound(epsilon: float, l1: float, dims: int, digits: int, bits: int) -> float:
    """δ of one block: (1 + e^ε) · 2d · (q^(2^K) + K·2^−L), with a small upward margin."""
    tail = math.exp(-(2.0**digits) * epsilon / l1)
    beta = 2 * dims * (tail + digits * 2.0**-bits)
    return math.exp(_log_one_plus_exp(epsilon)) * beta * _MARGIN


def _tail_delta(epsilon: float, l1: float, dims: int, digits: int) -> float:
    """The truncation half of :func:`delta_bound`: (1 + e^ε) · 2d · q^(2^K)."""
    return 2 * dims * math.exp(_log_one_plus_exp(epsilon) - 2.0**digits * epsilon / l1) * _MARGIN


def digits_and_bits(epsilon: float, l1: float, dims: int, delta: float) -> tuple[int, int]:
    """The fewest digits K whose truncation error is at most δ/2, then the fewest bits L
    that keep the whole error at most ``delta``."""
    log_weight = math.log(4 * dims) + _log_one_plus_exp(epsilon) - math.log(delta)
    ratio = l1 * log_weight / epsilon  # inf for a subnormal ε (1e-320): too small, below
    digits = max(1, math.ceil(math.log2(ratio))) if math.isfinite(ratio) else MAX_DIGITS + 1
    while digits <= MAX_DIGITS and _tail_delta(epsilon, l1, dims, digits) > delta / 2:
        digits += 1
    if digits > MAX_DIGITS:
        raise InvalidJobSpec(
            f"privacy.epsilon: ε = {epsilon:g} is too small for an L1 sensitivity of {l1:g} "
            f"(the noise would need more than {MAX_DIGITS} binary digits)"
        )
    # The rounding term may use what the tail left: the fewest bits with a total ≤ δ.
    bits = max(1, math.ceil((log_weight + math.log(digits)) / math.log(2)))
    while bits > 1 and delta_bound(epsilon, l1, dims, digits, bits - 1) <= delta:
        bits -= 1
    while delta_bound(epsilon, l1, dims, digits, bits) > delta:
        bits += 1
    return digits, bits


def parameter(epsilon: float, l1: float) -> float:
    """q = e^(−ε/Δ₁)."""
    return math.exp(-epsilon / l1)


def noise_sd(epsilon: float, l1: float) -> float:
    """Standard deviation of the discrete Laplace: √(2q) / (1 − q)."""
    a = epsilon / l1
    return math.sqrt(2 * math.exp(-a)) / -math.expm1(-a)


def half_width(q: float, confidence: float = 0.95) -> int:
    """The smallest integer h with P(|Z| ≤ h) ≥ confidence: P(|Z| > h) = 2q^(h+1)/(1 + q)."""
    if not 0 < q < 1:
        return 0
    need = math.log(2 / ((1 - confidence) * (1 + q))) / -math.log(q)
    return max(0, math.ceil(need - 1e-12) - 1)


def q_from_sd(sd: float) -> float:
    """Inverse of :func:`noise_sd` in q: s²(1 − q)² = 2q."""
    s2 = sd * sd
    if s2 <= 0:
        return 0.0
    return 1 - (math.sqrt(2 * s2 + 1) - 1) / s2


def _floor_threshold(x: Fraction, bits: int, digits10: int) -> int | None:
    """⌊2^L / (1 + e^x)⌋ if the precision decides it, else None."""
    down = Context(prec=digits10, rounding=ROUND_FLOOR, Emax=10**9, Emin=-(10**9))
    up = Context(prec=digits10, rounding=ROUND_CEILING, Emax=10**9, Emin=-(10**9))
    x_lo = down.divide(Decimal(x.numerator), Decimal(x.denominator))
    x_hi = up.divide(Decimal(x.numerator), Decimal(x.denominator))
    exact = Context(prec=digits10, Emax=10**9, Emin=-(10**9))
    e_lo = exact.next_minus(exact.exp(x_lo))  # ≤ e^x_lo ≤ e^x
    e_hi = exact.next_plus(exact.exp(x_hi))  # ≥ e^x_hi ≥ e^x
    scale = Decimal(1 << bits)
    low = down.divide(scale, up.add(1, e_hi))  # ≤ 2^L / (1 + e^x)
    high = up.divide(scale, down.add(1, e_lo))  # ≥ 2^L / (1 + e^x)
    floor_low, floor_high = int(low), int(high)  # both positive: int() floors
    return floor_low if floor_low == floor_high else None


def thresholds(epsilon: float, l1: float, digits: int, bits: int) -> list[int]:
    """T_j = ⌊p_j · 2^L⌋ for j < K, exactly (p_j = 1/(1 + e^(2^j·ε/Δ₁)))."""
    rate = Fraction(epsilon) / Fraction(l1)
    out = []
    for j in range(digits):
        x = rate * (1 << j)
        if x > (bits + 2) * Fraction(7, 10):  # e^x > 2^(L+2): p_j·2^L < 1/4
            out.append(0)
            continue
        precision = bits + 30
        while (t := _floor_threshold(x, bits, precision)) is None:
            precision *= 2
        out.append(t)
    return out


def pmf(q: float, support: Any) -> Any:
    """The exact discrete Laplace probabilities of the integers in ``support`` (numpy)."""
    import numpy as np

    z = np.abs(np.asarray(support, dtype=float))
    return (1 - q) / (1 + q) * np.power(q, z)


def reference_sample(
    thresholds_: list[int], bits: int, count: int, rng: Any
) -> Any:  # numpy is imported lazily: the CLI must start fast
    """Plaintext reference of the MPC sampler: ``count`` draws of G̃₁ − G̃₂, same coins.

    Coin j is [u < T_j] for a uniform L-bit u, exactly as inside MPC (``rng`` a numpy
    Generator); for tests and the privacy audit, never for a release.
    """
    import numpy as np

    digits = len(thresholds_)
    high = min(bits, 62)  # compare the top 62 bits, then the rest on a tie
    low = bits - high
    t = np.array(thresholds_, dtype=object)
    t_hi = np.array([int(v) >> low for v in t], dtype=np.int64)
    t_lo = np.array([int(v) & ((1 << low) - 1) for v in t], dtype=np.int64)
    u_hi = rng.integers(0, 1 << high, size=(count, 2, digits), dtype=np.int64)
    coins = u_hi < t_hi
    if low:
        u_lo = rng.integers(0, 1 << low, size=(count, 2, digits), dtype=np.int64)
        coins |= (u_hi == t_hi) & (u_lo < t_lo)
    weights = np.array([1 << j for j in range(digits)], dtype=np.int64)
    geometric = (coins.astype(np.int64) * weights).sum(axis=2)
    return geometric[:, 0] - geometric[:, 1]

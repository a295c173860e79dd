"""Differential privacy: calibration and accounting for noise added inside MPC.

Default mechanism — distributed discrete Gaussian under zero-concentrated DP:
every party draws an integer noise share from OpenDP's exact discrete Gaussian
sampler with scale σ_p and secret-shares it into the computation; only the
aggregate plus the sum of all shares is ever opened. With n parties and
threshold t, only m = n − t shares are guaranteed to come from honest parties,
so the calibration counts only m of them: colluding (or zero-noise) parties
are covered because their shares were never relied on.

The sum of m independent discrete Gaussians is not itself a discrete
Gaussian; Kairouz, Liu and Steinke (2021, Thm. 11) bound its privacy:

    ρ = ½ · (Δ₂ / (√m · σ_p) + √d · τ)²,   τ = 10 · Σ_{k=1}^{m−1} exp(−2π²σ_p² · k/(k+1))

for a d-dimensional release with L2 sensitivity Δ₂. We start from the central
scale σ that OpenDP's Gaussian map gives for the target ρ (σ_p = σ/√m), then
raise σ_p until the bound above is at most the target, and require σ_p ≥ 2 so
that τ is negligible.

Only integers are noised: values are on the column's decimal scale (integers ×
10^decimals), so no floating-point noise exists anywhere.

Pure ε-DP mechanism — discrete Laplace sampled jointly inside MPC from random bits
(``mechanism = "laplace"``): parameters, δ derivation and plaintext reference in
:mod:`ensnif_mpc.privacy.dlaplace`, plans by :func:`laplace_plan`. The noise is central (no
party knows it), so nothing is inflated for colluders' shares; the ledger charges
ρ = ε²/2.

This module never imports MPyC; the worker uses :func:`sample_shares`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Any, NamedTuple

from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.privacy import dlaplace

MIN_SIGMA_SHARE = 2.0
# OpenDP's sampler works on i64; 60σ (mass beyond it < 2^-2500) must stay below 2^63.
MAX_SIGMA_SHARE = float(2**56)


def _opendp() -> Any:  # imported lazily: the CLI must start fast
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def check_rho(rho: float, where: str = "privacy.rho") -> Fraction:
    """A usable ρ: finite and positive (as an exact fraction for the ledger)."""
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not math.isfinite(rho):
        raise InvalidJobSpec(f"{where}: expected a finite positive number, got {rho!r}")
    if rho <= 0:
        raise InvalidJobSpec(f"{where}: must be positive, got {rho!r}")
    return Fraction(rho)


def central_sigma(rho: float, l2_sensitivity: float) -> float:
    """OpenDP's discrete Gaussian scale for ρ-zCDP at this sensitivity (σ = Δ₂/√(2ρ))."""
    dp = _opendp()

    def gaussian(scale: float) -> Any:
        return dp.m.make_gaussian(
            dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale
        )

    if l2_sensitivity <= 0:
        raise ValueError("sensitivity must be positive")
    # OpenDP's map is exact for integer sensitivity; scale the search to Δ = 1 and back.
    unit = dp.binary_search_param(gaussian, d_in=1, d_out=rho)
    return float(unit) * l2_sensitivity


def kls_rho(l2_sensitivity: float, sigma_share: float, honest: int, dims: int) -> float:
    """The Kairouz–Liu–Steinke bound on ρ for the sum of ``honest`` discrete Gaussian shares."""
    tau = 10 * sum(
        math.exp(-2 * math.pi**2 * sigma_share**2 * k / (k + 1)) for k in range(1, honest)
    )
    return 0.5 * (l2_sensitivity / (math.sqrt(honest) * sigma_share) + math.sqrt(dims) * tau) ** 2


@dataclass(frozen=True)
class Calibration:
    rho: float  # the target the release must not exceed
    l2_sensitivity: float  # of the whole d-dimensional release, on the integer (scaled) grid
    parties: int
    honest: int  # m = n − t shares that are counted
    dims: int
    sigma_share: float  # each party's discrete Gaussian scale
    achieved_rho: float  # the KLS bound at sigma_share (≤ rho)

    @property
    def sigma_total(self) -> float:
        """Standard deviation of the noise if every party adds its share (all n)."""
        return self.sigma_share * math.sqrt(self.parties)

    @property
    def sigma_guaranteed(self) -> float:
        """The noise the guarantee relies on: m honest shares."""
        return self.sigma_share * math.sqrt(self.honest)

    def interval(self, confidence: float = 0.95) -> float:
        """Half-width of a confidence interval for the total noise (normal approximation)."""
        return NormalDist().inv_cdf(0.5 + confidence / 2) * self.sigma_total


def calibrate(
    rho: float, l2_sensitivity: float, parties: int, threshold: int, dims: int = 1
) -> Calibration:
    """Per-party scale σ_p so the sum of the m = n − t honest shares is ρ-zCDP."""
    honest = parties - threshold
    if honest < 1:
        raise ValueError("no honest party to count noise from")
    # σ ≥ Δ₂/√(2ρ): a ρ so small (1e-320) that this is beyond the sampler is refused before
    # OpenDP's search, which fails on it with an error of its own.
    floor = l2_sensitivity / math.sqrt(2 * rho) if rho > 0 else math.inf
    if not floor / math.sqrt(honest) <= MAX_SIGMA_SHARE:
        raise FailedPrecondition(
            f"ρ = {rho:g} needs noise (σ ≥ {floor:.3g} on the integer grid) beyond what the "
            "64-bit sampler draws exactly; ask for a larger ρ, or narrow the columns' bounds "
            "or decimals",
            reason="dp_unavailable",
        )
    try:
        sigma = central_sigma(rho, l2_sensitivity)
    except Exception as exc:  # OpenDP's own errors (its search) are not a traceback for users
        if isinstance(exc, FailedPrecondition):
            raise
        raise FailedPrecondition(
            f"no noise scale calibrates ρ = {rho:g} at sensitivity {l2_sensitivity:g}",
            reason="dp_unavailable",
        ) from exc
    share = max(sigma / math.sqrt(honest), MIN_SIGMA_SHARE)
    if share > MAX_SIGMA_SHARE:
        raise FailedPrecondition(
            f"the noise this release needs (σ ≈ {share:.3g} per party on the integer grid) "
            "exceeds what the 64-bit sampler draws exactly; narrow the columns' bounds or "
            "decimals, or ask for a larger ρ",
            reason="dp_unavailable",
        )
    # Raise σ_p (by 0.1 % steps) until the KLS bound meets the target.
    for _ in range(10_000):
        achieved = kls_rho(l2_sensitivity, share, honest, dims)
        if achieved <= rho:
            return Calibration(rho, l2_sensitivity, parties, honest, dims, share, achieved)
        share *= 1.001
    raise ArithmeticError(f"cannot calibrate ρ = {rho} at sensitivity {l2_sensitivity}")


def sample_shares(sigma_share: float, count: int) -> list[int]:
    """This party's noise shares: exact discrete Gaussian samples from OpenDP (no floats).

    OpenDP draws 64-bit integers and saturates at ±2^63: a scale whose tail reaches that
    would silently clip the noise, so it is refused (calibrate refuses it first)."""
    if not 0 < sigma_share <= MAX_SIGMA_SHARE:
        raise ValueError(f"noise scale {sigma_share!r} is outside the sampler's exact range")
    dp = _opendp()
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=sigma_share
    )
    return [int(v) for v in measurement([0] * count)]


@dataclass(frozen=True)
class Block:
    """Outputs noised together: ``dims`` consecutive outputs with one sensitivity.

    Gaussian blocks use ``rho`` and ``sigma_share``; discrete Laplace blocks use
    ``l1_sensitivity``, ``epsilon``, ``digits`` (K), ``bits`` (L) and ``delta`` (the
    sampler's error bound for the block, see :mod:`ensnif_mpc.privacy.dlaplace`).
    """

    l2_sensitivity: float  # on the integer grid
    dims: int
    rho: float  # this block's share of the job's ρ
    sigma_share: float  # each party's discrete Gaussian scale for these outputs
    l1_sensitivity: float = 0.0
    epsilon: float = 0.0
    digits: int = 0
    bits: int = 0
    delta: float = 0.0


@dataclass(frozen=True)
class ReleasePlan:
    """How a job's outputs are released: exactly, or with noise added inside MPC.

    ``mechanism`` is ``"gaussian"`` (distributed discrete Gaussian, ρ-zCDP) or
    ``"laplace"`` (discrete Laplace sampled jointly in MPC, (ε, δ)-DP with δ the
    sampler's error; ``rho`` is then ε²/2). The job's ρ (or ε) is split evenly over
    blocks of outputs (e.g. a mean's sum and count, whose sensitivities differ by orders
    of magnitude); both compose by adding. Fixed by the coordinator from the catalog and
    re-derived by every owner's node before it reserves budget: a node never trusts a
    scale it did not compute.
    """

    exact: bool
    rho: float = 0.0
    blocks: tuple[Block, ...] = ()
    parties: int = 0
    threshold: int = 0
    mechanism: str = "gaussian"
    epsilon: float = 0.0
    delta: float = 0.0  # the δ asked for (laplace); each block's bound is at most δ/blocks

    @property
    def dims(self) -> int:
        return sum(b.dims for b in self.blocks)

    @property
    def laplace(self) -> bool:
        return not self.exact and self.mechanism == "laplace"

    def block_sd(self, b: Block) -> float:
        """Standard deviation of the total noise on each output of block ``b``."""
        if self.laplace:
            return dlaplace.noise_sd(b.epsilon, b.l1_sensitivity)
        return b.sigma_share * math.sqrt(self.parties)

    def block_interval(self, b: Block, confidence: float = 0.95) -> float:
        """Half-width of a ``confidence`` interval for one output's noise (grid units).

        Laplace: the exact quantile of the discrete Laplace (not the normal one);
        Gaussian: the normal approximation of the summed shares.
        """
        if self.laplace:
            q = dlaplace.parameter(b.epsilon, b.l1_sensitivity)
            return float(dlaplace.half_width(q, confidence))
        return NormalDist().inv_cdf(0.5 + confidence / 2) * self.block_sd(b)

    def output_sigmas(self) -> list[float]:
        """Standard deviation of the noise of every output, in output order."""
        return [self.block_sd(b) for b in self.blocks for _ in range(b.dims)]

    def headroom_bits(self) -> int:
        """Extra bits so that value + noise cannot wrap.

        Gaussian: noise beyond 60σ has mass < 2^-2500. Laplace: |noise| < 2^K, always.
        """
        if self.exact or not self.blocks:
            return 0
        if self.laplace:
            return max(b.digits for b in self.blocks) + 1
        return max(1, math.ceil(math.log2(60 * max(self.output_sigmas()) + 1))) + 1

    def charge(self) -> Fraction:
        """The zCDP ρ every input dataset is charged, exactly (0 for an exact release)."""
        if self.exact:
            return Fraction(0)
        if self.laplace:
            return dlaplace.charge(self.epsilon)
        return Fraction(self.rho)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> ReleasePlan:
        blocks = tuple(Block(**b) for b in raw.get("blocks", ()))
        return ReleasePlan(**{**raw, "blocks": blocks})


class BlockSpec(NamedTuple):
    """A block as a protocol declares it (``ProtocolDef.dp_sensitivity``), before calibration.

    ``l2``: the L2 sensitivity of the block's ``dims`` outputs on the integer grid; ``l1``:
    its L1 sensitivity where the protocol knows a better one than √dims·L2 (a person's rows
    each land in one group), else None: then :func:`ensnif_mpc.privacy.dlaplace.l1_bound`
    takes that default. A tuple: ``b[0]``, ``b[1]`` and ``b[2]`` are L2, dims and L1 (or
    None), and ``len(b)`` is always 3.
    """

    l2: float
    dims: int
    l1: float | None = None

    def __repr__(self) -> str:
        # As the plain tuple a protocol used to declare: messages that quote blocks (a
        # node's sensitivity_understated refusal) read as before.
        return repr((self.l2, self.dims) if self.l1 is None else tuple(self))


# What plan and laplace_plan take: a BlockSpec, or the plain tuple (L2, dims) or
# (L2, dims, L1) a node rebuilds from a proposed plan.
DeclaredBlock = tuple[float, int] | tuple[float, int, float | None]


def _spec(block: DeclaredBlock) -> BlockSpec:
    if isinstance(block, BlockSpec):
        return block
    return BlockSpec(block[0], block[1], block[2] if len(block) > 2 else None)


def plan(rho: float, blocks: Sequence[DeclaredBlock], parties: int, threshold: int) -> ReleasePlan:
    """Calibrate every block (L2 sensitivity, dims) at ρ / len(blocks)."""
    share = rho / len(blocks)
    out = []
    for l2, dims, _ in map(_spec, blocks):
        cal = calibrate(share, l2, parties, threshold, dims)
        out.append(Block(l2, dims, share, cal.sigma_share))
    return ReleasePlan(False, rho, tuple(out), parties, threshold)


def laplace_plan(
    epsilon: float,
    delta: float,
    blocks: Sequence[DeclaredBlock],
    parties: int,
    threshold: int,
) -> ReleasePlan:
    """Discrete Laplace noise for every block at ε / len(blocks), sampler error ≤ δ in all.

    A block's L1 sensitivity is the one the protocol declares (``BlockSpec.l1``), else
    ⌊√dims · ⌈L2⌉⌋ (:func:`ensnif_mpc.privacy.dlaplace.l1_bound`). Deterministic: every node
    recomputes it from the same inputs and compares.
    """
    if not blocks:
        raise ValueError("a DP release needs at least one block")
    share = dlaplace.split(epsilon, len(blocks))
    per_block_delta = delta / len(blocks)
    rho = float(dlaplace.charge(epsilon))
    out = []
    for spec in map(_spec, blocks):
        l2, dims = float(spec.l2), int(spec.dims)
        l1 = dlaplace.l1_bound(l2, dims, None if spec.l1 is None else float(spec.l1))
        digits, bits = dlaplace.digits_and_bits(share, l1, dims, per_block_delta)
        bound = dlaplace.delta_bound(share, l1, dims, digits, bits)
        out.append(Block(l2, dims, rho / len(blocks), 0.0, l1, share, digits, bits, bound))
    return ReleasePlan(False, rho, tuple(out), parties, threshold, "laplace", epsilon, delta)


EXACT = ReleasePlan(exact=True)

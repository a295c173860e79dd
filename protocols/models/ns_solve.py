"""The regression's d × d inverse inside MPC by Newton–Schulz iteration, with truncations that
cost no random bits: a constant number of rounds per iteration, none of them a reciprocal.

Why: Gauss–Jordan elimination needs one secure reciprocal per pivot, one after the other (a
bit decomposition of the pivot and a Newton iteration each, MPyC's ``_rec``), and a
truncation of the whole matrix per pivot; MPyC's stock truncation draws f random bits per
element (a modular square root each). Both dominated the regressions' solve (thousands of
rounds, seconds of CPU at every party). Newton–Schulz needs matrix products only, and here
every truncation uses pre-shared random pairs instead of random bits.

The iteration. The system's matrix M (the scaled, centred S_xx + λI of
``protocols.models.regression``: symmetric positive semi-definite, every diagonal entry at
most 1 + λ_j by the declared bounds) is divided by a public bound on its trace, so that
B = c·M has its eigenvalues in [0, 1]. From Y₀ = I, Y ← Y(2I − BY) makes I − BY square at
every step, so after K steps an eigenvalue λ of B is inverted to a relative error of
(1 − λ)^(2^K); K is public, from the smallest eigenvalue the solve promises to handle
(2^-CONDITION_BITS) and the accuracy wanted, never from the data. Convergence is checked
inside MPC: ‖I − BY‖²_F (one secure number) is compared with a threshold, and only the
caller's one "singular" bit is opened (a singular or too ill-conditioned system: the
iteration did not converge). While it has not converged, BY's eigenvalues stay in [0, 1]
and Y's in [0, 2^K], so every value stays inside the bounds the truncation needs (checked
against the field's size before anything runs).

Truncation by pre-shared pairs (semi-honest, honest majority, t + 1 contributors): each of
the parties 0 … t draws, per element, r uniform in [0, 2^(l+k)) (k MPyC's security
parameter) and secret-shares r and ⌊r / 2^f⌋; with R and Q their sums, a value a with
|a| < 2^(l−1) is truncated by opening c = a + 2^(l−1) + R and taking
⌊c / 2^f⌋ − Q − 2^(l−1−f) = ⌊a / 2^f⌋ + e, e ∈ [0, t + 1] (the carries of the
contributors' low parts): an error of at most t + 1 units of 2^-f, like MPyC's own
probabilistic rounding (1 unit). All pairs a solve needs are input in one round, before
the iteration starts.

What is revealed: c, to every party, for every truncated element: a + 2^(l−1) + R, with at
least one honest contributor's r uniform over 2^k times a's range, so c is statistically
within 2^-k of independent of a. What leaks: nothing (the sizes and K are public).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np

# B's eigenvalues down to 2^-CONDITION_BITS converge to ACCURACY_BITS within K steps; a
# system that does not reach ‖I − BY‖_F < 2^-RESIDUAL_BITS is reported singular.
CONDITION_BITS = 34
ACCURACY_BITS = 40
RESIDUAL_BITS = 8


def iterations(condition_bits: int = CONDITION_BITS, accuracy_bits: int = ACCURACY_BITS) -> int:
    """K with (1 − 2^-c)^(2^K) ≤ 2^-a: 2^K ≥ 2^c·a·ln 2 (public: from constants only)."""
    return condition_bits + math.ceil(math.log2(accuracy_bits * math.log(2)))


class PairTruncator:
    """Truncation of secure integers by ``frac`` bits with pre-shared random pairs (module
    docstring); ``bound_bits`` = l, every truncated |a| < 2^(l−1)."""

    def __init__(self, mpc: Any, sint: Any, frac: int, bound_bits: int | None = None) -> None:
        self.mpc, self.sint, self.frac = mpc, sint, frac
        self.k = int(mpc.options.sec_param)
        self.contributors = list(range(mpc.threshold + 1))
        self.modulus = int(sint.field.order)
        # a + 2^(l−1) + Σ r < 2^l + (t+1)·2^(l+k) must stay below the modulus (no wrap).
        slack = self.k + len(self.contributors).bit_length() + 1
        widest = self.modulus.bit_length() - 1 - slack
        self.l = widest if bound_bits is None else bound_bits
        if self.l > widest:
            raise ValueError(
                f"truncation of {self.l}-bit values needs a field over {self.l + slack} bits"
            )
        self._r: Any = None
        self._q: Any = None
        self._used = 0

    def prepare(self, count: int) -> None:
        """Input ``count`` pairs (one round; contributors only draw, others send nothing)."""
        mpc = self.mpc
        if mpc.pid in self.contributors:
            r = [secrets.randbits(self.l + self.k) for _ in range(count)]
            mine = np.array(r + [v >> self.frac for v in r], dtype=object)
        else:
            mine = np.zeros(2 * count, dtype=object)  # placeholder: only its shape is used
        shared = mpc.input(self.sint.array(mine), senders=self.contributors)
        both = shared[0]
        for more in shared[1:]:
            both = both + more
        self._r, self._q = both[:count], both[count:]
        self._used = 0

    async def truncate(self, a: Any) -> Any:
        """⌊a / 2^frac⌋ + e, e ∈ [0, t + 1], for a secure integer array a of ``sint``."""
        size = int(np.prod(a.shape))
        start, self._used = self._used, self._used + size
        if self._r is None or self._used > self._r.shape[0]:
            raise ValueError("the truncator ran out of prepared pairs")
        r = self._r[start : self._used].reshape(a.shape)
        q = self._q[start : self._used].reshape(a.shape)
        half = 1 << (self.l - 1)
        opened = await self.mpc.output(a + r + half, raw=True)
        c = np.asarray(getattr(opened, "value", opened), dtype=object).reshape(a.shape)
        public = (c % self.modulus) >> self.frac
        return self.sint.array(public - (half >> self.frac)) - q


async def iterate(mpc: Any, tr: PairTruncator, b: Any, steps: int) -> Any:
    """Y_K of Y ← Y(2I − BY), Y₀ = I, for a secure integer d × d array B at scale 2^f
    (f = ``tr.frac``, eigenvalues in (0, 1]); Y at the same scale. 2·``steps`` products,
    each truncated with the truncator's pairs (it must hold 2·steps·d² of them)."""
    one = np.eye(b.shape[0], dtype=object) * (1 << tr.frac)
    y = type(b)(one)
    for _ in range(steps):
        p = await tr.truncate(mpc.np_matmul(b, y))
        y = await tr.truncate(mpc.np_matmul(y, -p + 2 * one))
    return y


def pairs_needed(size: int, steps: int) -> int:
    """The truncations of :func:`inverse`: B, 2 per step, the residual's product and the
    result's scaling back by c."""
    return size * size * (2 * steps + 3)


async def inverse(
    mpc: Any,
    fx: Any,
    m: Any,
    scalars: list[Any],
    checked: list[bool],
    trace_bound: float,
    steps: int,
) -> tuple[Any, Any, Any]:
    """One iteration for a secure fixed-point k × k array ``m`` of ``fx`` (symmetric,
    positive semi-definite) and positive secure scalars of ``fx``, as the diagonal blocks
    of one matrix whose trace is at most ``trace_bound``: (M⁻¹ in ``fx``, the scalars'
    reciprocals as one ``fx`` array, ‖I − BY‖²_F over M's block and the scalars marked in
    ``checked``: a secure integer at 2^(2f) of ``SecInt(l + f)``, the field of ``fx``).

    Why the scalars ride along: a reciprocal by Newton–Schulz costs no extra rounds here,
    where MPyC's own (a bit decomposition) costs hundreds."""
    k = m.shape[0]
    size = k + len(scalars)
    f = fx.frac_length
    sint = mpc.SecInt(fx.bit_length + f)
    if sint.field.order != fx.field.order:
        raise ValueError("the fixed-point type and its integer view differ in field")
    # Values reach 2^(K+1) at scale 2^(2f) inside a product: the truncation's bound.
    tr = PairTruncator(mpc, sint, f, steps + 2 * f + 3)
    tr.prepare(pairs_needed(size, steps))
    c = 1.0 / trace_bound
    # The block-diagonal matrix at 2^f, from this party's shares (a zero share is a share of
    # zero): no communication.
    blocks = np.zeros((size, size), dtype=object)
    blocks[:k, :k] = (await mpc.gather(m)).value
    if scalars:
        diagonal = await mpc.gather(mpc.np_fromlist(scalars))
        blocks[np.arange(k, size), np.arange(k, size)] = diagonal.value
    whole = sint.array(sint.field.array(blocks))
    b = await tr.truncate(whole * round(c * (1 << f)))  # B = c·blocks at 2^f
    y = await iterate(mpc, tr, b, steps)
    e = -(await tr.truncate(mpc.np_matmul(b, y))) + np.eye(size, dtype=object) * (1 << f)
    mask = np.zeros((size, size), dtype=object)
    mask[:k, :k] = 1
    for i, check in enumerate(checked):
        mask[k + i, k + i] = int(check)
    residual = mpc.np_sum(e * e * mask)
    inverse = await tr.truncate(y * round(c * (1 << f)))  # c·Y: the blocks' inverse at 2^f
    shares = (await mpc.gather(inverse)).value  # the same shares, read at 2^-f
    y_m = fx.array(sint.field.array(shares[:k, :k]), integral=False)
    y_s = fx.array(sint.field.array(np.diagonal(shares)[k:].copy()), integral=False)
    return y_m, y_s, residual


def diverged(residual: Any, frac: int) -> Any:
    """Secure bit: ‖I − BY‖_F ≥ 2^-RESIDUAL_BITS (not converged), from ``residual`` at 2^(2f)."""
    return residual >= 1 << (2 * (frac - RESIDUAL_BITS))

"""Discrete Laplace noise sampled jointly inside MPC (the pure ε-DP mechanism).

What is computed: for every noisy output, Z = G₁ − G₂, each geometric G built from K
binary digits that are independent biased coins, coin j being [u < T_j] for a uniform
L-bit integer u and the public threshold T_j = ⌊p_j·2^L⌋ (parameters, the δ they cost
and the plaintext reference: ``ensnif_mpc.privacy.dlaplace``).

Who provides what: parties 0..t each secret-share private uniformly random bits (from
the operating system's CSPRNG); every bit of every u is the XOR of their t + 1 bits, so
with at most t corrupted parties at least one term is an honest party's secret and the
bit is uniform and known to nobody (MPyC's own way to make random bits without
pseudorandom secret sharing). The thresholds are public, derived from the plan every
node checked.

What is revealed: nothing. The comparison u < T with T public is computed on the shared
bits (a lexicographic comparison, ⌈log₂ L⌉ rounds of secure multiplications), so no
value is masked and opened; the noise is added to the outputs on shares and only the
analyst opens value + noise.

What leaks: nothing beyond the sizes (K, L and the number of outputs are public).
Security holds against up to t passive (semi-honest) parties, like every MPyC
computation; unlike the distributed Gaussian, where each honest party's own share is
noise enough, a party that deviates from the protocol (inputs values other than bits)
could bias the noise.

Why not ``mpc.np_random_bits``: with pseudorandom secret sharing it opens r² of a
random field element per bit and takes a modular square root, about 9 µs of CPU per bit
(a sum at δ = 10⁻¹⁰ draws ~2,000 bits per output), while the XOR of input bits costs one
secure multiplication per bit for three parties and opens nothing.

Run ``python -m protocols.dlaplace L1 DELTA COUNT:EPSILON...`` for one-party draws (JSON
on stdout), used by the distribution tests.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ensnif_mpc.privacy.dp import ReleasePlan

# One block of noise as the sampler needs it: (outputs, thresholds T_0..T_{K−1}, bits L).
# MPyC (the runtime, secure types and arrays) has no type stubs: those are Any here.
NoiseBlock = tuple[int, list[int], int]


def less_than_public(mpc: Any, bits: Any, tbits: np.ndarray) -> Any:
    """[u < T] for each row: ``bits`` (N, L) secure bits of u and ``tbits`` (N, L) public
    bits of T, most significant first; a secure (N,) array of 0/1.

    Lexicographic: u < T iff at the first position where they differ T has a 1. Per bit
    lt_i = (1 − u_i)·t_i and eq_i = [u_i = t_i] are linear in u_i (t_i public); adjacent
    halves combine as lt = lt_hi + eq_hi·lt_lo, eq = eq_hi·eq_lo: one secure
    multiplication of arrays per level, ⌈log₂ L⌉ levels. (lt, eq) travel stacked as one
    (2, N, width) array.
    """
    t = np.asarray(tbits, dtype=np.int64)
    pair = bits.reshape(1, *t.shape) * np.stack((-t, 2 * t - 1)) + np.stack((t, 1 - t))
    keep_lt = np.array([1, 0], dtype=np.int64).reshape(2, 1, 1)
    while (width := pair.shape[2]) > 1:
        half = width // 2
        hi, lo = pair[:, :, 0 : 2 * half : 2], pair[:, :, 1 : 2 * half : 2]
        if width == 2:  # the last level needs lt only
            return hi[0, :, 0] + hi[1, :, 0] * lo[0, :, 0]
        merged = hi[1:2] * lo + hi * keep_lt  # (eq_hi·lt_lo + lt_hi, eq_hi·eq_lo)
        if width % 2:  # the least significant column has no partner: carry it up
            merged = mpc.np_concatenate((merged, pair[:, :, width - 1 :]), axis=2)
        pair = merged
    return pair[0, :, 0]


def joint_random_bits(mpc: Any, sectype: Any, count: int) -> Any:
    """``count`` secure uniformly random bits no coalition of at most t parties knows.

    Parties 0..t input private random bits; the result is their XOR, a ⊕ b = a + b − 2ab
    (⌈log₂(t + 1)⌉ rounds of secure multiplication; none with one party).
    """
    senders = list(range(mpc.threshold + 1))
    if mpc.pid in senders:
        raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
        mine = np.unpackbits(raw)[:count].astype(object)
    else:
        mine = np.zeros(count, dtype=object)
    terms = mpc.input(sectype.array(mine), senders=senders)
    while len(terms) > 1:
        pairs = len(terms) // 2
        a = mpc.np_stack(terms[0 : 2 * pairs : 2])
        b = mpc.np_stack(terms[1 : 2 * pairs : 2])
        xor = a + b - 2 * (a * b)
        terms = [xor[i] for i in range(pairs)] + terms[2 * pairs :]
    return terms[0]


def _threshold_bits(rows: list[int], width: int) -> np.ndarray:
    """Public (N, width) 0/1 matrix of the thresholds, most significant bit first."""
    distinct, index = np.unique(np.array(rows, dtype=object), return_inverse=True)
    shifts = np.arange(width - 1, -1, -1)
    table = np.array([[(int(t) >> s) & 1 for s in shifts] for t in distinct], dtype=np.int64)
    return table[index.reshape(-1)]


def noise(mpc: Any, sectype: Any, blocks: Sequence[NoiseBlock]) -> Any:
    """Discrete Laplace noise for every output of every block, as one secure array.

    ``blocks`` lists (outputs, thresholds T_0..T_{K−1}, bits L) per block. All coins of
    all outputs are one array comparison: a block with fewer bits than the widest is
    compared at the common width with T·2^(width − L), the same probability exactly.
    """
    width = max(bits for _, _, bits in blocks)
    rows: list[int] = []
    for dims, thresholds, bits in blocks:
        rows += [t << (width - bits) for t in thresholds] * (2 * dims)
    u = joint_random_bits(mpc, sectype, len(rows) * width).reshape(len(rows), width)
    coins = less_than_public(mpc, u, _threshold_bits(rows, width))
    parts = []
    start = 0
    for dims, thresholds, _ in blocks:
        digits = len(thresholds)
        weights = np.array([1 << j for j in range(digits)], dtype=object)
        signed = np.concatenate((weights, -weights))  # G₁ − G₂
        mine = coins[start : start + 2 * digits * dims].reshape(dims, 2 * digits)
        parts.append((mine * signed).sum(axis=1))
        start += 2 * digits * dims
    return parts[0] if len(parts) == 1 else mpc.np_concatenate(parts)


def plan_blocks(plan: ReleasePlan) -> list[NoiseBlock]:
    """(outputs, thresholds, bits) of every block of a checked laplace ReleasePlan."""
    from ensnif_mpc.privacy import dlaplace

    return [
        (b.dims, dlaplace.thresholds(b.epsilon, b.l1_sensitivity, b.digits, b.bits), b.bits)
        for b in plan.blocks
    ]


async def _draw(
    mpc: Any, l1: float, delta: float, draws: list[tuple[int, float]]
) -> list[dict[str, Any]]:
    """One-party draws: for each (count, ε), ``count`` noise values at q = e^(−ε/l1), all
    in one array comparison (each draw a block of its own)."""
    from ensnif_mpc.privacy import dp

    plans = [
        dp.laplace_plan(eps, delta, [dp.BlockSpec(l1, count, l1)], 1, 0) for count, eps in draws
    ]
    blocks = [b for plan in plans for b in plan_blocks(plan)]
    await mpc.start()
    sectype = mpc.SecInt(32 + max(plan.blocks[0].digits for plan in plans))
    values = [int(v) for v in await mpc.output(noise(mpc, sectype, blocks))]
    await mpc.shutdown()
    out, start = [], 0
    for (count, _), plan in zip(draws, plans, strict=True):
        (block,) = plan.blocks
        out.append(
            {
                "samples": values[start : start + count],
                "digits": block.digits,
                "bits": block.bits,
                "delta": block.delta,
            }
        )
        start += count
    return out


def main(argv: list[str]) -> int:
    """One-party draws for tests: L1 DELTA COUNT:EPSILON...; prints samples and parameters."""
    from ensnif_mpc.privacy import dlaplace

    l1, delta = float(argv[0]), float(argv[1])
    draws = [(int(c), float(e)) for c, e in (arg.split(":") for arg in argv[2:])]
    sys.argv = ["dlaplace", "--no-log", "-K", str(dlaplace.MIN_SEC_PARAM)]
    from mpyc.runtime import mpc  # only here, after sys.argv holds the options

    json.dump(mpc.run(_draw(mpc, l1, delta, draws)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

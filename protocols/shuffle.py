"""Oblivious shuffle of secret-shared arrays by resharing (honest majority, t < n/2).

For every set S of t+1 parties, in a fixed public order: the members of S turn
their Shamir shares into additive pieces of the secret (each weights its share
by its Lagrange coefficient for S at 0), permute their pieces with a permutation
π_S that only S knows, and secret-share the permuted pieces; the sum of those
inputs is a fresh sharing of the permuted array. The result is permuted by the
composition of every π_S. Any coalition of at most t parties misses at least one
set S entirely (there are t+1 members in each), so from its view that π_S, and
with it the composition, is a uniformly random permutation.

Cost: for each of the C(n, t+1) sets, t+1 parties each secret-share one vector
per array — linear in the array length, no comparisons. With 3 parties that is
3 sets × 2 inputs.

π_S comes from a 256-bit seed that the lowest member of S draws and sends to the
other members over MPyC's private (TLS) links; the permutation is the argsort of
SHAKE-256 output, so its unpredictability is that of the seed. The same
:class:`Shuffler` can apply the inverse permutation later (members keep their
seeds), which lets a protocol carry a public selection vector back to the
owners' original row order without anyone learning that order.

Semi-honest security only: a member that permutes inconsistently changes the
result undetectably (see docs/threat-model.md).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any

import numpy as np


def permutation(seed: bytes, length: int) -> np.ndarray:
    """A uniformly random permutation of range(length), determined by ``seed``."""
    if length == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.frombuffer(hashlib.shake_256(b"ensnif-shuffle\0" + seed).digest(8 * length), "<u8")
    return np.argsort(keys, kind="stable")


def lagrange_at_zero(members: tuple[int, ...], me: int, modulus: int) -> int:
    """Party ``me``'s Lagrange coefficient at 0 over ``members`` (MPyC evaluates party i at i+1)."""
    xi = me + 1
    num, den = 1, 1
    for j in members:
        if j != me:
            num = num * (j + 1) % modulus
            den = den * (j + 1 - xi) % modulus
    return num * pow(den, -1, modulus) % modulus


def subsets(n: int, t: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(n), t + 1))


class Shuffler:
    """One secret permutation per length, shared among the (t+1)-sets; apply it or its inverse."""

    def __init__(self, mpc: Any) -> None:
        self.mpc = mpc
        self.sets = subsets(len(mpc.parties), mpc.threshold)
        self._seeds: dict[tuple[int, ...], bytes] | None = None

    async def _agree_seeds(self) -> dict[tuple[int, ...], bytes]:
        if self._seeds is None:
            mpc, me = self.mpc, self.mpc.pid
            seeds: dict[tuple[int, ...], bytes] = {}
            # Every party takes part in every transfer (MPyC matches messages by a
            # program counter); only the set's members receive its seed.
            for members in self.sets:
                leader = members[0]
                mine = secrets.token_bytes(32) if me == leader else None
                got = await mpc.transfer(mine, senders=[leader], receivers=list(members))
                if me in members:
                    seeds[members] = got[0] if isinstance(got, list) else got
            self._seeds = seeds
        return self._seeds

    async def apply(self, arrays: list[Any], inverse: bool = False) -> list[Any]:
        """The same secret permutation applied to every array (all of one length)."""
        length = len(arrays[0])
        if any(len(a) != length for a in arrays):
            raise ValueError("arrays to shuffle together must have one length")
        if length == 0 or len(self.mpc.parties) == 1:
            return list(arrays)
        seeds = await self._agree_seeds()
        order = list(reversed(self.sets)) if inverse else self.sets
        current = list(arrays)
        for members in order:
            current = [await self._step(a, members, seeds.get(members), inverse) for a in current]
        return current

    async def _step(
        self, array: Any, members: tuple[int, ...], seed: bytes | None, inverse: bool
    ) -> Any:
        mpc = self.mpc
        sectype = type(array)
        field = sectype.sectype.field if hasattr(sectype, "sectype") else sectype.field
        p = field.modulus
        if mpc.pid in members:
            assert seed is not None
            own = await mpc.gather(array)
            values = np.asarray(own.value, dtype=object)
            piece = values * lagrange_at_zero(members, mpc.pid, p) % p
            perm = permutation(seed, len(piece))
            if inverse:
                out = np.empty_like(piece)
                out[perm] = piece
                piece = out
            else:
                piece = piece[perm]
            mine = sectype(field.array(piece))
        else:
            mine = array  # placeholder of the right type and shape; not sent
        pieces = mpc.input(mine, senders=list(members))
        total = pieces[0]
        for other in pieces[1:]:
            total = total + other
        return total

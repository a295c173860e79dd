"""Two owners A, B share values additively in Z_2^64; the third party H deals correlated
randomness and never holds a share of data (semi-honest, t = 1).

Arithmetic: numpy uint64 (``protocols.tagging.Ring64`` wraps the same way); bits are packed
64 to a word, bit j of word w being element 64·w + j ("planes", one array per bit
position of the values). Every step acts on whole arrays: the number of rounds never
depends on the number of elements.

Seeds. A draws s_AH and sends it to H, B draws s_BH and sends it to H (``mpc.transfer``
reaches only the named receiver over the session's mutual-TLS links). Whatever a party's
part of the correlated randomness is, the part a seed it shares with H determines is
drawn from that seed (AES-256-CTR, ``protocols.tagging.stream``) and costs no bytes; H
sends B, and only B, the one part no seed of B's can produce (the "correction": c_B of a
triple, the shares of a mask's bits, ...). Every item has its own label, so no stream is
ever used twice.

Primitives (each a coroutine every party calls at the same point; H deals, A and B
compute):

- :meth:`Engine.mul`: Beaver products of arithmetic shares (one round: A and B open
  x − a and y − b to each other).
- :meth:`Engine.band`: AND of XOR-shared packed bits with bit triples (one round).
- :meth:`Engine.negative`: [v < 0] of shared v (two's complement, known to lie in
  [−2^(ℓ−1), 2^(ℓ−1)), ℓ ≤ 64) as XOR-shared bits: A and B open m = v + 2^(ℓ−1) + r to
  each other, r uniform in Z_2^64 dealt with its lowest ℓ bits XOR-shared;
  [v < 0] = ¬(m_(ℓ−1) ⊕ r_(ℓ−1) ⊕ borrow), where borrow = [m mod 2^(ℓ−1) < r mod 2^(ℓ−1)]
  is the borrow of the (ℓ−1)-bit subtraction m − r, computed from the public m and the
  shared bits of r by a generate/propagate tree (``g = ¬m ∧ r``, ``p = ¬(m ⊕ r)``; six
  levels for ℓ from 34 to 64, 123 ANDs per comparison at ℓ = 64, 89 at ℓ = 47, packed 64
  comparisons to a word).
- :meth:`Engine.select`: vL + b·(vR − vL) for a XOR-shared bit b and arithmetic vL, vR, in
  one round: H deals a daBit ρ (the same random bit XOR-shared and arithmetically shared)
  with a random a and ρ·a; A and B open c = b ⊕ ρ and f = y − a together, and
  b·y = c·y + (1 − 2c)(ρ·f + ρ·a).
- :meth:`Engine.to_arith`: XOR-shared bits to arithmetic shares by a daBit (one round).

Who sees what. A receives from B only values masked by a fresh pseudorandom mask that
B's seed with H determines and A never sees (m = v + r, x − a, y − b, b ⊕ ρ): each is
uniform given everything A holds, and so is what B receives from A. B also receives H's
corrections, each the difference of a dealt value and a pseudorandom stream of s_AH,
which B never sees: uniform too. H receives nothing but the seeds. So every single
party's view is simulated from its own input: t = 1 suffices, with H a third party.

What breaks. Collusion of H with either owner reconstructs every shared value (H knows
both seeds, hence every mask). Deviation is undetected (semi-honest only): a party that
sends wrong shares or wrong corrections changes the result without anyone noticing.
Range: :meth:`negative` is exact for v ∈ [−2^63, 2^63); the callers keep their values
far inside it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protocols.tagging import stream

TRACE_ENV = "ENSNIF_TRACE_RING"  # tests: every payload an owner received, by step
TRACE_FILE = "ring_trace.json"
ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


def words(n: int) -> int:
    """Packed words for n bits."""
    return (n + 63) // 64


def to_planes(v: np.ndarray, bits: int = 64) -> np.ndarray:
    """uint64 values (n,) → their lowest ``bits`` bit planes (bits, words(n)), bit j of word
    w of plane i being bit i of value 64·w + j. One pass per bit position over the values'
    bytes (byte-major first, so each pass reads one contiguous row)."""
    n = v.size
    padded = np.zeros(words(n) * 64, dtype=np.uint64)
    padded[:n] = v
    by_byte = np.ascontiguousarray(padded.view(np.uint8).reshape(-1, 8).T)  # (8, padded n)
    out = np.empty((bits, padded.size // 8), dtype=np.uint8)
    one = np.uint8(1)
    for i in range(bits):  # a loop over bit positions, each an array operation
        out[i] = np.packbits((by_byte[i >> 3] >> np.uint8(i & 7)) & one, bitorder="little")
    return out.view(np.uint64)


def from_plane(p: np.ndarray, n: int) -> np.ndarray:
    """One packed plane (words,) → its first n bits as uint64 0/1."""
    bits = np.unpackbits(np.ascontiguousarray(p).view(np.uint8), bitorder="little")
    return bits[:n].astype(np.uint64)


def to_plane(bits: np.ndarray) -> np.ndarray:
    """uint64 0/1 values (n,) → one packed plane (words(n),)."""
    padded = np.zeros(words(bits.size) * 64, dtype=np.uint8)
    padded[: bits.size] = bits
    return np.packbits(padded, bitorder="little").view(np.uint64)


def _tree_sizes(length: int) -> list[int]:
    """ANDs (in planes) at each level of the borrow tree over ``length`` bit positions."""
    sizes = []
    while length > 1:
        pairs = length // 2
        nxt = pairs + length % 2
        sizes.append(pairs if nxt == 1 else 2 * pairs)
        length = nxt
    return sizes


class Engine:
    """One party's end of the two-owner ring engine (A, B: owners; H: the dealer)."""

    def __init__(self, mpc: Any, a: int, b: int, h: int, seeds: dict[str, bytes]) -> None:
        self.mpc, self.a, self.b, self.h = mpc, a, b, h
        me = mpc.pid
        self.role = "A" if me == a else "B" if me == b else "H"
        self.seeds = seeds
        self.count = 0
        self.sent = 0
        self.rounds = 0
        self.trace: dict[str, list[str]] | None = {} if os.environ.get(TRACE_ENV) == "1" else None

    @classmethod
    async def start(cls, mpc: Any, a: int, b: int, h: int) -> Engine:
        """Every party: A → H s_AH, B → H s_BH (fresh 256-bit secrets, this job only)."""
        me = mpc.pid
        seeds: dict[str, bytes] = {}
        for name, owner in (("AH", a), ("BH", b)):
            mine = secrets.token_bytes(32) if me == owner else None
            got = await mpc.transfer(mine, senders=[owner], receivers=[h])
            if me == owner:
                assert mine is not None
                seeds[name] = mine
            elif me == h:
                seeds[name] = got[0]
        return cls(mpc, a, b, h, seeds)

    # -- streams and corrections -------------------------------------------------------------
    def label(self, name: str) -> bytes:
        self.count += 1
        return f"{self.count}:{name}".encode()

    def seeded(self, owner: str, label: bytes, shape: tuple[int, ...], part: str) -> np.ndarray:
        """The part of item ``label`` that the seed of ``owner`` with H determines."""
        return stream(self.seeds[owner + "H"], label + b"/" + part.encode(), _size(shape)).reshape(
            shape
        )

    async def correct(
        self, parts: Sequence[np.ndarray] | None, shapes: Sequence[tuple[int, ...]]
    ) -> list[np.ndarray]:
        """H → B: the parts no seed of B's determines (H passes them, B gets them back)."""
        payload = None
        if self.role == "H":
            assert parts is not None
            payload = b"".join(np.ascontiguousarray(p, dtype=np.uint64).tobytes() for p in parts)
            self.sent += len(payload)
        got = await self.mpc.transfer(payload, senders=[self.h], receivers=[self.b])
        if self.role != "B":
            return []
        if self.trace is not None:
            self.trace.setdefault("dealer", []).append(got[0].hex())
        return _split(got[0], shapes)

    async def swap(
        self,
        step: str,
        parts: Sequence[np.ndarray],
        incoming: Sequence[tuple[int, ...]] | None = None,
    ) -> list[np.ndarray]:
        """A ↔ B: each sends the other its arrays and gets the other's (of the shapes
        ``incoming``, by default those it sent)."""
        shapes = [p.shape for p in parts] if incoming is None else list(incoming)
        payload = None
        if self.role != "H":
            payload = b"".join(np.ascontiguousarray(p, dtype=np.uint64).tobytes() for p in parts)
            self.sent += len(payload)
        self.rounds += 1
        got = await self.mpc.transfer(
            payload, sender_receivers={self.a: [self.b], self.b: [self.a], self.h: []}
        )
        if self.role == "H":
            return []
        if self.trace is not None:
            self.trace.setdefault(step, []).append(got[0].hex())
        return _split(got[0], shapes)

    def write_trace(self) -> None:
        if self.trace is not None and self.role != "H":
            Path(TRACE_FILE).write_text(json.dumps({"role": self.role, "received": self.trace}))

    # -- arithmetic ---------------------------------------------------------------------------
    async def triples(self, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        """Beaver triples (a, b, a·b) of this party's shares (H: empty)."""
        label = self.label("triple")
        if self.role == "H":
            aa, ba = (self.seeded("A", label, shape, p) for p in "ab")
            ab, bb = (self.seeded("B", label, shape, p) for p in "ab")
            ca = self.seeded("A", label, shape, "c")
            with np.errstate(over="ignore"):
                cb = (aa + ab) * (ba + bb) - ca
            await self.correct([cb], [shape])
            return ()
        if self.role == "A":
            await self.correct(None, [shape])
            return tuple(self.seeded("A", label, shape, p) for p in "abc")
        (cb,) = await self.correct(None, [shape])
        return (self.seeded("B", label, shape, "a"), self.seeded("B", label, shape, "b"), cb)

    async def mul(
        self, x: np.ndarray | None, y: np.ndarray | None, shape: tuple[int, ...]
    ) -> np.ndarray | None:
        """x ∘ y (elementwise) of arithmetic shares."""
        t = await self.triples(shape)
        if self.role == "H":
            await self.swap("mul", [])
            return None
        assert x is not None and y is not None
        a, b, c = t
        with np.errstate(over="ignore"):
            e_mine, f_mine = x - a, y - b
            e_o, f_o = await self.swap("mul", [e_mine, f_mine])
            e, f = e_mine + e_o, f_mine + f_o
            z = c + e * b + f * a
            if self.role == "A":
                z = z + e * f
        return np.asarray(z)

    # -- bits ---------------------------------------------------------------------------------
    async def bit_triples(self, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        label = self.label("bits")
        if self.role == "H":
            aa, ba, ca = (self.seeded("A", label, shape, p) for p in "abc")
            ab, bb = (self.seeded("B", label, shape, p) for p in "ab")
            await self.correct([((aa ^ ab) & (ba ^ bb)) ^ ca], [shape])
            return ()
        if self.role == "A":
            await self.correct(None, [shape])
            return tuple(self.seeded("A", label, shape, p) for p in "abc")
        (cb,) = await self.correct(None, [shape])
        return (self.seeded("B", label, shape, "a"), self.seeded("B", label, shape, "b"), cb)

    async def band(
        self, x: np.ndarray | None, y: np.ndarray | None, t: Sequence[np.ndarray]
    ) -> np.ndarray | None:
        """x ∧ y of XOR-shared packed words, with the dealt triple t."""
        if self.role == "H":
            await self.swap("and", [])
            return None
        assert x is not None and y is not None
        a, b, c = t
        e_mine, f_mine = x ^ a, y ^ b
        e_o, f_o = await self.swap("and", [e_mine, f_mine])
        e, f = e_mine ^ e_o, f_mine ^ f_o
        z = c ^ (e & b) ^ (f & a)
        return np.asarray(z ^ (e & f) if self.role == "A" else z)

    async def negative(self, v: np.ndarray | None, n: int, bits: int = 64) -> np.ndarray | None:
        """[v < 0] for n shared values known to lie in [−2^(bits−1), 2^(bits−1)) (two's
        complement in Z_2^64), as one XOR-shared packed plane (words(n),); H passes None.

        A adds 2^(bits−1), so v' = v + 2^(bits−1) ∈ [0, 2^bits) and [v < 0] is the
        complement of v''s bit bits−1. Bit i of v' = m − r (m = v' + r opened, r uniform
        in Z_2^64) is m_i ⊕ r_i ⊕ [m mod 2^i < r mod 2^i] for every i, so only r's lowest
        ``bits`` bits are dealt and the borrow tree spans bits − 1 positions (bits = 47:
        89 ANDs instead of 123)."""
        assert 3 <= bits <= 64
        w = words(n)
        label = self.label("mask")
        tree = [(s, w) for s in _tree_sizes(bits - 1)]
        top_bit = bits - 1
        # One dealing for the whole comparison: the mask r with its bits, then every triple.
        if self.role == "H":
            ra, rb = self.seeded("A", label, (n,), "r"), self.seeded("B", label, (n,), "r")
            with np.errstate(over="ignore"):
                r = ra + rb
            bits_a = self.seeded("A", label, (bits, w), "bits")
            parts = [to_planes(r, bits) ^ bits_a]
            for i, shape in enumerate(tree):
                sub = label + f"/t{i}".encode()
                aa, ba, ca = (self.seeded("A", sub, shape, p) for p in "abc")
                ab, bb = (self.seeded("B", sub, shape, p) for p in "ab")
                parts.append(((aa ^ ab) & (ba ^ bb)) ^ ca)
            await self.correct(parts, [(bits, w), *tree])
            await self.swap("mask", [])
            for _ in tree:
                await self.swap("and", [])
            return None
        owner = self.role
        got = await self.correct(None, [(bits, w), *tree])
        r_mine = self.seeded(owner, label, (n,), "r")
        triples = []
        for i, shape in enumerate(tree):
            sub = label + f"/t{i}".encode()
            if owner == "A":
                triples.append([self.seeded("A", sub, shape, p) for p in "abc"])
            else:
                triples.append([self.seeded("B", sub, shape, p) for p in "ab"] + [got[1 + i]])
        r_bits = self.seeded("A", label, (bits, w), "bits") if owner == "A" else got[0]
        assert v is not None
        with np.errstate(over="ignore"):
            m_mine = v + r_mine
            if owner == "A":
                m_mine = m_mine + np.uint64(1 << top_bit)
            (m_o,) = await self.swap("mask", [m_mine])
            m = m_mine + m_o
        planes = to_planes(m, bits)
        not_m = ~planes[:top_bit]
        g = not_m & r_bits[:top_bit]
        p = r_bits[:top_bit] ^ not_m if owner == "A" else r_bits[:top_bit].copy()
        for t in triples:
            length = g.shape[0]
            pairs = length // 2
            g_lo, g_hi = g[0 : 2 * pairs : 2], g[1 : 2 * pairs : 2]
            p_lo, p_hi = p[0 : 2 * pairs : 2], p[1 : 2 * pairs : 2]
            last = pairs + length % 2 == 1
            if last:
                z = await self.band(p_hi, g_lo, t)
                assert z is not None
                g, p = g_hi ^ z, p_hi
            else:
                z = await self.band(np.concatenate([p_hi, p_hi]), np.concatenate([g_lo, p_lo]), t)
                assert z is not None
                g_new, p_new = g_hi ^ z[:pairs], z[pairs:]
                if length % 2:
                    g_new, p_new = np.concatenate([g_new, g[-1:]]), np.concatenate([p_new, p[-1:]])
                g, p = g_new, p_new
        top = r_bits[top_bit] ^ g[0]  # v''s bit bits−1, then its complement (A flips)
        return np.asarray(top ^ ~planes[top_bit] if owner == "A" else top)

    async def dabits(self, n: int, extra: int = 0) -> tuple[np.ndarray, ...]:
        """n daBits ρ (packed XOR shares (words(n),), arithmetic shares (n,)) and, when
        ``extra`` > 0, for each a random a (n·extra) with ρ·a: (bool, arith[, a, ρ·a])."""
        label = self.label("dabit")
        w = words(n)
        shapes = [(n,)] + ([(n, extra)] if extra else [])
        if self.role == "H":
            ba, bb = self.seeded("A", label, (w,), "b"), self.seeded("B", label, (w,), "b")
            rho = from_plane(ba ^ bb, n)
            with np.errstate(over="ignore"):
                parts = [rho - self.seeded("A", label, (n,), "r")]
                if extra:
                    a = self.seeded("A", label, (n, extra), "a") + self.seeded(
                        "B", label, (n, extra), "a"
                    )
                    parts.append(rho[:, None] * a - self.seeded("A", label, (n, extra), "ra"))
            await self.correct(parts, shapes)
            return ()
        if self.role == "A":
            await self.correct(None, shapes)
            out = [self.seeded("A", label, (w,), "b"), self.seeded("A", label, (n,), "r")]
            if extra:
                out += [
                    self.seeded("A", label, (n, extra), "a"),
                    self.seeded("A", label, (n, extra), "ra"),
                ]
            return tuple(out)
        got = await self.correct(None, shapes)
        out = [self.seeded("B", label, (w,), "b"), got[0]]
        if extra:
            out += [self.seeded("B", label, (n, extra), "a"), got[1]]
        return tuple(out)

    async def to_arith(self, bits: np.ndarray | None, count: int, n: int) -> np.ndarray | None:
        """``count`` XOR-shared packed planes (count, words(n)) → arithmetic shares (count, n)
        of their 0/1 bits, by one daBit each (one round: A and B open b ⊕ ρ)."""
        total = count * n
        d = await self.dabits(total)
        if self.role == "H":
            await self.swap("b2a", [])
            return None
        assert bits is not None
        rho_b, rho_a = d
        unpacked = np.unpackbits(
            np.ascontiguousarray(bits).view(np.uint8).reshape(count, -1), axis=1, bitorder="little"
        )
        c_mine = to_plane(unpacked[:, :n].ravel()) ^ rho_b
        (c_o,) = await self.swap("b2a", [c_mine])
        c = from_plane(c_mine ^ c_o, total)
        with np.errstate(over="ignore"):
            out = rho_a * (np.uint64(1) - np.uint64(2) * c)
            if self.role == "A":
                out = out + c
        return np.asarray(out.reshape(count, n))

    async def select(
        self, b: np.ndarray | None, lo: np.ndarray | None, hi: np.ndarray | None, n: int, width: int
    ) -> np.ndarray | None:
        """lo + b·(hi − lo) per row, for XOR-shared packed bits b (words(n),) and arithmetic
        (n, width) arrays lo, hi: one round."""
        d = await self.dabits(n, width)
        if self.role == "H":
            await self.swap("select", [])
            return None
        assert b is not None and lo is not None and hi is not None
        rho_b, rho_a, a, rho_times_a = d
        with np.errstate(over="ignore"):
            y = hi - lo
            c_mine, f_mine = b ^ rho_b, y - a
            c_o, f_o = await self.swap("select", [c_mine, f_mine])
            c = from_plane(c_mine ^ c_o, n)[:, None]
            f = f_mine + f_o
            # b·y = c·y + (1 − 2c)·ρ·y and ρ·y = ρ·f + ρ·a (f public, ρ and ρ·a shared).
            rho_y = rho_a[:, None] * f + rho_times_a
            return np.asarray(lo + c * y + (np.uint64(1) - np.uint64(2) * c) * rho_y)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def _split(raw: bytes, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    flat = np.frombuffer(raw, dtype="<u8")
    out, at = [], 0
    for shape in shapes:
        size = _size(shape)
        out.append(flat[at : at + size].reshape(shape).copy())
        at += size
    return out

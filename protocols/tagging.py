"""The local arithmetic of the tagged-helper join (``protocols.join.tagged``): key tags,
pseudorandom streams, the helper's selection, dot products in the ring Z_2^64 and the
wrap of two ring shares.

numpy, hashlib and ``cryptography`` only (no MPyC, no Ensnif data layer), so the raw MPyC
baseline of the benchmark (``bench/raw_join_fast.py``) runs the same code.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

OFFSET = 1 << 62  # added by one owner so that every output is non-negative in Z_2^64


# -- key tags: a PRF of the join key under the owners' per-job key K -------------------------
# Every key is one message of 16-byte blocks whose first block names its kind (and, for a
# string, its length in bytes): no message is a proper prefix of another, so CBC-MAC over
# AES-256 is a PRF on them (Bellare-Kilian-Rogaway 1994; Petrank-Rackoff 2000: CBC-MAC is
# secure on any prefix-free message space). An int key is the single block
# "ensnif-i" || int64 (big-endian), that is AES_K of it, a PRP and so a PRF on distinct
# inputs; a string key is "ensnif-s" || len || its UTF-8 bytes zero-padded to whole blocks.
# The tag is the first 64 bits of the MAC. The blocks of every key go through AES in one
# call per block position (numpy builds them), not one hash per key in Python.
INT_KIND = b"ensnif-i"
STR_KIND = b"ensnif-s"
_CHUNK = 1 << 16  # string keys per numpy batch (bounds the padded block matrix)


def _aes(tag_key: bytes) -> Any:
    """AES-256 (one block at a time, ECB) under a key derived from the 256-bit ``tag_key``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(b"ensnif-tag\x00" + tag_key).digest()
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


def _blocks(aes: Any, blocks: np.ndarray) -> np.ndarray:
    """AES of every row of an (n, 16) uint8 matrix."""
    return np.frombuffer(aes.update(blocks.tobytes()), dtype=np.uint8).reshape(-1, 16)


def _int_tags(aes: Any, keys: np.ndarray) -> np.ndarray:
    blocks = np.empty((len(keys), 2), dtype=">u8")
    blocks[:, 0] = np.frombuffer(INT_KIND, dtype=">u8")[0]
    blocks[:, 1] = keys.astype(np.int64).view(np.uint64)
    return _blocks(aes, blocks.view(np.uint8).reshape(-1, 16))[:, :8].copy().view("<u8")[:, 0]


def _str_tags(aes: Any, keys: list[str]) -> np.ndarray:
    encoded = list(map(str.encode, keys))  # TypeError for anything but a str
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return packed_str_tags(aes, np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)


def packed_str_tags(aes: Any, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The tags of string keys held packed: key i's UTF-8 bytes are
    ``data[offsets[i]:offsets[i + 1]]`` (Arrow's layout, so an Arrow column is tagged from its
    buffers without a Python string per key). Each key's MAC runs over its kind-and-length
    block, then its bytes zero-padded to whole blocks, stopping after its own last block."""
    starts, lengths = offsets[:-1], np.diff(offsets)
    first = np.empty((len(lengths), 2), dtype=">u8")
    first[:, 0] = np.frombuffer(STR_KIND, dtype=">u8")[0]
    first[:, 1] = lengths
    head = first.view(np.uint8).reshape(-1, 16)
    nblocks = (lengths + 15) // 16
    out = np.empty(len(lengths), dtype="<u8")
    last = max(len(data) - 1, 0)
    for at in range(0, len(lengths), _CHUNK):
        rows = slice(at, at + _CHUNK)
        most = int(nblocks[rows].max())
        state = _blocks(aes, head[rows]).copy()  # written in place below
        if most:  # every key's bytes gathered into the chunk's widest, zero-padded
            width = np.arange(16 * most, dtype=np.int64)
            index: np.ndarray = np.add(starts[rows, None], width)
            inside = width < lengths[rows, None]
            padded = np.where(inside, data[np.minimum(index, last)], 0).astype(np.uint8)
            for j in range(most):
                live = nblocks[rows] > j  # a key's MAC stops after its own last block
                block = padded[live, 16 * j : 16 * (j + 1)]
                state[live] = _blocks(aes, state[live] ^ block)
        out[rows] = state[:, :8].copy().view("<u8")[:, 0]
    return out


def tags(tag_key: bytes, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
    """The 64-bit tag (uint64) of every join key (int or str) under ``tag_key``: CBC-MAC
    over AES-256 on the key's prefix-free encoding (above), truncated. Equal keys give
    equal tags; an int and a str never share an encoding."""
    array = np.asarray(keys) if not isinstance(keys, np.ndarray) else keys
    if len(array) == 0:
        return np.zeros(0, dtype="<u8")
    aes = _aes(tag_key)
    if array.dtype.kind in "iu":
        return _int_tags(aes, array)
    items = array.tolist()
    kinds = set(map(type, items))
    if all(issubclass(k, str) for k in kinds):
        return _str_tags(aes, items)
    if all(issubclass(k, int | np.integer) and not issubclass(k, bool) for k in kinds):
        return _int_tags(aes, np.array(items, dtype=np.int64))  # beyond int64: OverflowError
    raise TypeError("join keys must all be integers or all be strings")


def stream(seed: bytes, label: bytes, count: int) -> np.ndarray:
    """``count`` pseudorandom uint64 from ``seed`` (AES-256-CTR, key SHA-256(label, seed))."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(b"ensnif-tagged\x00" + label + b"\x00" + seed).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * count)), dtype="<u8")


def private_order(length: int) -> np.ndarray:
    """A random permutation of range(length) from a fresh 256-bit seed (the argsort of
    SHAKE-256 output, as the resharing shuffle's permutations)."""
    from protocols.shuffle import permutation

    return permutation(secrets.token_bytes(32), length)


def _lookup(tags_a: np.ndarray, tags_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of B's tags (in B's order): whether A has it and A's position of it.
    Both lists are sorted first, so the binary searches run over sorted queries (cache
    friendly: 4x faster than ``np.isin`` at a million tags)."""
    order_a = np.argsort(tags_a)
    ordered = tags_a[order_a]
    if np.any(ordered[1:] == ordered[:-1]):
        raise ArithmeticError("two keys of one owner share a 64-bit tag")
    order_b = np.argsort(tags_b)
    queries = tags_b[order_b]
    if np.any(queries[1:] == queries[:-1]):
        raise ArithmeticError("two keys of one owner share a 64-bit tag")
    pos = np.minimum(np.searchsorted(ordered, queries), len(ordered) - 1)
    hit_sorted = ordered[pos] == queries
    hit = np.empty(len(tags_b), dtype=bool)
    hit[order_b] = hit_sorted
    where = np.empty(len(tags_b), dtype=np.int64)
    where[order_b] = order_a[pos]
    return hit, where


def select(tags_a: np.ndarray, tags_b: np.ndarray) -> np.ndarray:
    """The helper's selection: 1 where A's tag is among B's (uint64), in A's order."""
    if len(tags_a) == 0 or len(tags_b) == 0:
        return np.zeros(len(tags_a), dtype=np.uint64)
    hit, where = _lookup(tags_a, tags_b)
    out = np.zeros(len(tags_a), dtype=np.uint64)
    out[where[hit]] = 1
    return out


def partners(tags_a: np.ndarray, tags_b: np.ndarray) -> np.ndarray:
    """The helper's alignment: for each of B's tags, the position of the same tag among
    A's, or −1 (int64, in B's order)."""
    if len(tags_a) == 0 or len(tags_b) == 0:
        return np.full(len(tags_b), -1, dtype=np.int64)
    hit, where = _lookup(tags_a, tags_b)
    return np.where(hit, where, -1)


def wrap_bit(x_b: int, x_h: int) -> int:
    """For two shares x_b + x_h ≡ S (mod 2^64) of an S < 2^63, as integers in [0, 2^64):
    1 when x_b + x_h = S + 2^64, else 0. That is the OR of their top bits: the carry into
    bit 63 equals the XOR of the top bits (S's top bit is 0), and the carry out is then
    their majority, which is their OR. ``protocols.join.tagged._into_mpc`` computes the
    same inside MPyC as β + η − β·η."""
    return ((x_b >> 63) | (x_h >> 63)) & 1


def as_ring(values: np.ndarray) -> np.ndarray:
    """Signed integers (|v| < 2^63) as elements of Z_2^64 (uint64, two's complement)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def dot(x: np.ndarray, y: np.ndarray) -> int:
    """Σ x·y in Z_2^64 for uint64 vectors (numpy wraps modulo 2^64)."""
    if len(y) == 0:
        return 0
    with np.errstate(over="ignore"):
        return int(np.dot(x, y))


# -- the rings of the aligned join (protocols.join.aligned) ----------------------------------
class Ring64:
    """Z_2^64 as numpy uint64: every operation wraps modulo 2^64, at numpy speed."""

    modulus = 1 << 64

    def encode(self, values: Any) -> np.ndarray:
        """Integers (|v| < 2^63; Python ints or int64) as ring elements."""
        array = np.asarray(values)
        return (array if array.dtype == np.int64 else array.astype(np.int64)).view(np.uint64)

    def mask(self, seed: bytes, label: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return stream(seed, label, int(np.prod(shape))).reshape(shape)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.uint64)

    def add(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(np.add(x, y, dtype=np.uint64))

    def sub(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(np.subtract(x, y, dtype=np.uint64))

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(np.multiply(x, y, dtype=np.uint64))

    def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """x^T · y for (n, c) and (n, d) matrices: a (c, d) matrix."""
        if x.shape[0] == 0:
            return self.zeros((x.shape[1], y.shape[1]))
        with np.errstate(over="ignore"):
            return np.asarray(np.matmul(x.T, y))

    def total(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(x.sum(axis=0, dtype=np.uint64))

    def ints(self, x: np.ndarray) -> list[int]:
        """Ring elements as Python ints in [0, 2^64)."""
        return [int(v) for v in np.asarray(x, dtype=np.uint64).ravel()]


class RingP:
    """Z_p for a prime p (an MPyC field's modulus) as numpy object arrays of Python ints.

    Slower than Z_2^64 but additive shares in Z_p become MPyC shares by one input per
    party and a sum: no wrap-around to remove, whatever the length of the arrays.
    """

    def __init__(self, modulus: int) -> None:
        self.modulus = modulus
        # Masks are drawn 64 bits longer than p, so their bias mod p is below 2^-64.
        self.words = (modulus.bit_length() + 64 + 63) // 64

    def encode(self, values: Any) -> np.ndarray:
        return np.asarray(np.asarray(values, dtype=object) % self.modulus)

    def mask(self, seed: bytes, label: bytes, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        raw = stream(seed, label, count * self.words).reshape(count, self.words).astype(object)
        value = np.zeros(count, dtype=object)
        for i in range(self.words):  # a few words per element, not a loop over elements
            value = value + (raw[:, i] << (64 * i))
        return np.asarray(value % self.modulus).reshape(shape)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=object)

    def add(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray((x + y) % self.modulus)

    def sub(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray((x - y) % self.modulus)

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray((x * y) % self.modulus)

    def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return self.zeros((x.shape[1], y.shape[1]))
        return np.asarray(np.dot(x.T, y) % self.modulus)

    def total(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x.sum(axis=0) % self.modulus) if len(x) else self.zeros(x.shape[1:])

    def ints(self, x: np.ndarray) -> list[int]:
        return [int(v) for v in np.asarray(x, dtype=object).ravel()]

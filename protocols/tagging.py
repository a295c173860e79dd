"""The local arithmetic of the tagged-helper join (``protocols.join.tagged``): key tags,
pseudorandom streams, the helper's selection and dot products in the ring Z_2^64.

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


def _encoded(key: Any) -> bytes:
    """The byte string of a join key (as ``protocols.prf.hash_keys``: int and str differ)."""
    if isinstance(key, str):
        return b"ensnif-key\x00s" + key.encode()
    return b"ensnif-key\x00i" + int(key).to_bytes(16, "big", signed=True)


def tags(tag_key: bytes, keys: Sequence[Any]) -> np.ndarray:
    """HMAC-SHA256 under ``tag_key`` of every key, truncated to 64 bits (uint64)."""
    block = tag_key.ljust(64, b"\x00")  # a 32-byte key is padded, as HMAC does
    inner = hashlib.sha256(bytes(x ^ 0x36 for x in block))
    outer = hashlib.sha256(bytes(x ^ 0x5C for x in block))
    out = bytearray()
    for key in keys:
        h = inner.copy()
        h.update(_encoded(key))
        o = outer.copy()
        o.update(h.digest())
        out += o.digest()[:8]
    return np.frombuffer(bytes(out), dtype="<u8")


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


def select(tags_a: np.ndarray, tags_b: np.ndarray) -> np.ndarray:
    """The helper's selection: 1 where A's tag is among B's (uint64), in A's order."""
    return np.isin(tags_a, tags_b).astype(np.uint64)


def partners(tags_a: np.ndarray, tags_b: np.ndarray) -> np.ndarray:
    """The helper's alignment: for each of B's tags, the position of the same tag among
    A's, or −1 (int64, in B's order)."""
    if len(tags_a) == 0:
        return np.full(len(tags_b), -1, dtype=np.int64)
    order = np.argsort(tags_a, kind="stable")
    ordered = tags_a[order]
    pos = np.minimum(np.searchsorted(ordered, tags_b), len(ordered) - 1)
    hit = ordered[pos] == tags_b
    if np.any(ordered[1:] == ordered[:-1]) or len(np.unique(tags_b)) != len(tags_b):
        raise ArithmeticError("two keys of one owner share a 64-bit tag")
    return np.where(hit, order[pos], -1)


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

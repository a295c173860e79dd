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


def as_ring(values: np.ndarray) -> np.ndarray:
    """Signed integers (|v| < 2^63) as elements of Z_2^64 (uint64, two's complement)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def dot(x: np.ndarray, y: np.ndarray) -> int:
    """Σ x·y in Z_2^64 for uint64 vectors (numpy wraps modulo 2^64)."""
    if len(y) == 0:
        return 0
    with np.errstate(over="ignore"):
        return int(np.dot(x, y))

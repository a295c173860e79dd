"""Join keys of an outsourced dataset: what the owner encrypts for a key column, and the
same function a live owner applies to its keys inside a join with an outsourced side
(``protocols/he_join.py``). No TenSEAL here: the protocols import it.

Why a hash, computed by the owner at encryption: a join key is an identifier (a customer
id, a string), not a quantity on a small grid, and a row's value can only be converted to
shares with 2^-40 hiding when its bound on the grid is below 2^17
(``outsource_rows.MAX_ROW_BOUND``). So the owner maps every key, int or string alike, to
h(key) = the first 128 bits of SHA-256(domain tag | type tag | key bytes), and encrypts h in
eight 16-bit limbs, one BFV series each (``<column>@key0`` … ``@key7``, least significant
first). Each limb is below 2^16, so the rows conversion carries it with 2^-41 hiding (a
key's eight limbs within 2^-38), and h = Σ limb_j · 2^(16 j) is linear: every party combines
its own additive shares of the limbs into one share of h and inputs it into the PRF's field
GF(q), q ≈ 2^256 > 2^128, where h is exact (no comparison, no wrap). A live owner's key enters
the same join as the same h, computed in its own engine.

Collisions: h is a 128-bit truncation of SHA-256 (modelled as a random function), so among
N distinct keys on both sides together two share an h with probability at most
N² / 2^129: 2^-89 at a million keys, 2^-102 at 10,000. A collision would make two distinct
keys match (one wrong pair in the intersection); the PRF pseudonyms on top add the PRF's
own bound (``protocols/prf.py``: about N²/q).

Keys must be distinct within the outsourced table (the owner's client checks it at
encryption: a key column is the table's key, ``key = true`` in the schema file): the
helper cannot pre-aggregate ciphertexts per key as a live owner pre-aggregates in the
clear, and a repeated key would repeat a pseudonym in the join.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

LIMBS = 8
LIMB_BITS = 16
HASH_BITS = LIMBS * LIMB_BITS  # 128
LIMB_BOUND = (1 << LIMB_BITS) - 1  # each limb's bound on its grid (the rows masks' B)
_DOMAIN = b"ensnif-he-key-v1\x00"


def series_names(column: str) -> list[str]:
    """The BFV series of a key column, least significant limb first."""
    return [f"{column}@key{j}" for j in range(LIMBS)]


def is_key_series(series: str) -> bool:
    head, sep, tail = series.rpartition("@key")
    return bool(sep and head) and tail.isdigit() and int(tail) < LIMBS


def _one(key: object) -> int:
    if isinstance(key, str):
        data = b"s" + key.encode()
    elif isinstance(key, (bytes, bytearray)):
        data = b"s" + bytes(key)
    else:
        data = b"i" + int(key).to_bytes(16, "big", signed=True)  # type: ignore[call-overload]
    return int.from_bytes(hashlib.sha256(_DOMAIN + data).digest()[: HASH_BITS // 8], "big")


def key_hashes(keys: Sequence[object] | np.ndarray) -> np.ndarray:
    """h(key) for every key (int or str), as Python integers below 2^128 (object array).
    One SHA-256 per key: there is no vectorized SHA-256 in numpy."""
    values = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    return np.array([_one(k) for k in values], dtype=object)


def limbs(hashes: np.ndarray) -> np.ndarray:
    """The 16-bit limbs of each hash, LIMBS × n (int64), least significant first."""
    h = np.asarray(hashes, dtype=object)
    low = np.array(h & ((1 << 64) - 1), dtype=np.uint64)
    high = np.array(h >> 64, dtype=np.uint64)
    out = np.empty((LIMBS, len(h)), dtype=np.int64)
    mask = np.uint64(LIMB_BOUND)
    for j in range(LIMBS // 2):  # four limbs per 64-bit word
        shift = np.uint64(LIMB_BITS * j)
        out[j] = ((low >> shift) & mask).astype(np.int64)
        out[j + LIMBS // 2] = ((high >> shift) & mask).astype(np.int64)
    return out


def weights() -> np.ndarray:
    """2^(16 j) per limb (object ints): h = Σ_j weights[j] · limb_j."""
    return np.array([1 << (LIMB_BITS * j) for j in range(LIMBS)], dtype=object)


def first_repeat(keys: Sequence[object] | np.ndarray) -> int:
    """The 1-based row of the first key equal to an earlier one, 0 if all are distinct
    (the message names the row, never the key)."""
    values = np.asarray(keys)
    _, first = np.unique(values, return_index=True)
    if len(first) == len(values):
        return 0
    repeated = np.ones(len(values), dtype=bool)
    repeated[first] = False
    return int(np.argmax(repeated)) + 1

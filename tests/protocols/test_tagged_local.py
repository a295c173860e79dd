"""The tagged-helper join's local arithmetic (protocols.tagging), no MPC: the vectorized key
tags against a per-key CBC-MAC computed by ``cryptography``'s own AES-CBC, and the wrap rule
of two ring shares that ``protocols.join.tagged._into_mpc`` uses inside MPyC."""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocols import tagging


def reference_tag(tag_key: bytes, key: int | str) -> int:
    """One key's tag the slow way: AES-CBC with a zero IV over the key's encoding, the last
    cipher block (that is CBC-MAC), its first 8 bytes little-endian."""
    aes_key = hashlib.sha256(b"ensnif-tag\x00" + tag_key).digest()
    if isinstance(key, str):
        data = key.encode()
        message = b"ensnif-s" + len(data).to_bytes(8, "big") + data
        message += b"\x00" * (-len(message) % 16)
    else:
        message = b"ensnif-i" + key.to_bytes(8, "big", signed=True)
    cbc = Cipher(algorithms.AES(aes_key), modes.CBC(bytes(16))).encryptor()
    last = (cbc.update(message) + cbc.finalize())[-16:]
    return int.from_bytes(last[:8], "little")


STRINGS = ["", "a", "c0001", "x" * 15, "y" * 16, "z" * 17, "é" * 9, "客户-42", "k" * 100]


def test_int_tags_equal_aes_of_the_encoded_key():
    key = secrets.token_bytes(32)
    keys = np.array([0, 1, -1, 42, 2**63 - 1, -(2**63), 10**12], dtype=np.int64)
    got = tagging.tags(key, keys)
    assert got.dtype == np.dtype("<u8")
    assert got.tolist() == [reference_tag(key, int(k)) for k in keys]


def test_string_tags_equal_a_cbc_mac_of_the_length_prefixed_key(monkeypatch):
    monkeypatch.setattr(tagging, "_CHUNK", 3)  # several batches per block count
    key = secrets.token_bytes(32)
    keys = np.array(STRINGS * 3 + [f"cust-{i}" for i in range(40)], dtype=object)
    got = tagging.tags(key, keys)
    assert got.tolist() == [reference_tag(key, str(k)) for k in keys]


def test_equal_keys_get_equal_tags_whatever_the_order_and_container():
    key = secrets.token_bytes(32)
    rng = np.random.default_rng(1)
    ints = rng.choice(10**9, size=5000, replace=False).astype(np.int64)
    order = rng.permutation(len(ints))
    assert np.array_equal(tagging.tags(key, ints)[order], tagging.tags(key, ints[order]))
    assert np.array_equal(tagging.tags(key, ints.tolist()), tagging.tags(key, ints))
    strings = [f"c{i:06d}" for i in ints[:500].tolist()]
    as_objects = np.array(strings, dtype=object)
    assert np.array_equal(tagging.tags(key, strings), tagging.tags(key, as_objects))


def test_distinct_keys_get_distinct_tags_and_kinds_and_keys_are_separated():
    key = secrets.token_bytes(32)
    ints = np.arange(-50_000, 50_000, dtype=np.int64)
    assert len(np.unique(tagging.tags(key, ints))) == len(ints)
    one_int, one_str = tagging.tags(key, [1]), tagging.tags(key, ["1"])
    assert one_int[0] != one_str[0]
    assert not np.array_equal(tagging.tags(key, ints), tagging.tags(secrets.token_bytes(32), ints))


def test_empty_and_mixed_key_lists():
    key = secrets.token_bytes(32)
    assert tagging.tags(key, np.zeros(0, dtype=np.int64)).shape == (0,)
    with pytest.raises(TypeError):
        tagging.tags(key, np.array([1, "1"], dtype=object))


def test_the_wrap_of_two_ring_shares_is_the_or_of_their_top_bits():
    rng = np.random.default_rng(2)
    totals = [0, 1, 2**62, 2**63 - 1] + [int(v) for v in rng.integers(0, 2**63, size=2000)]
    for total in totals:
        for _ in range(3):
            x_h = int(rng.integers(0, 2**64, dtype=np.uint64))
            x_b = (total - x_h) % (1 << 64)
            assert x_b + x_h - (tagging.wrap_bit(x_b, x_h) << 64) == total
    edges = [(0, 0), (0, 2**63 - 1), (2**63 - 1, 2**63 + 1), (2**64 - 1, 1)]
    for x_b, x_h in edges:  # the last two sum to 2^64: S = 0 with a wrap
        assert x_b + x_h - (tagging.wrap_bit(x_b, x_h) << 64) == (x_b + x_h) % (1 << 64)


def test_the_helpers_selection_and_alignment_equal_a_plain_lookup():
    rng = np.random.default_rng(3)
    tags_a = rng.choice(2**40, size=3000, replace=False).astype(np.uint64)
    tags_b = np.concatenate([rng.choice(tags_a, 1200, replace=False), tags_a[:0] + 2**41 + 7])
    tags_b = np.concatenate([tags_b, rng.integers(2**41, 2**42, 800).astype(np.uint64)])
    tags_b = np.unique(tags_b)[rng.permutation(len(np.unique(tags_b)))]
    position = {int(t): i for i, t in enumerate(tags_a.tolist())}

    sel = tagging.select(tags_a, tags_b)
    assert sel.dtype == np.uint64
    assert sel.tolist() == [int(t in set(tags_b.tolist())) for t in tags_a.tolist()]
    assert tagging.partners(tags_a, tags_b).tolist() == [
        position.get(int(t), -1) for t in tags_b.tolist()
    ]
    assert tagging.select(tags_a, tags_b[:0]).tolist() == [0] * len(tags_a)
    assert tagging.partners(tags_a[:0], tags_b).tolist() == [-1] * len(tags_b)
    with pytest.raises(ArithmeticError):
        tagging.partners(np.array([5, 5], dtype=np.uint64), tags_b)

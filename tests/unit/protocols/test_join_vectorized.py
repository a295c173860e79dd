"""The join owners' local steps, vectorized, against their per-row definitions: the
per-key caps (``capped``, ``cap_per_key``), the group columns and threshold flags of
``join_group_by``, the missing-key filter of ``keyed``, and the group-by's ring Z_2^k
(its wire form and its size)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from ensnif_mpc.data.sources import Aggregate
from protocols.join import aligned, common
from protocols.join.group_by import group_columns, threshold_flags


def _rounded(s: int, a: int, n: int) -> int:
    return (2 * s * a + n) // (2 * n) if n else 0


def _capped_rows(sums: list[int], counts: list[int], cap: int) -> tuple[list[int], list[int]]:
    kept = [min(n, cap) for n in counts]
    return kept, [_rounded(s, a, n) for s, a, n in zip(sums, kept, counts, strict=True)]


def _greedy(
    keys: list[Any], cols: list[int], counts: list[int], sums: list[int], cap: int
) -> tuple[list[int], list[int]]:
    left: dict[Any, int] = {}
    kept, total = [0] * len(keys), [0] * len(keys)
    for i in sorted(range(len(keys)), key=lambda i: cols[i]):
        room = left.get(keys[i], cap)
        kept[i] = min(counts[i], room)
        left[keys[i]] = room - kept[i]
        total[i] = _rounded(sums[i], kept[i], counts[i])
    return kept, total


@pytest.mark.parametrize("seed", range(40))
def test_the_caps_match_their_per_row_definitions(seed: int) -> None:
    rng = random.Random(seed)
    pool = ["x", "y", "z"] if seed % 2 else [1, 2, 3, 4]
    cells = sorted({(rng.choice(pool), rng.randint(0, 4)) for _ in range(rng.randint(0, 15))})
    rng.shuffle(cells)
    keys = [k for k, _ in cells]
    cols = [c for _, c in cells]
    counts = [rng.randint(0, 6) for _ in cells]
    sums = [rng.randint(-(10**20), 10**20) if n else 0 for n in counts]  # beyond int64
    cap = rng.randint(1, 5)
    got = common.cap_per_key(
        np.array(keys, dtype=object),
        np.array(cols, dtype=np.int64),
        np.array(counts, dtype=object),
        np.array(sums, dtype=object),
        cap,
    )
    assert (got[0].tolist(), got[1].tolist()) == _greedy(keys, cols, counts, sums, cap)
    got = common.capped(np.array(sums, dtype=object), np.array(counts, dtype=object), cap)
    assert (got[0].tolist(), got[1].tolist()) == _capped_rows(sums, counts, cap)


def test_group_columns_take_each_label_s_listed_column_or_minus_one() -> None:
    labels = np.array(["b", "a", "zz", "c", None], dtype=object)
    assert group_columns(labels, ["c", "a", "x", "a"]).tolist() == [-1, 3, -1, 0, -1]
    assert group_columns(np.array([10115, 7, 20095]), ["10115", "20095"]).tolist() == [0, -1, 1]
    assert group_columns(np.array([], dtype=object), ["a"]).tolist() == []


def test_threshold_flags_compare_exact_integers_beyond_int64() -> None:
    totals = np.array([2**70, 15000, 15001, -(2**70)], dtype=object)
    assert threshold_flags(totals, 150, 2).tolist() == [1, 0, 1, 0]


class _Local:
    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys

    def aggregate(self, by: list[str], **_: Any) -> Aggregate:
        count = np.arange(len(self.keys), dtype=np.int64)
        return Aggregate({"key": self.keys}, {"count": count}, rows=len(self.keys))


def test_keyed_leaves_out_missing_and_empty_keys_only() -> None:
    agg = common.keyed(_Local(np.array(["a", "", None, "0", " "], dtype=object)), ["key"])
    assert agg.keys["key"].tolist() == ["a", "0", " "]
    assert agg.values["count"].tolist() == [0, 3, 4] and agg.groups == 3
    ints = _Local(np.array([0, 5, -1]))
    assert common.keyed(ints, ["key"]).keys["key"].tolist() == [0, 5, -1]


def test_the_ring_sends_k_over_8_bytes_an_element_and_keeps_values_mod_2_to_the_k() -> None:
    ring = aligned.Ring2k(40)
    x = np.random.default_rng(1).integers(0, 2**63, size=(7, 3)).astype(np.uint64)
    sent = aligned.wire(ring, x)
    assert sent.dtype == np.uint8 and sent.shape == (7, 3 * 5)
    assert (aligned.unwire(ring, sent, 3) == x & np.uint64(2**40 - 1)).all()
    assert aligned.wire(ring, ring.zeros((0, 3))).shape == (0, 15)
    assert aligned.wire(aligned.Ring2k(64), x) is x
    assert [aligned.ring_bits(b) for b in (32, 33, 37, 40, 41, 62)] == [32, 40, 40, 40, 48, 64]
    with pytest.raises(ValueError):
        aligned.Ring2k(36)


def test_b_refuses_a_table_the_session_s_ring_cannot_hold() -> None:
    from ensnif_mpc.errors import FailedPrecondition
    from protocols.join.group_by import _fits_ring

    counts = np.array([3, 4], dtype=object)
    _fits_ring(counts, np.array([-(2**37), 2**37 - 1], dtype=object), 40)  # |Σ| < 2^38
    for sums in ([2**37, 2**37], [2**70, 0]):
        with pytest.raises(FailedPrecondition) as refused:
            _fits_ring(counts, np.array(sums, dtype=object), 40)
        assert refused.value.reason == "catalog_stale"

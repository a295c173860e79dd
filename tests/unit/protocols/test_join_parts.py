"""The private join's local parts: permutations, Lagrange weights, key hashing, matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from protocols import prf
from protocols.join import match, per_key_values, threshold_flags
from protocols.shuffle import lagrange_at_zero, permutation, subsets

P = 2**61 - 1


def test_permutation_is_a_permutation_fixed_by_its_seed() -> None:
    a = permutation(b"s" * 32, 1000)
    assert sorted(a.tolist()) == list(range(1000))
    assert np.array_equal(a, permutation(b"s" * 32, 1000))
    assert not np.array_equal(a, permutation(b"t" * 32, 1000))
    assert permutation(b"s" * 32, 0).size == 0


def test_permutation_positions_are_spread_uniformly() -> None:
    # Where element 0 lands, over many seeds: every position about equally often.
    hits = np.zeros(8, dtype=int)
    for seed in range(4000):
        hits[int(np.argmax(permutation(seed.to_bytes(4, "big"), 8) == 0))] += 1
    assert hits.min() > 400 and hits.max() < 600  # 500 expected; ±100 is > 4.5 sigma


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2), (4, 1)])
def test_lagrange_weights_of_every_subset_recombine_a_shamir_secret(n: int, t: int) -> None:
    rng = np.random.default_rng(n)
    coeffs = [int(c) for c in rng.integers(0, 2**40, t + 1)]
    secret = coeffs[0]
    share = {i: sum(c * (i + 1) ** k for k, c in enumerate(coeffs)) % P for i in range(n)}
    sets = subsets(n, t)
    assert len(sets) == len(list(itertools.combinations(range(n), t + 1)))
    for members in sets:
        total = sum(lagrange_at_zero(members, i, P) * share[i] for i in members) % P
        assert total == secret


def test_every_party_misses_some_subset_so_no_one_knows_the_composed_permutation() -> None:
    for n, t in [(3, 1), (5, 2), (7, 3)]:
        sets = subsets(n, t)
        for coalition in itertools.combinations(range(n), t):
            assert any(not set(coalition) & set(s) for s in sets)


def test_designated_sets_rotate_and_hold_t_plus_one_parties() -> None:
    n, t = 5, 2
    seen = [prf.designated(c, n, t) for c in range(n)]
    assert all(len(s) == t + 1 for s in seen)
    assert {p for s in seen for p in s} == set(range(n))
    assert len(set(seen)) == n


def test_hashed_keys_separate_types_and_lie_in_the_group_order() -> None:
    ints = prf.hash_keys(np.array([1, 2, 1]))
    strs = prf.hash_keys(np.array(["1", "2"], dtype=object))
    assert ints[0] == ints[2] != ints[1]
    assert ints[0] != strs[0]  # the int 1 and the string "1" are different keys
    assert all(0 <= int(v) < prf.Q for v in [*ints, *strs])


def test_match_pairs_equal_pseudonyms_in_linear_log_time() -> None:
    a = np.array([b"a", b"c", b"b", b"e"], dtype="S33")
    b = np.array([b"b", b"x", b"a", b"b"], dtype="S33")
    ia, ib = match(a, b)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 2), (2, 0), (2, 3)]
    empty = np.zeros(0, dtype="S33")
    assert match(empty, b)[0].size == 0 and match(a, empty)[1].size == 0


def test_match_refuses_duplicate_pseudonyms_on_the_unique_side() -> None:
    a = np.array([b"a", b"a"], dtype="S33")
    with pytest.raises(ArithmeticError, match="share a pseudonym"):
        match(a, np.array([b"a"], dtype="S33"))


def test_threshold_flags_are_exact_on_the_decimal_grid() -> None:
    totals = np.array([15000, 15001, 14999, 0], dtype=object)  # 150.00, 150.01, 149.99, 0
    assert threshold_flags(totals, 150, 2).tolist() == [0, 1, 0, 0]  # strictly greater
    assert threshold_flags(totals, 149.995, 2).tolist() == [1, 1, 0, 0]


def test_per_key_mean_rounds_half_up_exactly() -> None:
    sums = np.array([5, -5, 7, 10], dtype=object)
    counts = np.array([2, 2, 3, 1], dtype=np.int64)
    assert per_key_values(sums, counts, "mean").tolist() == [3, -2, 2, 10]
    assert per_key_values(sums, counts, "sum").tolist() == [5, -5, 7, 10]

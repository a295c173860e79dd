"""The DP releases of the statistics, `group_mean` and the private joins: their declared
sensitivities, against a plaintext model of what each protocol opens.

Hypothesis draws owners (rows per person k, value bound B on the integer grid), a small
dataset within the bounds whose keys collide across people (a key need not be a person:
think of a zip code), and an adversarial person: at any set of owners, possibly all, with
the most rows the policy allows there, extreme or arbitrary values, any keys and groups.
Adding that person must move every release block by at most its declared L2
sensitivity. The owners' local steps (binning, grid counts, per-key caps, per-key
values, thresholds) are the protocols' own functions: they are what runs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, target

from coordinator.validation import sizing_for
from ensnif_mpc.errors import FailedPrecondition, InvalidJobSpec
from ensnif_mpc.privacy import dlaplace, dp
from protocols import join, statistics
from protocols.registry import catalog

KEYS = 5  # the base data's keys are 0..4 (several rows each); the person may bring key 5
GROUPS = ["a", "b", "c"]  # listed; rows may also fall in the unlisted "z"
EDGES = [-300, -10, 0, 1, 250]  # some rows fall outside
GRID = {"lower": -200, "upper": 200, "step": 50, "q": 0.3}  # values beyond count at the ends


@dataclass(frozen=True)
class Row:
    key: int
    group: str
    value: int
    filter: int


# -- what each protocol opens under DP, as its blocks ------------------------------------------


def _flat(rows: list[list[Row]]) -> list[Row]:
    return [r for owner in rows for r in owner]


def _per_key(rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """keys, counts, sums of one owner's rows per key (the owner's GROUP BY key)."""
    counts: dict[int, int] = defaultdict(int)
    sums: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[r.key] += 1
        sums[r.key] += r.value
    keys = sorted(counts)
    return (
        np.array(keys, dtype=object),
        np.array([counts[k] for k in keys], dtype=object),
        np.array([sums[k] for k in keys], dtype=object),
    )


def _moments(rows, owners, params):
    values = [r.value for r in _flat(rows)]
    return [[len(values)], [sum(values)], [sum(v * v for v in values)]]


def _minmax(rows, owners, params):
    bound = max(b for _, b in owners)
    values = [r.value for r in _flat(rows)]
    return [[min([bound, *values]), max([-bound, *values])]]


def _histogram(rows, owners, params):
    total = np.zeros(len(EDGES) - 1, dtype=np.int64)
    for owner in rows:
        if owner:
            keys = np.array([float(r.value) for r in owner])
            total += statistics.bin_counts(keys, np.ones(len(owner)), params["edges"], 0)
    return [total.tolist()]


def _quantile(rows, owners, params):
    grid = statistics.check_grid(params)
    total = np.zeros(grid.points, dtype=np.int64)
    for owner in rows:
        if owner:
            keys = np.array([float(r.value) for r in owner])
            total += statistics.grid_counts(keys, np.ones(len(owner)), grid, 0)
    return [total.tolist()]


def _group_mean(rows, owners, params):
    flat = [r for r in _flat(rows) if r.group in GROUPS]
    counts = [sum(1 for r in flat if r.group == g) for g in GROUPS]
    sums = [sum(r.value for r in flat if r.group == g) for g in GROUPS]
    return [counts, sums]


def _intersection_size(rows, owners, params):
    a, b = ({r.key for r in owner} for owner in rows)
    return [[len(a & b)]]


def _intersection_sum(rows, owners, params):
    keys, counts, sums = _per_key(rows[0])
    if len(keys):
        counts, sums = join.capped(sums, counts, join.row_cap(params))
    other = {r.key for r in rows[1]}
    hit = [i for i, k in enumerate(keys) if k in other]
    return [[len(hit)], [sum(counts[i] for i in hit)], [sum(sums[i] for i in hit)]]


def _join_group_by(rows, owners, params):
    keys_a, _, _ = _per_key(rows[0])
    passing = set(keys_a)
    if params.get("threshold") is not None:
        totals = np.array([sum(r.filter for r in rows[0] if r.key == k) for k in keys_a])
        flags = join.threshold_flags(totals, params["threshold"], 0)
        passing = {k for k, f in zip(keys_a, flags, strict=True) if f}
    cells: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows[1]:
        if r.group in GROUPS:
            cells[(r.key, r.group)][0] += 1
            cells[(r.key, r.group)][1] += r.value
    listed = sorted(cells)
    keys = np.array([k for k, _ in listed], dtype=object)
    columns = np.array([GROUPS.index(g) for _, g in listed], dtype=np.int64)
    counts = np.array([cells[c][0] for c in listed], dtype=object)
    sums = np.array([cells[c][1] for c in listed], dtype=object)
    if len(listed):
        counts, sums = join.cap_per_key(keys, columns, counts, sums, join.row_cap(params))
    out_counts, out_sums = [0] * len(GROUPS), [0] * len(GROUPS)
    for i, key in enumerate(keys):
        if key in passing:
            out_counts[columns[i]] += counts[i]
            out_sums[columns[i]] += sums[i]
    return [out_counts, out_sums]


def _join_correlation(rows, owners, params):
    how = params.get("per_key", "mean")
    sides = []
    for owner in rows:
        keys, counts, sums = _per_key(owner)
        if len(keys) and how == "sum":
            _, sums = join.capped(sums, counts, join.row_cap(params))
        values = join.per_key_values(sums, counts, how) if len(keys) else []
        sides.append(dict(zip(keys, values, strict=True)))
    pairs = [(sides[0][k], sides[1][k]) for k in sides[0] if k in sides[1]]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    return [
        [len(pairs)],
        [sum(xs)],
        [sum(ys)],
        [sum(x * x for x in xs)],
        [sum(y * y for y in ys)],
        [sum(x * y for x, y in pairs)],
    ]


RELEASES = {
    "variance": _moments,
    "stdev": _moments,
    "minmax": _minmax,
    "histogram": _histogram,
    "quantile": _quantile,
    "group_mean": _group_mean,
    "intersection_size": _intersection_size,
    "intersection_sum": _intersection_sum,
    "join_group_by": _join_group_by,
    "join_correlation": _join_correlation,
}
JOINS = ("intersection_size", "intersection_sum", "join_group_by", "join_correlation")
# Which owners' value column counts for B (what the coordinator passes): none for the keys
# only side of a join, nor for join_group_by's first owner (a filter, not a value).
VALUE_AT = {
    "intersection_size": (False, False),
    "intersection_sum": (True, False),
    "join_group_by": (False, True),
}


def _params(protocol: str, cap: int, threshold: int | None, per_key: str) -> dict[str, Any]:
    return {
        "histogram": {"edges": EDGES},
        "quantile": dict(GRID),
        "group_mean": {"groups": GROUPS},
        "intersection_sum": {"max_rows_per_key": cap},
        "join_group_by": {"groups": GROUPS, "threshold": threshold, "max_rows_per_key": cap},
        "join_correlation": {"per_key": per_key, "max_rows_per_key": cap},
    }.get(protocol, {})


def _blocks(protocol: str, owners: list[tuple[int, int]], params: dict) -> list[dp.BlockSpec]:
    sensitivity = catalog()[protocol].dp_sensitivity
    assert sensitivity is not None
    return sensitivity(owners, params)


def _l1(block: dp.BlockSpec) -> float:
    """The L1 sensitivity the discrete Laplace mechanism uses: declared, or √dims·⌈L2⌉."""
    return dlaplace.l1_bound(block.l2, block.dims, block.l1)


def _moved(before: list[list[Any]], after: list[list[Any]], order: int = 2) -> list[float]:
    """How far each block moved, in L2 (or L1)."""
    return [
        sum(abs(Fraction(x) - Fraction(y)) ** order for x, y in zip(b, a, strict=True))
        ** (1 / order)
        for b, a in zip(before, after, strict=True)
    ]


def _rows(data: st.DataObject, bound: int) -> list[Row]:
    """An owner's base rows: a few keys of its own (owners' key sets overlap in part), each
    with several rows."""
    keys = sorted(data.draw(st.sets(st.sampled_from(range(KEYS)), max_size=3)))
    if not keys:
        return []
    row = st.builds(
        Row,
        st.sampled_from(keys),
        st.sampled_from([*GROUPS, "z"]),
        st.integers(-bound, bound),
        st.integers(0, 6),
    )
    return data.draw(st.lists(row, max_size=10))


def _person(
    data: st.DataObject, declared: list[tuple[int, int]], base: list[list[Row]]
) -> list[list[Row]]:
    """At any set of owners (all of them included), k rows at each, extreme values or not,
    laid out to hurt: in keys only the other owners have (each makes a new match), stacked
    in one key and group, or anywhere (a new key included)."""
    present = data.draw(st.lists(st.booleans(), min_size=len(declared), max_size=len(declared)))
    extreme = data.draw(st.booleans())
    layout = data.draw(st.sampled_from(["unlock", "stacked", "free"]))
    rows: list[list[Row]] = []
    for i, ((k, b), here) in enumerate(zip(declared, present, strict=True)):
        if not here:
            rows.append([])
            continue
        mine = {r.key for r in base[i]}
        others = sorted({r.key for j, o in enumerate(base) if j != i for r in o} - mine)
        pool = others if layout == "unlock" and others else list(range(KEYS + 1))
        keys = data.draw(
            st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique=len(pool) >= k)
        )
        groups = data.draw(st.lists(st.sampled_from([*GROUPS, "z"]), min_size=k, max_size=k))
        if layout == "stacked":
            keys, groups = [keys[0]] * k, [groups[0]] * k
        values = st.sampled_from([b, -b]) if extreme else st.integers(-b, b)
        rows.append(
            [
                Row(key, group, data.draw(values), data.draw(st.integers(0, 6)))
                for key, group in zip(keys, groups, strict=True)
            ]
        )
    return rows


# -- the property ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", sorted(RELEASES))
@settings(max_examples=40, deadline=None)
@given(
    owners=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 300)), min_size=1, max_size=3),
    cap=st.integers(1, 3),
    threshold=st.none() | st.integers(0, 8),
    per_key=st.sampled_from(["mean", "sum"]),
    data=st.data(),
)
def test_adding_one_person_moves_each_block_by_at_most_its_sensitivity(
    protocol, owners, cap, threshold, per_key, data
):
    if protocol in JOINS:  # exactly two owners
        owners = (owners * 2)[:2]
    uses_value = VALUE_AT.get(protocol, (True,) * len(owners))
    declared = [(k, b if used else 0) for (k, b), used in zip(owners, uses_value, strict=True)]
    params = _params(protocol, cap, threshold, per_key)
    base = [_rows(data, b) for _, b in declared]
    with_person = [r + p for r, p in zip(base, _person(data, declared, base), strict=True)]

    blocks = _blocks(protocol, declared, params)
    before = RELEASES[protocol](base, declared, params)
    after = RELEASES[protocol](with_person, declared, params)

    assert [b.dims for b in blocks] == [len(b) for b in before]
    moved = zip(blocks, _moved(before, after), _moved(before, after, 1), strict=True)
    for i, (block, change, change_l1) in enumerate(moved):
        target(change / block.l2, label=f"block {i}")  # steer towards the tightest cases
        target(change_l1 / _l1(block), label=f"block {i}, L1")
        assert change <= block.l2 + 1e-9, (protocol, declared, params, with_person)
        assert change_l1 <= _l1(block) + 1e-9, (protocol, declared, params, with_person)


@settings(max_examples=80, deadline=None)
@given(
    protocol=st.sampled_from(sorted(RELEASES)),
    owners=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 10**4)), min_size=2, max_size=2),
    cap=st.integers(1, 4),
)
def test_one_owner_alone_never_claims_more_than_the_whole_release(protocol, owners, cap):
    """What a node checks: its own blocks (one owner, position unknown) must not exceed the
    plan's, or every honest job would be refused as understated."""
    params = _params(protocol, cap, 3, "sum")
    whole = _blocks(protocol, owners, params)
    for owner in owners:
        alone = _blocks(protocol, [owner], params)
        assert [b.dims for b in alone] == [b.dims for b in whole]
        for a, w in zip(alone, whole, strict=True):
            assert a.l2 <= w.l2 + 1e-9 and _l1(a) <= _l1(w) + 1e-9


# -- the cases that make the bounds what they are ----------------------------------------------


def test_a_person_with_both_extremes_moves_an_empty_minmax_by_the_full_bound():
    owners, empty = [(2, 100)], [[]]
    person = [[Row(0, "a", -100, 0), Row(0, "a", 100, 0)]]

    (change,) = _moved(_minmax(empty, owners, {}), _minmax(person, owners, {}))

    assert change == pytest.approx(2 * math.sqrt(2) * 100)
    assert _moved(_minmax(empty, owners, {}), _minmax(person, owners, {}), 1) == [400]
    assert _blocks("minmax", owners, {}) == [dp.BlockSpec(pytest.approx(change), 2, 400.0)]
    assert _blocks("minmax", [(1, 100)], {}) == [dp.BlockSpec(200.0, 2, 200.0)]  # one row: a = b


def test_one_row_at_the_second_owner_unlocks_at_most_a_capped_key_of_the_first():
    # A key (a zip code, say) with 40 of the first owner's rows, absent at the second owner;
    # one person's single row there with that key makes it match.
    a = [Row(3, "a", 50, 0) for _ in range(40)]
    owners, params = [(1, 50), (1, 0)], {"max_rows_per_key": 2}
    before = _intersection_sum([a, []], owners, params)
    after = _intersection_sum([a, [Row(3, "a", 0, 0)]], owners, params)

    keys, rows, total = _moved(before, after)
    blocks = _blocks("intersection_sum", owners, params)

    assert (rows, total) == (2, 100)  # c rows and c·B, not 40 rows and 2,000
    assert rows <= blocks[1].l2 and total <= blocks[2].l2
    uncapped = _intersection_sum([a, [Row(3, "a", 0, 0)]], owners, {"max_rows_per_key": 10**6})
    assert _moved(before, uncapped)[1] > blocks[1].l2  # why the cap is there


def test_one_row_at_the_first_owner_switches_on_at_most_a_capped_key_of_the_second():
    b = [Row(1, g, 20, 0) for g in ("a", "b", "c") for _ in range(10)]
    owners, params = [(1, 0), (1, 20)], {"groups": GROUPS, "threshold": 0, "max_rows_per_key": 3}

    before = _join_group_by([[], b], owners, params)
    after = _join_group_by([[Row(1, "a", 0, 1)], b], owners, params)

    counts, sums = _moved(before, after)
    assert (counts, sums) == (3, 60)  # three rows of the key, in the listed order: all in "a"
    assert after[0] == [3, 0, 0]
    blocks = _blocks("join_group_by", owners, params)
    assert counts <= blocks[0].l2 and sums <= blocks[1].l2


def test_one_row_of_the_second_owner_can_move_two_groups_of_a_capped_key():
    # Key 1 is at its cap of 2 rows with both in group "b"; a row in "a" (listed first)
    # takes one of them: +1 in a, −1 in b.
    owners, params = [(1, 0), (1, 20)], {"groups": GROUPS, "max_rows_per_key": 2}
    a, b = [Row(1, "a", 0, 0)], [Row(1, "b", 20, 0), Row(1, "b", 20, 0)]

    before = _join_group_by([a, b], owners, params)
    after = _join_group_by([a, [*b, Row(1, "a", -20, 0)]], owners, params)

    assert (before[0], after[0]) == ([0, 2, 0], [1, 1, 0])
    counts, sums = _moved(before, after)
    assert counts == pytest.approx(math.sqrt(2))
    assert sums == pytest.approx(math.sqrt(20**2 + 20**2))  # a gains −20, b loses 20
    blocks = _blocks("join_group_by", owners, params)
    assert counts <= blocks[0].l2 and sums <= blocks[1].l2


def test_a_new_pair_at_the_bounds_moves_the_squares_by_the_full_bound():
    owners, params = [(1, 7), (1, 5)], {"per_key": "mean"}
    base = [[Row(0, "a", 1, 0)], [Row(0, "a", 2, 0)]]
    person = [[Row(9, "a", -7, 0)], [Row(9, "a", 5, 0)]]

    moved = _moved(
        _join_correlation(base, owners, params),
        _join_correlation([b + p for b, p in zip(base, person, strict=True)], owners, params),
    )

    assert moved == [1, 7, 5, 49, 25, 35]
    blocks = _blocks("join_correlation", owners, params)
    assert [b.l2 for b in blocks] == [2, 28, 20, 98, 50, 140]  # K = 2: not tight for sums
    assert all(m <= b.l2 for m, b in zip(moved, blocks, strict=True))


def test_a_person_at_both_owners_is_counted_at_both():
    owners = [(2, 0), (3, 0)]
    assert _blocks("intersection_size", owners, {}) == [dp.BlockSpec(5.0, 1)]
    # Five new keys, each matching one that is already on the other side.
    base = [[Row(k, "a", 0, 0) for k in (10, 11, 12)], [Row(k, "a", 0, 0) for k in (0, 1)]]
    person = [[Row(0, "a", 0, 0), Row(1, "a", 0, 0)], [Row(k, "a", 0, 0) for k in (10, 11, 12)]]
    moved = _moved(
        _intersection_size(base, owners, {}),
        _intersection_size([b + p for b, p in zip(base, person, strict=True)], owners, {}),
    )
    assert moved == [5.0]


def test_histogram_and_quantile_do_not_grow_with_the_number_of_bins():
    owners = [(2, 10), (1, 10)]
    grid = {"lower": 0, "upper": 99, "step": 1}
    assert _blocks("histogram", owners, {"edges": list(range(101))}) == [
        dp.BlockSpec(3.0, 100, 3.0)
    ]
    assert _blocks("quantile", owners, grid) == [dp.BlockSpec(3.0, 100, 3.0)]


def test_squares_beyond_what_the_sampler_can_noise_are_refused_with_a_reason():
    with pytest.raises(FailedPrecondition, match="noise sampler") as info:
        _blocks("variance", [(1, 10**8)], {})
    assert info.value.reason == "dp_unavailable"
    with pytest.raises(FailedPrecondition):
        _blocks("join_correlation", [(1, 10**8), (1, 10**8)], {})
    assert _blocks("variance", [(1, 10**7)], {})[2] == dp.BlockSpec(1e14, 1)


def test_a_cap_that_is_not_a_positive_integer_is_refused():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidJobSpec, match="max_rows_per_key"):
            join.row_cap({"max_rows_per_key": bad})
    assert join.row_cap({}) == 1


# -- the owners' caps --------------------------------------------------------------------------


def test_a_capped_key_keeps_its_mean_rounded_half_up():
    counts, sums = join.capped(
        np.array([7, 10, 4, 1], dtype=object), np.array([2, 5, 4, 1], dtype=object), 2
    )
    assert counts.tolist() == [2, 2, 2, 1]
    assert sums.tolist() == [7, 4, 2, 1]  # 7, 10·2/5, 4·2/4, 1


def test_cap_per_key_fills_the_listed_groups_in_order_and_keeps_the_table_shape():
    keys = np.array([5, 5, 5, 6], dtype=object)
    columns = np.array([2, 0, 1, 0])
    counts, sums = join.cap_per_key(
        keys,
        columns,
        np.array([4, 2, 3, 9], dtype=object),
        np.array([40, 2, 9, -9], dtype=object),
        4,
    )
    assert counts.tolist() == [0, 2, 2, 4]  # key 5: group 0 takes 2, group 1 the other 2
    assert sums.tolist() == [0, 2, 6, -4]  # 9·2/3 = 6; −9·4/9 = −4


# -- the secure types hold the sums of squares plus noise --------------------------------------


@settings(max_examples=10, deadline=None)  # each example calibrates up to six blocks
@given(
    columns=st.lists(
        st.tuples(st.integers(1, 10**6), st.integers(1, 10**4), st.integers(0, 2)),
        min_size=2,
        max_size=2,
    ),
    rho=st.floats(0.001, 4.0),
    protocol=st.sampled_from(["variance", "join_correlation"]),
)
def test_squares_plus_noise_tail_never_wrap_twice_the_session_bits(columns, rho, protocol):
    decimals = max(d for _, _, d in columns)
    bounds = [math.ceil(b * 10**decimals) for _, b, _ in columns]
    owners = [(1, b) for b in bounds]
    try:
        blocks = _blocks(protocol, owners, {})
    except FailedPrecondition:  # refused before any MPC: nothing to wrap
        return
    plan = dp.plan(rho, blocks, 3, 1)
    bits = 2 * (
        sizing_for([(r, b, d) for r, b, d in columns], decimals).bit_length + plan.headroom_bits()
    )
    largest = sum(r * b for (r, _, _), b in zip(columns, bounds, strict=True)) ** 2
    assert largest + 60 * max(plan.output_sigmas()) < 2 ** (bits - 1)


# -- the analyst's side: post-processing of the noisy integers ---------------------------------


def test_variance_from_noisy_moments_is_clipped_at_zero_and_nan_below_two_rows():
    base = {"count": Fraction(3), "sum": Fraction(6), "sumsq@decimals=2": Fraction(1400)}
    out = catalog()["variance"].finalize(base)
    assert out["variance"] == Fraction(1)  # values 1, 2, 3: Q = 14 (1400 on the 2-decimal grid)
    assert out["sumsq"] == 14
    assert catalog()["stdev"].finalize(base)["stdev"] == pytest.approx(1.0)
    negative = catalog()["variance"].finalize({**base, "sumsq@decimals=2": Fraction(100)})
    assert negative["variance"] == 0
    assert math.isnan(catalog()["variance"].finalize({**base, "count": Fraction(1)})["variance"])


def test_quantile_of_grid_counts_matches_numpy_and_noisy_negatives_lower_the_cdf():
    rng = np.random.default_rng(4)
    grid = statistics.check_grid({"lower": -1.5, "upper": 3, "step": 0.25, "q": 0.3})
    counts = rng.integers(0, 5, grid.points)
    names = {
        f"count[{statistics.decimal_text(grid.value(j))}]@q={grid.q}": Fraction(int(c))
        for j, c in enumerate(counts)
    }
    points = np.repeat([float(grid.value(j)) for j in range(grid.points)], counts)
    want = np.quantile(points, 0.3, method="inverted_cdf")

    assert float(statistics.quantile_from_counts(names)) == pytest.approx(want)
    # A negative count is noise, summed as it is (not read as 0); a decreasing cumulative
    # count is replaced by its isotonic fit (scikit-learn's, here, as the reference).
    from sklearn.isotonic import isotonic_regression

    noisy = counts.astype(float)
    noisy[[0, 5]] = [-6, -3]
    fit = isotonic_regression(np.cumsum(noisy))
    want = grid.value(int(np.argmax(fit >= 0.3 * fit[-1])))
    noisy_names = dict(zip(names, map(Fraction, noisy.astype(int).tolist()), strict=True))
    assert statistics.quantile_from_counts(noisy_names) == want
    assert math.isnan(statistics.quantile_from_counts(dict.fromkeys(names, Fraction(-1))))


@pytest.mark.parametrize("x", ["12.5", "-3", "0.05", "-0.25", "100", "0"])
def test_grid_points_are_named_as_exact_decimals(x):
    assert statistics.decimal_text(Fraction(x)) == x


def test_correlation_from_exact_moments_is_pearsons_r():
    rng = np.random.default_rng(2)
    x = rng.integers(-50, 50, 40)
    y = 3 * x + rng.integers(-30, 30, 40)
    stats = dict(
        zip(
            join.MOMENTS,
            (Fraction(int(v)) for v in [40, x.sum(), y.sum(), x @ x, y @ y, x @ y]),
            strict=True,
        )
    )
    assert join.correlation_from_moments(stats) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(join.correlation_from_moments({**stats, "sumsq_y": Fraction(0)}))
    out = catalog()["join_correlation"].finalize({**stats, "pairs": Fraction(81, 2)})
    assert out["pairs"] == 40  # rounded half to even: the noisy count, as an integer


def test_dp_group_mean_divides_noisy_sums_by_noisy_counts():
    values = {
        "count[a]": Fraction(4),
        "count[b]": Fraction(-1),
        "sum[a]": Fraction(10),
        "sum[b]": Fraction(3),
    }
    out = catalog()["group_mean"].finalize(values)
    assert out["mean[a]"] == Fraction(5, 2) and math.isnan(out["mean[b]"])


def test_dp_minmax_and_intersection_sum_report_what_was_opened():
    assert catalog()["minmax"].finalize({"min": Fraction(-3), "max": Fraction(7)}) == {
        "min": -3,
        "max": 7,
    }
    out = catalog()["intersection_sum"].finalize(
        {"keys": Fraction(3), "rows": Fraction(-2), "sum": Fraction(9)}
    )
    assert math.isnan(out["mean"])

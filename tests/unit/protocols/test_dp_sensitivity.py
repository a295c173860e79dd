"""Property-based checks of the declared DP sensitivities and of the noise headroom.

Hypothesis draws owners (rows per person, value bounds), a dataset within the
bounds, and an adversarial person: extreme values at every owner, as many rows as
the policy allows, possibly at several owners at once. Adding that person must
move every release block by at most its declared L2 sensitivity.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st

from coordinator.validation import sizing_for
from ensnif_mpc.privacy import dp
from protocols.registry import catalog

owner = st.tuples(st.integers(1, 4), st.integers(0, 10**6))  # (rows per person, bound B)
values = st.lists(st.integers(-(10**6), 10**6), max_size=30)


def _blocks(
    protocol: str, owners: list[tuple[int, int]], params: dict | None = None
) -> list[dp.BlockSpec]:
    sensitivity = catalog()[protocol].dp_sensitivity
    assert sensitivity is not None
    return sensitivity(owners, params or {})


def _release(
    protocol: str, rows: list[list[tuple[str, int]]], groups: list[str]
) -> list[list[int]]:
    """The integer outputs a protocol releases, grouped as its DP blocks."""
    flat = [r for owner_rows in rows for r in owner_rows]
    if protocol == "count":
        return [[len(flat)]]
    if protocol == "sum":
        return [[sum(v for _, v in flat)]]
    if protocol == "mean":  # released as noisy sum, then count
        return [[sum(v for _, v in flat)], [len(flat)]]
    counts = [sum(1 for g, _ in flat if g == x) for x in groups]
    sums = [sum(v for g, v in flat if g == x) for x in groups]
    # group_sum opens its noisy counts too (the minimum cohort is held on them)
    return {"group_count": [counts], "group_sum": [counts, sums], "group_by": [counts, sums]}[
        protocol
    ]


@settings(max_examples=150, deadline=None)
@given(
    owners=st.lists(owner, min_size=1, max_size=3),
    protocol=st.sampled_from(["count", "sum", "mean", "group_count", "group_sum", "group_by"]),
    data=st.data(),
)
def test_adding_one_person_moves_each_block_by_at_most_its_sensitivity(owners, protocol, data):
    groups = ["a", "b", "c"]
    base = [
        [(data.draw(st.sampled_from(groups)), data.draw(st.integers(-b, b))) for _ in range(5)]
        for _, b in owners
    ]
    # The adversarial person: at a chosen set of owners (possibly all), with the most rows
    # the policy allows there, every value at +B or −B, rows spread or stacked on groups.
    present = data.draw(st.lists(st.booleans(), min_size=len(owners), max_size=len(owners)))
    person = [
        [
            (data.draw(st.sampled_from(groups)), data.draw(st.sampled_from([b, -b])))
            for _ in range(k)
        ]
        if here
        else []
        for (k, b), here in zip(owners, present, strict=True)
    ]
    with_person = [r + p for r, p in zip(base, person, strict=True)]

    blocks = _blocks(protocol, owners, {"groups": groups})
    before = _release(protocol, base, groups)
    after = _release(protocol, with_person, groups)
    assert len(blocks) == len(before)
    for block, x, y in zip(blocks, before, after, strict=True):
        assert block.dims == len(x)
        change = math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))
        assert change <= block.l2 + 1e-9, (protocol, owners, person)


@settings(max_examples=100, deadline=None)
@given(
    columns=st.lists(
        st.tuples(st.integers(1, 10**7), st.integers(1, 10**6), st.integers(0, 3)),
        min_size=1,
        max_size=3,
    ),
    rho=st.floats(0.001, 4.0),
)
def test_sum_plus_noise_tail_never_wraps_the_secure_type(columns, rho):
    decimals = max(d for _, _, d in columns)
    sizing = sizing_for([(r, float(b), d) for r, b, d in columns], decimals)
    owners = [(1, math.ceil(b * 10**decimals)) for _, b, _ in columns]
    plan = dp.plan(rho, _blocks("sum", owners), 3, 1)
    bits = sizing.bit_length + plan.headroom_bits()
    largest = sum(r * math.ceil(b * 10**decimals) for r, b, _ in columns)
    tail = 60 * max(plan.output_sigmas())  # mass beyond 60σ is below 2^-2500
    assert largest + tail < 2 ** (bits - 1)  # signed range of a secint of `bits` bits
    assert np.isfinite(tail)

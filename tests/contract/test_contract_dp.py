"""Every protocol with a DP release: its declared sensitivity against an adversarial person.

Parametrized over ``registry.catalog()``: a protocol that declares ``dp_sensitivity``
needs a plaintext model of its release (``tests/contract/dp_models.py``), or fails here.
Hypothesis draws owners (rows per person k, bound B on the integer grid; as many owners
as the protocol takes), a dataset within the bounds whose keys and groups collide, and an
adversarial person: at any set of owners, with the most rows the policy allows there,
extreme or arbitrary values, laid out to unlock matches, stacked, or free. Adding that
person must move every block by at most its declared L2 sensitivity, and by at most its
L1 bound (what the discrete Laplace mechanism uses). An owner whose position takes no
value column declares B = 0 there, as the coordinator does.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st, target

from ensnif_mpc.jobs.protocol import OwnerBounds
from protocols.registry import catalog
from tests.contract.dp_models import MODELS
from tests.unit.protocols import test_dp_families_sensitivity as families

WITH_DP = sorted(name for name, d in catalog().items() if d.dp_sensitivity is not None)


def _declared(protocol: str, owners: list[tuple[int, int]]) -> list[tuple[int, int]]:
    definition = catalog()[protocol]
    n = max(definition.min_data_owners, min(len(owners), definition.max_data_owners or 3))
    owners = (owners * n)[:n]
    model = MODELS.get(protocol)
    if model is not None and model.bounds is not None:  # several columns, each bounded by b
        # (the "value" bound is what the rows are drawn with, as (k, b) reads it)
        return [OwnerBounds(k, {"value": (b,), **model.bounds(b)}) for k, b in owners]
    takes_value = [
        any(r.name == "value" for r in definition.roles_at(i)) for i in range(len(owners))
    ]
    return [(k, b if used else 0) for (k, b), used in zip(owners, takes_value, strict=True)]


@pytest.mark.parametrize("protocol", WITH_DP)
def test_every_dp_release_has_a_plaintext_model(protocol):
    assert protocol in MODELS, (
        f"{protocol} declares a DP sensitivity but has no plaintext model of its release in "
        "tests/contract/dp_models.py"
    )


@pytest.mark.parametrize("protocol", WITH_DP)
@settings(max_examples=40, deadline=None)
@given(
    owners=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 300)), min_size=1, max_size=3),
    cap=st.integers(1, 3),
    threshold=st.none() | st.integers(0, 8),
    per_key=st.sampled_from(["mean", "sum"]),
    data=st.data(),
)
def test_adding_one_person_moves_each_block_by_at_most_its_declared_sensitivity(
    protocol, owners, cap, threshold, per_key, data
):
    model = MODELS.get(protocol)
    assert model is not None, f"{protocol}: no plaintext model of its DP release"
    declared = _declared(protocol, owners)
    params = model.params(cap, threshold, per_key)
    base = [families._rows(data, b) for _, b in declared]
    person = families._person(data, declared, base)
    with_person = [r + p for r, p in zip(base, person, strict=True)]

    sensitivity = catalog()[protocol].dp_sensitivity
    assert sensitivity is not None
    blocks = sensitivity(declared, params)
    before = model.release(base, declared, params)
    after = model.release(with_person, declared, params)

    assert [b.dims for b in blocks] == [len(b) for b in before], "blocks and release differ"
    l2, l1 = families._moved(before, after), families._moved(before, after, 1)
    for i, (block, change, change_l1) in enumerate(zip(blocks, l2, l1, strict=True)):
        target(change / max(block.l2, 1e-12), label=f"block {i}")
        target(change_l1 / max(families._l1(block), 1e-12), label=f"block {i}, L1")
        assert change <= block.l2 + 1e-9, (
            f"{protocol} block {i}: one person moved it by {change:.6g} in L2, declared "
            f"{block.l2:.6g} (owners {declared}, params {params}, person {person})"
        )
        assert change_l1 <= families._l1(block) + 1e-9, (
            f"{protocol} block {i}: one person moved it by {change_l1:.6g} in L1, bound "
            f"{families._l1(block):.6g} (owners {declared}, params {params}, person {person})"
        )

"""Which route a private join takes: from the session alone, and named in the manifest."""

from __future__ import annotations

import pytest

from ensnif_mpc.jobs import jobspec, join_path, manifest
from ensnif_mpc.privacy.dp import ReleasePlan
from protocols import registry

choose = join_path.choose


def test_two_owners_one_helper_and_t1_take_the_tagged_route():
    assert choose("intersection_sum", 3, 1, 2, {}) == join_path.TAGGED
    assert choose("intersection_size", 3, 1, 2, {}, bit_length=48) == join_path.TAGGED


@pytest.mark.parametrize(
    ("n", "t", "owners", "params", "bits"),
    [
        (5, 2, 2, {}, None),  # t >= 2
        (4, 1, 2, {}, None),  # more than three parties
        (3, 1, 3, {}, None),  # no compute-only helper
        (3, 1, 2, {}, 80),  # integers beyond the 64-bit ring
        (3, 1, 2, {"join_path": "prf-shuffle"}, None),  # the job asks for it
    ],
)
def test_other_sessions_keep_the_prf_route(n, t, owners, params, bits):
    assert choose("intersection_sum", n, t, owners, params, bit_length=bits) == join_path.PRF


def test_the_aligned_joins_take_the_tagged_route_too_and_other_protocols_none():
    assert choose("join_group_by", 3, 1, 2, {}, bit_length=48) == join_path.TAGGED
    assert choose("join_group_by", 3, 1, 2, {}, bit_length=80) == join_path.PRF  # Z_2^64
    assert choose("join_correlation", 3, 1, 2, {}, bit_length=80) == join_path.TAGGED  # Z_p
    assert choose("join_correlation", 5, 2, 2, {}) == join_path.PRF
    assert (
        join_path.describe(join_path.TAGGED, "join_group_by")
        == (join_path.DESCRIPTIONS[join_path.ALIGNED])
    )
    assert choose("sum", 3, 1, 2, {}) is None


def test_an_unknown_route_is_refused():
    with pytest.raises(ValueError, match="join_path"):
        choose("intersection_sum", 3, 1, 2, {"join_path": "fastest"})


def _manifest(params):
    spec = jobspec.from_dict(
        {
            "protocol": "intersection_sum",
            "inputs": [
                {"party": "grocery", "dataset": "orders", "key": "c", "value": "v"},
                {"party": "logistics", "dataset": "deliveries", "key": "c"},
            ],
            "helpers": ["helper"],
            "params": params,
        }
    )
    definition = registry.get("intersection_sum")
    order = list(spec.party_order)
    return manifest.build(spec, definition, order, ReleasePlan(exact=True), "analyst")


def test_the_manifest_names_the_route_and_its_leakage():
    m = _manifest({})
    assert m["join_path"] == join_path.TAGGED
    assert "only the helper learns the number of matching keys" in m["leakage"].lower()
    assert "route      tagged-helper" in manifest.render(m)
    assert _manifest({"join_path": "prf-shuffle"})["join_path"] == join_path.PRF

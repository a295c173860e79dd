"""The job's parallel sessions (ensnif_mpc/jobs/sessions.py): which jobs may split, what a
node offers, what the coordinator decides, and the registry's flags agreeing with it."""

from __future__ import annotations

import pytest

from ensnif_mpc.jobs import sessions
from protocols import registry


def test_the_registry_flags_exactly_the_partitionable_protocols() -> None:
    flagged = {d.name for d in registry.catalog().values() if d.partitionable}
    assert flagged == set(sessions.PARTITIONABLE)


def test_requested_is_an_integer_in_range() -> None:
    assert sessions.requested({}) == 1
    assert sessions.requested({"sessions": 4}) == 4
    for bad in (0, 17, True, 2.0, "2"):
        with pytest.raises(ValueError):
            sessions.requested({"sessions": bad})


def test_only_the_tagged_route_of_the_sums_over_keys_splits() -> None:
    assert sessions.check("intersection_sum", 3, 2, {"sessions": 2}) == 2
    assert sessions.check("intersection_size", 3, 2, {"sessions": 3}) == 3
    cases: list[tuple[str, int, int, dict[str, object]]] = [
        ("intersection_sum", 3, 2, {"sessions": 2, "join_path": "prf-shuffle"}),
        ("intersection_sum", 5, 2, {"sessions": 2}),  # t = 2: the PRF route
        ("join_group_by", 3, 2, {"sessions": 2}),
        ("sum", 3, 2, {"sessions": 2}),
    ]
    for protocol, parties, owners, params in cases:
        with pytest.raises(sessions.SessionsNotPartitionable):
            sessions.check(protocol, parties, owners, params)
    assert sessions.check("sum", 3, 2, {}) == 1


def test_a_node_offers_at_most_its_setting_its_cores_and_the_request() -> None:
    assert sessions.capacity(4, cores=2) == 4  # the operator's explicit setting
    assert sessions.capacity(0, cores=2) == 2  # 0: one per core
    assert sessions.capacity(1, cores=8) == 1
    params = {"sessions": 3}
    assert sessions.offer(8, "intersection_sum", 3, 2, params) == min(3, sessions.capacity(8))
    assert sessions.offer(8, "sum", 3, 2, params) == 1
    assert sessions.offer(8, "intersection_sum", 3, 2, {}) == 1


def test_the_coordinator_takes_the_smallest() -> None:
    assert sessions.decide(4, [4, 2, 3]) == 2
    assert sessions.decide(1, [4, 4, 4]) == 1
    assert sessions.decide(3, [0, 3, 3]) == 1  # an older node (0): one session
    assert sessions.decide(2, []) == 2


def test_the_manifest_names_the_sessions_and_their_leakage() -> None:
    from ensnif_mpc.jobs import jobspec, manifest
    from ensnif_mpc.privacy.dp import EXACT

    def spec(params: dict[str, object]) -> jobspec.JobSpec:
        return jobspec.from_dict(
            {
                "protocol": "intersection_sum",
                "helpers": ["h"],
                "inputs": [
                    {"party": "a", "dataset": "d", "key": "k", "value": "v"},
                    {"party": "b", "dataset": "e", "key": "k"},
                ],
                "params": params,
            }
        )

    definition = registry.get("intersection_sum")
    two = manifest.build(spec({"sessions": 2}), definition, ["a", "b", "h"], EXACT, "ana")
    one = manifest.build(spec({}), definition, ["a", "b", "h"], EXACT, "ana")
    assert (two["sessions"], one["sessions"]) == (2, 1)
    assert "Parallel sessions" in two["leakage"] and "Parallel sessions" not in one["leakage"]
    assert "sessions   up to 2" in manifest.render(two)

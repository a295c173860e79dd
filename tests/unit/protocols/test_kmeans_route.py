"""Which route exact k-means takes, as the manifest names it (ensnif_mpc.jobs.join_path) and
as the workers choose it (protocols.models.kmeans_ring.route): the same, from the session."""

from __future__ import annotations

from typing import Any

from ensnif_mpc.jobs import jobspec, join_path, manifest
from ensnif_mpc.privacy.dp import ReleasePlan
from protocols import registry
from protocols.models import kmeans_ring


def _manifest(owners: int, helpers: list[str]) -> dict[str, Any]:
    spec = jobspec.from_dict(
        {
            "protocol": "kmeans",
            "inputs": [
                {"party": f"owner{i}", "dataset": "rows", "features": ["a", "b"]}
                for i in range(owners)
            ],
            "helpers": helpers,
            "params": {"lower": [0, 0], "upper": [1, 1], "k": 2},
        }
    )
    order = list(spec.party_order)
    return manifest.build(spec, registry.get("kmeans"), order, ReleasePlan(exact=True), "analyst")


def test_two_owners_and_a_helper_take_the_dealer_route_and_the_manifest_says_so() -> None:
    m = _manifest(2, ["helper"])
    assert m["join_path"] == join_path.DEALER == kmeans_ring.route(3, 1, 2)
    assert "helper deals correlated randomness" in m["leakage"]
    assert "outsourced, the helper plays that owner" in m["leakage"]  # then all in MPyC
    assert "route      two-owner-dealer" in manifest.render(m)


def test_three_owners_run_all_in_mpyc() -> None:
    m = _manifest(3, [])
    assert m["join_path"] == join_path.MPC_ONLY == kmeans_ring.route(3, 1, 3)
    assert kmeans_ring.route(5, 2, 2) == join_path.MPC_ONLY
    assert "outsourced, the helper plays that owner" not in m["leakage"]

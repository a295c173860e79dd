"""DP releases end to end: noise inside MPC, each owner's ledger, refusals before any worker.

The consortium's owners allow exact release (for the other tests) but here every
job asks for DP; grocery's budget is cut to 0.3 so that exhaustion is reachable.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from ensnif_mpc.demo import sample_data
from ensnif_mpc.errors import PermissionDenied
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from tests.consortium import Consortium, OwnerPolicy
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.slow,
    # Grocery: a budget of 0.3, and no exact release of counts.
    pytest.mark.consortium(
        rows=600, owners={"grocery": OwnerPolicy(budget_rho=0.3, not_exact=("count",))}
    ),
]


def spec(protocol: str, privacy: dict[str, Any] | None) -> jobspec.JobSpec:
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": ["helper"],
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
    if privacy is not None:
        raw["privacy"] = privacy
    return jobspec.from_dict(raw)


def plaintext(env: Consortium, protocol: str) -> float:
    data = env.lc.data
    assert data is not None
    total = [
        sample_data.read_table(data.orders, {"value": "basket_total"})["value"],
        sample_data.read_table(data.deliveries, {"value": "fee"})["value"],
    ]
    if protocol == "count":
        return float(sum(t.size for t in total))
    return float(sum(t.sum() for t in total))


def budget(client: Client, dataset: str, below: float | None = None) -> float:
    """The catalog's mirror of an owner's remaining ρ (waits for a republish if asked)."""

    def remaining() -> float:
        (d,) = [d for d in client.datasets() if f"{d.party}/{d.name}" == dataset]
        return float(d.policy.remaining_rho)

    if below is None:
        return remaining()
    wait_for(lambda: remaining() < below, 10, f"{dataset}'s budget republished below {below}")
    return remaining()


def test_dp_sum_is_noisy_within_its_scale_and_charges_both_owners(consortium: Consortium) -> None:
    with consortium.client() as client:
        before = budget(client, "logistics/deliveries")
        job = client.submit(spec("sum", {"rho": 0.1}))
        final = client.wait(job.id, timeout_s=120)
        assert state_name(final) == "succeeded", final.reason
        details = client.result_details(final.id)

        sd = details.noise_sd["sum"]
        # ρ = 0.1 over Δ = k_g·500.00 + k_l·60.00 on the 2-decimal grid (k: each sample
        # dataset's rows_per_person, the most rows one customer has there):
        # σ_total ≈ √(3/2)·Δ/√(2ρ)
        k_g, k_l = (
            consortium.party_config(n).datasets[0].privacy.rows_per_person
            for n in ("grocery", "logistics")
        )
        assert min(k_g, k_l) > 1  # a customer has several orders and deliveries
        delta = k_g * 500 + k_l * 60
        assert sd == pytest.approx(math.sqrt(1.5) * delta / math.sqrt(0.2), rel=0.01)
        got, want = float(details.values["sum"]), plaintext(consortium, "sum")
        assert got != want  # noised …
        assert abs(got - want) < 6 * sd  # … on the declared scale (6σ: false alarm < 2e-9)
        assert details.interval("sum") == pytest.approx(1.959964 * sd, rel=1e-5)
        assert budget(client, "logistics/deliveries", below=before) == pytest.approx(before - 0.1)
        assert budget(client, "grocery/orders", below=0.3) == pytest.approx(0.2)


def test_over_budget_job_is_refused_before_any_worker_starts(consortium: Consortium) -> None:
    with consortium.client() as client:
        left = budget(client, "grocery/orders")
        job = client.submit(spec("count", {"rho": left + 0.05}))
        final = client.wait(job.id, timeout_s=60)

        assert state_name(final) == "rejected"
        assert final.reason_code == "budget_exhausted"
        assert "orders" in final.reason and "remains" in final.reason
        assert all(p.progress.bytes_sent == 0 for p in final.parties)
        node = consortium.nodes["logistics"].node
        assert node.ledger.state_of(job.id) in ({}, {"deliveries": "released"})
        assert budget(client, "grocery/orders") == pytest.approx(left)


def test_a_job_above_an_owners_per_job_ceiling_is_refused_at_submit(consortium: Consortium) -> None:
    with consortium.client() as client, pytest.raises(PermissionDenied) as info:
        client.submit(spec("count", {"rho": 2.0}))  # the sample policies allow ≤ 1.0
    assert info.value.reason == "rho_above_policy"
    assert "grocery/orders" in info.value.message


def test_exact_release_where_a_policy_forbids_it_is_refused_at_submit(
    consortium: Consortium,
) -> None:
    with consortium.client() as client:
        with pytest.raises(PermissionDenied) as info:
            client.submit(spec("count", {"exact": True}))
        assert info.value.reason == "exact_not_allowed"
        assert "grocery/orders" in info.value.message
        assert "logistics" not in info.value.message  # logistics allows it
        ok = client.submit(spec("sum", {"exact": True}))  # both allow an exact sum
        final = client.wait(ok.id, timeout_s=120)
        assert state_name(final) == "succeeded"
        assert float(client.result(final.id)["sum"]) == pytest.approx(plaintext(consortium, "sum"))

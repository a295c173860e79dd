"""A node's checks of a pure ε-DP (discrete Laplace) release plan, and what it charges.

The node's domain layer driven directly (as its servicer does) with real certificates
and a real SQLite store: a data owner (grocery) and the compute-only helper. A node
never runs noise it did not compute itself from the signed ε, δ and the sensitivities.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dlaplace, dp
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(mode="configs", rows=50)]

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]


def _rows_per_person(rows: int = 50, seed: int = 7) -> tuple[int, int]:
    """The sample datasets' rows_per_person, as LocalConsortium sets it from its data."""
    import tempfile
    from pathlib import Path

    from ensnif_mpc.demo import sample_data

    with tempfile.TemporaryDirectory() as tmp:
        data = sample_data.generate(Path(tmp), rows, seed)
        return (
            sample_data.most_rows_per_customer(data.orders),
            sample_data.most_rows_per_customer(data.deliveries),
        )


K_GROCERY, K_LOGISTICS = _rows_per_person()
# basket_total ≤ 500.00 and fee ≤ 60.00, in cents, times each dataset's rows per person
L1 = K_GROCERY * 50_000.0 + K_LOGISTICS * 6_000.0


@pytest.fixture(scope="module")
def env(consortium: Consortium) -> tuple[LocalConsortium, dict[str, Node]]:
    """A data owner (grocery) and the compute-only helper, as their servicers drive them."""
    return consortium.lc, {name: consortium.node(name) for name in ("grocery", "helper")}


def offer(
    env: tuple[LocalConsortium, dict[str, Node]],
    node_name: str,
    job_id: str,
    privacy: dict,
    plan: dp.ReleasePlan,
):
    """Propose a sum job signed with ``privacy`` and carrying ``plan`` to one node."""
    lc, nodes = env
    spec = jobspec.from_dict(
        {
            "protocol": "sum",
            "helpers": ["helper"],
            "privacy": privacy,
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )
    signed = jobspec.sign(spec, (lc.pki_dir / "analyst.key").read_bytes(), 1)
    return nodes[node_name].propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=signed,
            party_index=ORDER.index(node_name),
            party_order=ORDER,
            analyst_cert_pem=(lc.pki_dir / "analyst.crt").read_text(),
            bit_length=96,
            decimals=2,
            release=plan,
        ),
    )


def honest(epsilon: float = 0.3) -> dp.ReleasePlan:
    return dp.laplace_plan(epsilon, dlaplace.DEFAULT_DELTA, [(L1, 1)], 3, 1)


def tampered(plan: dp.ReleasePlan, **fields) -> dp.ReleasePlan:
    return dataclasses.replace(plan, blocks=(dataclasses.replace(plan.blocks[0], **fields),))


def test_an_honest_plan_is_approved_and_charged_epsilon_squared_over_two(env) -> None:
    _, nodes = env

    job = offer(env, "grocery", "honest", {"epsilon": 0.3}, honest())
    helper = offer(env, "helper", "honesthelper", {"epsilon": 0.3}, honest())

    assert job.state == "approved", job.reason
    assert helper.state == "approved", helper.reason
    reserved = {line.dataset: line.reserved for line in nodes["grocery"].ledger.show()}
    assert reserved["orders"] == Fraction(0.3) ** 2 / 2  # exact, not float(0.045)


@pytest.mark.parametrize("node_name", ["grocery", "helper"])
@pytest.mark.parametrize(
    "change",
    [
        {"digits": honest().blocks[0].digits - 4},  # truncated noise: |Z| < 2^(K−4)
        {"bits": 8},  # coarse coins: far from the discrete Laplace
        {"epsilon": 0.6},  # per-block ε above the job's
        {"delta": 1e-20},  # a δ bound the node does not compute
    ],
)
def test_a_node_refuses_noise_it_did_not_compute(env, node_name, change) -> None:
    job_id = f"bad{node_name}{next(iter(change))}"

    job = offer(env, node_name, job_id, {"epsilon": 0.3}, tampered(honest(), **change))

    assert job.state == "rejected"
    assert job.reason_code == "noise_miscalibrated", job.reason


def test_an_understated_l1_sensitivity_is_refused_by_the_owner(env) -> None:
    # A self-consistent plan whose L1 is below what grocery alone contributes (k·50,000).
    cheap = dp.laplace_plan(0.3, dlaplace.DEFAULT_DELTA, [(L1, 1, 1_000.0)], 3, 1)

    job = offer(env, "grocery", "cheapl1", {"epsilon": 0.3}, cheap)

    assert job.state == "rejected" and job.reason_code == "sensitivity_understated"


@pytest.mark.parametrize(
    ("job_id", "privacy", "plan"),
    [
        ("moreeps", {"epsilon": 0.3}, honest(0.6)),  # more ε than signed
        ("loosedelta", {"epsilon": 0.3, "delta": 1e-12}, honest(0.3)),  # a looser δ
        ("gaussian", {"epsilon": 0.3}, dp.plan(0.045, [(L1, 1)], 3, 1)),  # Gaussian instead
        ("laplace", {"rho": 0.045}, honest(0.3)),  # Laplace instead of the signed Gaussian
    ],
)
def test_a_release_other_than_the_signed_one_is_refused(env, job_id, privacy, plan) -> None:
    job = offer(env, "grocery", job_id, privacy, plan)

    assert job.state == "rejected" and job.reason_code == "release_mismatch", job.reason


def test_an_epsilon_above_the_owners_ceiling_is_refused(env) -> None:
    # The sample policies allow ρ ≤ 1.0 per job; ε = 1.5 costs 1.125.
    job = offer(env, "grocery", "greedy", {"epsilon": 1.5}, honest(1.5))

    assert job.state == "rejected" and job.reason_code == "rho_above_policy"
    assert "ε²/2 = 1.125" in job.reason

"""The coordinator's release plan for pure ε-DP jobs, and the dry run that shows it."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import pytest

from coordinator.validation import validate
from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import PolicyViolation
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dlaplace
from ensnif_mpc.rpc import convert

ROLES = {"grocery": "data_owner", "logistics": "data_owner", "helper": "compute"}
POLICY = PrivacyPolicy(max_rho=0.5)
DATASETS = {
    ("grocery", "orders"): DatasetSchema(
        "grocery", "orders", (Column("basket", "float", 0, 500, 2),), 6000, policy=POLICY
    ),
    ("logistics", "deliveries"): DatasetSchema(
        "logistics", "deliveries", (Column("fee", "float", 0, 60, 2),), 4000, policy=POLICY
    ),
}


def spec(protocol: str, privacy: dict) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["helper"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
            "privacy": privacy,
        }
    )


def plan_for(protocol: str, privacy: dict):
    return validate(spec(protocol, privacy), ROLES.get, lambda p, n: DATASETS.get((p, n)))


def test_a_laplace_sum_gets_epsilon_its_l1_scale_and_room_for_the_noise() -> None:
    sizing = plan_for("sum", {"epsilon": 0.5})

    plan = sizing.release
    (block,) = plan.blocks
    assert plan.laplace and plan.epsilon == 0.5 and plan.delta == dlaplace.DEFAULT_DELTA
    assert block.l1_sensitivity == 50_000 + 6_000  # one row per person at each owner, in cents
    assert block.epsilon == 0.5 and block.delta <= dlaplace.DEFAULT_DELTA
    assert plan.charge() == Fraction(1, 8)
    assert sizing.bit_length >= block.digits + 1 + 32  # |noise| < 2^K cannot wrap


def test_a_laplace_mean_splits_epsilon_between_sum_and_count() -> None:
    plan = plan_for("mean", {"epsilon": 0.4, "delta": 1e-12}).release

    sums, counts = plan.blocks
    assert sums.epsilon == counts.epsilon == 0.2
    assert sums.l1_sensitivity == 56_000 and counts.l1_sensitivity == 2
    assert sums.delta + counts.delta <= 1e-12


def test_an_epsilon_costing_more_than_an_owners_max_rho_is_refused() -> None:
    with pytest.raises(PolicyViolation, match=r"privacy\.epsilon.*ρ = ε²/2 = 0\.5") as info:
        plan_for("count", {"epsilon": 1.0 + 1e-12})  # ε²/2 just above 0.5
    assert info.value.reason == "rho_above_policy"
    assert plan_for("count", {"epsilon": 1.0}).release.charge() == Fraction(1, 2)  # at the cap


class _Catalog:
    """What the dry run asks of a client: parties and published datasets."""

    def parties(self) -> list[pb.Party]:
        return [pb.Party(name=n, role=r) for n, r in ROLES.items()]

    def datasets(self) -> list[pb.Dataset]:
        return [convert.dataset_to_pb(d) for d in DATASETS.values()]


def test_dry_run_shows_epsilon_rho_and_the_laplace_noise(capsys: pytest.CaptureFixture) -> None:
    from ensnif_mpc.cli.job_cmd import _dry_run

    _dry_run(_Catalog(), spec("sum", {"epsilon": 0.5}), as_json=True)
    body = json.loads(capsys.readouterr().out)

    assert body["mechanism"] == "laplace" and body["epsilon"] == 0.5
    assert all(c["rho"] == 0.125 for c in body["charges"])  # ε²/2
    (block,) = body["noise_blocks"]
    assert block["noise_sd"] == pytest.approx(math.sqrt(2) * 56_000 / 0.5, rel=1e-4)
    q = dlaplace.parameter(0.5, 56_000)
    assert block["ci95_half_width"] == dlaplace.half_width(q)  # the Laplace quantile
    assert block["ci95_half_width"] > 1.96 * block["noise_sd"]  # not the normal one
    _dry_run(_Catalog(), spec("sum", {"epsilon": 0.5}), as_json=False)
    text = capsys.readouterr().out
    assert "pure ε = 0.5" in text and "ρ = ε²/2 = 0.125" in text


def test_gaussian_plans_are_unchanged_by_the_new_fields() -> None:
    plan = plan_for("sum", {"rho": 0.1}).release
    assert not plan.laplace and plan.mechanism == "gaussian"
    assert plan.charge() == Fraction(0.1)
    assert replace(plan, epsilon=0.0) == plan

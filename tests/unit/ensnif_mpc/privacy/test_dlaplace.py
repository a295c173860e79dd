"""Pure ε-DP accounting: the discrete Laplace sampler's parameters, thresholds and δ bound.

The sampler itself is tested with real MPyC in tests/protocols/test_dp_laplace.py; here
its public side: exact thresholds, the δ bound against the exact total variation of the
sampled distribution, plans, charges and the parser's refusals.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Context, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.db import make_engine
from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dlaplace, dp
from ensnif_mpc.sdk.client import Result
from party_node.ledger import Ledger

CASES = [  # (ε per block, L1 sensitivity, outputs, δ)
    (1.0, 2.0, 1, 1e-10),
    (0.45, 56_000.0, 1, 1e-10),
    (0.1, 1.0, 1, 1e-10),
    (0.05, 7.0, 50, 1e-9),
    (3.0, 1.0, 4, 1e-12),
    (0.5, 1.0, 1, 1e-6),
    (20.0, 3.0, 1, 1e-30),
]


@pytest.mark.parametrize(("epsilon", "l1", "dims", "delta"), CASES)
def test_digits_and_bits_keep_the_sampler_error_within_delta(epsilon, l1, dims, delta) -> None:
    digits, bits = dlaplace.digits_and_bits(epsilon, l1, dims, delta)

    bound = dlaplace.delta_bound(epsilon, l1, dims, digits, bits)

    assert bound <= delta
    assert bound > delta / 5  # the fewest digits and bits: not far more than needed
    assert dlaplace.delta_bound(epsilon, l1, dims, digits, bits - 1) > delta  # L is minimal


def test_typical_digits_and_bits_at_the_default_delta() -> None:
    """The values quoted in ensnif_mpc/privacy/dlaplace.py and docs/privacy.md."""
    assert dlaplace.digits_and_bits(1.0, 2.0, 1, dlaplace.DEFAULT_DELTA) == (6, 39)
    assert dlaplace.digits_and_bits(0.45, 56_000.0, 1, dlaplace.DEFAULT_DELTA) == (22, 41)


def _exact_threshold_check(epsilon: float, l1: float, j: int, bits: int, t: int) -> bool:
    """T ≤ 2^L/(1 + e^x) < T + 1 at 300 digits (independent of the code under test)."""
    ctx = Context(prec=300, Emax=10**9, Emin=-(10**9))
    x = Fraction(epsilon) / Fraction(l1) * (1 << j)
    e = ctx.exp(ctx.divide(Decimal(x.numerator), Decimal(x.denominator)))
    value = ctx.divide(Decimal(1 << bits), ctx.add(1, e))
    return Decimal(t) <= value < Decimal(t + 1)


@pytest.mark.parametrize(("epsilon", "l1", "dims", "delta"), CASES)
def test_thresholds_are_the_exact_floors(epsilon, l1, dims, delta) -> None:
    digits, bits = dlaplace.digits_and_bits(epsilon, l1, dims, delta)

    thresholds = dlaplace.thresholds(epsilon, l1, digits, bits)

    assert len(thresholds) == digits
    assert all(_exact_threshold_check(epsilon, l1, j, bits, t) for j, t in enumerate(thresholds))
    assert thresholds == sorted(thresholds, reverse=True)  # higher digits are rarer


def _sampled_pmf(thresholds: list[int], bits: int) -> dict[int, float]:
    """The exact law of G̃₁ − G̃₂ given the coins' probabilities T_j / 2^L."""
    geometric = np.array([1.0])
    for j, t in enumerate(thresholds):
        p = t / 2**bits
        shifted = np.zeros(geometric.size + (1 << j))
        shifted[: geometric.size] += (1 - p) * geometric
        shifted[1 << j :] += p * geometric
        geometric = shifted
    diff = np.convolve(geometric, geometric[::-1])
    offset = geometric.size - 1
    return {k - offset: v for k, v in enumerate(diff)}


@pytest.mark.parametrize(("epsilon", "l1"), [(1.0, 2.0), (2.0, 1.0), (0.7, 3.0)])
def test_exact_total_variation_of_the_sampler_is_within_the_bound(epsilon, l1) -> None:
    """The derivation's β = 2(q^(2^K) + K·2^−L) bounds the true distance; here with a coarse
    L (10 bits), so that the distance is large enough to measure in floating point."""
    digits, bits = 4, 10
    sampled = _sampled_pmf(dlaplace.thresholds(epsilon, l1, digits, bits), bits)
    q = dlaplace.parameter(epsilon, l1)
    support = np.arange(-400, 401)
    ideal = dict(zip(support.tolist(), dlaplace.pmf(q, support), strict=True))

    tv = 0.5 * sum(abs(sampled.get(z, 0.0) - ideal[z]) for z in ideal)
    beta = 2 * (q ** (2**digits) + digits * 2.0**-bits)

    assert 0 < tv <= beta


def test_laplace_plan_splits_epsilon_and_delta_over_blocks() -> None:
    plan = dp.laplace_plan(0.3, 1e-10, [(56_000.0, 1), (2.0, 1)], 3, 1)

    assert plan.laplace and plan.epsilon == 0.3 and plan.delta == 1e-10
    assert sum(Fraction(b.epsilon) for b in plan.blocks) <= Fraction(0.3)
    assert all(b.delta <= 1e-10 / 2 for b in plan.blocks)
    assert plan.charge() == Fraction(0.3) ** 2 / 2  # ε²/2 of the float ε, exactly
    assert plan.headroom_bits() == max(b.digits for b in plan.blocks) + 1
    sums, counts = plan.output_sigmas()
    assert sums == pytest.approx(math.sqrt(2) * 56_000 / 0.15, rel=1e-4)  # ≈ √2·Δ₁/ε
    assert counts == pytest.approx(dlaplace.noise_sd(0.15, 2.0))
    assert dp.ReleasePlan.from_dict(plan.to_dict()) == plan


def test_l1_sensitivity_defaults_to_sqrt_dims_times_l2_and_a_declared_one_wins() -> None:
    assert dlaplace.l1_bound(40.0, 1) == 40.0
    assert dlaplace.l1_bound(40.0, 9) == 120.0  # √9 · 40
    assert dlaplace.l1_bound(10.0, 2) == 14.0  # ⌊√2 · 10⌋: an integer change is ≤ 14.14
    plan = dp.laplace_plan(1.0, 1e-10, [(10.0, 4, 10.0)], 3, 1)
    assert plan.blocks[0].l1_sensitivity == 10.0


def test_a_block_without_l1_indexes_as_before_and_gets_the_default_l1() -> None:
    block = dp.BlockSpec(10.0, 4)

    assert (block[0], block[1], block[2]) == (10.0, 4, None) and len(block) > 2
    assert dlaplace.l1_bound(block[0], block[1], block[2] if len(block) > 2 else None) == 20.0
    assert repr(block) == "(10.0, 4)" and repr(dp.BlockSpec(10.0, 4, 5.0)) == "(10.0, 4, 5.0)"


def test_laplace_plan_reads_a_block_spec_as_the_plain_tuple_it_replaces() -> None:
    for spec, plain in [
        (dp.BlockSpec(10.0, 4), (10.0, 4)),
        (dp.BlockSpec(10.0, 4, 6.0), (10.0, 4, 6.0)),
    ]:
        assert dp.laplace_plan(1.0, 1e-10, [spec], 3, 1) == dp.laplace_plan(
            1.0, 1e-10, [plain], 3, 1
        )
        assert dp.plan(0.5, [spec], 3, 1) == dp.plan(0.5, [plain], 3, 1)


def test_epsilon_split_never_adds_up_to_more_than_epsilon() -> None:
    for epsilon in (0.1, 0.3, 1 / 3, 0.7, 2.9):
        for blocks in range(1, 8):
            assert Fraction(dlaplace.split(epsilon, blocks)) * blocks <= Fraction(epsilon)


def test_ledger_charges_epsilon_squared_over_two_exactly(tmp_path: Path) -> None:
    ledger = Ledger(make_engine(f"sqlite:///{tmp_path / 'node.db'}"), {"orders": Fraction(1)})
    plan = dp.laplace_plan(0.1, 1e-10, [(40.0, 1)], 3, 1)

    for job in ("a", "b", "c"):
        ledger.reserve(job, {"orders": plan.charge()})
        ledger.commit(job)

    (line,) = ledger.show()
    assert line.spent == 3 * Fraction(0.1) ** 2 / 2  # no float rounding, however many jobs


def test_noise_sd_and_the_discrete_interval() -> None:
    q = dlaplace.parameter(1.0, 1.0)
    assert dlaplace.noise_sd(1.0, 1.0) == pytest.approx(math.sqrt(2 * q) / (1 - q))
    assert dlaplace.q_from_sd(dlaplace.noise_sd(0.2, 7.0)) == pytest.approx(math.exp(-0.2 / 7))
    for epsilon, l1 in [(1.0, 1.0), (0.5, 2.0), (0.01, 40.0)]:
        q = dlaplace.parameter(epsilon, l1)
        h = dlaplace.half_width(q, 0.95)
        inside = 1 - 2 * q ** (h + 1) / (1 + q)  # P(|Z| ≤ h)
        assert inside >= 0.95 > 1 - 2 * q**h / (1 + q)  # h is the smallest that covers 95 %
    # Not the normal quantile: for a wide Laplace ±ln(20)/√2 sd ≈ 2.12 sd, not 1.96 sd.
    wide = dlaplace.half_width(dlaplace.parameter(0.001, 1.0), 0.95)
    assert wide / dlaplace.noise_sd(0.001, 1.0) == pytest.approx(math.log(20) / math.sqrt(2), 1e-3)


def test_the_analysts_interval_uses_the_laplace_quantile() -> None:
    sd = dlaplace.noise_sd(0.5, 2.0)  # a count: grid step 1
    result = Result({"count": Fraction(10)}, {"count": sd}, "laplace", {"count": 1.0})

    assert result.interval("count") == dlaplace.half_width(dlaplace.parameter(0.5, 2.0))
    gaussian = Result({"count": Fraction(10)}, {"count": sd})
    assert gaussian.interval("count") == pytest.approx(1.959964 * sd, rel=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, -math.inf, True, "0.5", 51.0])
def test_a_bad_epsilon_is_refused_naming_the_field(bad) -> None:
    with pytest.raises(InvalidJobSpec, match=r"privacy\.epsilon"):
        jobspec.parse_privacy({"mechanism": "laplace", "epsilon": bad})


@pytest.mark.parametrize("bad", [0, 1e-3, math.nan, math.inf, -1e-9, 1e-40, "1e-9"])
def test_a_bad_delta_is_refused_naming_the_field(bad) -> None:
    with pytest.raises(InvalidJobSpec, match=r"privacy\.delta"):
        jobspec.parse_privacy({"epsilon": 1.0, "delta": bad})


def test_privacy_table_for_laplace_round_trips_and_refuses_mixtures() -> None:
    parsed = jobspec.parse_privacy({"epsilon": 0.5, "delta": 1e-12})
    assert parsed == jobspec.Privacy(mechanism="laplace", epsilon=0.5, delta=1e-12)
    assert jobspec.parse_privacy(parsed.to_dict()) == parsed
    for raw, field in [
        ({"mechanism": "laplace"}, "privacy.epsilon"),
        ({"epsilon": 0.5, "rho": 0.1}, "privacy.rho"),
        ({"epsilon": 0.5, "exact": True}, "privacy.exact"),
        ({"mechanism": "gaussian", "epsilon": 0.5}, "privacy.epsilon"),
        ({"rho": 0.1, "delta": 1e-9}, "privacy.delta"),
    ]:
        with pytest.raises(InvalidJobSpec, match=field.replace(".", r"\.")):
            jobspec.parse_privacy(raw)


def test_too_small_an_epsilon_for_the_sensitivity_is_refused() -> None:
    with pytest.raises(InvalidJobSpec, match=r"privacy\.epsilon.*too small"):
        dp.laplace_plan(1e-12, 1e-10, [(1e9, 1)], 3, 1)


def test_workers_of_a_laplace_job_run_mpyc_at_statistical_security_60() -> None:
    from ensnif_mpc.jobs.worker_session import WorkerSession
    from protocols.worker import mpyc_argv

    plan = dp.laplace_plan(1.0, 1e-10, [(40.0, 1)], 3, 1)
    session = WorkerSession("j", "sum", {}, 0, 1, ["a:1", "b:2", "c:3"], [0, 1], 64, 0, "")

    laplace = mpyc_argv(dataclasses.replace(session, release=plan.to_dict()))
    gaussian = mpyc_argv(
        dataclasses.replace(session, release=dp.plan(0.1, [(40.0, 1)], 3, 1).to_dict())
    )

    assert laplace[laplace.index("-K") + 1] == "60"
    assert gaussian[gaussian.index("-K") + 1] == str(session.sec_param)

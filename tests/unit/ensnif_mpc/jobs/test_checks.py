"""The checks coordinator and nodes share, on an in-test protocol and plain policies."""

from __future__ import annotations

import dataclasses

import pytest

from ensnif_mpc.data.schema import Column, PrivacyPolicy
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotEnoughParties,
    PolicyViolation,
    UnknownColumn,
)
from ensnif_mpc.jobs import checks
from ensnif_mpc.jobs.protocol import VALUE, ProtocolDef
from ensnif_mpc.privacy import dp
from ensnif_mpc.privacy.dp import EXACT


def _sum_blocks(owners, params):
    return [(float(sum(k * b for k, b in owners)), 1)]


SUM = ProtocolDef(
    name="sum",
    family="test",
    summary="a sum",
    inputs="one value column per owner",
    outputs=("sum",),
    leakage="nothing",
    program="tests:none",
    reference=lambda tables, params: {},
    roles=((VALUE,),),
    dp_sensitivity=_sum_blocks,
)
COLUMNS = (Column("basket_total", "float", 0, 500, 2), Column("store", "string"))
STRICT = PrivacyPolicy(max_rho=0.2, exact_protocols=())
OPEN = PrivacyPolicy(max_rho=1.0, exact_protocols=("sum",))


@pytest.mark.parametrize(("n", "t"), [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (7, 3)])
def test_honest_majority_threshold_is_the_largest_t_below_half(n, t):
    assert checks.honest_majority_threshold(n) == t


def test_a_two_party_session_is_refused_naming_the_helper():
    with pytest.raises(NotEnoughParties, match="t = 0.*helper"):
        checks.check_session_size(2)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_sessions_of_other_sizes_pass(n):
    checks.check_session_size(n)


def test_input_columns_come_back_by_role():
    read = checks.check_input_columns(SUM, 0, {"value": "basket_total"}, COLUMNS, "g/orders")

    assert read == {"value": (COLUMNS[0],)}


def test_an_undeclared_column_is_refused_listing_the_declared_ones():
    with pytest.raises(UnknownColumn) as info:
        checks.check_input_columns(SUM, 1, {"value": "tip"}, COLUMNS, "g/orders")

    assert info.value.message.startswith("inputs[1].column: dataset g/orders has no column 'tip'")
    assert "columns: basket_total, store" in info.value.message


def test_a_column_of_the_wrong_type_is_refused():
    with pytest.raises(ColumnTypeMismatch, match=r"inputs\[0\]\.column: 'store' is of type string"):
        checks.check_input_columns(SUM, 0, {"value": "store"}, COLUMNS, "g/orders")


def test_join_keys_of_two_types_are_refused():
    with pytest.raises(ColumnTypeMismatch) as info:
        checks.check_key_types({"a/x.k": "int", "b/y.k": "string"})

    assert info.value.reason == "key_type_mismatch"


def test_a_column_that_outgrew_the_session_is_catalog_stale():
    value = Column("v", "int", 0, 1000)

    checks.check_fits(1000, value, 0, 32, EXACT, "orders.v")
    with pytest.raises(FailedPrecondition) as info:
        checks.check_fits(10**9, value, 0, 32, EXACT, "orders.v")

    assert info.value.reason == "catalog_stale"


def test_exact_release_names_every_owner_that_refuses_it():
    owners = [("g/orders", STRICT), ("l/deliveries", OPEN), ("p/sales", STRICT)]

    with pytest.raises(PolicyViolation, match="g/orders, p/sales does not allow") as info:
        checks.check_release_policy(SUM, EXACT, owners)

    assert info.value.reason == "exact_not_allowed"


def test_exact_release_passes_where_every_owner_allows_it():
    checks.check_release_policy(SUM, EXACT, [("l/deliveries", OPEN)])


def test_a_protocol_without_dp_cannot_be_released_with_noise():
    exact_only = dataclasses.replace(SUM, dp_sensitivity=None)

    with pytest.raises(FailedPrecondition) as info:
        checks.check_release_policy(exact_only, dp.plan(0.1, [(1.0, 1)], 3, 1), [])

    assert info.value.reason == "dp_unavailable"


def test_rho_above_an_owners_ceiling_is_refused():
    plan = dp.plan(0.5, [(1.0, 1)], 3, 1)

    with pytest.raises(PolicyViolation, match=r"privacy\.rho: 0\.5 .* of g/orders") as info:
        checks.check_release_policy(SUM, plan, [("g/orders", STRICT), ("l/d", OPEN)])

    assert info.value.reason == "rho_above_policy"


def test_epsilon_is_charged_as_half_its_square_against_the_ceiling():
    within = dp.laplace_plan(0.6, 1e-10, [(1.0, 1)], 3, 1)  # ρ = 0.18
    above = dp.laplace_plan(0.7, 1e-10, [(1.0, 1)], 3, 1)  # ρ = 0.245

    checks.check_release_policy(SUM, within, [("g/orders", STRICT)])
    with pytest.raises(PolicyViolation, match="ε²/2") as info:
        checks.check_release_policy(SUM, above, [("g/orders", STRICT)])

    assert info.value.reason == "rho_above_policy"


def test_a_plan_for_another_session_size_is_refused():
    with pytest.raises(InvalidArgument, match="another session size"):
        checks.check_plan_session(dp.plan(0.1, [(1.0, 1)], 3, 0), 3)


def test_a_sensitivity_below_one_owners_own_contribution_is_refused():
    plan = dp.plan(0.1, [(10.0, 1)], 3, 1)

    checks.check_sensitivity(SUM, plan, (1, 10), {})
    with pytest.raises(PolicyViolation) as info:
        checks.check_sensitivity(SUM, plan, (2, 10), {})

    assert info.value.reason == "sensitivity_understated"


def test_blocks_declared_with_an_empty_l1_are_read_by_position():
    # A protocol may declare (L2, dims, L1 or None): the L1 default then applies.
    with_l1 = dataclasses.replace(SUM, dp_sensitivity=lambda owners, params: [(10.0, 1, None)])

    checks.check_sensitivity(with_l1, dp.laplace_plan(0.5, 1e-10, [(10.0, 1)], 3, 1), (1, 10), {})


def test_the_calibrated_plan_passes_and_a_cheaper_one_is_refused():
    plan = dp.plan(0.1, [(10.0, 1)], 3, 1)
    checks.check_calibration(plan, 3)
    cheap = dataclasses.replace(
        plan, blocks=(dataclasses.replace(plan.blocks[0], sigma_share=1.0),)
    )

    with pytest.raises(PolicyViolation) as info:
        checks.check_calibration(cheap, 3)

    assert info.value.reason == "noise_miscalibrated"


def test_a_laplace_plan_is_recomputed_exactly():
    plan = dp.laplace_plan(0.5, 1e-10, [(10.0, 1)], 3, 1)
    checks.check_calibration(plan, 3)
    other = dataclasses.replace(plan, blocks=(dataclasses.replace(plan.blocks[0], digits=1),))

    with pytest.raises(PolicyViolation) as info:
        checks.check_calibration(other, 3)

    assert info.value.reason == "noise_miscalibrated"


def test_the_grid_bound_rounds_up():
    assert checks.grid_bound(1.005, 2) == 101
    assert checks.contribution(OPEN, {}, 2) == (1, 0)

"""Job validation against an in-test catalog, and secure-type sizing."""

from __future__ import annotations

import pytest

from coordinator.validation import Sizing, honest_majority_threshold, sizing_for, validate
from ensnif_mpc.data.schema import Column, DatasetSchema
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    InvalidJobSpec,
    NotEnoughParties,
    UnknownColumn,
    UnknownDataset,
    UnknownParty,
    UnknownProtocol,
)
from ensnif_mpc.jobs import jobspec

ROLES = {"grocery": "data_owner", "pharmacy": "data_owner", "helper": "compute"}
DATASETS = {
    ("grocery", "orders"): DatasetSchema(
        "grocery",
        "orders",
        (Column("basket_total", "float", 0, 500, 2), Column("store", "string")),
        row_count=10**9,
    ),
    ("pharmacy", "sales"): DatasetSchema(
        "pharmacy",
        "sales",
        (Column("amount", "int", -100, 1000),),
        row_count=10**6,
    ),
}


def party_role(name):
    return ROLES.get(name)


def dataset(party, name):
    return DATASETS.get((party, name))


def _spec(protocol="sum", inputs=None, helpers=("helper",), params=None):
    inputs = (
        inputs
        if inputs is not None
        else [
            ("grocery", "orders", "basket_total"),
            ("pharmacy", "sales", "amount"),
        ]
    )
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "inputs": [{"party": p, "dataset": d, "column": c} for p, d, c in inputs],
            "helpers": list(helpers),
            "params": params or {},
        }
    )


def test_three_parties_pass_and_get_a_sizing():
    sizing = validate(_spec(), party_role, dataset)

    # grocery 10**9 rows * 500 * 10**2 + pharmacy 10**6 rows * 1000 * 10**2 = 5.01e13,
    # plus room for the DP noise (the job has no [privacy]: the owners' default ρ applies)
    release = sizing.release
    assert not release.exact and release.rho == 0.1  # PrivacyPolicy's default
    (block,) = release.blocks
    assert block.l2_sensitivity == 500 * 100 + 1000 * 100  # one row per person at each owner
    assert sizing.bit_length == (50_100_000_000_000).bit_length() + 2 + release.headroom_bits()
    assert sizing.decimals == 2


def test_two_owners_and_one_helper_with_filter_params_pass():
    sizing = validate(_spec(protocol="mean", params={"min": 10, "max": 20}), party_role, dataset)

    assert sizing.decimals == 2


def test_unknown_protocol_is_refused():
    with pytest.raises(UnknownProtocol, match="'median'"):
        validate(_spec(protocol="median"), party_role, dataset)


def test_unknown_party_is_refused_naming_the_input():
    spec = _spec(inputs=[("bakery", "orders", "x"), ("grocery", "orders", "basket_total")])

    with pytest.raises(UnknownParty, match=r"inputs\[0\]\.party: no party 'bakery'"):
        validate(spec, party_role, dataset)


def test_unknown_helper_is_refused_naming_the_helper():
    with pytest.raises(UnknownParty, match=r"helpers\[0\]: no party 'ghost'"):
        validate(_spec(helpers=("ghost",)), party_role, dataset)


def test_unknown_dataset_is_refused_naming_the_input():
    spec = _spec(inputs=[("grocery", "orders", "basket_total"), ("pharmacy", "stock", "amount")])

    with pytest.raises(UnknownDataset, match=r"inputs\[1\]\.dataset: .*'pharmacy'.*'stock'"):
        validate(spec, party_role, dataset)


def test_unknown_column_is_refused_listing_the_columns():
    spec = _spec(inputs=[("grocery", "orders", "tip"), ("pharmacy", "sales", "amount")])

    with pytest.raises(UnknownColumn) as info:
        validate(spec, party_role, dataset)

    assert info.value.message.startswith("inputs[0].column:")
    assert "columns: basket_total, store" in info.value.message


def test_string_column_to_sum_is_a_type_mismatch():
    spec = _spec(inputs=[("grocery", "orders", "store"), ("pharmacy", "sales", "amount")])

    with pytest.raises(ColumnTypeMismatch, match=r"inputs\[0\]\.column: 'store' is of type string"):
        validate(spec, party_role, dataset)


def test_exactly_two_parties_are_refused_mentioning_a_helper():
    spec = _spec(inputs=[("grocery", "orders", "basket_total")], helpers=("helper",))

    with pytest.raises(NotEnoughParties) as info:
        validate(spec, party_role, dataset)

    assert "helper" in info.value.message
    assert "t = 0" in info.value.message


def test_two_owners_without_a_helper_are_refused():
    with pytest.raises(NotEnoughParties):
        validate(_spec(helpers=()), party_role, dataset)


def test_a_single_owner_alone_passes():
    spec = _spec(inputs=[("pharmacy", "sales", "amount")], helpers=())

    assert validate(spec, party_role, dataset).decimals == 0


def test_unknown_param_is_refused():
    with pytest.raises(InvalidJobSpec, match=r"params\.median"):
        validate(_spec(params={"median": 3}), party_role, dataset)


def test_bad_param_type_is_refused():
    with pytest.raises(InvalidJobSpec, match=r"params\.min: expected a finite number"):
        validate(_spec(params={"min": "ten"}), party_role, dataset)


# -- sizing ------------------------------------------------------------------


def test_sizing_has_a_floor_of_32_bits():
    assert sizing_for([(10, 1.0, 0)], 0) == Sizing(32, 0)


def test_sizing_for_an_empty_dataset_has_the_floor():
    assert sizing_for([(0, 0.0, 0)], 0).bit_length == 32


def test_sizing_bit_length_grows_with_rows():
    small = sizing_for([(10**6, 1000.0, 0)], 0)
    large = sizing_for([(10**12, 1000.0, 0)], 0)

    assert large.bit_length > small.bit_length


def test_sizing_bit_length_grows_with_bounds():
    small = sizing_for([(10**9, 10.0, 0)], 0)
    large = sizing_for([(10**9, 10.0**8, 0)], 0)

    assert large.bit_length > small.bit_length


def test_sizing_bit_length_grows_with_decimals():
    small = sizing_for([(10**9, 1000.0, 0)], 0)
    large = sizing_for([(10**9, 1000.0, 0)], 6)

    assert large.bit_length > small.bit_length


def test_sizing_is_bit_length_of_the_largest_sum_plus_two():
    # 2**40 rows * 2**10 = 2**50 (bit length 51), plus sign and headroom.
    assert sizing_for([(2**40, 1024.0, 0)], 0).bit_length == 53


def test_sizing_adds_up_all_owners():
    one = sizing_for([(2**40, 1024.0, 0)], 0)
    two = sizing_for([(2**40, 1024.0, 0), (2**40, 1024.0, 0)], 0)

    assert two.bit_length == one.bit_length + 1


def test_sizing_as_dict():
    out = Sizing(64, 2).as_dict()
    assert out["bit_length"] == 64 and out["decimals"] == 2 and out["release"]["exact"] is True


@pytest.mark.parametrize(("n", "t"), [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2)])
def test_honest_majority_threshold(n, t):
    assert honest_majority_threshold(n) == t

"""Validation of multi-column inputs (roles) and of the private-join protocols' bad inputs."""

from __future__ import annotations

import pytest

from coordinator.validation import validate
from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import (
    ColumnTypeMismatch,
    InvalidJobSpec,
    NotEnoughParties,
    UnknownColumn,
)
from ensnif_mpc.jobs import jobspec

PARTIES = {
    "grocery": "data_owner",
    "logistics": "data_owner",
    "bank": "data_owner",
    "helper": "compute",
}
DATASETS = {
    ("grocery", "orders"): DatasetSchema(
        "grocery",
        "orders",
        (
            Column("customer_id", "string"),
            Column("customer_no", "int", 0, 10**9),
            Column("basket_total", "float", 0, 500, 2),
        ),
        row_count=1000,
        policy=PrivacyPolicy(exact_protocols=("intersection_sum", "intersection_size")),
    ),
    ("logistics", "deliveries"): DatasetSchema(
        "logistics",
        "deliveries",
        (
            Column("customer_id", "string"),
            Column("zip", "string"),
            Column("delivery_minutes", "int", 5, 240),
        ),
        row_count=2000,
        policy=PrivacyPolicy(exact_protocols=("intersection_sum", "intersection_size")),
    ),
    ("bank", "accounts"): DatasetSchema(
        "bank", "accounts", (Column("customer_id", "string"),), row_count=10
    ),
}


def check(raw: dict) -> object:
    """Joins have no DP release yet: these jobs ask for exact release, which needs policies."""
    spec = jobspec.from_dict({"helpers": ["helper"], "privacy": {"exact": True}, **raw})
    return validate(spec, PARTIES.get, lambda p, d: DATASETS.get((p, d)))


def join_inputs(a: dict, b: dict) -> list[dict]:
    return [
        {"party": "grocery", "dataset": "orders", **a},
        {"party": "logistics", "dataset": "deliveries", **b},
    ]


def test_intersection_sum_sizes_the_session_from_the_value_column() -> None:
    sizing = check(
        {
            "protocol": "intersection_sum",
            "inputs": join_inputs(
                {"key": "customer_id", "value": "basket_total"}, {"key": "customer_id"}
            ),
        }
    )
    # 1000 rows × 500.00 → 50,000,000 on the 2-decimal scale: 26 bits + 2 of headroom → 32 floor
    assert sizing.decimals == 2
    assert sizing.bit_length == 32


def test_intersection_size_without_value_columns_sizes_from_row_counts() -> None:
    sizing = check(
        {
            "protocol": "intersection_size",
            "inputs": join_inputs({"key": "customer_id"}, {"key": "customer_id"}),
        }
    )
    assert sizing.decimals == 0 and sizing.bit_length >= 32


def test_join_keys_of_different_types_are_refused_naming_both_columns() -> None:
    with pytest.raises(ColumnTypeMismatch) as info:
        check(
            {
                "protocol": "intersection_size",
                "inputs": join_inputs({"key": "customer_no"}, {"key": "customer_id"}),
            }
        )
    assert info.value.reason == "key_type_mismatch"
    assert "grocery/orders.customer_no (int)" in info.value.message
    assert "logistics/deliveries.customer_id (string)" in info.value.message


def test_a_role_the_protocol_does_not_take_at_that_position_is_refused() -> None:
    with pytest.raises(InvalidJobSpec, match=r"inputs\[1\]\.column: protocol 'intersection_sum'"):
        check(
            {
                "protocol": "intersection_sum",
                "inputs": join_inputs(
                    {"key": "customer_id", "value": "basket_total"},
                    {"key": "customer_id", "value": "delivery_minutes"},
                ),
            }
        )


def test_a_missing_required_role_names_what_it_is_for() -> None:
    with pytest.raises(
        InvalidJobSpec, match=r"inputs\[0\]\.key: protocol 'intersection_sum' needs"
    ):
        check(
            {
                "protocol": "intersection_sum",
                "inputs": join_inputs({"value": "basket_total"}, {"key": "customer_id"}),
            }
        )


def test_a_numeric_role_on_a_string_column_is_a_type_mismatch() -> None:
    with pytest.raises(
        ColumnTypeMismatch, match=r"inputs\[0\]\.column: 'customer_id' is of type string"
    ):
        check(
            {
                "protocol": "intersection_sum",
                "inputs": join_inputs(
                    {"key": "customer_id", "value": "customer_id"}, {"key": "customer_id"}
                ),
            }
        )


def test_a_threshold_on_a_column_the_party_does_not_own_is_unknown_there() -> None:
    # delivery_minutes belongs to logistics; grocery cannot threshold it.
    with pytest.raises(UnknownColumn, match="an owner can only use its own columns"):
        check(
            {
                "protocol": "join_group_by",
                "inputs": join_inputs(
                    {"key": "customer_id", "filter": "delivery_minutes"},
                    {"key": "customer_id", "group": "zip", "value": "delivery_minutes"},
                ),
                "params": {"groups": ["10115"], "threshold": 10},
            }
        )


def test_a_threshold_without_a_filter_column_is_refused() -> None:
    with pytest.raises(InvalidJobSpec, match=r"params\.threshold: needs a `filter` column"):
        check(
            {
                "protocol": "join_group_by",
                "inputs": join_inputs(
                    {"key": "customer_id"},
                    {"key": "customer_id", "group": "zip", "value": "delivery_minutes"},
                ),
                "params": {"groups": ["10115"], "threshold": 10},
            }
        )


def test_group_by_join_needs_its_group_list() -> None:
    with pytest.raises(InvalidJobSpec, match=r"params\.groups: required"):
        check(
            {
                "protocol": "join_group_by",
                "inputs": join_inputs(
                    {"key": "customer_id"},
                    {"key": "customer_id", "group": "zip", "value": "delivery_minutes"},
                ),
            }
        )


@pytest.mark.parametrize("groups", [[], ["a", "a"], [1.5], "10115"])
def test_group_lists_must_be_distinct_labels(groups) -> None:
    with pytest.raises(
        InvalidJobSpec, match=r"params\.groups: expected a non-empty list of distinct"
    ):
        check(
            {
                "protocol": "join_group_by",
                "inputs": join_inputs(
                    {"key": "customer_id"},
                    {"key": "customer_id", "group": "zip", "value": "delivery_minutes"},
                ),
                "params": {"groups": groups},
            }
        )


def test_a_join_takes_exactly_two_owners() -> None:
    inputs = join_inputs({"key": "customer_id"}, {"key": "customer_id"})
    inputs.append({"party": "bank", "dataset": "accounts", "key": "customer_id"})
    with pytest.raises(NotEnoughParties, match="at most 2 data owners") as info:
        check({"protocol": "intersection_size", "inputs": inputs})
    assert info.value.reason == "too_many_parties"


def test_correlation_per_key_must_be_mean_or_sum() -> None:
    with pytest.raises(InvalidJobSpec, match=r"params\.per_key: expected 'mean' or 'sum'"):
        check(
            {
                "protocol": "join_correlation",
                "inputs": join_inputs(
                    {"key": "customer_id", "value": "basket_total"},
                    {"key": "customer_id", "value": "delivery_minutes"},
                ),
                "params": {"per_key": "median"},
            }
        )


def test_job_spec_roles_round_trip_through_the_proto() -> None:
    from ensnif_mpc.rpc.convert import spec_from_pb, spec_to_pb

    spec = jobspec.from_dict(
        {
            "protocol": "join_group_by",
            "helpers": ["helper"],
            "inputs": join_inputs(
                {"key": "customer_id", "filter": "basket_total"},
                {"key": "customer_id", "group": "zip", "value": "delivery_minutes"},
            ),
            "params": {"groups": ["10115"], "threshold": 150},
        }
    )
    back = spec_from_pb(spec_to_pb(spec))
    assert back == spec
    assert back.inputs[1].columns == {
        "key": "customer_id",
        "group": "zip",
        "value": "delivery_minutes",
    }


def test_an_input_needs_at_least_one_column() -> None:
    with pytest.raises(InvalidJobSpec, match=r"inputs\[0\]\.column: missing"):
        jobspec.from_dict(
            {"protocol": "sum", "inputs": [{"party": "grocery", "dataset": "orders"}]}
        )


def test_column_and_value_together_are_ambiguous() -> None:
    with pytest.raises(InvalidJobSpec, match="not both"):
        jobspec.from_dict(
            {
                "protocol": "sum",
                "inputs": [
                    {"party": "g", "dataset": "o", "column": "a", "value": "b"},
                ],
            }
        )


def test_exact_release_needs_every_owners_policy() -> None:
    from ensnif_mpc.errors import PolicyViolation

    with pytest.raises(PolicyViolation, match="grocery/orders, logistics/deliveries") as info:
        check(
            {
                "protocol": "join_correlation",
                "inputs": join_inputs(
                    {"key": "customer_id", "value": "basket_total"},
                    {"key": "customer_id", "value": "delivery_minutes"},
                ),
            }
        )
    assert info.value.reason == "exact_not_allowed"


def test_a_protocol_without_a_dp_release_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from ensnif_mpc.errors import FailedPrecondition
    from protocols import registry

    # Every protocol in the registry has a DP release; take it away from one.
    exact_only = dataclasses.replace(registry.get("intersection_size"), dp_sensitivity=None)
    monkeypatch.setitem(registry.catalog(), "intersection_size", exact_only)
    spec = jobspec.from_dict(
        {
            "protocol": "intersection_size",
            "helpers": ["helper"],
            "inputs": join_inputs({"key": "customer_id"}, {"key": "customer_id"}),
        }
    )
    with pytest.raises(FailedPrecondition, match="no differentially private release yet") as info:
        validate(spec, PARTIES.get, lambda p, d: DATASETS.get((p, d)))
    assert info.value.reason == "dp_unavailable"

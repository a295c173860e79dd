"""The protocol registry: parameter checks and the plaintext references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ensnif_mpc.errors import InvalidJobSpec, UnknownProtocol
from protocols import registry
from protocols.registry import BlockSpec, Param, ProtocolDef

# Two owners: [1, 5, 10] and [20]; hand-computed expectations below.
COLS = [{"value": np.array([1.0, 5.0, 10.0])}, {"value": np.array([20.0])}]


def _custom(*params: Param) -> ProtocolDef:
    return ProtocolDef(
        name="custom",
        family="test",
        summary="",
        inputs="",
        outputs=("x",),
        leakage="",
        program="none:none",
        reference=lambda c, p: {},
        parameters=params,
    )


def test_get_returns_the_named_protocol():
    assert registry.get("mean").name == "mean"


def test_get_unknown_protocol_lists_the_known_ones():
    with pytest.raises(UnknownProtocol, match="count, .*mean, .*sum"):
        registry.get("median")


def test_registry_does_not_import_mpyc():
    import sys

    assert "mpyc" not in sys.modules


@pytest.mark.parametrize("name", sorted(registry.catalog()))
def test_every_protocol_names_its_outputs_and_leakage(name):
    d = registry.get(name)

    assert d.outputs
    if d.family == "aggregates":
        assert d.outputs == (name,)
    assert len(d.leakage) > 40
    assert d.program.startswith("protocols.")
    module, func = d.program.split(":")
    assert module.removeprefix("protocols.").split(".")[0] in {
        "aggregates",
        *(m.split(".")[1] for m in registry.FAMILY_MODULES),
    }


def test_every_dp_release_declares_its_blocks_as_block_specs():
    params = {"groups": ["a", "b"], "edges": [0, 1, 2], "lower": 0, "upper": 9, "step": 1}
    for d in registry.catalog().values():
        if d.dp_sensitivity is None:
            continue
        owners = [(1, 10)] * max(2, d.min_data_owners)
        # A protocol's own example knows its shape (e.g. one bound per feature).
        given = {**params, **(d.examples[0].params if d.examples else {})}
        blocks = d.dp_sensitivity(owners[: d.max_data_owners], given)
        assert blocks and all(isinstance(b, BlockSpec) for b in blocks), d.name


def test_one_owner_of_a_positional_release_gets_the_smaller_block_at_either_position():
    def blocks(owners, params):
        (a, _), (b, _) = owners
        return [BlockSpec(1.0 + 2 * a + b, 1, 3.0 + a + 2 * b), BlockSpec(1.0 + a, 2)]

    alone = registry.positional(blocks)([(5, 0)], {})

    assert alone == [BlockSpec(6.0, 1, 8.0), BlockSpec(1.0, 2)]
    assert registry.positional(blocks)([(5, 0), (1, 0)], {}) == blocks([(5, 0), (1, 0)], {})


def test_a_block_keeps_its_l1_only_when_both_positions_declare_one():
    def blocks(owners, params):
        (a, _), _ = owners
        return [BlockSpec(1.0, 1, 2.0) if a else BlockSpec(1.0, 1)]

    assert registry.positional(blocks)([(1, 0)], {}) == [BlockSpec(1.0, 1)]


# -- check_params ------------------------------------------------------------


def test_check_params_refuses_an_unknown_parameter():
    with pytest.raises(InvalidJobSpec, match=r"params\.median: protocol 'sum' has no such"):
        registry.get("sum").check_params({"median": 1})


def test_check_params_refuses_the_wrong_type():
    with pytest.raises(InvalidJobSpec, match=r"params\.min: expected a finite number"):
        registry.get("sum").check_params({"min": "10"})


def test_check_params_refuses_a_bool_as_a_number():
    with pytest.raises(InvalidJobSpec, match=r"params\.max"):
        registry.get("count").check_params({"max": True})


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_check_params_refuses_a_non_finite_number(value):
    with pytest.raises(InvalidJobSpec, match=r"params\.min"):
        registry.get("mean").check_params({"min": value})


def test_check_params_refuses_min_above_max():
    with pytest.raises(InvalidJobSpec, match=r"params\.min \(10\) is greater than params\.max"):
        registry.get("mean").check_params({"min": 10, "max": 5})


def test_check_params_accepts_min_equal_to_max():
    assert registry.get("mean").check_params({"min": 5, "max": 5.0}) == {"min": 5, "max": 5.0}


def test_check_params_accepts_no_parameters():
    assert registry.get("count").check_params({}) == {}


def test_check_params_requires_a_required_parameter():
    proto = _custom(Param("k", "int", "rank", required=True))

    with pytest.raises(InvalidJobSpec, match=r"params\.k: required by protocol 'custom'"):
        proto.check_params({})


def test_check_params_fills_in_defaults():
    proto = _custom(Param("k", "int", "rank", default=3))

    assert proto.check_params({}) == {"k": 3}


def test_check_params_refuses_a_float_for_an_int():
    proto = _custom(Param("k", "int", "rank"))

    with pytest.raises(InvalidJobSpec, match=r"params\.k: expected an integer"):
        proto.check_params({"k": 2.5})


def test_check_params_refuses_a_bool_for_an_int():
    proto = _custom(Param("k", "int", "rank"))

    with pytest.raises(InvalidJobSpec, match=r"params\.k"):
        proto.check_params({"k": False})


def test_check_params_refuses_an_int_for_a_bool():
    proto = _custom(Param("flag", "bool", "a switch"))

    with pytest.raises(InvalidJobSpec, match=r"params\.flag"):
        proto.check_params({"flag": 1})


def test_check_params_unknown_parameter_on_a_protocol_without_any_says_none():
    with pytest.raises(InvalidJobSpec, match=r"allowed: none"):
        _custom().check_params({"x": 1})


# -- references --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("count", {}, 4.0),
        ("count", {"min": 5}, 3.0),
        ("count", {"max": 5}, 2.0),
        ("count", {"min": 5, "max": 10}, 2.0),
        ("count", {"min": 100}, 0.0),
        ("sum", {}, 36.0),
        ("sum", {"min": 5}, 35.0),
        ("sum", {"max": 10}, 16.0),
        ("sum", {"min": 5, "max": 10}, 15.0),
        ("mean", {}, 9.0),
        ("mean", {"max": 10}, 16.0 / 3.0),
        ("mean", {"min": 5, "max": 10}, 7.5),
    ],
)
def test_reference_matches_the_hand_computed_value(name, params, expected):
    result = registry.get(name).reference(COLS, params)

    assert result == {name: pytest.approx(expected)}


def test_mean_reference_of_no_rows_is_nan():
    result = registry.get("mean").reference(COLS, {"min": 100})

    assert math.isnan(result["mean"])


def test_sum_reference_of_no_rows_is_zero():
    assert registry.get("sum").reference(COLS, {"min": 100}) == {"sum": 0.0}


def test_row_filter_bounds_are_inclusive():
    kept = registry.row_filter(np.array([4.0, 5.0, 10.0, 11.0]), {"min": 5, "max": 10})

    assert kept.tolist() == [5.0, 10.0]

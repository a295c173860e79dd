"""Roles that take several columns: the job spec, the checks both sides run, the sizes and
the bounds every column contributes, and the owner's matrix of its columns."""

from __future__ import annotations

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.data.sources import SourceSpec, open_source
from ensnif_mpc.errors import ColumnTypeMismatch, InvalidJobSpec, UnknownColumn
from ensnif_mpc.jobs import checks, jobspec
from ensnif_mpc.jobs.protocol import NUMERIC, OwnerBounds, ProtocolDef, Role
from ensnif_mpc.rpc import convert
from protocols.io import LocalData

FEATURES = Role("features", NUMERIC, "the features", many=True, min_columns=2, max_columns=3)
LABEL = Role("label", NUMERIC, "the label")


def _gram_need(owners, params):
    """Σ rows · B_j · B_l over the features and the label, at its largest."""
    return max(
        sum(o.rows * a * b for o in owners)
        for o0 in owners[:1]
        for a in (*o0.bounds["features"], *o0.bounds["label"])
        for b in (*o0.bounds["features"], *o0.bounds["label"])
    )


MODEL = ProtocolDef(
    name="model",
    family="test",
    summary="a model",
    inputs="features and a label per owner",
    outputs=("fit",),
    leakage="nothing",
    program="tests:none",
    reference=lambda tables, params: {},
    roles=((FEATURES, LABEL),),
    dp_sensitivity=lambda owners, params: [(1.0, 1)],
    sizing=_gram_need,
)
COLUMNS = (
    Column("x1", "float", -10, 10, 1),
    Column("x2", "int", 0, 300),
    Column("x3", "float", -2, 5, 2),
    Column("y", "float", 0, 1000, 0),
    Column("shop", "string"),
)
POLICY = PrivacyPolicy(rows_per_person=3)


def _spec(features, label="y"):
    return jobspec.from_dict(
        {
            "protocol": "model",
            "inputs": [
                {"party": "a", "dataset": "d", "features": features, "label": label},
                {"party": "b", "dataset": "d", "features": features, "label": label},
            ],
            "helpers": ["h"],
        }
    )


def test_a_list_of_columns_is_kept_in_the_job_s_order():
    spec = _spec(["x3", "x1"])

    assert spec.inputs[0].column_lists == {"features": ["x3", "x1"]}
    assert spec.inputs[0].role_columns == {"label": "y", "features": ["x3", "x1"]}
    assert spec.inputs[0].column_names == ("y", "x3", "x1")


def test_the_signed_form_carries_the_order_of_the_columns():
    one, other = _spec(["x1", "x3"]), _spec(["x3", "x1"])

    assert b'"features":["x1","x3"]' in jobspec.canonical(one, 1)
    assert jobspec.canonical(one, 1) != jobspec.canonical(other, 1)
    assert jobspec.canonical(one, 1) == jobspec.canonical(_spec(["x1", "x3"]), 1)


def test_a_list_of_columns_survives_the_wire():
    spec = _spec(["x3", "x1", "x2"])

    back = convert.spec_from_pb(convert.spec_to_pb(spec))

    assert back.inputs == spec.inputs
    assert jobspec.canonical(back, 1) == jobspec.canonical(spec, 1)


@pytest.mark.parametrize("bad", [[], ["x1", ""], ["x1", 3]])
def test_an_empty_list_or_a_bad_name_in_it_is_refused_naming_the_field(bad):
    with pytest.raises(InvalidJobSpec, match=r"inputs\[0\]\.features"):
        _spec(bad)


def test_a_role_given_too_many_columns_is_refused_with_its_reason():
    with pytest.raises(InvalidJobSpec) as info:
        checks.check_input_columns(
            MODEL, 0, {"features": ["x1", "x2", "x3", "y"], "label": "y"}, COLUMNS, "a/d"
        )

    assert info.value.reason == "role_column_count"
    assert info.value.message.startswith("inputs[0].features: the 'features' role takes 2 to 3")


def test_a_role_given_too_few_columns_is_refused_with_its_reason():
    with pytest.raises(InvalidJobSpec) as info:
        checks.check_input_columns(MODEL, 0, {"features": "x1", "label": "y"}, COLUMNS, "a/d")

    assert info.value.reason == "role_column_count"


def test_a_single_column_role_given_a_list_is_refused_with_its_reason():
    with pytest.raises(InvalidJobSpec) as info:
        checks.check_input_columns(
            MODEL, 1, {"features": ["x1", "x2"], "label": ["y", "x3"]}, COLUMNS, "b/d"
        )

    assert info.value.reason == "role_column_count"
    assert info.value.message.startswith("inputs[1].label: the 'label' role takes one column")


def test_a_column_listed_twice_is_refused():
    with pytest.raises(InvalidJobSpec, match="listed twice"):
        checks.check_input_columns(
            MODEL, 0, {"features": ["x1", "x1"], "label": "y"}, COLUMNS, "a/d"
        )


def test_an_unknown_column_in_a_list_is_named_by_its_place():
    with pytest.raises(UnknownColumn) as info:
        checks.check_input_columns(
            MODEL, 0, {"features": ["x1", "tip"], "label": "y"}, COLUMNS, "a/d"
        )

    assert info.value.message.startswith("inputs[0].features[1]: dataset a/d has no column 'tip'")


def test_a_column_of_the_wrong_type_in_a_list_is_named_by_its_place():
    with pytest.raises(ColumnTypeMismatch, match=r"inputs\[0\]\.features\[0\]: 'shop'"):
        checks.check_input_columns(
            MODEL, 0, {"features": ["shop", "x1"], "label": "y"}, COLUMNS, "a/d"
        )


def test_every_column_of_a_list_comes_back_in_order():
    read = checks.check_input_columns(
        MODEL, 0, {"features": ["x3", "x1"], "label": "y"}, COLUMNS, "a/d"
    )

    assert read == {"features": (COLUMNS[2], COLUMNS[0]), "label": (COLUMNS[3],)}


def test_the_contribution_has_the_grid_bound_of_every_column():
    read = checks.check_input_columns(
        MODEL, 0, {"features": ["x3", "x1"], "label": "y"}, COLUMNS, "a/d"
    )

    mine = checks.contribution(POLICY, read, 2)

    assert isinstance(mine, OwnerBounds)
    assert mine.bounds == {"features": (500, 1000), "label": (100_000,)}
    assert tuple(mine) == (3, 0)  # no value column: the one-column reading is (k, 0)


def _catalog(rows):
    schema = {p: DatasetSchema(p, "d", COLUMNS, rows, policy=POLICY) for p in ("a", "b")}
    return (lambda party: "member"), (lambda party, name: schema.get(party))


def test_the_session_keeps_the_most_decimals_any_listed_column_declares():
    spec = _spec(["x1", "x3"])

    sizing = checks.check_job(MODEL, spec, *_catalog(100))

    assert sizing.decimals == 2


def test_the_session_s_integers_hold_the_magnitude_the_protocol_declares():
    spec = _spec(["x1", "x2"])
    rows = 1_000_000

    sizing = checks.check_job(MODEL, spec, *_catalog(rows))

    biggest = 2 * rows * (100_000 * 100_000)  # label × label over both owners, at 10^2
    assert sizing.bit_length >= checks.sum_bits(biggest)


def _local(tmp_path, withheld=False):
    path = tmp_path / "d.csv"
    path.write_text("x1,x2,x3,y,shop\n1.5,3,0.25,10,a\n-2,7,-1.5,20,b\n0.1,300,4.99,30,a\n")
    source = open_source(SourceSpec("csv", str(path)), COLUMNS)
    return LocalData(
        source, {"label": "y"}, 2, withheld=withheld, lists={"features": ["x3", "x1", "x2"]}
    )


def test_the_owner_s_matrix_has_its_columns_in_the_job_s_order_on_the_grid(tmp_path):
    matrix = _local(tmp_path).matrix("features", scaled=True)

    assert matrix.tolist() == [[25, 150, 300], [-150, -200, 700], [499, 10, 30000]]


def test_the_owner_s_matrix_unscaled_is_the_columns_as_declared(tmp_path):
    matrix = _local(tmp_path).matrix("features")

    np.testing.assert_allclose(matrix, [[0.25, 1.5, 3], [-1.5, -2, 7], [4.99, 0.1, 300]])


def test_a_withheld_owner_s_matrix_has_no_rows_and_the_same_columns(tmp_path):
    assert _local(tmp_path, withheld=True).matrix("features").shape == (0, 3)


def test_a_pre_aggregation_names_one_column_of_a_list(tmp_path):
    local = _local(tmp_path)

    agg = local.aggregate(measures=[("sum", "features[1]"), ("sum", "label"), ("count", None)])

    assert int(agg.values["sum:features[1]"][0]) == 150 - 200 + 10
    assert int(agg.values["sum:label"][0]) == 6000
    assert int(agg.values["count"][0]) == 3

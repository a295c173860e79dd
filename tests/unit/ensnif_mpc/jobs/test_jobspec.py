"""Job specs: shape checks with errors that name the field, and the MPC party order."""

from __future__ import annotations

import grpc
import pytest

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobspec import Input

GOOD_TOML = """
name = "mean basket"
protocol = "mean"
helpers = ["helper"]

[[inputs]]
party = "grocery"
dataset = "orders"
column = "basket_total"

[[inputs]]
party = "pharmacy"
dataset = "sales"
column = "amount"

[params]
min = 10
"""


def _raw(**changes):
    raw = {
        "protocol": "sum",
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "pharmacy", "dataset": "sales", "column": "amount"},
        ],
        "helpers": ["helper"],
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def _refusal(raw) -> InvalidJobSpec:
    with pytest.raises(InvalidJobSpec) as info:
        jobspec.from_dict(raw)
    return info.value


def test_load_parses_a_good_file(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(GOOD_TOML)

    spec = jobspec.load(path)

    assert spec.protocol == "mean"
    assert spec.name == "mean basket"
    assert spec.inputs == (
        Input("grocery", "orders", "basket_total"),
        Input("pharmacy", "sales", "amount"),
    )
    assert spec.helpers == ("helper",)
    assert spec.params == {"min": 10}


def test_load_refuses_malformed_toml_naming_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('protocol = "sum\n[[inputs]\n')

    with pytest.raises(InvalidJobSpec) as info:
        jobspec.load(path)

    assert "not valid TOML" in info.value.message
    assert str(path) in info.value.message


def test_load_refuses_a_missing_file(tmp_path):
    path = tmp_path / "absent.toml"

    with pytest.raises(InvalidJobSpec) as info:
        jobspec.load(path)

    assert "cannot read job file" in info.value.message


def test_refusal_has_reason_invalid_job_spec_and_code_invalid_argument():
    err = _refusal(_raw(protocol=None))

    assert err.reason == "invalid_job_spec"
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_protocol_is_refused_naming_protocol():
    err = _refusal(_raw(protocol=None))

    assert err.message.startswith("protocol:")
    assert "missing" in err.message


def test_blank_protocol_is_refused_naming_protocol():
    err = _refusal(_raw(protocol="   "))

    assert err.message.startswith("protocol:")


def test_empty_inputs_are_refused_naming_inputs():
    err = _refusal(_raw(inputs=[]))

    assert err.message.startswith("inputs:")


def test_missing_inputs_are_refused_naming_inputs():
    err = _refusal(_raw(inputs=None))

    assert err.message.startswith("inputs:")


def test_unknown_top_level_key_is_refused_naming_the_key():
    err = _refusal(_raw(colour="blue"))

    assert err.message.startswith("colour:")
    assert "unknown key" in err.message


def test_unknown_input_key_is_refused_naming_the_input_and_key():
    inputs = [{"party": "grocery", "dataset": "orders", "column": "x", "where": "y > 1"}]

    err = _refusal(_raw(inputs=inputs))

    assert err.message.startswith("inputs[0].where:")


def test_input_missing_a_column_is_refused_naming_it():
    inputs = [
        {"party": "grocery", "dataset": "orders", "column": "x"},
        {"party": "pharmacy", "dataset": "sales"},
    ]

    err = _refusal(_raw(inputs=inputs))

    assert err.message.startswith("inputs[1].column:")


def test_input_that_is_not_a_table_is_refused():
    err = _refusal(_raw(inputs=["grocery"]))

    assert err.message.startswith("inputs[0]:")


def test_duplicate_owner_is_refused_naming_inputs():
    inputs = [
        {"party": "grocery", "dataset": "orders", "column": "a"},
        {"party": "grocery", "dataset": "orders", "column": "b"},
    ]

    err = _refusal(_raw(inputs=inputs))

    assert err.message.startswith("inputs:")
    assert "once" in err.message


def test_helper_that_is_also_an_owner_is_refused_naming_both():
    err = _refusal(_raw(helpers=["helper", "grocery"]))

    assert err.message.startswith("helpers:")
    assert "'grocery'" in err.message


def test_helper_listed_twice_is_refused():
    err = _refusal(_raw(helpers=["helper", "helper"]))

    assert err.message.startswith("helpers:")


def test_helpers_that_are_not_a_list_are_refused():
    err = _refusal(_raw(helpers="helper"))

    assert err.message.startswith("helpers:")


def test_non_table_params_are_refused_naming_params():
    err = _refusal(_raw(params=[1, 2]))

    assert err.message.startswith("params:")


def test_non_string_name_is_refused_naming_name():
    err = _refusal(_raw(name=42))

    assert err.message.startswith("name:")


def test_strings_are_stripped():
    inputs = [{"party": " grocery ", "dataset": "orders ", "column": " x"}]

    spec = jobspec.from_dict(_raw(protocol=" sum ", inputs=inputs))

    assert spec.protocol == "sum"
    assert spec.inputs == (Input("grocery", "orders", "x"),)


def test_party_order_puts_owners_first_then_helpers():
    spec = jobspec.from_dict(_raw(helpers=["alpha", "zulu"]))

    assert spec.party_order == ("grocery", "pharmacy", "alpha", "zulu")


def test_party_order_without_helpers_is_the_owners_in_input_order():
    inputs = [
        {"party": "zeta", "dataset": "d", "column": "c"},
        {"party": "alpha", "dataset": "d", "column": "c"},
    ]

    spec = jobspec.from_dict(_raw(inputs=inputs, helpers=None))

    assert spec.party_order == ("zeta", "alpha")


def test_params_json_is_canonical():
    spec = jobspec.from_dict(_raw(params={"max": 5, "min": 1}))

    assert spec.params_json() == '{"max": 5, "min": 1}'


def _keys(tmp_path):
    from ensnif_mpc.security import pki

    ca = tmp_path / "pki"
    pki.init_ca(ca)
    analyst = pki.issue(ca, "ann", "analyst")
    other = pki.issue(ca, "bob", "analyst")
    return analyst.key.read_bytes(), analyst.cert.read_text(), other.cert.read_text()


def test_signed_spec_verifies_and_survives_the_proto_round_trip(tmp_path):
    from ensnif_mpc.rpc.convert import spec_from_pb, spec_to_pb

    key, cert, _ = _keys(tmp_path)
    spec = jobspec.from_dict(
        {
            "protocol": "mean",
            "inputs": [{"party": "g", "dataset": "o", "column": "x"}],
            "params": {"min": 1.5},
            "privacy": {"rho": 0.1},
        }
    )
    signed = jobspec.sign(spec, key, 1)

    assert len(signed.nonce) == 32 and signed.signature
    jobspec.verify(signed, cert, 1)
    jobspec.verify(spec_from_pb(spec_to_pb(signed)), cert, 1)
    assert jobspec.sign(spec, key, 1).nonce != signed.nonce  # a fresh nonce every time


@pytest.mark.parametrize(
    "change",
    [
        {"params": {"min": 1.0}},
        {"protocol": "sum"},
        {"helpers": ("h",)},
        {"name": "other"},
        {"nonce": "00" * 16},
        {"privacy": None},
    ],
)
def test_any_change_after_signing_breaks_the_signature(tmp_path, change):
    import dataclasses

    from ensnif_mpc.errors import CryptoError

    key, cert, _ = _keys(tmp_path)
    spec = jobspec.from_dict(
        {
            "protocol": "mean",
            "inputs": [{"party": "g", "dataset": "o", "column": "x"}],
            "params": {"min": 1.5},
            "privacy": {"rho": 0.1},
        }
    )
    signed = jobspec.sign(spec, key, 1)
    with pytest.raises(CryptoError) as info:
        jobspec.verify(dataclasses.replace(signed, **change), cert, 1)
    assert info.value.reason == "bad_job_signature"


def test_another_signer_or_protocol_version_does_not_verify(tmp_path):
    from ensnif_mpc.errors import CryptoError

    key, cert, other = _keys(tmp_path)
    spec = jobspec.from_dict(
        {"protocol": "sum", "inputs": [{"party": "g", "dataset": "o", "column": "x"}]}
    )
    signed = jobspec.sign(spec, key, 1)
    with pytest.raises(CryptoError):
        jobspec.verify(signed, other, 1)
    with pytest.raises(CryptoError):
        jobspec.verify(signed, cert, 2)
    with pytest.raises(CryptoError) as info:
        jobspec.verify(spec, cert, 1)
    assert info.value.reason == "unsigned_job"

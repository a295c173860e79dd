"""Property-based: whatever a job file or a gRPC client sends, the parser either returns a
spec or raises InvalidJobSpec naming a field — never another exception."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import jobspec

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["protocol", "inputs", "helpers", "params", "privacy", "name", "nonce", "signature", "x"]
)
input_item = st.dictionaries(
    st.sampled_from(["party", "dataset", "column", "value", "key", "group", "filter", "y"]),
    values,
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.dictionaries(keys, values, max_size=8),
    inputs=st.one_of(st.none(), st.lists(input_item, max_size=3)),
)
def test_any_input_is_a_spec_or_a_named_invalid_job_spec(raw, inputs):
    if inputs is not None:
        raw = {**raw, "inputs": inputs}
    try:
        spec = jobspec.from_dict(raw)
    except InvalidJobSpec as err:
        field = err.message.split(":", 1)[0]
        assert field and len(err.message) < 500
    else:
        assert spec.inputs and spec.protocol
        jobspec.canonical(spec, 1)  # a parsed spec always has a canonical encoding


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(st.text(max_size=6), values, max_size=4))
def test_any_params_table_is_signable_or_refused(params):
    raw = {"protocol": "sum", "inputs": [{"party": "a", "dataset": "b", "column": "c"}]}
    try:
        spec = jobspec.from_dict({**raw, "params": params})
    except InvalidJobSpec as err:
        assert err.message.startswith("params")
    else:
        jobspec.canonical(spec, 1)
        spec.params_json()


@settings(max_examples=200, deadline=None)
@given(privacy=values)
def test_any_privacy_table_parses_or_names_the_privacy_field(privacy):
    try:
        jobspec.parse_privacy(privacy)
    except InvalidJobSpec as err:
        assert err.message.startswith("privacy")

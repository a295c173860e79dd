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


# -- a job file as bytes, deep nesting, integers, tiny privacy parameters ------------------

JOB = b"""protocol = "sum"
[[inputs]]
party = "grocery"
dataset = "orders"
column = "basket_total"
"""


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), at=st.integers(0, len(JOB)))
def test_any_job_file_bytes_are_a_spec_or_one_invalid_job_spec_line(tmp_path_factory, data, at):
    path = tmp_path_factory.mktemp("job") / "job.toml"
    path.write_bytes(JOB[:at] + data + JOB[at:])
    try:
        jobspec.load(path)
    except InvalidJobSpec as err:
        assert "\n" not in err.message.strip() and err.reason == "invalid_job_spec"


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 20_000), kind=st.sampled_from(["[", "{a="]))
def test_a_job_file_nested_any_depth_is_a_spec_or_one_line(tmp_path_factory, depth, kind):
    close = "]" if kind == "[" else "}"
    path = tmp_path_factory.mktemp("job") / "job.toml"
    path.write_text(
        JOB.decode().replace(
            'protocol = "sum"', f'protocol = "sum"\n[params]\nv = {kind * depth}1{close * depth}'
        )
    )
    try:
        jobspec.load(path)
    except InvalidJobSpec as err:
        assert err.message.startswith(("params", str(path)))
    else:
        assert depth <= jobspec.MAX_DEPTH


@settings(max_examples=200, deadline=None)
@given(value=st.integers(-(2**200), 2**200), key=st.sampled_from(["min", "max", "groups"]))
def test_integer_params_beyond_64_bits_are_refused_by_name(value, key):
    raw = {"protocol": "sum", "inputs": [{"party": "a", "dataset": "b", "column": "c"}]}
    params = {key: [value] if key == "groups" else value}
    try:
        spec = jobspec.from_dict({**raw, "params": params})
    except InvalidJobSpec as err:
        assert not -(2**63) <= value < 2**63
        assert err.message.startswith(f"params.{key}") and "64-bit" in err.message
    else:
        assert -(2**63) <= value < 2**63
        jobspec.canonical(spec, 1)


@settings(max_examples=60, deadline=None)
@given(
    rho=st.one_of(
        st.floats(min_value=5e-324, max_value=1e-6),
        st.sampled_from([1e-320, 5e-324, 1e-300, 1e-30]),
    ),
    l2=st.floats(min_value=1.0, max_value=1e9),
)
def test_any_tiny_rho_calibrates_or_is_dp_unavailable(rho, l2):
    from ensnif_mpc.errors import EnsnifError
    from ensnif_mpc.privacy import dp

    try:
        dp.plan(rho, [(l2, 1)], 3, 1)
    except EnsnifError as err:
        assert err.reason == "dp_unavailable", err.message


@settings(max_examples=60, deadline=None)
@given(epsilon=st.floats(min_value=5e-324, max_value=1e-6), l2=st.floats(1.0, 1e6))
def test_any_tiny_epsilon_calibrates_or_names_the_epsilon(epsilon, l2):
    from ensnif_mpc.privacy import dp

    try:
        dp.laplace_plan(epsilon, 1e-9, [(l2, 1)], 3, 1)
    except InvalidJobSpec as err:
        assert err.message.startswith("privacy.epsilon")

"""The request checks every server applies before a servicer sees a request."""

from __future__ import annotations

import pytest

from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.gen.ensnif.v1 import coordinator_pb2 as cpb, party_pb2 as ppb
from ensnif_mpc.rpc.serving import parse_request


def parse(msg: object, as_type: type) -> object:
    return parse_request(msg.SerializeToString(), as_type.FromString)  # type: ignore[attr-defined]


def test_a_well_formed_request_is_parsed() -> None:
    req = cpb.ListJobsRequest(limit=5, states=[1, 2])

    assert parse(req, cpb.ListJobsRequest) == req


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x0a\x05ab", "does not decode"),
        (b"\x0a\x02\xff\xfe", "string that is not UTF-8"),
    ],
)
def test_undecodable_bytes_are_malformed(data: bytes, what: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_request(data, cpb.GetJobRequest.FromString)
    assert info.value.reason == "malformed_request", what


def test_a_request_of_another_type_is_malformed() -> None:
    other = ppb.ProposeRequest(job_id="j", party_index=3, bit_length=48)

    with pytest.raises(InvalidArgument, match="unknown field number"):
        parse(other, cpb.GetJobRequest)


def test_nested_non_finite_numbers_are_malformed() -> None:
    req = cpb.PublishDatasetRequest()
    req.dataset.columns.add(name="x", upper=float("inf"))

    with pytest.raises(InvalidArgument, match=r"columns\[0\].upper: not a finite number"):
        parse(req, cpb.PublishDatasetRequest)


@pytest.mark.parametrize("state", [0, 99])
def test_unknown_or_unspecified_states_in_a_list_are_malformed(state: int) -> None:
    with pytest.raises(InvalidArgument, match="states"):
        parse(cpb.ListJobsRequest(states=[1, state]), cpb.ListJobsRequest)


def test_unsigned_64_bit_values_beyond_a_signed_column_are_malformed() -> None:
    req = cpb.PublishDatasetRequest()
    req.dataset.row_count = 2**63

    with pytest.raises(InvalidArgument, match="row_count"):
        parse(req, cpb.PublishDatasetRequest)

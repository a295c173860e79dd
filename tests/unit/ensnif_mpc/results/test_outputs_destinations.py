"""Envelopes of per-recipient parts, artifact ids in job specs, and the artifact list check."""

from __future__ import annotations

import pytest

from ensnif_mpc.errors import CryptoError, InvalidArgument, InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.results import envelope
from ensnif_mpc.results.artifacts import ArtifactShare, check_listed

BASE = {
    "protocol": "stash_add",
    "helpers": ["helper"],
    "inputs": [{"party": "a", "dataset": "d", "column": "x"}],
}


def test_an_analyst_only_blob_stays_the_bare_sealed_bytes() -> None:
    assert envelope.pack({envelope.ANALYST: b"\x01sealed"}) == b"\x01sealed"
    assert envelope.unpack(b"\x01sealed") == {envelope.ANALYST: b"\x01sealed"}


def test_an_envelope_carries_each_recipients_part_and_nothing_for_others() -> None:
    parts = {envelope.ANALYST: b"\x01a", envelope.member("beta"): b"\x01b"}

    blob = envelope.pack(parts)

    assert envelope.unpack(blob) == parts
    assert envelope.part_for(blob, envelope.member("alpha")) is None
    assert envelope.associated("j1", envelope.member("beta")) != envelope.associated(
        "j1", "analyst"
    )


def test_a_malformed_envelope_is_refused() -> None:
    with pytest.raises(CryptoError):
        envelope.unpack(envelope.MAGIC + b"not json")


def test_artifact_ids_are_signed_only_when_listed() -> None:
    plain = jobspec.from_dict(BASE)
    listed = jobspec.from_dict({**BASE, "artifacts": ["job1/totals"]})

    assert plain.artifacts == () and b"artifacts" not in jobspec.canonical(plain, 1)
    assert listed.artifacts == ("job1/totals",)
    assert b'"artifacts":["job1/totals"]' in jobspec.canonical(listed, 1)


@pytest.mark.parametrize(
    "bad", [["totals"], ["job1/"], ["/totals"], ["a/b/c"], ["j/x", "j/x"], "j/x", [3]]
)
def test_a_malformed_artifact_list_is_refused(bad: object) -> None:
    with pytest.raises(InvalidJobSpec, match="artifacts"):
        jobspec.from_dict({**BASE, "artifacts": bad})


def test_a_job_lists_exactly_the_artifacts_its_protocol_reads() -> None:
    check_listed(("totals",), ("job1/totals",), "stash_add")
    with pytest.raises(InvalidJobSpec, match="reads 1 artifact"):
        check_listed(("totals",), (), "stash_add")
    with pytest.raises(InvalidJobSpec, match="reads 'totals' here"):
        check_listed(("totals",), ("job1/weights",), "stash_add")


def test_an_artifact_share_must_have_one_share_per_element() -> None:
    fields = dict(
        artifact_id="j/w",
        name="w",
        job_id="j",
        protocol="stash_sum",
        x=1,
        threshold=1,
        parties=("a", "b", "h"),
        owners=("a", "b"),
        kind="fixed",
        bit_length=64,
        frac_bits=32,
        modulus=101,
        shape=(2,),
    )
    share = ArtifactShare(**fields, shares=(5, 7))
    assert "shares" not in share.metadata()
    assert ArtifactShare.from_dict(share.to_dict()) == share
    with pytest.raises(InvalidArgument):
        ArtifactShare(**fields, shares=(5,))

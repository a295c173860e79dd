"""The hash-chained audit log: a chain verifies; any edit, deletion or reordering breaks it."""

from __future__ import annotations

import pytest

from ensnif_mpc.audit.chain import GENESIS, record_hash, verify_chain

EVENTS = [
    ("2024-01-01T00:00:00+00:00", "job_submitted", {"job": "j1", "by": "alice"}),
    (
        "2024-01-01T00:00:01+00:00",
        "job_state",
        {"job": "j1", "from": "submitted", "to": "validated"},
    ),
    ("2024-01-01T00:00:02+00:00", "job_state", {"job": "j1", "from": "validated", "to": "failed"}),
]


def build_chain(events=EVENTS):
    rows, prev = [], GENESIS
    for seq, (at, event, details) in enumerate(events, start=1):
        digest = record_hash(prev, seq, at, event, details)
        rows.append((seq, at, event, details, prev, digest))
        prev = digest
    return rows


def test_a_well_formed_chain_verifies_and_counts_its_records():
    assert verify_chain(build_chain()) == 3


def test_an_empty_chain_verifies_with_zero_records():
    assert verify_chain([]) == 0


def test_record_hash_is_independent_of_details_key_order():
    a = record_hash(GENESIS, 1, "t", "e", {"a": 1, "b": 2})
    b = record_hash(GENESIS, 1, "t", "e", {"b": 2, "a": 1})

    assert a == b


def test_record_hash_covers_the_previous_hash():
    assert record_hash(GENESIS, 1, "t", "e", {}) != record_hash("1" * 64, 1, "t", "e", {})


def test_edited_details_break_the_chain_at_that_record():
    rows = build_chain()
    seq, at, event, details, prev, digest = rows[1]
    rows[1] = (seq, at, event, {**details, "to": "succeeded"}, prev, digest)

    with pytest.raises(ValueError, match="broken at record 2"):
        verify_chain(rows)


def test_edited_event_breaks_the_chain():
    rows = build_chain()
    seq, at, _, details, prev, digest = rows[0]
    rows[0] = (seq, at, "job_cancelled", details, prev, digest)

    with pytest.raises(ValueError, match="broken at record 1"):
        verify_chain(rows)


def test_edited_timestamp_breaks_the_chain():
    rows = build_chain()
    seq, _, event, details, prev, digest = rows[2]
    rows[2] = (seq, "2025-01-01T00:00:00+00:00", event, details, prev, digest)

    with pytest.raises(ValueError, match="broken at record 3"):
        verify_chain(rows)


def test_rehashing_an_edited_record_breaks_the_next_link():
    rows = build_chain()
    seq, at, event, _, prev, _ = rows[0]
    forged = {"job": "j1", "by": "mallory"}
    rows[0] = (seq, at, event, forged, prev, record_hash(prev, seq, at, event, forged))

    with pytest.raises(ValueError, match="broken at record 2"):
        verify_chain(rows)


def test_a_deleted_middle_record_breaks_the_chain():
    rows = build_chain()

    with pytest.raises(ValueError, match="broken at record 3"):
        verify_chain([rows[0], rows[2]])


def test_reordered_records_break_the_chain():
    rows = build_chain()

    with pytest.raises(ValueError):
        verify_chain([rows[1], rows[0], rows[2]])


def test_a_chain_not_starting_at_genesis_is_refused():
    rows = build_chain()

    with pytest.raises(ValueError, match="broken at record 2"):
        verify_chain(rows[1:])

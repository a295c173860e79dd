"""The coordinator store's state contract, run against every backend: SQLite and PostgreSQL.

Parties and datasets, jobs and their conditional transitions (illegal ones refused,
racing ones with exactly one winner), result shares, the audit chain and its anchor,
and a restart (a new store on the same URL sees everything). The PostgreSQL cases
use a throwaway server (tests/integration/postgres.py) and skip, saying why, where
PostgreSQL is not installed.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import text

from coordinator.store import Store
from ensnif_mpc.audit import chain as audit
from ensnif_mpc.data.schema import Column, DatasetSchema
from ensnif_mpc.errors import InvalidConfig, InvalidTransition, UnknownJob
from ensnif_mpc.jobs.jobstate import JobState
from tests.helpers import sum_spec

SIZING = {"bit_length": 64, "decimals": 2}
SPEC = sum_spec(("pharmacy", "sales", "amount"), params={"min": 1.5})


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(url):
    s = Store(url)
    yield s
    s.close()


def _create(store, job_id="job-1"):
    return store.create_job(job_id, SPEC, "alice", "-----CERT-----", SIZING)


def test_create_job_starts_submitted(store):
    rec = _create(store)

    assert rec.state is JobState.SUBMITTED
    assert rec.version == 0


def test_get_job_returns_what_was_created(store):
    _create(store)

    rec = store.get_job("job-1")

    assert rec.spec == SPEC
    assert (rec.submitter, rec.analyst_cert, rec.sizing) == ("alice", "-----CERT-----", SIZING)
    assert rec.created_at.tzinfo is not None


def test_get_unknown_job_raises_unknown_job(store):
    with pytest.raises(UnknownJob, match="'nope'"):
        store.get_job("nope")


def test_transition_moves_the_job_and_bumps_the_version(store):
    _create(store)

    changed = store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)

    rec = store.get_job("job-1")
    assert changed is True
    assert rec.state is JobState.VALIDATED
    assert rec.version == 1


def test_second_transition_from_the_same_old_state_returns_false(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)

    changed = store.transition("job-1", JobState.SUBMITTED, JobState.CANCELLED)

    assert changed is False
    assert store.get_job("job-1").state is JobState.VALIDATED


def test_transition_of_an_unknown_job_returns_false(store):
    assert store.transition("ghost", JobState.SUBMITTED, JobState.VALIDATED) is False


def test_invalid_transition_raises_and_leaves_the_job_alone(store):
    _create(store)

    with pytest.raises(InvalidTransition):
        store.transition("job-1", JobState.SUBMITTED, JobState.SUCCEEDED)

    assert store.get_job("job-1").state is JobState.SUBMITTED


def test_final_transition_records_the_reason(store):
    _create(store)

    store.transition(
        "job-1",
        JobState.SUBMITTED,
        JobState.REJECTED,
        reason="no helper",
        reason_code="not_enough_parties",
    )

    rec = store.get_job("job-1")
    assert (rec.reason, rec.reason_code) == ("no helper", "not_enough_parties")


def test_transition_writes_extra_fields(store):
    _create(store)

    store.transition(
        "job-1",
        JobState.SUBMITTED,
        JobState.VALIDATED,
        session={"order": ["grocery", "pharmacy", "helper"]},
    )

    assert store.get_job("job-1").session == {"order": ["grocery", "pharmacy", "helper"]}


def test_transition_then_takes_every_step_in_one_change_each_audited(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)
    store.transition("job-1", JobState.VALIDATED, JobState.AWAITING_APPROVAL)

    changed = store.transition(
        "job-1",
        JobState.AWAITING_APPROVAL,
        JobState.APPROVED,
        session={"party_order": ["grocery", "pharmacy", "helper"]},
        then=(JobState.SCHEDULED,),
    )

    rec = store.get_job("job-1")
    assert changed and rec.state is JobState.SCHEDULED
    assert rec.session == {"party_order": ["grocery", "pharmacy", "helper"]}
    steps = [(r[3]["from"], r[3]["to"]) for r in store.audit_rows() if r[2] == "job_state"]
    assert steps[-2:] == [("awaiting_approval", "approved"), ("approved", "scheduled")]
    assert _verify(store).records == 5


def test_transition_then_with_an_illegal_step_writes_nothing(store):
    _create(store)

    with pytest.raises(InvalidTransition):
        store.transition(
            "job-1", JobState.SUBMITTED, JobState.VALIDATED, then=(JobState.SUCCEEDED,)
        )

    assert store.get_job("job-1").state is JobState.SUBMITTED
    assert [r[2] for r in store.audit_rows()] == ["job_submitted"]


def test_transition_then_from_a_state_the_job_left_changes_nothing(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.CANCELLED)

    changed = store.transition(
        "job-1", JobState.SUBMITTED, JobState.VALIDATED, then=(JobState.AWAITING_APPROVAL,)
    )

    assert not changed and store.get_job("job-1").state is JobState.CANCELLED
    assert [r[2] for r in store.audit_rows()] == ["job_submitted", "job_state"]


def test_create_job_then_stores_the_last_state_with_each_step_audited(store):
    rec = store.create_job(
        "job-1", SPEC, "alice", "-----CERT-----", SIZING, then=(JobState.VALIDATED,)
    )

    assert rec.state is JobState.VALIDATED
    assert store.get_job("job-1").state is JobState.VALIDATED
    rows = store.audit_rows()
    assert [r[2] for r in rows] == ["job_submitted", "job_state"]
    assert (rows[1][3]["from"], rows[1][3]["to"]) == ("submitted", "validated")
    assert _verify(store).records == 2


def test_update_job_bumps_the_version_without_changing_state(store):
    _create(store)

    store.update_job("job-1", progress={"grocery": "input shared"})

    rec = store.get_job("job-1")
    assert rec.progress == {"grocery": "input shared"}
    assert rec.version == 1
    assert rec.state is JobState.SUBMITTED


def test_list_jobs_filters_by_state(store):
    for job_id in ("a", "b", "c"):
        _create(store, job_id)
    store.transition("b", JobState.SUBMITTED, JobState.VALIDATED)
    store.transition("c", JobState.SUBMITTED, JobState.FAILED)

    live = store.list_jobs(states=frozenset({JobState.SUBMITTED, JobState.VALIDATED}))

    assert sorted(j.id for j in live) == ["a", "b"]


def test_list_jobs_without_filter_returns_all(store):
    for job_id in ("a", "b", "c"):
        _create(store, job_id)

    assert sorted(j.id for j in store.list_jobs()) == ["a", "b", "c"]


def test_list_jobs_respects_the_limit(store):
    for job_id in ("a", "b", "c"):
        _create(store, job_id)

    assert len(store.list_jobs(limit=2)) == 2


def test_put_share_then_get_shares(store):
    _create(store)
    store.put_share("job-1", "grocery", b"\x01sealed-g", b"sig-g")
    store.put_share("job-1", "helper", b"\x01sealed-h", b"sig-h")

    assert store.get_shares("job-1") == {
        "grocery": (b"\x01sealed-g", b"sig-g"),
        "helper": (b"\x01sealed-h", b"sig-h"),
    }


def test_put_share_again_replaces_the_blob(store):
    _create(store)
    store.put_share("job-1", "grocery", b"old", b"sig-old")

    store.put_share("job-1", "grocery", b"new", b"sig-new")

    assert store.get_shares("job-1") == {"grocery": (b"new", b"sig-new")}


def test_a_share_keeps_the_certificate_it_was_signed_under(store):
    """A node that rotates later re-registers; its earlier shares keep their certificate."""
    _create(store)
    store.put_share("job-1", "grocery", b"g", b"sig-g", "PEM-then")
    store.put_share("job-1", "helper", b"h", b"sig-h")  # recorded before revision 3

    assert store.share_certificates("job-1") == {"grocery": "PEM-then"}
    assert store.shares("job-1") == {
        "grocery": (b"g", b"sig-g", "PEM-then"),
        "helper": (b"h", b"sig-h", ""),
    }
    assert store.share_parties("job-1") == {"grocery", "helper"}


def test_get_shares_of_a_job_without_shares_is_empty(store):
    _create(store)

    assert store.get_shares("job-1") == {}
    assert store.shares("job-1") == {} and store.share_parties("job-1") == set()


def _verify(store):
    with store.engine.connect() as conn:
        rows, anchor, _ = audit.read(conn)
        return audit.verify(rows, anchor)


def test_audit_chain_verifies_up_to_its_anchor(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")

    report = _verify(store)

    assert (report.records, report.head_seq, report.anchor.seq) == (3, 3, 3)
    assert [r[2] for r in store.audit_rows()] == ["job_submitted", "job_state", "party_registered"]


def test_re_registering_unchanged_is_not_audited_but_a_new_address_is(store):
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")

    store.upsert_party("grocery", "data_owner", "127.0.0.1:2", "pem")

    assert [r[3]["address"] for r in store.audit_rows()] == ["127.0.0.1:1", "127.0.0.1:2"]


def test_a_party_keeps_the_mpc_endpoint_it_registered(store):
    store.upsert_party("grocery", "data_owner", "10.0.0.1:50061", "pem", "10.0.0.1", (41000, 41999))
    store.upsert_party("helper", "compute", "10.0.0.3:50061", "pem")  # an older node: none

    got = {p.name: (p.mpc_host, p.mpc_ports) for p in store.list_parties()}

    assert got == {"grocery": ("10.0.0.1", (41000, 41999)), "helper": ("", (0, 0))}


def test_refused_transition_is_not_audited(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)

    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)

    assert len(store.audit_rows()) == 2


def test_tampering_with_an_audit_row_breaks_verification(store):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)

    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit SET details = :d WHERE seq = 1"),
            {"d": '{"job": "job-1", "by": "mallory", "protocol": "sum"}'},
        )

    with pytest.raises(ValueError, match="broken at record 1"):
        audit.verify_chain(store.audit_rows())


def test_a_second_store_on_the_same_file_sees_the_jobs(store, url):
    _create(store)
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)
    store.close()

    reopened = Store(url)
    try:
        rec = reopened.get_job("job-1")
    finally:
        reopened.close()

    assert rec.state is JobState.VALIDATED
    assert rec.spec == SPEC


def test_a_second_store_continues_the_audit_chain(store, url):
    _create(store)
    store.close()

    reopened = Store(url)
    try:
        reopened.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)
        rows = reopened.audit_rows()
    finally:
        reopened.close()

    assert audit.verify_chain(rows) == 2


def test_racing_transitions_have_exactly_one_winner(store):
    _create(store)
    n = 8
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def race(target: JobState) -> None:
        barrier.wait()
        won = store.transition("job-1", JobState.SUBMITTED, target)
        with lock:
            results.append(won)

    targets = [JobState.VALIDATED, JobState.CANCELLED] * (n // 2)
    threads = [threading.Thread(target=race, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(results) == n
    assert results.count(True) == 1
    assert store.get_job("job-1").version == 1
    assert audit.verify_chain(store.audit_rows()) == 2


def test_parties_and_datasets_round_trip(store):
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")
    schema = DatasetSchema("grocery", "orders", (Column("basket_total", "float", 0, 500, 2),), 12)

    store.upsert_dataset(schema)

    assert store.list_datasets("grocery") == [schema]
    assert store.get_party("grocery").address == "127.0.0.1:1"


def test_upsert_dataset_says_whether_the_entry_changed(store):
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")
    schema = DatasetSchema("grocery", "orders", (Column("basket_total", "float", 0, 500, 2),), 12)

    first, again = store.upsert_dataset(schema), store.upsert_dataset(schema)
    grown = store.upsert_dataset(dataclasses.replace(schema, row_count=13))

    assert (first, again, grown) == (True, False, True)
    assert store.list_datasets("grocery")[0].row_count == 13


def test_parties_and_catalog_read_before_a_change_show_the_change(store, url):
    store.upsert_party("grocery", "data_owner", "127.0.0.1:1", "pem")
    schema = DatasetSchema("grocery", "orders", (Column("basket_total", "float", 0, 500, 2),), 12)
    store.upsert_dataset(schema)
    assert store.get_party("grocery").address == "127.0.0.1:1"  # read (and kept) once
    assert store.list_datasets() == [schema]

    store.upsert_party("grocery", "data_owner", "127.0.0.1:2", "pem")
    store.upsert_party("helper", "compute", "127.0.0.1:3", "pem")
    store.upsert_dataset(dataclasses.replace(schema, row_count=13))
    store.upsert_dataset(dataclasses.replace(schema, name="returns"))

    assert store.get_party("grocery").address == "127.0.0.1:2"
    assert [p.name for p in store.list_parties()] == ["grocery", "helper"]
    assert [(d.name, d.row_count) for d in store.list_datasets("grocery")] == [
        ("orders", 13),
        ("returns", 12),
    ]
    reopened = Store(url)  # what this store shows is what it wrote
    try:
        assert reopened.list_parties() == store.list_parties()
        assert reopened.list_datasets() == store.list_datasets()
    finally:
        reopened.close()


def test_a_state_database_that_cannot_be_opened_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidConfig, match="cannot create the state directory"):
        Store(f"sqlite:///{blocker}/coordinator.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InvalidConfig, match="cannot open the state database"):
        Store(f"sqlite:///{garbage}")


def test_an_unreachable_postgresql_server_is_one_clear_error():
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidConfig, match="cannot open the state database postgresql") as err:
        Store("postgresql+psycopg://ensnif:secret@127.0.0.1:1/ensnif?connect_timeout=2")

    assert "secret" not in err.value.message

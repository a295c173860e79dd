"""`ensnif audit verify|show` on real stores (SQLite and PostgreSQL) tampered with by SQL.

The stores sign their anchors with the daemon's key, as the servers do; the CLI runs
through its real entry point (exit codes and one-line errors included) with the
daemon's own config file.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from coordinator.store import Store
from ensnif_mpc.audit import chain as audit
from ensnif_mpc.cli import main as cli_main
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.security import pki
from party_node.store import NodeStore
from tests.helpers import issue_pki
from tests.integration.test_coordinator_store_contract import SIZING, SPEC


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    directory = tmp_path_factory.mktemp("audit_pki")
    return {
        "dir": directory,
        **issue_pki(directory, {"coordinator": "coordinator", "grocery": "party"}),
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/coordinator.db"
    return request.getfixturevalue("postgres_url")


def _tls(files: pki.CertFiles) -> str:
    return f'[tls]\nca = "{files.ca}"\ncert = "{files.cert}"\nkey = "{files.key}"\n'


@pytest.fixture
def coordinator(url, ca, tmp_path):
    """A coordinator store with four audited events, and its coordinator.toml."""
    config = tmp_path / "coordinator.toml"
    config.write_text(f'database = "{url}"\n' + _tls(ca["coordinator"]))
    store = Store(url, signer=audit.Signer.from_key_file(ca["coordinator"].key))
    store.create_job("job-1", SPEC, "alice", "pem", SIZING)  # 1 job_submitted
    store.transition("job-1", JobState.SUBMITTED, JobState.VALIDATED)  # 2 job_state
    store.upsert_party("grocery", "party", "127.0.0.1:1", "pem")  # 3 party_registered
    store.audit("result_released", {"job": "job-1", "to": "alice", "shares": []})  # 4
    yield store, config
    store.close()


def ensnif(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        cli_main.main(list(args))
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def _sql(store, statement: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_verify_accepts_an_untouched_log_and_checks_the_signature(coordinator, capsys):
    _, config = coordinator

    code, out, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert (code, err) == (0, "")
    assert "audit log of coordinator: OK, 4 records" in out
    assert "signature verified with" in out


def test_verify_names_an_edited_record(coordinator, capsys):
    store, config = coordinator
    _sql(store, "UPDATE audit SET details = :d WHERE seq = 2", d='{"job": "job-9"}')

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert err.strip().startswith("error: audit chain broken at record 2: its contents")
    assert err.strip().endswith("[failed_precondition: audit_broken]")
    assert len(err.strip().splitlines()) == 1


def test_verify_names_a_deleted_middle_record(coordinator, capsys):
    store, config = coordinator
    _sql(store, "DELETE FROM audit WHERE seq = 2")

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 3: record 2 is missing" in err


def test_verify_names_a_deleted_last_record(coordinator, capsys):
    store, config = coordinator
    _sql(store, "DELETE FROM audit WHERE seq = 4")

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 4: record 4 is missing: the chain ends at record 3" in err


def test_verify_names_reordered_records(coordinator, capsys):
    store, config = coordinator
    _sql(store, "UPDATE audit SET seq = 99 WHERE seq = 2")
    _sql(store, "UPDATE audit SET seq = 2 WHERE seq = 3")
    _sql(store, "UPDATE audit SET seq = 3 WHERE seq = 99")

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 2" in err


def test_verify_refuses_a_rebuilt_chain_without_the_key(coordinator, capsys):
    store, config = coordinator
    rows = store.audit_rows()
    forged, prev = [], audit.GENESIS  # record 2 rewritten, every hash recomputed
    for seq, at, event, details, _, _ in rows:
        details = {"job": "job-9"} if seq == 2 else details
        digest = audit.record_hash(prev, seq, at, event, details)
        forged.append((seq, json.dumps(details), prev, digest))
        prev = digest
    for seq, details, prev_hash, digest in forged:
        _sql(
            store,
            "UPDATE audit SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s",
            d=details,
            p=prev_hash,
            h=digest,
            s=seq,
        )
    _sql(store, "UPDATE audit_anchor SET hash = :h", h=prev)

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 4: the anchor's signature does not verify" in err


def test_records_cut_while_the_daemon_runs_stay_evident_after_it_appends(coordinator, capsys):
    store, config = coordinator
    _sql(store, "DELETE FROM audit WHERE seq = 4")
    _sql(store, "UPDATE audit_anchor SET seq = 3, hash = (SELECT hash FROM audit WHERE seq = 3)")

    store.audit("job_state", {"job": "job-1"})  # the store notices before appending
    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 4: the store found its anchor broken" in err


def test_a_deleted_anchor_is_recorded_by_the_next_append_and_fails_verification(
    coordinator, capsys
):
    store, config = coordinator
    _sql(store, "DELETE FROM audit_anchor")

    store.audit("job_state", {"job": "job-1"})  # the store notices before appending
    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    events = [(r[0], r[2], r[3].get("problem")) for r in store.audit_rows()[-2:]]
    assert events == [(5, "audit_anchor_broken", "anchor missing"), (6, "job_state", None)]
    assert code == 5
    assert "broken at record 5: the store found its anchor broken" in err


def test_verify_without_a_certificate_checks_the_chain_and_says_so(coordinator, capsys):
    store, _ = coordinator

    code, out, _ = ensnif(capsys, "audit", "verify", "--db", str(store.engine.url), "--json")
    # (a PostgreSQL URL renders without its password here: the test server has none)

    report = json.loads(out)
    assert code == 0
    assert (report["records"], report["anchor"]["signature_checked"]) == (4, False)


def test_verify_with_another_key_than_the_signers_fails(coordinator, ca, capsys):
    store, _ = coordinator

    code, _, err = ensnif(
        capsys,
        "audit",
        "verify",
        "--db",
        str(store.engine.url),
        "--cert",
        str(ca["grocery"].cert),
    )

    assert code == 5
    assert "the anchor is signed by another key" in err


def test_a_new_key_takes_over_the_anchor_and_leaves_a_note(coordinator, ca, tmp_path, capsys):
    store, config = coordinator
    store.close()
    # a re-issued certificate: a new key
    other = issue_pki(tmp_path / "new", {"coordinator": "coordinator"})["coordinator"]
    reopened = Store(str(store.engine.url), signer=audit.Signer.from_key_file(other.key))
    reopened.audit("job_state", {"job": "job-1"})
    reopened.close()

    code, out, _ = ensnif(
        capsys, "audit", "verify", "--config", str(config), "--cert", str(other.cert)
    )

    assert code == 0
    assert "record 5: anchor at record 4 taken over from key" in out


def test_show_lists_the_last_records_of_one_job(coordinator, capsys):
    store, config = coordinator
    store.create_job("job-2", SPEC, "bob", "pem", SIZING)

    code, out, _ = ensnif(
        capsys, "audit", "show", "--config", str(config), "--job", "job-1", "--limit", "2", "--json"
    )

    records = json.loads(out)["records"]
    assert code == 0
    assert [(r["seq"], r["event"]) for r in records] == [(2, "job_state"), (4, "result_released")]


def test_show_prints_a_table_for_people(coordinator, capsys):
    _, config = coordinator

    code, out, _ = ensnif(capsys, "audit", "show", "--config", str(config))

    assert code == 0
    assert "result_released" in out
    assert "to=alice" in out


def test_a_result_fetched_from_the_coordinator_is_audited_with_its_recipient(coordinator):
    from coordinator.handlers import Coordinator
    from ensnif_mpc.security.pki import Identity

    store, _ = coordinator
    path = ["validated", "awaiting_approval", "approved", "scheduled", "running", "succeeded"]
    for old, new in zip(["submitted", *path], path, strict=False):
        store.transition("job-1", JobState(old), JobState(new))
    store.put_share("job-1", "grocery", b"sealed", b"sig")

    Coordinator(store, scheduler=None).result(Identity("alice", "analyst"), "job-1")

    seq, _, event, details, _, _ = store.audit_rows()[-1]
    assert (event, details) == (
        "result_released",
        {"job": "job-1", "to": "alice", "shares": ["grocery"]},
    )


@pytest.fixture
def node(ca, tmp_path):
    config = tmp_path / "party.toml"
    config.write_text(f'name = "grocery"\nstate_dir = "{tmp_path}/state"\n' + _tls(ca["grocery"]))
    store = NodeStore(
        tmp_path / "state" / "node.db", signer=audit.Signer.from_key_file(ca["grocery"].key)
    )
    store.create("job-1", "approved", 0, {}, 41000)
    store.transition("job-1", "approved", "starting")
    store.transition("job-1", "starting", "running")
    yield store, config
    store.close()


def test_verify_reads_a_nodes_log_from_its_party_toml(node, capsys):
    _, config = node

    code, out, _ = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 0
    assert "audit log of party grocery: OK, 3 records" in out


def test_verify_names_a_deleted_last_record_at_a_node(node, capsys):
    store, config = node
    _sql(store, "DELETE FROM audit WHERE seq = 3")

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 5
    assert "broken at record 3: record 3 is missing" in err


def test_verify_of_a_missing_state_database_creates_nothing(ca, tmp_path, capsys):
    config = tmp_path / "party.toml"
    config.write_text(f'name = "grocery"\nstate_dir = "{tmp_path}/none"\n' + _tls(ca["grocery"]))

    code, _, err = ensnif(capsys, "audit", "verify", "--config", str(config))

    assert code == 2
    assert "no state database at" in err
    assert not (tmp_path / "none").exists()

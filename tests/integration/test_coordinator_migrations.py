"""Alembic migrations of the coordinator's database, on SQLite and PostgreSQL.

The migrations build exactly the ORM's schema (alembic finds no difference), a new
database is created and stamped at the newest revision, a database that
``create_all`` made before migrations existed is adopted (stamped, upgraded, its data
and audit chain kept), and a revision this version does not know is one clear error.
"""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from coordinator.store import (
    BASELINE,
    MIGRATIONS,
    AuditAnchorRow,
    Base,
    OutsourcedDatasetRow,
    Store,
)
from ensnif_mpc.audit import chain as audit
from ensnif_mpc.errors import InvalidConfig
from ensnif_mpc.jobs.jobstate import JobState
from tests.integration.test_coordinator_store_contract import SIZING, SPEC

HEAD = ScriptDirectory(MIGRATIONS).get_current_head()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c.db"
    return request.getfixturevalue("postgres_url")


def _alembic(conn) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["connection"] = conn
    return cfg


def _revision_and_diff(url: str) -> tuple[str | None, list]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            return ctx.get_current_revision(), compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_orm_schema(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "head")
    engine.dispose()

    revision, diff = _revision_and_diff(url)

    assert revision == HEAD
    assert diff == []


def test_the_migrations_go_down_to_nothing_and_up_again(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "head")
    with engine.begin() as conn:
        command.downgrade(_alembic(conn), "base")
    with engine.connect() as conn:
        left = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "head")
    engine.dispose()

    assert left == set()
    assert _revision_and_diff(url) == (HEAD, [])


def test_a_new_store_creates_the_schema_at_the_newest_revision(url):
    Store(url).close()

    assert _revision_and_diff(url) == (HEAD, [])


def _made_before_migrations(url: str) -> None:
    """What `Store` did before migrations: create_all of the baseline tables, a job, a chain."""
    engine = create_engine(url)
    # The baseline revision is, by its own test below, exactly that schema; build it and
    # drop alembic's bookkeeping, as if no migration had ever run.
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, state, spec, submitter, analyst_cert, sizing, session, "
                "progress, reason, reason_code, version, created_at, updated_at) VALUES "
                "('old-job', 'validated', :spec, 'alice', 'pem', :sizing, '{}', '{}', '', '', "
                "1, :t, :t)"
            ),
            {
                "spec": '{"protocol": "sum", "inputs": [{"party": "grocery", "dataset": '
                '"orders", "column": "basket_total"}, {"party": "pharmacy", "dataset": "sales", '
                '"column": "amount"}], "helpers": ["helper"], "params": {"min": 1.5}, '
                '"name": "total", "nonce": "", "signature": ""}',
                "sizing": '{"bit_length": 64, "decimals": 2}',
                "t": "2026-01-01 00:00:00+00:00",
            },
        )
        prev = audit.GENESIS
        for seq, event in enumerate(["job_submitted", "job_state"], start=1):
            at, details = f"2026-01-01T00:00:0{seq}+00:00", {"job": "old-job"}
            digest = audit.record_hash(prev, seq, at, event, details)
            conn.execute(
                text(
                    "INSERT INTO audit (seq, at, event, details, prev_hash, hash) "
                    "VALUES (:seq, :at, :event, :details, :prev, :hash)"
                ),
                {
                    "seq": seq,
                    "at": at,
                    "event": event,
                    "details": '{"job": "old-job"}',
                    "prev": prev,
                    "hash": digest,
                },
            )
            prev = digest
    engine.dispose()


def test_a_database_made_before_migrations_is_adopted_with_its_data(url):
    _made_before_migrations(url)

    store = Store(url)
    try:
        job = store.get_job("old-job")
        store.transition("old-job", JobState.VALIDATED, JobState.CANCELLED, reason="test")
        store.create_job("new-job", SPEC, "alice", "pem", SIZING)
        with store.engine.connect() as conn:
            rows, anchor, _ = audit.read(conn)
            report = audit.verify(rows, anchor)
    finally:
        store.close()

    assert job.state is JobState.VALIDATED
    assert _revision_and_diff(url) == (HEAD, [])
    assert (report.records, report.anchor.seq) == (4, 4)


def test_the_baseline_revision_is_the_schema_create_all_made(tmp_path):
    """Revision 0001 against the tables as create_all made them before migrations existed
    (today's metadata without what later revisions added), then upgraded to head."""
    url = f"sqlite:///{tmp_path}/c.db"
    engine = create_engine(url)
    later = {AuditAnchorRow.__tablename__, OutsourcedDatasetRow.__tablename__}  # 0002, 0005
    old_tables = [t for t in Base.metadata.sorted_tables if t.name not in later]
    Base.metadata.create_all(engine, tables=old_tables)
    with engine.begin() as conn:  # revision 0003's column did not exist then
        conn.execute(text("ALTER TABLE result_shares DROP COLUMN certificate_pem"))
        for column in ("mpc_host", "mpc_port_first", "mpc_port_last"):  # nor revision 0004's
            conn.execute(text(f"ALTER TABLE parties DROP COLUMN {column}"))
    with engine.begin() as conn:
        command.stamp(_alembic(conn), BASELINE)
        command.upgrade(_alembic(conn), "head")
    engine.dispose()

    assert _revision_and_diff(url) == (HEAD, [])


def test_a_revision_from_a_newer_ensnif_is_one_clear_error(tmp_path):
    path = tmp_path / "c.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    with pytest.raises(InvalidConfig, match="cannot open the state database .*'9999'"):
        Store(f"sqlite:///{path}")

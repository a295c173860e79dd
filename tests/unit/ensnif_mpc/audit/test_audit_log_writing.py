"""AuditLog's transactions: a store's change and the records it makes commit together or
not at all, on a session (``writing``) or a plain connection (``writing_core``), and the
chain they leave verifies up to its anchor; a sessionmaker bound per table works too."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ensnif_mpc.audit import chain as audit
from ensnif_mpc.db import AuditAnchorColumns, AuditColumns, make_engine

AT = "2026-12-02T15:00:00+00:00"


class Base(DeclarativeBase):
    pass


class Row(AuditColumns, Base):
    __tablename__ = "audit"


class Anchor(AuditAnchorColumns, Base):
    __tablename__ = "audit_anchor"


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path}/a.db")
    Base.metadata.create_all(e)
    yield e
    e.dispose()


def _state(engine) -> tuple[list[int], list[str], audit.Report]:
    with engine.connect() as conn:
        things = [r[0] for r in conn.execute(select(Thing.__table__.c.id))]
        rows, anchor, _ = audit.read(conn)
        rows = list(rows)
        return things, [r[2] for r in rows], audit.verify(rows, anchor)


def test_a_change_on_a_plain_connection_commits_with_its_records(engine) -> None:
    log = audit.AuditLog(sessionmaker(engine), Row, Anchor)

    with log.writing_core() as (conn, record):
        conn.execute(insert(Thing.__table__).values(id=1))
        record("made", {"thing": 1}, AT)
        record("named", {"thing": 1}, AT)
    log.append("looked", {"thing": 1}, AT)

    things, events, report = _state(engine)
    assert things == [1]
    assert events == ["made", "named", "looked"]
    assert (report.records, report.anchor.seq) == (3, 3)


def test_a_failed_block_leaves_neither_the_change_nor_its_records(engine) -> None:
    log = audit.AuditLog(sessionmaker(engine), Row, Anchor)
    log.append("first", {}, AT)

    with pytest.raises(RuntimeError), log.writing_core() as (conn, record):
        conn.execute(insert(Thing.__table__).values(id=2))
        record("made", {"thing": 2}, AT)
        raise RuntimeError("the change failed")

    things, events, report = _state(engine)
    assert things == []
    assert events == ["first"] and report.anchor.seq == 1


def test_a_sessionmaker_bound_per_table_writes_through_a_session(engine) -> None:
    binds = {Row: engine, Anchor: engine, Thing: engine}
    log = audit.AuditLog(sessionmaker(binds=binds), Row, Anchor)

    with log.writing() as (session, record):
        session.add(Thing(id=3))
        record("made", {"thing": 3}, AT)
    with log.writing_core() as (conn, record):
        conn.execute(insert(Thing.__table__).values(id=4))
        record("made", {"thing": 4}, AT)

    things, events, report = _state(engine)
    assert things == [3, 4]
    assert events == ["made", "made"] and report.records == 2

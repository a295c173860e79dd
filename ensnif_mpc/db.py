"""What the coordinator's and the nodes' SQLAlchemy stores share: engines and the audit table.

SQLite by default (WAL, so watchers read while the scheduler writes), any SQLAlchemy
URL otherwise (PostgreSQL in production).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(t: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        parent = Path(url.removeprefix("sqlite:///")).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ensnif_mpc.errors import InvalidConfig

            raise InvalidConfig(
                f"cannot create the state directory {parent}: {exc.strerror}"
            ) from exc
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def cannot_open(engine: Engine, exc: Exception) -> Exception:
    """The one-line error for a state database that cannot be opened (password hidden)."""
    from ensnif_mpc.errors import InvalidConfig

    where = engine.url.render_as_string(hide_password=True)
    first = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
    return InvalidConfig(
        f"cannot open the state database {where}: {first} (check the path or URL, "
        "its permissions, and that the server is running)"
    )


def create_schema(metadata: Any, engine: Engine) -> None:
    """Create the tables, or fail with one line a person can act on (not a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise cannot_open(engine, exc) from exc


@functools.cache
def _scripts(script_location: str) -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(script_location)


def upgrade_schema(
    engine: Engine, metadata: Any, script_location: str, baseline: str, marker: str
) -> None:
    """Bring the database to the newest alembic revision under ``script_location``.

    - at the newest revision already: nothing (one query);
    - empty: ``metadata.create_all`` and stamp the newest revision (alembic's own advice
      for a new database; a test checks that the migrations build the same schema);
    - no ``alembic_version`` but the table ``marker``: made by ``create_all`` before
      migrations existed, so stamped ``baseline`` (the revision describing that schema)
      and upgraded from there;
    - an older revision: upgraded.

    On PostgreSQL an advisory lock keeps two processes from migrating at once.
    Fails with one line a person can act on.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        scripts = _scripts(script_location)
        head = scripts.get_current_head()
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            ctx = MigrationContext.configure(conn)
            current = ctx.get_current_revision()
            if current == head:
                return
            if current is None:
                present = set(inspect(conn).get_table_names())
                if not present & set(metadata.tables):
                    metadata.create_all(conn)
                    ctx.stamp(scripts, head)
                    return
                if marker in present:
                    log.info("adopting a database made before migrations (revision %s)", baseline)
                    ctx.stamp(scripts, baseline)
            log.info("upgrading the state database from revision %s to %s", current, head)
            cfg = Config()
            cfg.set_main_option("script_location", script_location)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise cannot_open(engine, exc) from exc
    except CommandError as exc:  # e.g. a revision from a newer Ensnif than this one
        raise cannot_open(engine, exc) from exc


_MIGRATION_LOCK = 0x656E736E6966  # "ensnif": one advisory lock key for schema migrations


class AuditColumns:
    """Columns of an append-only, hash-chained audit table (see ``ensnif_mpc.audit.chain``)."""

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchorColumns:
    """The signed head of an audit chain: one row (``id`` 1), rewritten by every append."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(64))  # SHA-256 of the signer's public key; ""
    signature: Mapped[bytes] = mapped_column(LargeBinary)

"""What the coordinator's and the nodes' SQLAlchemy stores share: engines and the audit table.

SQLite by default (WAL, so watchers read while the scheduler writes), any SQLAlchemy
URL otherwise (PostgreSQL in production).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Integer, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column


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


def create_schema(metadata: Any, engine: Engine) -> None:
    """Create the tables, or fail with one line a person can act on (not a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ensnif_mpc.errors import InvalidConfig

    try:
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        first = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise InvalidConfig(
            f"cannot open the state database {where}: {first} (check the path or URL, "
            "its permissions, and that the server is running)"
        ) from exc


class AuditColumns:
    """Columns of an append-only, hash-chained audit table (see ``ensnif_mpc.audit``)."""

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

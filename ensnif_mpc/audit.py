"""Append-only, hash-chained audit records, shared by the coordinator and the nodes.

Each record's hash covers the previous record's hash, so editing or deleting a
past record breaks every later link (``verify_chain``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

GENESIS = "0" * 64


def record_hash(prev: str, seq: int, at: str, event: str, details: dict[str, Any]) -> str:
    body = json.dumps([prev, seq, at, event, details], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def verify_chain(rows: Iterable[tuple[int, str, str, dict[str, Any], str, str]]) -> int:
    """Rows are (seq, at, event, details, prev_hash, hash); returns how many verified."""
    prev, n = GENESIS, 0
    for seq, at, event, details, prev_hash, digest in rows:
        if prev_hash != prev or record_hash(prev, seq, at, event, details) != digest:
            raise ValueError(f"audit chain broken at record {seq}")
        prev, n = digest, n + 1
    return n


def append(session: Any, row_cls: Any, event: str, details: dict[str, Any], at: str) -> None:
    """Append a record to an audit table (columns seq, at, event, details, prev_hash, hash).

    The caller serializes appends (one lock per store) so that ``seq`` is gapless.
    """
    from sqlalchemy import select

    last = session.scalars(select(row_cls).order_by(row_cls.seq.desc()).limit(1)).first()
    prev, seq = (last.hash, last.seq + 1) if last else (GENESIS, 1)
    details = json.loads(json.dumps(details))
    session.add(
        row_cls(
            seq=seq,
            at=at,
            event=event,
            details=details,
            prev_hash=prev,
            hash=record_hash(prev, seq, at, event, details),
        )
    )

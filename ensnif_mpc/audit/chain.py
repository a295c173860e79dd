"""Append-only, hash-chained audit records with a signed head, shared by the coordinator and nodes.

The chain: record ``seq`` stores ``hash = H(prev_hash, seq, at, event, details)``,
``prev_hash`` being the hash of record ``seq - 1`` (``GENESIS`` for record 1). Editing,
deleting or reordering a record breaks the chain at that record or the next one. A
chain alone cannot show that records were cut off its end, nor that someone with
write access rebuilt it with fresh hashes; so each store also keeps an **anchor**:

- one row (``audit_anchor``) holding the head of the chain (its last ``seq`` and
  ``hash``), signed with the daemon's own consortium key (the ECDSA key of its TLS
  certificate), rewritten in the same transaction as every append. ``verify`` checks
  that the chain ends exactly where the anchor says and that the signature verifies
  with the daemon's certificate: a deleted last record (the chain ends before the
  anchor), a record added by hand (after it) or a rebuilt chain (another head hash)
  fails, unless whoever did it also holds the daemon's private key.
- before each append the store checks the anchor against the head it is about to
  extend. If they disagree (records were cut off while it was not looking), it first
  appends an ``audit_anchor_broken`` record saying what it found, so the evidence
  stays in the chain after it moves on; ``verify`` fails on such a record forever.
- an anchor that matches the head but was not signed by the store's key (a database
  from before anchors, or a daemon whose certificate was re-issued with a new key) is
  taken over and leaves an ``audit_anchor_adopted`` record, which ``verify`` lists as
  a note. Each such note should match an upgrade or a re-issued certificate that the
  operator knows of: a person with write access to the database (but not the key)
  could also produce one, by cutting records and writing an unsigned anchor.

What it cannot show: a rollback of the whole database to an older copy (chain and
anchor together, e.g. a restored backup) verifies. Against that, note the head that
``ensnif audit verify`` prints somewhere else from time to time; it must only grow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensnif_mpc.errors import EnsnifError

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

GENESIS = "0" * 64
ANCHOR_ID = 1
BROKEN = "audit_anchor_broken"
ADOPTED = "audit_anchor_adopted"
ROTATED = "audit_key_rotated"

Row = tuple[int, str, str, dict[str, Any], str, str]  # seq, at, event, details, prev_hash, hash


class AuditBroken(ValueError):
    """The audit log does not verify; ``seq`` names the first record found bad.

    (The CLI reports it as a ``FailedPrecondition`` with reason ``audit_broken``.)
    """

    def __init__(self, seq: int | None, why: str) -> None:
        where = f"audit chain broken at record {seq}" if seq is not None else "audit log broken"
        super().__init__(f"{where}: {why}")
        self.seq = seq


def record_hash(prev: str, seq: int, at: str, event: str, details: dict[str, Any]) -> str:
    body = json.dumps([prev, seq, at, event, details], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def anchor_message(seq: int, digest: str, at: str) -> bytes:
    return b"ensnif audit anchor v1\n" + json.dumps([seq, digest, at]).encode()


def key_id(public_key: Any) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo: names the key that signed an anchor."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class Signer:
    """Signs anchors with a daemon's consortium key (its TLS key, ECDSA P-256).

    Built from the key file, it follows the file: after a rotation (a new key in the
    same file) the next anchor is signed with the new key, and anchors this process
    signed with an older one still verify here (``known``).
    """

    def __init__(self, key_pem: bytes, path: Path | None = None) -> None:
        self._path = path
        self._stamp = _stamp(path)
        self.known: dict[str, Any] = {}  # key id -> public key, of every key this signer used
        self._use(key_pem)

    @classmethod
    def from_key_file(cls, path: Path) -> Signer:
        return cls(path.read_bytes(), path)

    def _use(self, key_pem: bytes) -> None:
        from ensnif_mpc.security.pki import load_private_key

        self._key = load_private_key(key_pem)
        self.key_id = key_id(self._key.public_key())
        self.known[self.key_id] = self._key.public_key()

    def refresh(self) -> None:
        """Load the key file again if it changed (a rotated key)."""
        stamp = _stamp(self._path)
        if self._path is None or stamp == self._stamp:
            return
        try:
            self._use(self._path.read_bytes())
        except (OSError, ValueError, EnsnifError) as exc:
            log.warning(
                "audit: cannot load the key %s (%s); signing with the old one", self._path, exc
            )
        self._stamp = stamp

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


def _verifies(public_key: Any, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str
    key_id: str  # "" when unsigned
    signature: bytes


@dataclass
class Report:
    records: int
    head_seq: int
    head_hash: str
    anchor: Anchor | None
    signature_checked: bool
    notes: list[str] = field(default_factory=list)


def verify_chain(rows: Iterable[Row]) -> int:
    """Check the links of a chain (no anchor); returns how many records verified."""
    return _walk(rows, [])[0]


def _walk(rows: Iterable[Row], notes: list[str]) -> tuple[int, int, str]:
    prev, expected, n = GENESIS, 1, 0
    for seq, at, event, details, prev_hash, digest in rows:
        if seq != expected:
            why = f"record {expected} is missing" if seq > expected else "it is out of order"
            raise AuditBroken(seq, f"{why} (the chain goes from record {expected - 1} to {seq})")
        if prev_hash != prev:
            raise AuditBroken(
                seq,
                f"it does not link to record {seq - 1} "
                "(one of them was edited and re-hashed, or replaced)",
            )
        if record_hash(prev, seq, at, event, details) != digest:
            raise AuditBroken(seq, "its contents do not match its hash (edited)")
        if event == BROKEN:
            raise AuditBroken(
                seq, f"the store found its anchor broken before this record: {details}"
            )
        if event == ADOPTED:
            notes.append(
                f"record {seq}: anchor at record {details.get('anchored_seq')} taken over "
                f"from key {details.get('previous_key') or 'none (unsigned)'} at {at}"
            )
        if event == ROTATED:
            notes.append(f"record {seq}: signing key rotated to {details.get('to')}… at {at}")
        prev, expected, n = digest, seq + 1, n + 1
    return n, expected - 1, prev


def verify(rows: Iterable[Row], anchor: Anchor | None, public_key: Any | None = None) -> Report:
    """Verify a whole log: the chain, then that it ends at the anchor, signed by ``public_key``.

    Raises :class:`AuditBroken` naming the first bad record; without ``public_key`` the
    anchor's signature is not checked (the report says so).
    """
    notes: list[str] = []
    n, last, head = _walk(rows, notes)
    if anchor is None:
        if n:
            raise AuditBroken(
                last, f"the chain of {n} records has no anchor (its signed head was deleted)"
            )
        return Report(0, 0, GENESIS, None, False, notes)
    if anchor.seq > last:
        raise AuditBroken(
            last + 1,
            f"record {last + 1} is missing: the chain ends at record {last} "
            f"but its anchor (signed at {anchor.at}) names record {anchor.seq}",
        )
    if anchor.seq < last:
        raise AuditBroken(
            anchor.seq + 1,
            f"record {anchor.seq + 1} is not covered by the anchor, which ends at record "
            f"{anchor.seq} (records were added outside the store)",
        )
    if anchor.hash != head:
        raise AuditBroken(last, "it is not the record its anchor names (the chain was rebuilt)")
    checked = False
    if public_key is not None:
        expected_id = key_id(public_key)
        if not anchor.key_id:
            raise AuditBroken(
                last,
                "the anchor is not signed yet (a database from before anchors: the daemon "
                "signs it at its next audited event), or was replaced by an unsigned one",
            )
        if anchor.key_id != expected_id:
            raise AuditBroken(
                last,
                f"the anchor is signed by another key ({anchor.key_id[:16]}…, not "
                f"{expected_id[:16]}…): the certificate was re-issued since the last "
                "audited event, or the anchor was replaced",
            )
        if not _verifies(
            public_key, anchor_message(anchor.seq, anchor.hash, anchor.at), anchor.signature
        ):
            raise AuditBroken(last, "the anchor's signature does not verify (forged anchor)")
        checked = True
    return Report(n, last, head, anchor, checked, notes)


class AuditLog:
    """Appends to one store's audit table and keeps its anchor (see the module docstring).

    ``sessions`` is the store's sessionmaker; ``row_cls`` and ``anchor_cls`` are its ORM
    classes (``ensnif_mpc.db.AuditColumns``, ``AuditAnchorColumns``). Appends are
    serialized by a lock here and, across processes, by writing the anchor row first
    (SQLite's write lock, PostgreSQL's row lock) before reading the head.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        row_cls: Any,
        anchor_cls: Any,
        signer: Signer | None = None,
    ) -> None:
        self._sessions = sessions
        self._row = row_cls
        self._anchor = anchor_cls
        self._signer = signer
        self._lock = threading.Lock()
        self._trusted: tuple[int, str, bytes] | None = None  # the last anchor this log signed
        self._sql: dict[str, Any] | None = None  # the append's statements (_statements)

    def append(self, event: str, details: dict[str, Any], at: str) -> None:
        with self.writing_core() as (_, record):
            record(event, details, at)

    @contextmanager
    def writing_core(
        self,
    ) -> Iterator[tuple[Connection, Callable[[str, dict[str, Any], str], None]]]:
        """:meth:`writing` on a plain connection, for changes made with Core statements:
        the same transaction, chain and signed anchor, without an ORM session (its
        set-up, its transaction's bookkeeping and its commit cost about a fifth of a
        state change's CPU)."""
        pending: list[tuple[str, dict[str, Any], str]] = []

        def record(event: str, details: dict[str, Any], at: str) -> None:
            pending.append((event, json.loads(json.dumps(details)), at))

        engine = self._sessions.kw.get("bind")
        if engine is None:  # a sessionmaker without one engine: a session's connection
            with self.writing() as (session, record_in):
                yield session.connection(bind_arguments={"mapper": self._row}), record_in
            return
        with self._lock:
            with engine.begin() as conn:
                yield conn, record
                signed = self._chain(conn, pending) if pending else None
            if signed is not None:
                self._trusted = signed

    @contextmanager
    def writing(self) -> Iterator[tuple[Session, Callable[[str, dict[str, Any], str], None]]]:
        """One transaction for a store's own change and the audit records it makes:
        ``with log.writing() as (session, record): ...; record(event, details, at)``.

        The records join the chain (and the anchor is re-signed, once for all of them)
        in the same transaction as the change, when the block ends: a change and its
        records commit together or not at all, with one commit and one signature
        instead of one each per record. Nothing is dropped: every record is chained."""
        pending: list[tuple[str, dict[str, Any], str]] = []

        def record(event: str, details: dict[str, Any], at: str) -> None:
            pending.append((event, json.loads(json.dumps(details)), at))

        with self._lock:
            with self._sessions.begin() as s:
                yield s, record
                conn = s.connection(bind_arguments={"mapper": self._row})
                signed = self._chain(conn, pending) if pending else None
            if signed is not None:
                self._trusted = signed

    def _chain(
        self, conn: Any, pending: list[tuple[str, dict[str, Any], str]]
    ) -> tuple[int, str, bytes]:
        """Extend the chain by ``pending`` on the transaction's connection ``conn`` and
        re-sign the anchor; Core statements (no ORM unit of work, and not the session's
        execute, which adds its bookkeeping to each, about 20 µs apiece): the anchor row
        is locked first."""
        if self._signer is not None:
            self._signer.refresh()
        sql = self._statements()
        conn.execute(sql["lock"])  # take the anchor row's lock first
        # The anchor and the chain's head in one read (two scalar subqueries).
        anchor = conn.execute(sql["anchor"]).first()
        if anchor is None:  # no anchor row (a new chain, or a deleted anchor)
            last = conn.execute(sql["last"]).first()
        else:
            last = None if anchor.head_seq is None else (anchor.head_seq, anchor.head_hash)
        head = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        rows: list[dict[str, Any]] = []
        finding = self._inspect(anchor, head)
        at = pending[-1][2]
        if finding is not None:
            head = _extend(rows, head, finding[0], finding[1], pending[0][2])
        for event, details, when in pending:
            head = _extend(rows, head, event, details, when)
        conn.execute(sql["insert"], rows)
        signature = self._signer.sign(anchor_message(*head, at)) if self._signer else b""
        values = {
            "seq": head[0],
            "hash": head[1],
            "at": at,
            "key_id": self._signer.key_id if self._signer else "",
            "signature": signature,
        }
        if anchor is None:
            conn.execute(sql["new_anchor"], {"id": ANCHOR_ID, **values})
        else:
            conn.execute(sql["set_anchor"], {f"new_{k}": v for k, v in values.items()})
        return head[0], head[1], signature

    def _statements(self) -> dict[str, Any]:
        """The append's SQL, built once per log on the tables themselves (SQLAlchemy
        Core: building statements and the ORM's bulk paths cost more than running them)."""
        if self._sql is None:
            from sqlalchemy import bindparam, insert, select, update

            a, r = self._anchor.__table__, self._row.__table__
            named = ("seq", "hash", "at", "key_id", "signature")
            last = select(r.c.seq, r.c.hash).order_by(r.c.seq.desc()).limit(1)
            head_seq = select(r.c.seq).order_by(r.c.seq.desc()).limit(1).scalar_subquery()
            head_hash = select(r.c.hash).order_by(r.c.seq.desc()).limit(1).scalar_subquery()
            self._sql = {
                "lock": update(a).where(a.c.id == ANCHOR_ID).values(seq=a.c.seq),
                "anchor": select(
                    *(a.c[n] for n in named),
                    head_seq.label("head_seq"),
                    head_hash.label("head_hash"),
                ).where(a.c.id == ANCHOR_ID),
                "last": last,
                "insert": insert(r),
                "new_anchor": insert(a),
                "set_anchor": update(a)
                .where(a.c.id == ANCHOR_ID)
                .values({n: bindparam(f"new_{n}") for n in named}),
            }
        return self._sql

    def _inspect(self, anchor: Any, head: tuple[int, str]) -> tuple[str, dict[str, Any]] | None:
        """What to record before extending ``head``: nothing, a broken or an adopted anchor."""
        if anchor is None:
            if head[0] == 0:
                return None
            return BROKEN, {"problem": "anchor missing", "head_seq": head[0]}
        if (anchor.seq, anchor.hash) != head:
            problem = (
                f"the chain ends at record {head[0]} but the anchor names record {anchor.seq}"
                if anchor.seq != head[0]
                else f"record {head[0]} is not the one the anchor names"
            )
            return BROKEN, {"problem": problem, "anchored_seq": anchor.seq, "head_seq": head[0]}
        signer = self._signer
        if signer is None:
            return None
        public = signer.known.get(anchor.key_id)
        if public is None:  # unsigned, or signed by a key this process never held
            return ADOPTED, {"anchored_seq": anchor.seq, "previous_key": anchor.key_id[:16]}
        if self._trusted != (anchor.seq, anchor.hash, anchor.signature) and not _verifies(
            public, anchor_message(anchor.seq, anchor.hash, anchor.at), anchor.signature
        ):
            return BROKEN, {
                "problem": "the anchor's signature does not verify",
                "head_seq": head[0],
            }
        if anchor.key_id != signer.key_id:
            return ROTATED, {"from": anchor.key_id[:16], "to": signer.key_id[:16]}
        return None


def _extend(
    rows: list[dict[str, Any]], head: tuple[int, str], event: str, details: dict[str, Any], at: str
) -> tuple[int, str]:
    """Append the record after ``head`` to ``rows``; its (seq, hash) is the new head."""
    seq, digest = head[0] + 1, record_hash(head[1], head[0] + 1, at, event, details)
    rows.append(
        {"seq": seq, "at": at, "event": event, "details": details, "prev_hash": head[1]}
        | {"hash": digest}
    )
    return seq, digest


def adopt(session: Any, row_cls: Any, anchor_cls: Any, at: str) -> None:
    """Anchor an existing chain that has no anchor yet, unsigned (a database from before)."""
    from sqlalchemy import select

    if session.get(anchor_cls, ANCHOR_ID) is not None:
        return
    last = session.scalars(select(row_cls).order_by(row_cls.seq.desc()).limit(1)).first()
    if last is not None:
        session.add(
            anchor_cls(id=ANCHOR_ID, seq=last.seq, hash=last.hash, at=at, key_id="", signature=b"")
        )


# -- reading a log from outside the daemon (ensnif audit) ------------------------------------
def read(conn: Any, batch: int = 1000) -> tuple[Iterator[Row], Anchor | None, bool]:
    """Rows (in ``seq`` order, streamed), the anchor, and whether the anchor table exists.

    Plain SQL on the table names both stores use, so it needs neither store's classes
    and writes nothing.
    """
    from sqlalchemy import JSON, Integer, LargeBinary, String, column, inspect, select, table

    tables = set(inspect(conn).get_table_names())
    if "audit" not in tables:
        raise AuditBroken(None, "this database has no audit table (not an Ensnif state database?)")
    audit_t = table(
        "audit",
        column("seq", Integer),
        column("at", String),
        column("event", String),
        column("details", JSON),
        column("prev_hash", String),
        column("hash", String),
    )
    anchor_t = table(
        "audit_anchor",
        column("id", Integer),
        column("seq", Integer),
        column("hash", String),
        column("at", String),
        column("key_id", String),
        column("signature", LargeBinary),
    )
    anchor = None
    if "audit_anchor" in tables:
        a = conn.execute(
            select(
                anchor_t.c.seq,
                anchor_t.c.hash,
                anchor_t.c.at,
                anchor_t.c.key_id,
                anchor_t.c.signature,
            ).where(anchor_t.c.id == ANCHOR_ID)
        ).first()
        anchor = None if a is None else Anchor(a[0], a[1], a[2], a[3] or "", bytes(a[4] or b""))

    def rows() -> Iterator[Row]:
        result = conn.execute(
            select(audit_t).order_by(audit_t.c.seq).execution_options(yield_per=batch)
        )
        for r in result:
            yield (r[0], r[1], r[2], dict(r[3] or {}), r[4], r[5])

    return rows(), anchor, "audit_anchor" in tables


NO_ANCHOR_TABLE = (
    "this database has no audit anchor yet (last opened by an older Ensnif): start the "
    "daemon once with this version to upgrade it"
)

"""The node's own state (SQLite): its decisions, its jobs, their results, its audit chain.

The node is the authority over its data: this store, not the coordinator's, says
what it approved and what it delivered. State changes are conditional UPDATEs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ensnif_mpc.audit import chain as audit
from ensnif_mpc.db import (
    AuditAnchorColumns,
    AuditColumns,
    aware,
    create_schema,
    make_engine,
    utcnow,
)
from ensnif_mpc.errors import InvalidTransition, UnknownJob
from ensnif_mpc.jobs import approvals
from party_node.states import NODE_ALLOWED, NODE_LIVE, NodeState

__all__ = ["NODE_ALLOWED", "NODE_LIVE", "Approval", "NodeJob", "NodeState", "NodeStore"]


class _Base(DeclarativeBase):
    pass


class NodeJobRow(_Base):
    __tablename__ = "node_jobs"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    party_index: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    mpc_port: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_code: Mapped[str] = mapped_column(String(64), default="")
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sealed_share: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NonceRow(_Base):
    """Nonces of signed jobs this node has considered: a signed job runs at most once."""

    __tablename__ = "job_nonces"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))


class QuestionRow(_Base):
    """Questions this node admitted, for the policy's repeat limit (same key = same question)."""

    __tablename__ = "questions"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ApprovalRow(_Base):
    """A decision on a job by this node: automatic (the policy) or by its administrator.

    The administrator's CLI writes a row with ``applied`` false; the node applies it
    (re-checking policy and reserving budget) and sets ``applied``. Every row carries
    the node's signature over the job hash, so the decision can be shown and checked.
    """

    __tablename__ = "approvals"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # approved | rejected
    approver: Mapped[str] = mapped_column(String(128))
    at: Mapped[str] = mapped_column(String(40))
    job_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # hex
    reason: Mapped[str] = mapped_column(Text, default="")
    applied: Mapped[bool] = mapped_column(Boolean, default=False)


class NodeAuditRow(AuditColumns, _Base):
    __tablename__ = "audit"


class NodeAuditAnchorRow(AuditAnchorColumns, _Base):
    """The audit chain's signed head (``ensnif_mpc.audit.chain``)."""

    __tablename__ = "audit_anchor"


@dataclass(frozen=True)
class NodeJob:
    job_id: str
    state: NodeState
    party_index: int
    data: dict[str, Any]  # proposal: spec, order, sizing, analyst cert, MPC credential
    mpc_port: int
    reason: str
    reason_code: str
    progress: dict[str, Any]
    sealed_share: bytes
    version: int
    updated_at: dt.datetime | None = None


Approval = approvals.Decision


def _approval(r: ApprovalRow) -> Approval:
    return Approval(r.job_id, r.decision, r.approver, r.at, r.job_hash, r.signature, r.reason)


def _rec(r: Any) -> NodeJob:
    """A NodeJob from a job row's columns: an ORM row, a Core row or a namespace."""
    return NodeJob(
        r.job_id,
        NodeState(r.state),
        r.party_index,
        dict(r.data),
        r.mpc_port,
        r.reason,
        r.reason_code,
        dict(r.progress or {}),
        r.sealed_share or b"",
        r.version,
        aware(r.updated_at) if r.updated_at else None,
    )


class NodeStore:
    def __init__(self, path: Path, signer: audit.Signer | None = None) -> None:
        """``signer`` (the node's consortium key) signs the audit anchor; None: unsigned."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(f"sqlite:///{path}")
        had_anchor = _has_table(self.engine, "audit_anchor")
        create_schema(_Base.metadata, self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._audit = audit.AuditLog(self._sessions, NodeAuditRow, NodeAuditAnchorRow, signer)
        table = NodeJobRow.__table__
        self._by_id = select(table).where(table.c.job_id == bindparam("job_id"))
        if not had_anchor:  # a node.db from before anchors: anchor its chain as it is
            with self._sessions.begin() as s:
                audit.adopt(s, NodeAuditRow, NodeAuditAnchorRow, utcnow().isoformat())

    def close(self) -> None:
        self.engine.dispose()

    def get(self, job_id: str) -> NodeJob:
        job = self.find(job_id)
        if job is None:
            raise UnknownJob(f"this node has no job {job_id!r}")
        return job

    def find(self, job_id: str) -> NodeJob | None:
        # A Core read (the row's columns by name, as _rec reads them): no ORM session, no
        # identity map, a dozen times per job on the node's Propose, Start and Watch paths.
        with self.engine.connect() as conn:
            r = conn.execute(self._by_id, {"job_id": job_id}).first()
            return None if r is None else _rec(r)

    def claim_nonce(self, nonce: str, job_id: str) -> str:
        """Record ``nonce`` for ``job_id``; the job id that holds it (another one = a replay)."""
        from sqlalchemy.exc import IntegrityError

        try:
            with self._sessions.begin() as s:
                s.add(NonceRow(nonce=nonce, job_id=job_id))
            return job_id
        except IntegrityError:
            with self._sessions() as s:
                row = s.get(NonceRow, nonce)
                return row.job_id if row else job_id

    def create(
        self,
        job_id: str,
        state: NodeState,
        index: int,
        data: dict[str, Any],
        port: int,
        reason: str = "",
        reason_code: str = "",
    ) -> NodeJob:
        now = utcnow()
        values: dict[str, Any] = {
            "job_id": job_id,
            "state": str(state),  # the enum's value: the database holds plain strings
            "party_index": index,
            "data": data,
            "mpc_port": port,
            "reason": reason,
            "reason_code": reason_code,
            "progress": {},
            "sealed_share": b"",
            "version": 0,
            "updated_at": now,
        }
        # The job and its record, one commit; a Core insert, the record built from the values.
        with self._audit.writing_core() as (conn, record):
            conn.execute(insert(NodeJobRow).values(**values))
            details = {"job": job_id, "reason_code": reason_code}
            record(f"proposal_{state}", details, now.isoformat())
        return _rec(SimpleNamespace(**values))

    def live(self) -> list[NodeJob]:
        return self._in_states(NODE_LIVE)

    def _in_states(self, states: Any) -> list[NodeJob]:
        """The jobs in any of ``states``, read with Core (the monitor asks 1 to 5 times a
        second)."""
        table = NodeJobRow.__table__
        wanted = sorted(str(state) for state in states)
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.state.in_(wanted))).all()
            return [_rec(r) for r in rows]

    def ports_in_use(self) -> set[int]:
        return {j.mpc_port for j in self.live()}

    def transition(
        self,
        job_id: str,
        old: NodeState,
        new: NodeState,
        reason: str = "",
        reason_code: str = "",
        **fields: Any,
    ) -> bool:
        if new not in NODE_ALLOWED.get(old, frozenset()):
            raise InvalidTransition(f"node job cannot go from {old} to {new}")
        values: dict[str, Any] = {
            "state": str(new),
            "updated_at": utcnow(),
            "version": NodeJobRow.version + 1,
            **fields,
        }
        if reason:
            values.update(reason=reason, reason_code=reason_code)
        # The state change and its audit record in one transaction (one commit, where
        # there were two on every job's path): after a crash both are there or neither.
        with self._audit.writing_core() as (conn, record):
            res = conn.execute(
                update(NodeJobRow)
                .where(NodeJobRow.job_id == job_id, NodeJobRow.state == str(old))
                .values(**values)
            )
            changed = bool(res.rowcount)
            if changed:
                details = {"job": job_id, "from": str(old), "reason_code": reason_code}
                record(f"job_{new}", details, values["updated_at"].isoformat())
        return changed

    # -- questions and approvals --------------------------------------------
    def record_question(self, job_id: str, key: str) -> None:
        with self._sessions.begin() as s:
            if s.get(QuestionRow, job_id) is None:
                s.add(QuestionRow(job_id=job_id, key=key, at=utcnow()))

    def forget_question(self, job_id: str) -> None:
        """A job admitted but never run does not count toward the repeat limit."""
        with self._sessions.begin() as s:
            row = s.get(QuestionRow, job_id)
            if row is not None:
                s.delete(row)

    def count_question(self, key: str, since: dt.datetime, exclude: str) -> int:
        """How often the question ``key`` was admitted since ``since`` (other jobs)."""
        from sqlalchemy import func

        with self._sessions() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(QuestionRow)
                    .where(QuestionRow.key == key, QuestionRow.at >= since)
                    .where(QuestionRow.job_id != exclude)
                )
                or 0
            )

    def add_approval(self, approval: Approval, applied: bool = False) -> bool:
        """Store a decision; False when the job already has one (the first decision stands).

        The decision and its audit record commit together (a Core insert on the audit's
        connection): a crash never leaves a decision without its record."""
        from sqlalchemy.exc import IntegrityError

        try:
            with self._audit.writing_core() as (conn, record):
                conn.execute(
                    insert(ApprovalRow).values(**dataclasses.asdict(approval), applied=applied)
                )
                details = {
                    "job": approval.job_id,
                    "by": approval.approver,
                    "reason": approval.reason,
                }
                record("approval_" + approval.decision, details, utcnow().isoformat())
        except IntegrityError:
            return False
        return True

    def approval(self, job_id: str) -> Approval | None:
        with self._sessions() as s:
            row = s.get(ApprovalRow, job_id)
            return None if row is None else _approval(row)

    def unapplied_approvals(self) -> list[Approval]:
        with self._sessions() as s:
            rows = s.scalars(select(ApprovalRow).where(ApprovalRow.applied.is_(False))).all()
            return [_approval(r) for r in rows]

    def mark_applied(self, job_id: str) -> None:
        with self._sessions.begin() as s:
            s.execute(update(ApprovalRow).where(ApprovalRow.job_id == job_id).values(applied=True))

    def by_state(self, state: NodeState) -> list[NodeJob]:
        return self._in_states((state,))

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._sessions.begin() as s:
            s.execute(
                update(NodeJobRow)
                .where(NodeJobRow.job_id == job_id)
                .values(progress=progress, version=NodeJobRow.version + 1, updated_at=utcnow())
            )

    def audit(self, event_name: str, details: dict[str, Any]) -> None:
        self._audit.append(event_name, details, utcnow().isoformat())

    def audit_rows(self) -> list[tuple[int, str, str, dict[str, Any], str, str]]:
        with self._sessions() as s:
            rows = s.scalars(select(NodeAuditRow).order_by(NodeAuditRow.seq)).all()
            return [(r.seq, r.at, r.event, dict(r.details), r.prev_hash, r.hash) for r in rows]


def _has_table(engine: Any, name: str) -> bool:
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return bool(inspect(engine).has_table(name))
    except SQLAlchemyError:
        return True  # create_schema reports an unreadable database in one line

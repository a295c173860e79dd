"""Coordinator state in SQLAlchemy 2 (SQLite file by default, PostgreSQL by URL).

Job state changes are one conditional UPDATE (``WHERE state = :old``), checked
against the transition table first, so two writers cannot race. The schema is
managed by alembic (``coordinator/migrations``): opening a store upgrades its
database to the newest revision, adopting one that ``create_all`` made before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
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
from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.db import (
    AuditAnchorColumns,
    AuditColumns,
    aware,
    make_engine,
    upgrade_schema,
    utcnow,
)
from ensnif_mpc.errors import UnknownJob
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState, check_transition


class Base(DeclarativeBase):
    pass


class PartyRow(Base):
    __tablename__ = "parties"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(256))
    certificate_pem: Mapped[str] = mapped_column(Text)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # where its MPC workers listen, as the node registered it ("" / 0: not published)
    mpc_host: Mapped[str] = mapped_column(String(256), default="", server_default="")
    mpc_port_first: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mpc_port_last: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class DatasetRow(Base):
    __tablename__ = "datasets"
    party: Mapped[str] = mapped_column(ForeignKey("parties.name"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    # The owner's published DP policy (a read-only mirror; the node's ledger decides).
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutsourcedDatasetRow(Base):
    """An outsourced dataset's catalog entry: under its owner's name (a member without a
    node, so no ``parties`` row), served by the helper node ``host``."""

    __tablename__ = "outsourced_datasets"
    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(ForeignKey("parties.name"))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitter: Mapped[str] = mapped_column(String(128))
    analyst_cert: Mapped[str] = mapped_column(Text)
    sizing: Mapped[dict[str, Any]] = mapped_column(JSON)
    session: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_code: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ShareRow(Base):
    __tablename__ = "result_shares"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    # The signing node's certificate when the share was collected ("" before revision 3).
    certificate_pem: Mapped[str] = mapped_column(Text, default="", server_default="")


class AuditRow(AuditColumns, Base):
    __tablename__ = "audit"


class AuditAnchorRow(AuditAnchorColumns, Base):
    __tablename__ = "audit_anchor"


MIGRATIONS = str(Path(__file__).with_name("migrations"))
BASELINE = "0001"  # the schema create_all made before migrations (it has `jobs`)


@dataclass(frozen=True)
class PartyRecord:
    name: str
    role: str
    address: str
    certificate_pem: str
    last_seen: dt.datetime
    mpc_host: str = ""  # where its MPC workers listen; "" when the node did not say
    mpc_ports: tuple[int, int] = (0, 0)  # first, last; (0, 0) when not published


def _party(r: PartyRow) -> PartyRecord:
    return PartyRecord(
        r.name,
        r.role,
        r.address,
        r.certificate_pem,
        aware(r.last_seen),
        r.mpc_host or "",
        (r.mpc_port_first or 0, r.mpc_port_last or 0),
    )


@dataclass(frozen=True)
class JobRecord:
    id: str
    state: JobState
    spec: JobSpec
    submitter: str
    analyst_cert: str
    sizing: dict[str, Any]
    session: dict[str, Any]
    progress: dict[str, Any]
    reason: str
    reason_code: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    extra: dict[str, Any] = field(default_factory=dict)


def _policy(raw: dict[str, Any] | None) -> PrivacyPolicy:
    if not raw:
        return PrivacyPolicy()
    return PrivacyPolicy(**{**raw, "exact_protocols": tuple(raw.get("exact_protocols", ()))})


def _spec_dict(spec: JobSpec) -> dict[str, Any]:
    return {
        "protocol": spec.protocol,
        "inputs": [i.to_dict() for i in spec.inputs],
        "helpers": list(spec.helpers),
        "params": spec.params,
        "name": spec.name,
        **({"privacy": spec.privacy.to_dict()} if spec.privacy else {}),
        "nonce": spec.nonce,
        "signature": spec.signature.hex(),
        **({"program": spec.program.to_wire()} if spec.program is not None else {}),
        **({"artifacts": list(spec.artifacts)} if spec.artifacts else {}),
    }


def _job(row: Any) -> JobRecord:
    """A job's record from its ORM row or a Core row of the jobs table (same names)."""
    return JobRecord(
        id=row.id,
        state=JobState(row.state),
        spec=jobspec.from_dict(dict(row.spec)),
        submitter=row.submitter,
        analyst_cert=row.analyst_cert,
        sizing=dict(row.sizing),
        session=dict(row.session or {}),
        progress=dict(row.progress or {}),
        reason=row.reason,
        reason_code=row.reason_code,
        version=row.version,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


@functools.lru_cache(maxsize=128)
def _job_update(names: tuple[str, ...], by_state: bool, returning: bool = False) -> Any:
    """``UPDATE jobs SET <names>…, version = version + 1 WHERE id = :b_id [AND state =
    :b_state] [RETURNING *]``, built once per set of column names (SQLAlchemy Core on the
    table: building a statement, and the ORM's bulk-update path, cost more CPU than running
    it). ``returning``: the row as written comes back (where the database can say so), so
    the store keeps the job's new record without reading it again."""
    jobs = Base.metadata.tables[JobRow.__tablename__]
    where = [jobs.c.id == bindparam("b_id")]
    if by_state:
        where.append(jobs.c.state == bindparam("b_state"))
    values: dict[str, Any] = {n: bindparam(f"v_{n}") for n in names}
    values["version"] = jobs.c.version + bindparam("b_bump")
    statement = update(jobs).where(*where).values(values)
    return statement.returning(*jobs.c) if returning else statement


_JOBS = Base.metadata.tables[JobRow.__tablename__]
_SHARES = Base.metadata.tables[ShareRow.__tablename__]
_SHARE_UPDATE = (
    update(_SHARES)
    .where(_SHARES.c.job_id == bindparam("b_job"), _SHARES.c.party == bindparam("b_party"))
    .values({n: bindparam(f"v_{n}") for n in ("blob", "signature", "certificate_pem")})
)
_SHARE_INSERT = insert(_SHARES)
_JOB_BY_ID = select(_JOBS).where(_JOBS.c.id == bindparam("b_id"))
_JOB_INSERT = insert(_JOBS)


PROGRESS_WRITE_S = 1.0  # a running job's progress is written at most this often (set_progress)
JOBS_KEPT = 512  # job records get_job keeps in memory (the newest read or written)


def _bound(values: dict[str, Any]) -> dict[str, Any]:
    return {f"v_{n}": v for n, v in values.items()}


class Store:
    """The coordinator's persistent state. Thread-safe: one short session per call.

    ``signer`` (the coordinator's consortium key) signs the audit chain's anchor;
    without one the anchor is written unsigned (tests, tools).
    """

    def __init__(self, url: str, signer: audit.Signer | None = None) -> None:
        self.engine = make_engine(url)
        upgrade_schema(self.engine, Base.metadata, MIGRATIONS, BASELINE, marker="jobs")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._audit = audit.AuditLog(self._sessions, AuditRow, AuditAnchorRow, signer)
        # A running job's latest progress, not yet written: job id -> (progress, updates
        # since the last write), and when its progress was last written. See set_progress.
        self._live: dict[str, tuple[dict[str, Any], int]] = {}
        self._written_at: dict[str, float] = {}
        self._live_lock = threading.Lock()
        self._progress_lock = threading.Lock()
        # The registered parties and the catalog, read once and kept in step by this
        # store's own writes (see _directory). None: not read yet, or changed since.
        self._directory_lock = threading.Lock()
        # Job records as committed, by id, and how many job writes this store made (get_job).
        self._jobs: dict[str, JobRecord] = {}
        self._jobs_written = 0
        # UPDATE … RETURNING where the database has it (SQLite 3.35+, PostgreSQL).
        self._returning = bool(getattr(self.engine.dialect, "update_returning", False))
        self._jobs_lock = threading.Lock()
        self._parties: dict[str, PartyRecord] | None = None
        self._catalog: tuple[DatasetSchema, ...] | None = None

    def close(self) -> None:
        self.engine.dispose()

    # -- parties and catalog -------------------------------------------------
    def upsert_party(
        self,
        name: str,
        role: str,
        address: str,
        cert_pem: str,
        mpc_host: str = "",
        mpc_ports: tuple[int, int] = (0, 0),
    ) -> PartyRecord:
        """Register or refresh a party; audited when it is new or its details changed."""
        with self._directory_lock:  # committed, then shown by the directory
            with self._sessions.begin() as s:
                row = s.get(PartyRow, name)
                changed = row is None or (row.role, row.address, row.certificate_pem) != (
                    role,
                    address,
                    cert_pem,
                )
                if row is None:
                    row = PartyRow(name=name)
                    s.add(row)
                row.role, row.address, row.certificate_pem, row.last_seen = (
                    role,
                    address,
                    cert_pem,
                    utcnow(),
                )
                row.mpc_host, (row.mpc_port_first, row.mpc_port_last) = mpc_host, mpc_ports
                rec = _party(row)
            if self._parties is not None:  # a new dict: readers keep a consistent one
                self._parties = {**self._parties, name: rec}
        if changed:  # nodes re-register every few seconds: only changes are events
            self.audit("party_registered", {"party": name, "role": role, "address": address})
        return rec

    def _directory(self) -> dict[str, PartyRecord]:
        """Every registered party by name, read from the database once and then kept up
        to date by ``upsert_party`` (the only writer of the table).

        Why: the scheduler, the node client and the analysts' listing read a party on
        every call to a node and every result (py-spy: the ORM read was the coordinator's
        single hottest function, about 0.16 ms each, a dozen times per job). The assumption:
        one coordinator process writes its database (as ``set_progress``'s unwritten progress
        assumes too); a change another process made to the parties table is seen after a
        restart."""
        known = self._parties
        if known is not None:  # replaced whole on a change, never edited: no lock to read
            return known
        with self._directory_lock:
            if self._parties is None:
                with self._sessions() as s:
                    rows = s.scalars(select(PartyRow)).all()
                    self._parties = {r.name: _party(r) for r in rows}
            return self._parties

    def list_parties(self) -> list[PartyRecord]:
        return sorted(self._directory().values(), key=lambda p: p.name)

    def get_party(self, name: str) -> PartyRecord | None:
        return self._directory().get(name)

    def upsert_dataset(self, d: DatasetSchema) -> bool:
        """Publish or refresh a catalog entry; True when it is new or changed."""
        cols = [c.__dict__.copy() for c in d.columns]
        policy = dataclasses.asdict(d.policy)
        policy["exact_protocols"] = list(d.policy.exact_protocols)
        with self._directory_lock:  # a change and the catalog's reading do not interleave
            changed = (
                self._upsert_outsourced(d, cols, policy)
                if d.host
                else self._upsert_hosted(d, cols, policy)
            )
            if changed:
                self._catalog = None  # read again at the next listing
        return changed

    def _upsert_hosted(
        self, d: DatasetSchema, cols: list[dict[str, Any]], policy: dict[str, Any]
    ) -> bool:
        with self._sessions.begin() as s:
            row = s.get(DatasetRow, (d.party, d.name))
            new = json.loads(json.dumps((cols, d.row_count, d.description, policy)))
            if row is not None and [row.columns, row.row_count, row.description, row.policy] == new:
                return False
            if row is None:
                row = DatasetRow(party=d.party, name=d.name)
                s.add(row)
            row.columns, row.row_count, row.description, row.policy = new
        return True

    def _upsert_outsourced(
        self, d: DatasetSchema, cols: list[dict[str, Any]], policy: dict[str, Any]
    ) -> bool:
        with self._sessions.begin() as s:
            row = s.get(OutsourcedDatasetRow, (d.party, d.name))
            new = json.loads(
                json.dumps((d.host, d.outsourced_sha256, cols, d.row_count, d.description, policy))
            )
            if (
                row is not None
                and [
                    row.host,
                    row.manifest_sha256,
                    row.columns,
                    row.row_count,
                    row.description,
                    row.policy,
                ]
                == new
            ):
                return False
            if row is None:
                row = OutsourcedDatasetRow(owner=d.party, name=d.name)
                s.add(row)
            (
                row.host,
                row.manifest_sha256,
                row.columns,
                row.row_count,
                row.description,
                row.policy,
            ) = new
        return True

    def _datasets(self) -> tuple[DatasetSchema, ...]:
        """The whole catalog (hosted and outsourced entries) sorted by (party, name), read
        once after each change (``upsert_dataset``, the only writer of its tables, drops
        it): every submission, listing and result read it, about 0.3 ms per reading of
        both tables; nodes republish every few seconds but change it rarely. The
        single-coordinator assumption of ``_directory``."""
        known = self._catalog
        if known is not None:
            return known
        with self._directory_lock:
            if self._catalog is None:
                self._catalog = tuple(
                    sorted(
                        self._list_hosted() + self._list_outsourced(),
                        key=lambda d: (d.party, d.name),
                    )
                )
            return self._catalog

    def list_datasets(self, party: str = "") -> list[DatasetSchema]:
        return [d for d in self._datasets() if not party or d.party == party]

    def host_of(self, owner: str) -> str | None:
        """The node holding an outsourced dataset of ``owner`` (a member without a node),
        which plays the owner's position in its jobs; None if it has none. An owner entrusts
        its datasets to one helper (a second helper's entry would be a second position)."""
        hosts = sorted({d.host for d in self._datasets() if d.host and d.party == owner})
        return hosts[0] if hosts else None

    def _list_outsourced(self) -> list[DatasetSchema]:
        with self._sessions() as s:
            q = select(OutsourcedDatasetRow)
            return [
                DatasetSchema(
                    r.owner,
                    r.name,
                    tuple(Column(**c) for c in r.columns),
                    r.row_count,
                    r.description,
                    _policy(r.policy),
                    host=r.host,
                    outsourced_sha256=r.manifest_sha256,
                )
                for r in s.scalars(q).all()
            ]

    def _list_hosted(self) -> list[DatasetSchema]:
        with self._sessions() as s:
            q = select(DatasetRow).order_by(DatasetRow.party, DatasetRow.name)
            return [
                DatasetSchema(
                    r.party,
                    r.name,
                    tuple(Column(**c) for c in r.columns),
                    r.row_count,
                    r.description,
                    _policy(r.policy),
                )
                for r in s.scalars(q).all()
            ]

    # -- jobs ----------------------------------------------------------------
    def create_job(
        self,
        job_id: str,
        spec: JobSpec,
        submitter: str,
        analyst_cert: str,
        sizing: dict[str, Any],
        then: tuple[JobState, ...] = (),
    ) -> JobRecord:
        """A new job, ``submitted``; ``then``: the states it moves on to in the same
        transaction (each step checked and audited, as ``transition``'s ``then``: a job
        validated before it was stored is written ``validated`` with one commit)."""
        path = (JobState.SUBMITTED, *then)
        for a, b in zip(path, path[1:], strict=False):
            check_transition(a, b)
        now = utcnow()
        values: dict[str, Any] = {
            "id": job_id,
            "state": path[-1].value,
            "spec": _spec_dict(spec),
            "submitter": submitter,
            "analyst_cert": analyst_cert,
            "sizing": sizing,
            "session": {},
            "progress": {},
            "reason": "",
            "reason_code": "",
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        # A Core insert on the audit's connection (the ORM's add and flush cost more than
        # the insert), the job's record from the same values.
        with self._audit.writing_core() as (conn, record):
            conn.execute(_JOB_INSERT, values)
            rec = _job(SimpleNamespace(**values))
            details = {"job": job_id, "by": submitter, "protocol": spec.protocol}
            record("job_submitted", details, now.isoformat())
            for a, b in zip(path, path[1:], strict=False):
                steps = {"job": job_id, "from": a.value, "to": b.value, "reason_code": ""}
                record("job_state", steps, now.isoformat())
        return rec

    def get_job(self, job_id: str) -> JobRecord:
        """The job as committed (with its unwritten progress, see ``set_progress``).

        The hot read: every watcher's update and every scheduler step (about 35 per job).
        A job's record is kept once read or written here, until this store writes the job
        again (``_forget``, after the commit), so most reads are a dictionary's: no SQL,
        no JSON decoding, no spec parsed again (0.12 ms each). The single-coordinator
        assumption of ``_directory``: nothing but this store writes its jobs."""
        with self._jobs_lock:
            rec = self._jobs.get(job_id)
            generation = self._jobs_written
        if rec is None:
            # A prebuilt Core SELECT on a plain connection: the ORM's identity map and
            # loading cost more than SQLite does.
            with self.engine.connect() as conn:
                row = conn.execute(_JOB_BY_ID, {"b_id": job_id}).first()
            if row is None:
                raise UnknownJob(f"no job {job_id!r}; `ensnif job list` shows the jobs")
            rec = _job(row)
            self._keep(rec, generation)
        return self._with_live(rec)

    def _keep(self, rec: JobRecord, generation: int) -> None:
        """Keep a record read when this store had made ``generation`` job writes, unless it
        wrote a job since (the read may predate that write's commit: keeping it would show
        the old state; the next read keeps it)."""
        with self._jobs_lock:
            if self._jobs_written != generation:
                return
            self._jobs[rec.id] = rec
            while len(self._jobs) > JOBS_KEPT:  # the oldest kept first
                del self._jobs[next(iter(self._jobs))]

    def _forget(self, job_id: str, written: Any = None) -> None:
        """This store just committed a change to the job: keep ``written`` (the row as the
        change wrote it, from RETURNING) unless a newer version is kept already (another
        change committed after it), else read the job again next time. Versions only grow
        (every write adds to them), so the highest one seen is the committed one."""
        rec = _job(written) if written is not None else None
        with self._jobs_lock:
            self._jobs_written += 1
            kept = self._jobs.get(job_id)
            if rec is None:
                self._jobs.pop(job_id, None)
            elif kept is None or kept.version < rec.version:
                self._jobs[job_id] = rec
                while len(self._jobs) > JOBS_KEPT:
                    del self._jobs[next(iter(self._jobs))]

    def _with_live(self, rec: JobRecord) -> JobRecord:
        """The record with its unwritten progress, and a version counting those updates
        (so a watcher following versions sees every one)."""
        with self._live_lock:
            live = self._live.get(rec.id)
        if live is None:
            return rec
        return dataclasses.replace(rec, progress=dict(live[0]), version=rec.version + live[1])

    def list_jobs(
        self, limit: int = 100, states: frozenset[JobState] | None = None
    ) -> list[JobRecord]:
        with self._sessions() as s:
            q = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit or 100)
            if states:
                q = q.where(JobRow.state.in_([st.value for st in states]))
            return [self._with_live(_job(r)) for r in s.scalars(q).all()]

    def transition(
        self,
        job_id: str,
        old: JobState,
        new: JobState,
        reason: str = "",
        reason_code: str = "",
        then: tuple[JobState, ...] = (),
        **fields: Any,
    ) -> bool:
        """Move ``old → new`` atomically; False if the job was no longer in ``old``.

        ``then``: states the job moves on to in the same transaction (``new → then[0] →
        …``), each step checked against the transition table and audited by its own
        record, as if each were a call of its own; ``reason`` and ``fields`` go with the
        last. Why: consecutive steps nothing happens between (approved → scheduled) were a
        commit, a signed anchor and a read each; a reader sees the last state only, as a
        watcher woken once after two quick changes would."""
        path = (old, new, *then)
        for a, b in zip(path, path[1:], strict=False):
            check_transition(a, b)
        new = path[-1]
        if "state" in fields:
            raise ValueError("the state changes only through old → new")
        values: dict[str, Any] = {"state": new.value, "updated_at": utcnow()}
        if reason or new.final:
            values.update(reason=reason, reason_code=reason_code)
        with self._live_lock:  # the latest progress goes with the state change
            live = self._live.pop(job_id, None)
            if new.final:
                self._written_at.pop(job_id, None)
        bump = 1
        if live is not None and "progress" not in fields:
            values["progress"], bump = live[0], 1 + live[1]
        values.update(fields)
        # The state change and its audit record commit together (one transaction, one
        # commit): after a crash either both are there or neither.
        with self._audit.writing_core() as (conn, record):
            written = conn.execute(
                _job_update(tuple(sorted(values)), by_state=True, returning=self._returning),
                {"b_id": job_id, "b_state": old.value, "b_bump": bump, **_bound(values)},
            )
            row = written.first() if self._returning else None
            changed = row is not None if self._returning else bool(written.rowcount)
            if changed:
                at = values["updated_at"].isoformat()
                for a, b in zip(path, path[1:], strict=False):
                    code = reason_code if b == new else ""
                    details = {"job": job_id, "from": a.value, "to": b.value, "reason_code": code}
                    record("job_state", details, at)
        if changed:
            self._forget(job_id, row)
        if not changed and live is not None:  # not this job's state any more: keep it
            with self._live_lock:
                self._live.setdefault(job_id, live)
        return changed

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Update non-state fields (progress, session) and bump the version watchers follow."""
        values = {"updated_at": utcnow(), **fields}
        bump = 1
        with self._live_lock:
            if "progress" in fields:  # written now: no older unwritten progress may win
                live = self._live.pop(job_id, None)
                bump += live[1] if live else 0
        with self.engine.begin() as conn:
            written = conn.execute(
                _job_update(tuple(sorted(values)), by_state=False, returning=self._returning),
                {"b_id": job_id, "b_bump": bump, **_bound(values)},
            )
            row = written.first() if self._returning else None
        self._forget(job_id, row)

    def set_progress(
        self, job_id: str, progress: dict[str, Any], write_every_s: float = PROGRESS_WRITE_S
    ) -> None:
        """A running job's progress (every node's status), shown at once and written at
        most every ``write_every_s``, and with the job's next state change.

        Why: the scheduler hears about 8 statuses per node per job; written one commit
        each, they were most of the coordinator's SQLite writes. Readers of this store
        (``get_job``, ``list_jobs``: the watchers, the CLI) see the latest progress and a
        version bumped per update either way. What a crash loses is only the progress heard
        since the last write (phases, fractions, bytes, CPU seconds: display), never a job's
        state, its audit record or a delivered share (``put_share`` commits at once); after
        a restart the nodes' Watch streams send each party's current status again."""
        with self._progress_lock:  # one writer at a time: a newer update never loses
            now = time.monotonic()
            if now - self._written_at.get(job_id, float("-inf")) < write_every_s:
                with self._live_lock:
                    before = self._live.get(job_id)
                    self._live[job_id] = (dict(progress), (before[1] if before else 0) + 1)
                return
            self._written_at[job_id] = now
            # The first update of a job, and then one per interval, is written.
            self.update_job(job_id, progress=progress)
            # Jobs not heard from for a while (ended, or quiet): their last progress is
            # written and they are forgotten, so nothing stays here for long.
            stale = [j for j, t in self._written_at.items() if now - t > 30 * write_every_s]
            for other in stale:
                del self._written_at[other]
                with self._live_lock:
                    last = self._live.get(other)
                if last is not None:
                    self.update_job(other, progress=last[0])

    def put_share(
        self, job_id: str, party: str, blob: bytes, signature: bytes, certificate_pem: str = ""
    ) -> None:
        # Core statements (a share is written once per party per job, on the job's path:
        # the ORM's get, add and flush cost twice as much); replaced if sent again.
        values = {"blob": blob, "signature": signature, "certificate_pem": certificate_pem}
        with self.engine.begin() as conn:
            replaced = conn.execute(
                _SHARE_UPDATE, {"b_job": job_id, "b_party": party, **_bound(values)}
            ).rowcount
            if not replaced:
                conn.execute(_SHARE_INSERT, {"job_id": job_id, "party": party, **values})

    def shares(self, job_id: str) -> dict[str, tuple[bytes, bytes, str]]:
        """Per party: sealed share, node signature, and the certificate it was signed under
        as recorded at collection ("" if none was): one read for a result."""
        with self.engine.connect() as conn:
            c = _SHARES.c
            rows = conn.execute(
                select(c.party, c.blob, c.signature, c.certificate_pem).where(c.job_id == job_id)
            ).all()
        return {r[0]: (bytes(r[1]), bytes(r[2] or b""), r[3] or "") for r in rows}

    def share_parties(self, job_id: str) -> set[str]:
        """The parties whose share of the job is stored (the shares themselves unread)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_SHARES.c.party).where(_SHARES.c.job_id == job_id))
            return {r[0] for r in rows}

    def share_certificates(self, job_id: str) -> dict[str, str]:
        """The certificate each share was signed under, as recorded at collection."""
        return {p: cert for p, (_, _, cert) in self.shares(job_id).items() if cert}

    def get_shares(self, job_id: str) -> dict[str, tuple[bytes, bytes]]:
        """Sealed share and node signature per party."""
        return {p: (blob, sig) for p, (blob, sig, _) in self.shares(job_id).items()}

    # -- audit ---------------------------------------------------------------
    def audit(self, event_name: str, details: dict[str, Any]) -> None:
        self._audit.append(event_name, details, utcnow().isoformat())

    def audit_rows(self) -> list[tuple[int, str, str, dict[str, Any], str, str]]:
        with self._sessions() as s:
            rows = s.scalars(select(AuditRow).order_by(AuditRow.seq)).all()
            return [(r.seq, r.at, r.event, dict(r.details), r.prev_hash, r.hash) for r in rows]

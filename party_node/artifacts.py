"""This node's artifact store: its own shares of outputs kept secret-shared for later jobs.

An artifact (``ensnif_mpc.results.artifacts``) is one output of a job that nobody opened:
each party's worker kept its Shamir shares, and this store keeps this node's, in the
node's own SQLite database, keyed by the consortium-wide id ``<job>/<name>``. A later job
that lists the artifact gets this node's shares copied into its worker session. The
coordinator only ever sees :meth:`ArtifactShare.metadata`.

Who may use an artifact: every data owner whose data went into it decides, by the
``[artifacts] analysts`` list of its ``party.toml`` (``"*"``: any analyst; without the
table, only the analyst who produced it). Creation, use and deletion are written to the
node's audit chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ensnif_mpc.db import create_schema, utcnow
from ensnif_mpc.errors import InvalidJobSpec, NotFound, PolicyViolation
from ensnif_mpc.results.artifacts import ArtifactShare
from party_node.store import NodeStore


class _Base(DeclarativeBase):
    pass


class ArtifactRow(_Base):
    __tablename__ = "artifacts"
    artifact_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    analyst: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[str] = mapped_column(String(40))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the ArtifactShare, shares included
    note: Mapped[str] = mapped_column(Text, default="")


class ArtifactStore:
    """The artifacts table of the node's database (created beside the node's own tables)."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        create_schema(_Base.metadata, store.engine)
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)

    def put(self, share: ArtifactShare, analyst: str) -> ArtifactShare:
        """Keep this node's share of a new artifact (a job's end, at most once per id)."""
        created = utcnow().isoformat()
        record = {**share.to_dict(), "created_at": created}
        with self._sessions.begin() as s:
            if s.get(ArtifactRow, share.artifact_id) is not None:
                raise InvalidJobSpec(f"artifact {share.artifact_id!r} exists already")
            s.add(
                ArtifactRow(
                    artifact_id=share.artifact_id,
                    job_id=share.job_id,
                    analyst=analyst,
                    created_at=created,
                    record=record,
                )
            )
        self.store.audit("artifact_created", _audited(share, analyst))
        return ArtifactShare.from_dict(record)

    def get(self, artifact_id: str) -> tuple[ArtifactShare, str] | None:
        """This node's share of ``artifact_id`` and the analyst who produced it, or None."""
        with self._sessions() as s:
            row = s.get(ArtifactRow, artifact_id)
            return None if row is None else (ArtifactShare.from_dict(row.record), row.analyst)

    def listing(self) -> list[tuple[dict[str, Any], str]]:
        """(metadata without the shares, producing analyst) of every artifact held here."""
        with self._sessions() as s:
            rows = s.scalars(select(ArtifactRow).order_by(ArtifactRow.created_at)).all()
            return [(ArtifactShare.from_dict(r.record).metadata(), r.analyst) for r in rows]

    def delete(self, artifact_id: str, by: str) -> bool:
        """Remove this node's share; False when it holds none."""
        with self._sessions.begin() as s:
            row = s.get(ArtifactRow, artifact_id)
            if row is None:
                return False
            s.delete(row)
        self.store.audit("artifact_deleted", {"artifact": artifact_id, "by": by})
        return True

    def for_job(
        self,
        ids: Sequence[str],
        *,
        me: str,
        party_order: Sequence[str],
        threshold: int | None,
        analyst: str,
        allowed: Sequence[str] | None,
    ) -> list[dict[str, Any]]:
        """This node's shares of the artifacts ``ids`` a job lists, checked for that job.

        Refused with ``artifact_not_found`` when this node holds no share of one, or holds
        it for another session (other parties or another threshold: the shares could not
        be brought to this session's points; the same parties in another order can, by
        resharing, ``protocols.program.Program.import_shares``); with ``artifact_forbidden``
        when this node's data went into it and its policy (``allowed``: analyst names,
        ``"*"``, or None for the producer only) does not let ``analyst`` use it."""
        out = []
        for artifact_id in ids:
            found = self.get(artifact_id)
            if found is None:
                raise NotFound(
                    f"{me} holds no share of artifact {artifact_id!r} (never made, or deleted)",
                    reason="artifact_not_found",
                )
            share, producer = found
            if sorted(share.parties) != sorted(party_order) or (
                threshold is not None and share.threshold != threshold
            ):
                raise NotFound(
                    f"{me} holds artifact {artifact_id!r} for the session "
                    f"{', '.join(share.parties)}; a job using it must run on those parties "
                    "(in any order)",
                    reason="artifact_not_found",
                )
            if me in share.owners and not may_use(allowed, analyst, producer):
                raise PolicyViolation(
                    f"{me}'s policy does not let {analyst!r} use artifact {artifact_id!r}, "
                    f"made from its data",
                    reason="artifact_forbidden",
                )
            out.append(share.to_dict())
        return out

    def record_use(self, ids: Sequence[str], job_id: str, analyst: str) -> None:
        """Audit that a job's worker got this node's shares of ``ids``."""
        for artifact_id in ids:
            self.store.audit(
                "artifact_used", {"artifact": artifact_id, "job": job_id, "by": analyst}
            )


def may_use(allowed: Sequence[str] | None, analyst: str, producer: str) -> bool:
    """An owner's rule: the listed analysts (``"*"``: anyone), or without a list only the
    analyst who produced the artifact."""
    if allowed is None:
        return analyst == producer
    return "*" in allowed or analyst in allowed


def _audited(share: ArtifactShare, analyst: str) -> dict[str, Any]:
    return {
        "artifact": share.artifact_id,
        "job": share.job_id,
        "protocol": share.protocol,
        "shape": list(share.shape),
        "owners": list(share.owners),
        "analyst": analyst,
    }

"""The audit chain's signed head (``audit_anchor``, see ``ensnif_mpc.audit.chain``).

An existing chain is anchored unsigned at its last record; the coordinator signs the
anchor at its next audited event and notes the takeover (``audit_anchor_adopted``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    anchor = op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    assert anchor is not None
    last = (
        op.get_bind()
        .execute(sa.text("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"))
        .first()
    )
    if last is not None:
        at = dt.datetime.now(dt.UTC).isoformat()
        op.bulk_insert(
            anchor,
            [{"id": 1, "seq": last[0], "hash": last[1], "at": at, "key_id": "", "signature": b""}],
        )


def downgrade() -> None:
    op.drop_table("audit_anchor")

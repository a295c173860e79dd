"""Outsourced datasets in the catalog, under their owners' names.

A member without a node entrusts an encrypted dataset to a helper node
(docs/homomorphic.md, "Outsourced datasets"). Its catalog entry names the owner as the
dataset's party, but the owner has no ``parties`` row (it registers no node), so the
entries live in their own table with the holding node as ``host`` (a registered party)
and the hash of the owner's signed manifest.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "outsourced_datasets",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(128), sa.ForeignKey("parties.name"), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outsourced_datasets")

"""Each result share keeps the certificate of the node that signed it.

A node that rotates its certificate later re-registers under the new one; results it
signed before must still verify at the analyst, so the coordinator hands out the
certificate it recorded when it collected the share, not the node's current one.
Existing shares get an empty column (the current certificate is used for them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("result_shares") as batch:
        batch.add_column(sa.Column("certificate_pem", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("result_shares") as batch:
        batch.drop_column("certificate_pem")

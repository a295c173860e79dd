"""Each party keeps the MPC host and port range its node registered.

`ensnif doctor` at a member probes every other member's MPC range, so the coordinator
hands out where each node's workers listen (``ListParties``). Existing parties get an
empty host and a (0, 0) range (not published) until their node registers again, which a
running node does every few seconds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.add_column(sa.Column("mpc_host", sa.String(256), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("mpc_port_first", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("mpc_port_last", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("mpc_port_last")
        batch.drop_column("mpc_port_first")
        batch.drop_column("mpc_host")

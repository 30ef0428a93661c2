"""agent availability by socket: whether it lasts only while the agent has a socket open

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:01:23.003708
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("availability_by_socket", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("agent_profiles", schema=None) as batch_op:
        batch_op.drop_column("availability_by_socket")

"""sla escalation timer held: the timer to the next level is stopped while the ticket is not open work

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-05 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_trackers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_timer_held", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sla_trackers", schema=None) as batch_op:
        batch_op.drop_column("escalation_timer_held")

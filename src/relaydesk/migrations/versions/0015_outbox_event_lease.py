"""outbox event lease: when a dispatcher handed an event to the job queue, so that one the
queue lost (Redis restarted empty, the consumer's retries ran out while the database was
away) is handed out again once its lease has run out

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 21:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty for the events already there: the ones still pending are handed out as new.
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_column("handed_out_at")

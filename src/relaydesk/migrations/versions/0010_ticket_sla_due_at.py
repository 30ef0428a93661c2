"""ticket sla due at: the soonest due time of a ticket's running SLA clocks, to sort queues by

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:20:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from relaydesk.core.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_workspace_id_sla_due_at_id"),
                              ["workspace_id", "sla_due_at", "id"], unique=False)
    # The due time needs each policy's business calendar, which SQL cannot apply: the
    # trackers with a clock that may still run are made due now, and the SLA monitor fills
    # the new column in as it checks them (10,000 a pass, a pass a minute by default).
    trackers = sa.table("sla_trackers", sa.column("state", sa.String()),
                        sa.column("next_check_at", UTCDateTime()))
    op.execute(trackers.update().where(trackers.c.state != "met")
               .values(next_check_at=sa.bindparam("now", datetime.now(UTC), type_=UTCDateTime())))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_workspace_id_sla_due_at_id"))
        batch_op.drop_column("sla_due_at")

"""sla escalation timer and breach count: the timer to the next level is stopped while the ticket
is not open work; breaches are counted on the tracker, so a second one raises level 2 whenever it comes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_trackers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_timer_held", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("breach_count", sa.Integer(), nullable=False, server_default="0"))
    # The breaches so far are those the current clocks show (a replaced next-response
    # clock's are lost); counted in Python, since the clocks are JSON both databases read differently.
    trackers = sa.table("sla_trackers", sa.column("ticket_id", sa.Uuid()), sa.column("clocks", sa.JSON()),
                        sa.column("breached", sa.Boolean()), sa.column("breach_count", sa.Integer()))
    bind = op.get_bind()
    counts = [{"id": ticket_id, "count": sum(1 for clock in clocks.values() if clock.get("breached_at"))}
              for ticket_id, clocks in bind.execute(sa.select(trackers.c.ticket_id, trackers.c.clocks)
                                                    .where(trackers.c.breached))]
    if counts:
        bind.execute(trackers.update().where(trackers.c.ticket_id == sa.bindparam("id"))
                     .values(breach_count=sa.bindparam("count")), counts)


def downgrade() -> None:
    with op.batch_alter_table("sla_trackers", schema=None) as batch_op:
        batch_op.drop_column("breach_count")
        batch_op.drop_column("escalation_timer_held")

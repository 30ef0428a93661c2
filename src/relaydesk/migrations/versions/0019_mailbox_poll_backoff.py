"""mailbox poll backoff: a mailbox whose polls fail is tried less and less often, and
says when it will be tried next

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 01:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing mailboxes start with a clean slate: the next round polls them, and a
    # failing one begins its backoff from there.
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poll_failures", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("next_poll_at")
        batch_op.drop_column("poll_failures")

"""imap position: how far each mailbox has been read, by UID, so that mail someone opened before a poll is still fetched

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 19:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty for existing mailboxes: their next poll takes what is unread, as before, and
    # notes the position from there on.
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imap_uid_validity", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("imap_last_uid", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("imap_last_uid")
        batch_op.drop_column("imap_uid_validity")

"""unattached uploads index: the hourly sweep reads only uploads no message took

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_attachments_unattached", "attachments", ["created_at"], unique=False,
                    sqlite_where=sa.text("message_id IS NULL"), postgresql_where=sa.text("message_id IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_attachments_unattached", table_name="attachments")

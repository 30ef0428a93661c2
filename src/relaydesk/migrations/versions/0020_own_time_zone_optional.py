"""own time zone optional: agents and customers without one take the workspace's

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLES = ("agent_profiles", "customers")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("timezone", existing_type=sa.String(length=64), nullable=True)
        # Until now UTC was what everyone without a zone was given: they had no other way
        # to say "none". As none, they keep UTC until the workspace sets a zone of its own.
        op.execute(sa.text(f"UPDATE {table} SET timezone = NULL WHERE timezone = 'UTC'"))


def downgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET timezone = 'UTC' WHERE timezone IS NULL"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("timezone", existing_type=sa.String(length=64), nullable=False)

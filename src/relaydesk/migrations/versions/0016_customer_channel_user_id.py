"""customer channel user id: the id a connected channel knows a customer by, indexed, so
that a social message finds its sender without reading every customer's metadata

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_user_id", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_customers_workspace_id_channel_user_id"),
                              ["workspace_id", "channel_user_id"], unique=False)
    # Filled from the metadata that held it until now, read in Python rather than with each
    # database's JSON functions. Only the customers a channel has met carry one; the text
    # match keeps the others from being read at all.
    customers = sa.table("customers", sa.column("id", sa.Uuid()), sa.column("metadata", sa.JSON()),
                         sa.column("channel_user_id", sa.String()))
    bind = op.get_bind()
    handles = [{"key": row.id, "handle": str(row.metadata["channel_user_id"])[:200]}
               for row in bind.execute(sa.select(customers.c.id, customers.c.metadata).where(
                   sa.cast(customers.c.metadata, sa.Text()).like("%channel_user_id%")))
               if isinstance(row.metadata, dict) and row.metadata.get("channel_user_id") not in (None, "")]
    update = customers.update().where(customers.c.id == sa.bindparam("key")).values(
        channel_user_id=sa.bindparam("handle"))
    for start in range(0, len(handles), BATCH):
        bind.execute(update, handles[start:start + BATCH])


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_workspace_id_channel_user_id"))
        batch_op.drop_column("channel_user_id")

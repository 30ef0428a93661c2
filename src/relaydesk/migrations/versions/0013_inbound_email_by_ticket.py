"""inbound email by ticket: which mailbox a ticket's customer last wrote to, for the address answers go out from

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 16:45:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_emails_workspace_id_ticket_id_received_at"),
                              ["workspace_id", "ticket_id", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_emails_workspace_id_ticket_id_received_at"))

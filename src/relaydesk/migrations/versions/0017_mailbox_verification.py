"""mailbox verification: a support address is sent from only once the workspace has shown
that it receives its mail; until then other workspaces may claim the same address

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing mailboxes stay unverified: nothing ever proved that their workspace owns
    # the address. Their mail still arrives; answers go from the workspace's built-in
    # address until an admin verifies them.
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verification_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("verification_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_mailboxes_address", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_mailboxes_address_workspace_id"), ["address", "workspace_id"])
        batch_op.create_index("ix_mailboxes_verified_address", ["address"], unique=True,
                              sqlite_where=sa.text("verified_at IS NOT NULL"),
                              postgresql_where=sa.text("verified_at IS NOT NULL"))


def downgrade() -> None:
    # Of several workspaces' claims of one address, the one that verified it stays, else
    # the earliest (as mail was routed), for the old one-workspace-per-address rule.
    mailboxes = sa.table("mailboxes", sa.column("id", sa.Uuid()), sa.column("address", sa.String()),
                         sa.column("verified_at", sa.DateTime(timezone=True)),
                         sa.column("created_at", sa.DateTime(timezone=True)))
    bind = op.get_bind()
    kept: dict[str, object] = {}
    extra = []
    for row in bind.execute(sa.select(mailboxes.c.id, mailboxes.c.address).order_by(
            mailboxes.c.address, mailboxes.c.verified_at.is_(None), mailboxes.c.created_at, mailboxes.c.id)):
        if row.address in kept:
            extra.append(row.id)
        else:
            kept[row.address] = row.id
    for start in range(0, len(extra), 1000):
        bind.execute(mailboxes.delete().where(mailboxes.c.id.in_(extra[start:start + 1000])))
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index("ix_mailboxes_verified_address")
        batch_op.drop_constraint(batch_op.f("uq_mailboxes_address_workspace_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_mailboxes_address"), ["address"])
        batch_op.drop_column("verification_sent_at")
        batch_op.drop_column("verification_code_hash")
        batch_op.drop_column("verified_at")

"""failed consumptions: reactions whose job gave up, kept to be tried again

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:50:22.093969
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('failed_consumptions',
    sa.Column('consumer', sa.String(length=60), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('event', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_failed_consumptions_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name=op.f('pk_failed_consumptions'))
    )
    with op.batch_alter_table('failed_consumptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failed_consumptions_next_attempt_at'), ['next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('failed_consumptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failed_consumptions_next_attempt_at'))

    op.drop_table('failed_consumptions')

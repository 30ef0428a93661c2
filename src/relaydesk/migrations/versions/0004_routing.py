"""routing

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 01:28:06.101475
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_models",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_models_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_workspace_models")),
    )
    op.create_table(
        "assignment_rules",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("strategy", sa.String(length=30), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_assignment_rules_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_assignment_rules_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_rules")),
    )
    with op.batch_alter_table("assignment_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assignment_rules_workspace_id_position"),
            ["workspace_id", "position"],
            unique=False,
        )

    op.create_table(
        "ticket_routing",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("category_source", sa.String(length=20), nullable=False),
        sa.Column("category_label", sa.String(length=120), nullable=True),
        sa.Column("category_confidence", sa.Double(), nullable=True),
        sa.Column("category_reason", sa.String(length=500), nullable=False),
        sa.Column("priority_source", sa.String(length=20), nullable=False),
        sa.Column("priority_reasons", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("queued_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["assignment_rules.id"],
            name=op.f("fk_ticket_routing_rule_id_assignment_rules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ticket_routing_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_routing_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ticket_routing_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_routing")),
    )
    with op.batch_alter_table("ticket_routing", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_routing_state_queued_since"),
            ["state", "queued_since"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f(
                "ix_ticket_routing_workspace_id_team_id_state_priority_rank_queued_since"
            ),
            ["workspace_id", "team_id", "state", "priority_rank", "queued_since"],
            unique=False,
        )

    with op.batch_alter_table("agent_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shifts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_profiles", schema=None) as batch_op:
        batch_op.drop_column("last_assigned_at")
        batch_op.drop_column("shifts")

    with op.batch_alter_table("ticket_routing", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f(
                "ix_ticket_routing_workspace_id_team_id_state_priority_rank_queued_since"
            )
        )
        batch_op.drop_index(batch_op.f("ix_ticket_routing_state_queued_since"))

    op.drop_table("ticket_routing")
    with op.batch_alter_table("assignment_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_rules_workspace_id_position"))

    op.drop_table("assignment_rules")
    op.drop_table("workspace_models")

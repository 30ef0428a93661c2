"""priority keywords extend the built-ins: a workspace's list used to replace them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaydesk.routing.priority import DEFAULT_KEYWORDS, keywords_in_effect

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

workspaces = sa.table("workspaces", sa.column("id"), sa.column("settings", sa.JSON()))


def _rewrite_priority_keywords(rewrite) -> None:  # noqa: ANN001 - old keywords -> new keywords
    bind = op.get_bind()
    for workspace_id, settings in bind.execute(sa.select(workspaces.c.id, workspaces.c.settings)).all():
        if (settings or {}).get("priority_keywords") is None:
            continue  # the built-ins alone, under either meaning
        bind.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(
            settings={**settings, "priority_keywords": rewrite(settings["priority_keywords"])}))


def upgrade() -> None:
    # A stored list replaced the built-in keywords; it now changes them. So that every
    # workspace keeps the keywords it had, the built-ins it left out are removed (null).
    _rewrite_priority_keywords(lambda kept: {**{k: None for k in DEFAULT_KEYWORDS if k not in kept}, **kept})


def downgrade() -> None:
    _rewrite_priority_keywords(keywords_in_effect)

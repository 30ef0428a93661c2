from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, Timestamps, WorkspaceScoped


class AssignmentRule(IdMixin, WorkspaceScoped, Timestamps, Base):
    """Which team (and strategy) takes the tickets that match; the lowest position wins."""

    __tablename__ = "assignment_rules"
    __table_args__ = (Index(None, "workspace_id", "position"),)

    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int]
    enabled: Mapped[bool] = mapped_column(default=True)
    # {"category_ids": [...], "channels": [...], "priorities": [...], "customer_tiers": [...], "languages": [...]}
    # Each present list must contain the ticket's value; absent or empty lists match anything.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    strategy: Mapped[str] = mapped_column(String(30))


class TicketRouting(WorkspaceScoped, Base):
    """How a ticket was classified, prioritised and assigned — the explanation agents see."""

    __tablename__ = "ticket_routing"
    __table_args__ = (
        Index(None, "workspace_id", "team_id", "state", "priority_rank", "queued_since"),
        Index(None, "state", "queued_since"),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    category_source: Mapped[str] = mapped_column(String(20))  # given | agent | model | fallback | none
    category_label: Mapped[str | None] = mapped_column(String(120))
    category_confidence: Mapped[float | None]
    category_reason: Mapped[str] = mapped_column(String(500))
    priority_source: Mapped[str] = mapped_column(String(20))  # given | agent | rules
    priority_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(20))  # queued | assigned | manual
    priority_rank: Mapped[int] = mapped_column(default=1)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assignment_rules.id", ondelete="SET NULL"))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    queued_since: Mapped[datetime | None]
    waiting_alerted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime]

    def leave_queue(self, state: str) -> None:
        """Assigned, or moved on by a person: a later wait is a new one, with its own alert."""
        self.state, self.queued_since, self.waiting_alerted_at = state, None, None


class WorkspaceModel(WorkspaceScoped, Base):
    """A workspace's own category model, retrained from its resolved tickets."""

    __tablename__ = "workspace_models"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                                    primary_key=True)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[list[str]] = mapped_column(JSON)
    samples: Mapped[int]
    accuracy: Mapped[float | None]
    trained_at: Mapped[datetime]

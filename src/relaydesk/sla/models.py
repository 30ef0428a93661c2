from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, Timestamps, WorkspaceScoped


class SlaCalendar(IdMixin, WorkspaceScoped, Timestamps, Base):
    """Business hours: a time zone, weekly opening hours and holidays."""

    __tablename__ = "sla_calendars"
    __table_args__ = (Index(None, "workspace_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"0": [["09:00", "17:00"]], ...}
    holidays: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates


class SlaPolicy(IdMixin, WorkspaceScoped, Timestamps, Base):
    __tablename__ = "sla_policies"
    __table_args__ = (Index(None, "workspace_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(120))
    is_default: Mapped[bool] = mapped_column(default=False)
    # {"category_ids": [...], "customer_tiers": [...]}; the most specific match wins.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"URGENT": {"first_response": 3600, "next_response": 7200, "resolution": 28800}, ...} in seconds
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    warning_at: Mapped[float] = mapped_column(default=0.75)
    critical_at: Mapped[float] = mapped_column(default=0.90)
    calendar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_calendars.id", ondelete="SET NULL"))


class SlaTracker(WorkspaceScoped, Base):
    """One per ticket: its clocks and the next moment anything about them changes.

    ``next_check_at`` is indexed so the monitor reads only trackers that are due."""

    __tablename__ = "sla_trackers"
    __table_args__ = (Index(None, "next_check_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_policies.id", ondelete="SET NULL"))
    policy_name: Mapped[str] = mapped_column(String(120))
    priority: Mapped[str] = mapped_column(String(10))
    clocks: Mapped[dict[str, Any]] = mapped_column(JSON)  # kind -> SlaClock.to_dict()
    state: Mapped[str] = mapped_column(String(12))
    breached: Mapped[bool] = mapped_column(default=False)
    escalation_level: Mapped[int] = mapped_column(default=0)
    next_escalation_at: Mapped[datetime | None]
    # The timer to the next level stopped while the ticket is not open work for the agents
    # (resolved, closed, waiting on the customer); it starts afresh when it is again.
    escalation_timer_held: Mapped[bool] = mapped_column(default=False)
    # Every breach announced, of clocks since replaced too (a next-response clock restarts).
    breach_count: Mapped[int] = mapped_column(default=0)
    next_check_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Escalation(IdMixin, WorkspaceScoped, Base):
    __tablename__ = "escalations"
    __table_args__ = (Index(None, "workspace_id", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    level: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))  # sla_breach sla_critical manual customer_request high_impact incident
    reason: Mapped[str] = mapped_column(String(1000), default="")
    raised_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]

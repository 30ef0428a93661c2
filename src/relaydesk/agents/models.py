from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, Timestamps, WorkspaceScoped


class AgentProfile(WorkspaceScoped, Base):
    """What routing needs to know about a staff user; keyed by the user's id."""

    __tablename__ = "agent_profiles"
    __table_args__ = (Index(None, "workspace_id", "availability"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    max_concurrent: Mapped[int] = mapped_column(default=5)
    availability: Mapped[str] = mapped_column(String(20), default="offline")
    # Set through a live socket (the agent's desk), not through the API: then it holds only
    # while a socket of theirs is open somewhere (``realtime``'s reconciliation).
    availability_by_socket: Mapped[bool] = mapped_column(default=False)
    is_senior: Mapped[bool] = mapped_column(default=False)
    languages: Mapped[list[str]] = mapped_column(default=list)
    # None: the workspace's time zone (its settings), or UTC if it has none.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Weekly working hours in the agent's time zone: [{"weekday": 0, "start": "09:00", "end": "17:00"}];
    # empty means always in shift.
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_assigned_at: Mapped[datetime | None]


class AgentSkill(WorkspaceScoped, Base):
    __tablename__ = "agent_skills"

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(60), primary_key=True)
    level: Mapped[int]


class Team(IdMixin, WorkspaceScoped, Timestamps, Base):
    __tablename__ = "teams"
    __table_args__ = (Index(None, "workspace_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(1000), default="")
    lead_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class TeamMember(WorkspaceScoped, Base):
    __tablename__ = "team_members"
    __table_args__ = (Index(None, "workspace_id", "user_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    joined_at: Mapped[datetime]

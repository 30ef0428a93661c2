from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, SoftDelete, Timestamps, WorkspaceScoped


class Category(IdMixin, WorkspaceScoped, Timestamps, Base):
    __tablename__ = "categories"
    __table_args__ = (Index(None, "workspace_id", "parent_id", "name", unique=True),)

    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(1000), default="")
    default_priority: Mapped[str] = mapped_column(String(10), default="MEDIUM")
    required_skills: Mapped[list[str]] = mapped_column(default=list)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    # Filled in by the SLA domain once policies exist.
    sla_policy_id: Mapped[uuid.UUID | None]


class Ticket(IdMixin, WorkspaceScoped, Timestamps, SoftDelete, Base):
    __tablename__ = "tickets"
    # Each list filter has a composite index ending in the keyset (created_at, id), so a
    # page is an index range scan whatever the table size.
    __table_args__ = (
        UniqueConstraint("workspace_id", "number"),
        Index(None, "workspace_id", "created_at", "id"),
        Index(None, "workspace_id", "updated_at", "id"),
        Index(None, "workspace_id", "status", "created_at", "id"),
        Index(None, "workspace_id", "assignee_id", "status", "created_at", "id"),
        Index(None, "workspace_id", "requester_id", "created_at", "id"),
        Index(None, "workspace_id", "organisation_id", "created_at", "id"),
        Index(None, "workspace_id", "team_id", "status", "created_at", "id"),
        Index(None, "workspace_id", "priority", "created_at", "id"),
        Index(None, "workspace_id", "category_id", "created_at", "id"),
        Index(None, "workspace_id", "sla_due_at", "id"),
        # Only RESOLVED tickets carry auto_close_at, so the auto-close scan reads due rows only.
        Index(None, "auto_close_at"),
    )

    number: Mapped[int]
    subject: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24))
    priority: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"))
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    # Copied from the requester at creation so "my organisation's tickets" is one index scan.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    follow_up_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    reopen_count: Mapped[int] = mapped_column(default=0)
    # Shown with the ticket; ticket_tags holds the same tags, indexed, for filtering.
    tags: Mapped[list[str]] = mapped_column(default=list)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    auto_close_at: Mapped[datetime | None]
    # Set by the SLA domain's first escalation; stays set (a breach is never undone).
    sla_breached: Mapped[bool] = mapped_column(default=False)
    # Kept by the SLA domain: the soonest due time of the clocks still running (None when
    # every clock is met or paused), so a queue can be worked in the order things fall due.
    sla_due_at: Mapped[datetime | None]


class TicketTag(WorkspaceScoped, Base):
    __tablename__ = "ticket_tags"
    __table_args__ = (Index(None, "workspace_id", "tag", "ticket_id"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(60), primary_key=True)


class Message(IdMixin, WorkspaceScoped, SoftDelete, Base):
    __tablename__ = "messages"
    __table_args__ = (Index(None, "workspace_id", "ticket_id", "created_at", "id"),
                      Index(None, "workspace_id", "external_id"))

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_kind: Mapped[str] = mapped_column(String(10))  # customer | agent | system
    internal: Mapped[bool] = mapped_column(default=False)
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10))
    # The email Message-ID this message arrived as or was sent as, for threading replies.
    external_id: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class Attachment(IdMixin, WorkspaceScoped, Base):
    """A stored upload.  It belongs to its uploader until a message references it, and
    from then on is visible exactly to those who may see that message."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index(None, "workspace_id", "message_id"), Index(None, "workspace_id", "uploader_id"),
        # The hourly sweep of uploads no message took reads only those, oldest first.
        Index("ix_attachments_unattached", "created_at",
              sqlite_where=text("message_id IS NULL"), postgresql_where=text("message_id IS NULL")),
    )

    uploader_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]

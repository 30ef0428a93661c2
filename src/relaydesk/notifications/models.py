from __future__ import annotations

import uuid
from datetime import datetime

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, WorkspaceScoped


class Notification(IdMixin, WorkspaceScoped, Base):
    """An in-app notification for one user."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index(None, "workspace_id", "user_id", "created_at", "id"),
        Index(None, "workspace_id", "user_id", "read_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    event_id: Mapped[int | None]
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]


class NotificationPreference(WorkspaceScoped, Base):
    """One person's choice for one kind of notification on one channel; no row: the default."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)  # in_app | email
    enabled: Mapped[bool]


class NotificationTemplate(IdMixin, WorkspaceScoped, Base):
    """A workspace's own wording for one kind of email in one language."""

    __tablename__ = "notification_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "locale"),)

    kind: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Delivery(IdMixin, WorkspaceScoped, Base):
    """One thing to send to one recipient on one channel, and every attempt at it.

    ``idempotency_key`` is unique: the same event handled twice queues it once. For email
    it also fixes the Message-ID, so a re-send after a crash is the same message to the
    recipient's mailbox. ``next_attempt_at`` is set while there is something left to do.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index(None, "workspace_id", "created_at", "id"),
        Index(None, "workspace_id", "recipient", "status"),
        Index("ix_notification_deliveries_due", "next_attempt_at",
              sqlite_where=text("next_attempt_at IS NOT NULL"), postgresql_where=text("next_attempt_at IS NOT NULL")),
    )

    channel: Mapped[str] = mapped_column(String(10))  # email | webhook | slack | sms
    kind: Mapped[str] = mapped_column(String(60))
    recipient: Mapped[str] = mapped_column(String(500))  # an address, a URL or a phone number
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    target_id: Mapped[uuid.UUID | None]  # the webhook endpoint, for webhook and slack deliveries
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # pending | sending | sent | failed (will retry) | dead (gave up) | batched (sent within another) | suppressed
    # (delivery.STATUSES)
    status: Mapped[str] = mapped_column(String(12))
    batchable: Mapped[bool] = mapped_column(default=False)
    batched_into_id: Mapped[uuid.UUID | None]
    locale: Mapped[str] = mapped_column(String(8), default="en")
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class WebhookEndpoint(IdMixin, WorkspaceScoped, Base):
    """Where a workspace wants ticket events posted: its own systems, or a Slack channel."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "workspace_id", "created_at"),)

    url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(10))  # generic | slack
    description: Mapped[str] = mapped_column(String(300), default="")
    # Signs each body (HMAC-SHA256); shown once, when the endpoint is made or it is rotated.
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    # Loopback and private-network targets are refused unless an admin says so, where
    # the operator allows them at all.
    allow_private: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, validates

from relaydesk.core.db import Base, IdMixin, SoftDelete, Timestamps, WorkspaceScoped


class Organisation(IdMixin, WorkspaceScoped, Timestamps, Base):
    __tablename__ = "organisations"
    __table_args__ = (Index(None, "workspace_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(253))
    # When true, every member of the organisation sees the organisation's tickets.
    shared_tickets: Mapped[bool] = mapped_column(default=False)


class Customer(IdMixin, WorkspaceScoped, Timestamps, SoftDelete, Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index(None, "workspace_id", "email", unique=True),
        Index(None, "workspace_id", "created_at", "id"),
        Index(None, "workspace_id", "organisation_id"),
        Index(None, "workspace_id", "channel_user_id"),
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"))
    tier: Mapped[str] = mapped_column(String(20), default="standard")
    language: Mapped[str] = mapped_column(String(16), default="en")
    # None: the workspace's time zone (its settings), or UTC if it has none.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Free-form facts such as order numbers; "metadata" is reserved by SQLAlchemy.
    attributes: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Set when mail to this address bounced for good; nothing more is sent there until it changes.
    email_undeliverable_at: Mapped[datetime | None]
    # The id a connected channel knows them by, as ``metadata["channel_user_id"]`` says
    # (staff may set it there): kept here too so that a message finds its sender by index.
    channel_user_id: Mapped[str | None] = mapped_column(String(200))

    @validates("attributes")
    def _follow_channel_user_id(self, _key: str, attributes: dict[str, Any] | None) -> dict[str, Any] | None:
        handle = (attributes or {}).get("channel_user_id")
        self.channel_user_id = str(handle)[:200] if handle not in (None, "") else None
        return attributes

    @property
    def can_sign_in(self) -> bool:
        return self.user_id is not None

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, Timestamps, WorkspaceScoped


class User(IdMixin, WorkspaceScoped, Timestamps, Base):
    """Anyone who can sign in: customers with a portal password, agents, supervisors, admins."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]


class RefreshToken(IdMixin, WorkspaceScoped, Base):
    """Server-side refresh tokens, stored hashed.  Each use rotates the token within its
    family; presenting a used one again means it leaked, and the family is revoked."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "workspace_id", "user_id"), Index(None, "family_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiToken(IdMixin, WorkspaceScoped, Base):
    """Personal API tokens for integrations; the secret is shown once and kept hashed."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "workspace_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(WorkspaceScoped, Base):
    """Failed sign-ins per workspace and email, known account or not, so lockout does
    not reveal which emails exist."""

    __tablename__ = "login_throttles"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]


class PasswordReset(IdMixin, WorkspaceScoped, Base):
    """One emailed password-reset token, stored hashed: good once, for a short while."""

    __tablename__ = "password_resets"
    __table_args__ = (Index(None, "workspace_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

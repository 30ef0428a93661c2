"""The audit trail: one row per changed field, written inside the change's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, WorkspaceScoped
from relaydesk.core.jsonable import jsonable


class AuditEntry(IdMixin, WorkspaceScoped, Base):
    __tablename__ = "audit_entries"
    __table_args__ = (Index(None, "workspace_id", "entity_type", "entity_id", "at", "id"),)

    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[uuid.UUID]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_kind: Mapped[str] = mapped_column(String(20))
    field: Mapped[str] = mapped_column(String(60))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime]




class AuditLog:
    """Appends audit rows to the caller's session; the unit of work commits them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def record(
        self, *, workspace_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID,
        actor_id: uuid.UUID | None, actor_kind: str, at: datetime,
        changes: dict[str, tuple[Any, Any]],
    ) -> None:
        for field, (before, after) in changes.items():
            before, after = jsonable(before), jsonable(after)
            if before == after:
                continue
            self.session.add(AuditEntry(
                workspace_id=workspace_id, entity_type=entity_type, entity_id=entity_id,
                actor_id=actor_id, actor_kind=actor_kind, field=field, before=before, after=after, at=at,
            ))

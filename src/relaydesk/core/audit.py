"""The audit trail: one row per changed field, written inside the change's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from relaydesk.core.db import Base, IdMixin, WorkspaceScoped, new_id
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




_PENDING = "audit_pending"
# Against the table, not the mapped class: the ORM's bulk-insert path added ~70 µs a call.
_INSERT = insert(AuditEntry.__table__)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """A transaction's audit rows are written as it commits, in one executemany: nothing
    reads them back before then, and going through the ORM's unit of work cost more per
    row than the INSERT. What they refer to (a new user, say) is flushed first."""
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.flush()
        session.execute(_INSERT, pending)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


class AuditLog:
    """Appends audit rows to the caller's session; they are written if it commits."""

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
            self.session.info.setdefault(_PENDING, []).append(dict(
                id=new_id(), workspace_id=workspace_id, entity_type=entity_type, entity_id=entity_id,
                actor_id=actor_id, actor_kind=actor_kind, field=field, before=before, after=after, at=at,
            ))

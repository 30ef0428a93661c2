"""Domain events, written to the outbox in the same transaction as the change.

After commit the dispatcher (``core.dispatcher``) turns each pending event into jobs.
Consumers mark each event id they have handled (``ProcessedEvent``) inside their own
transaction, so an event delivered twice has its effect once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base
from relaydesk.core.jsonable import jsonable

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_EventId = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_pending", "id", sqlite_where=text("dispatched_at IS NULL"),
              postgresql_where=text("dispatched_at IS NULL")),
        Index(None, "workspace_id", "id"),
    )

    # Ever-growing: also what a reconnecting live client will resume from.
    id: Mapped[int] = mapped_column(_EventId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """One row per (consumer, event) handled: the consumers' idempotency record."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    event_id: Mapped[int] = mapped_column(_EventId, primary_key=True)
    processed_at: Mapped[datetime]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    workspace_id: uuid.UUID
    type: str
    payload: dict[str, Any]




class Outbox:
    """Appends events to the caller's session; they leave only if it commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def publish(self, workspace_id: uuid.UUID, type: str, at: datetime, **payload: Any) -> None:
        # "at" travels in the payload too: consumers time their reactions by when the
        # change happened, not by when the job got round to it.
        self.session.add(OutboxEvent(workspace_id=workspace_id, type=type, payload=jsonable({**payload, "at": at}),
                                     created_at=at, dispatched_at=None))
        self.session.info["published_events"] = True


async def first_time(session: AsyncSession, consumer: str, event_id: int, now: datetime) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already has.

    Called inside the consumer's transaction: if the consumer's work rolls back, so
    does the record, and a later delivery tries again."""
    # One statement instead of a read and a write: this runs for every consumer of every event.
    # A concurrent duplicate waits for the first to commit, then inserts nothing.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(insert(ProcessedEvent).values(
        consumer=consumer, event_id=event_id, processed_at=now).on_conflict_do_nothing())
    return result.rowcount == 1

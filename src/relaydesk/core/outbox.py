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

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, event, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

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
    # Done with: every consumer has run (or kept its failure) and the named jobs are queued.
    dispatched_at: Mapped[datetime | None]
    # Scaled mode: when a dispatcher last gave the event to the job queue. Unless it is
    # dispatched within the lease (``Dispatcher.lease``), the queue lost it and any
    # dispatcher hands it out again.
    handed_out_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """One row per (consumer, event) handled: the consumers' idempotency record."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    event_id: Mapped[int] = mapped_column(_EventId, primary_key=True)
    processed_at: Mapped[datetime]


class FailedConsumption(Base):
    """A consumer's reaction to an event that failed every attempt its job had: kept and
    tried again later with growing pauses (``Consumers.retry_failed``), so that once the
    bug is fixed or the outage is over, the ticket still gets routed, clocked and
    acknowledged. Deleted once it has run."""

    __tablename__ = "failed_consumptions"
    __table_args__ = (Index(None, "next_attempt_at"),)

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    event_id: Mapped[int] = mapped_column(_EventId, primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    event: Mapped[dict[str, Any]] = mapped_column(JSON)  # as its job carried it
    attempts: Mapped[int]  # later tries that failed too
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime]
    # None: the automatic tries are used up; `relaydesk failed-events --retry` tries again.
    next_attempt_at: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    workspace_id: uuid.UUID
    type: str
    payload: dict[str, Any]

    def happened_at(self, default: datetime) -> datetime:
        """When the change happened (the ``at`` ``Outbox.publish`` writes), else ``default``."""
        at = self.payload.get("at")
        return datetime.fromisoformat(at) if at else default



class Outbox:
    """Appends events to the caller's session; they leave only if it commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def publish(self, workspace_id: uuid.UUID, type: str, at: datetime, **payload: Any) -> None:
        # "at" travels in the payload too: consumers time their reactions by when the
        # change happened, not by when the job got round to it.
        self.session.info.setdefault(_PENDING, []).append(
            {"workspace_id": workspace_id, "type": type, "payload": jsonable({**payload, "at": at}),
             "created_at": at, "dispatched_at": None})


_PENDING = "outbox_pending"
COMMITTED_EVENTS = "outbox_committed"
# Hot statements, built once (docs/architecture.md, "Statements built once").
# Against the tables, not the mapped classes: the ORM's bulk-insert path added 70-120 µs
# a call, and nothing here needs objects back.
_OUTBOX, _PROCESSED = OutboxEvent.__table__, ProcessedEvent.__table__
_INSERT_EVENTS = insert(_OUTBOX).returning(_OUTBOX.c.id)
_RECORD_PROCESSED = {
    dialect: insert_(_PROCESSED).on_conflict_do_nothing().returning(_PROCESSED.c.consumer, _PROCESSED.c.event_id)
    for dialect, insert_ in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


@event.listens_for(Session, "before_commit")
def _write_published(session: Session) -> None:
    """A transaction's events are written together, in the order they were published,
    as it commits: one statement however many there are (nobody needs their ids sooner).
    The stored events are kept in ``session.info[COMMITTED_EVENTS]`` for whoever owns the
    transaction to push live once it has committed."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    # One multi-row INSERT takes its ids from the sequence (or SQLite's rowid) in row
    # order, so the sorted ids pair with the rows as published.
    ids = sorted(session.execute(_INSERT_EVENTS, pending).scalars())
    session.info.setdefault(COMMITTED_EVENTS, []).extend(
        Event(event_id, row["workspace_id"], row["type"], row["payload"]) for event_id, row in zip(ids, pending))


@event.listens_for(Session, "after_rollback")
def _forget_published(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(COMMITTED_EVENTS, None)


async def first_time_many(session: AsyncSession, pairs: list[tuple[str, int]], now: datetime) -> set[tuple[str, int]]:
    """Record that each ``(consumer, event_id)`` is being handled; returns the pairs not
    recorded before (the others were handled already and must be skipped).

    Called inside the consumers' transaction: if their work rolls back, so do the
    records, and a later delivery tries again. One statement for the whole batch; a
    concurrent duplicate waits for the first to commit, then inserts nothing."""
    if not pairs:
        return set()
    stmt = _RECORD_PROCESSED[session.get_bind().dialect.name]
    # Parameters as a list, not .values([...]): SQLAlchemy renders one multi-row INSERT
    # from one cached compilation, where .values() compiled anew for every batch size.
    result = await session.execute(stmt, [{"consumer": c, "event_id": e, "processed_at": now} for c, e in pairs])
    return {(consumer, event_id) for consumer, event_id in result.all()}

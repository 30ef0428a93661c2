"""Event consumers: what each domain does when one of its outbox events is delivered.

A consumer is a named reaction ``react(session, event, now)`` to some event types.  The
dispatcher hands committed events over in batches of one workspace's events
(``outbox.consume`` jobs), and a batch runs every consumer of every one of its events in
*one* transaction (on PostgreSQL routing gets one of its own first, see ``consume``):

* the idempotency records of the whole batch are one ``INSERT ... ON CONFLICT DO
  NOTHING RETURNING`` (a pair already recorded was handled before and is skipped);
* the consumers share what the transaction has loaded, so a ticket that routing, SLA
  and notifications all look at is read once, and there is one commit, not one per
  consumer per event.  Under load batches grow, so each event gets cheaper just when
  it matters.

If anything in a batch fails, the transaction rolls back and every (consumer, event)
pair of it is retried on its own as an ``outbox.consume_one`` job, with the job
queue's retries: one bad event never holds the others back or loses them. A pair
whose job gives up too is kept (``FailedConsumption``) and tried again by the periodic
``outbox.retry_failed`` job after growing pauses, then by an operator's
``relaydesk failed-events --retry``.

A reaction that needs something done once its transaction has committed (enqueue a
delivery job, say) registers it with ``core.uow.after_commit``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.clock import Clock
from relaydesk.core.db import Database
from relaydesk.core.errors import AppError
from relaydesk.core.jobs import Jobs
from relaydesk.core.outbox import Event, FailedConsumption, OutboxEvent, ProcessedEvent, first_time_many
from relaydesk.core.uow import job_transaction

log = structlog.get_logger("relaydesk.consumers")

React = Callable[[AsyncSession, Event, datetime], Awaitable[None]]
_MARK_DISPATCHED = (update(OutboxEvent.__table__).where(OutboxEvent.__table__.c.id.in_(bindparam("ids", expanding=True)))
                    .values(dispatched_at=bindparam("now")))
Prepare = Callable[[AsyncSession, list[Event]], Awaitable[None]]
Wants = Callable[[Event], bool]
CONCURRENT_TRANSACTIONS = 8
# A kept failure is tried again after these pauses (a minute to a day, about two days in
# all); after the last it waits for an operator. Most are a database outage or blip that
# is over within the minute, and a ticket's routing should not wait five for it.
RETRY_PAUSES = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 720, 1440))


@dataclass(frozen=True, slots=True)
class Consumer:
    name: str
    react: React
    # Called once per batch, before ``react``, with the batch's events for this consumer:
    # work that is cheaper for many events at once (routing classifies them together).
    prepare: Prepare | None = None
    # On PostgreSQL, run in a transaction of its own, before the others: for a consumer
    # that takes a lock other batches wait for (routing's workspace lock).
    alone: bool = False
    # Whether an event needs the reaction at all, judged from the event alone: one that
    # does not is never handed over, costs no idempotency record, and a batch left with
    # nothing for a consumer ``alone`` opens no transaction for it.
    wants: Wants | None = None


def event_from_job(data: dict[str, Any]) -> Event:
    return Event(int(data["id"]), uuid.UUID(data["workspace_id"]), data["type"], data["payload"])


def event_for_job(event: Event) -> dict[str, Any]:
    return {"id": event.id, "workspace_id": str(event.workspace_id), "type": event.type, "payload": event.payload}


class Consumers:
    def __init__(self, db: Database, clock: Clock, jobs: Jobs, *,
                 committed: Callable[[AsyncSession], Awaitable[None]]) -> None:
        self.db = db
        self.clock = clock
        self.jobs = jobs
        self._committed = committed  # the dispatcher's: pushes what the reactions published
        self._by_type: dict[str, list[Consumer]] = defaultdict(list)
        self._by_name: dict[str, Consumer] = {}
        # Consumer transactions at once in this process: fewer than its connection pool
        # holds, so jobs queued behind a lock (routing's) never starve the pool.
        self._slots = asyncio.Semaphore(CONCURRENT_TRANSACTIONS)

    def add(self, name: str, event_types: Iterable[str], react: React, *, prepare: Prepare | None = None,
            alone: bool = False, wants: Wants | None = None) -> None:
        if name in self._by_name:
            raise ValueError(f"consumer {name!r} registered twice")
        consumer = Consumer(name, react, prepare, alone, wants)
        self._by_name[name] = consumer
        for event_type in event_types:
            self._by_type[event_type].append(consumer)

    def of(self, event_type: str) -> list[Consumer]:
        return self._by_type.get(event_type, [])

    def _transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        return job_transaction(self.db, self._committed)

    def wanted(self, event: Event) -> bool:
        """Whether any consumer will react to the event."""
        return any(c.wants is None or c.wants(event) for c in self.of(event.type))

    async def consume(self, events: list[dict[str, Any]], again: bool = False, **_older: Any) -> int:
        """The ``outbox.consume`` job: a batch of events and all their consumers.
        Returns how many (consumer, event) pairs ran. ``again``: some were handed out
        before, so a pair may be kept as a failure; done now, it is kept no longer.
        (``_older``: jobs queued by a release before the lease also carry
        ``mark_dispatched``; it is always done now.)

        On SQLite the whole batch is one transaction (its one writer serialises them
        anyway, and each commit costs). On PostgreSQL, where several workers run batches
        at once, a consumer registered ``alone`` (routing) first gets a transaction of its
        own over the batch, so its lock is held for its own work only, not while the
        others do theirs; the rest share one.

        The events are marked dispatched by the transaction that handles them, the last
        one, if those before it succeeded; otherwise by whichever transaction takes care
        of their last pair (``_settle``). Until then they stay pending, and are handed
        out again should the jobs be lost (``core.dispatcher``)."""
        parsed = list(map(event_from_job, events))
        pairs = [(consumer, event) for event in parsed for consumer in self.of(event.type)
                 if consumer.wants is None or consumer.wants(event)]
        if self.db.is_sqlite:
            groups = [pairs]
        else:
            alone = list(dict.fromkeys(consumer for consumer, _ in pairs if consumer.alone))
            groups = [[pair for pair in pairs if pair[0] is consumer] for consumer in alone]
            groups.append([pair for pair in pairs if not pair[0].alone])
        groups = [group for group in groups if group]
        ran, intact = 0, True
        for index, group in enumerate(groups):
            last = index == len(groups) - 1
            done = await self._run_together(group, mark=[e.id for e in parsed] if last and intact else None,
                                            forget_kept=again)
            intact = intact and done is not None
            ran += done or 0
        return ran

    async def _run_together(self, pairs: list[tuple[Consumer, Event]], *, mark: list[int] | None = None,
                            forget_kept: bool = False) -> int | None:
        """Runs the pairs in one transaction; how many ran, or None if it failed (each pair
        then goes on as a job of its own)."""
        ran = 0
        try:
            async with self._slots, self._transaction() as session:
                now = self.clock.now()
                if mark:
                    await session.execute(_MARK_DISPATCHED, {"now": now, "ids": mark})
                fresh = await first_time_many(session, [(c.name, e.id) for c, e in pairs], now)
                for consumer in dict.fromkeys(c for c, _ in pairs):
                    if consumer.prepare is not None:
                        await consumer.prepare(session, [e for c, e in pairs if c is consumer
                                                         and (c.name, e.id) in fresh])
                for consumer, event in pairs:
                    if (consumer.name, event.id) in fresh:
                        await consumer.react(session, event, now)
                        ran += 1
                if forget_kept:
                    await session.execute(delete(FailedConsumption).where(
                        FailedConsumption.event_id.in_({e.id for _, e in pairs}),
                        FailedConsumption.consumer.in_({c.name for c, _ in pairs})))
        except asyncio.CancelledError:
            # The process is stopping mid-batch (a worker's grace ran out): its stream entry
            # counts as done, so the pairs are kept for the next round of retries.
            await self._keep_for_retry(pairs, "stopped before it finished")
            raise
        except Exception as exc:
            log.warning("consume_batch_failed", pairs=len(pairs), error=repr(exc))
            for n, (consumer, event) in enumerate(pairs):
                try:
                    await self.jobs.enqueue("outbox.consume_one", consumer=consumer.name, event=event_for_job(event))
                except Exception as refused:  # the queue is going away too: keep the rest in the database
                    await self._keep_for_retry(pairs[n:], f"could not be queued: {refused!r}")
                    break
            return None
        return ran

    async def _keep_for_retry(self, pairs: list[tuple[Consumer, Event]], why: str) -> None:
        """Pairs no job will run: kept as failures due at once (``outbox.retry_failed``
        takes them within a minute)."""
        await self._keep([(consumer.name, event_for_job(event)) for consumer, event in pairs], why,
                         due_in=timedelta(0))

    async def _keep(self, jobs: list[tuple[str, dict[str, Any]]], why: str, *, due_in: timedelta) -> None:
        """Keeps (consumer, event) pairs as failures, due ``due_in`` from now; one kept
        already only has its error brought up to date. Should even this fail (the
        database is away), the events stay pending and are handed out again."""
        try:
            async with self.db.write_session() as session:
                now = self.clock.now()
                for consumer, event in jobs:
                    row = await session.get(FailedConsumption, (consumer, int(event["id"])))
                    if row is None:
                        session.add(FailedConsumption(
                            consumer=consumer, event_id=int(event["id"]), workspace_id=uuid.UUID(event["workspace_id"]),
                            event=event, attempts=0, error=why, failed_at=now, next_attempt_at=now + due_in))
                    else:
                        row.error = why
                await session.flush()
                await self._settle(session, [event_from_job(e) for e in {e["id"]: e for _, e in jobs}.values()], now)
                await session.commit()
        except Exception as exc:  # nothing to keep them with: the events stay pending, the lease has them
            log.warning("consumption_not_kept", pairs=[(c, e["id"]) for c, e in jobs], why=why, error=repr(exc),
                        then="handed out again when the event's lease runs out")
        else:
            log.warning("consumption_kept", pairs=[(c, e["id"]) for c, e in jobs], why=why,
                        retry_at=(now + due_in).isoformat())

    async def _settle(self, session: AsyncSession, events: list[Event], now: datetime) -> None:
        """Marks dispatched each event whose every pair has run or is kept for later: after
        a batch failed, its pairs finish one by one and the last marks the event. (Two
        finishing at once on PostgreSQL may each miss the other: the event is then handed
        out again and its batch finds everything done.)"""
        for event in events:
            wanted = {c.name for c in self.of(event.type) if c.wants is None or c.wants(event)}
            taken = set(await session.scalars(select(ProcessedEvent.consumer).where(
                ProcessedEvent.event_id == event.id)))
            taken.update(await session.scalars(select(FailedConsumption.consumer).where(
                FailedConsumption.event_id == event.id)))
            if wanted <= taken:
                await session.execute(_MARK_DISPATCHED, {"now": now, "ids": [event.id]})

    async def consume_one(self, consumer: str, event: dict[str, Any], *, kept: bool = False) -> bool:
        """The ``outbox.consume_one`` job: one consumer, one event, its own transaction
        (the job queue retries it). False if it had been handled already or a rule said
        no. ``kept``: a failure being tried again, whose record goes with the same commit."""
        chosen = self._by_name[consumer]
        parsed = event_from_job(event)
        try:
            async with self._slots, self._transaction() as session:
                now = self.clock.now()
                first_time = await self._record_done(session, consumer, parsed, now, kept=kept)
                if first_time:
                    await chosen.react(session, parsed, now)
        except AppError as exc:
            # A rule says no (the ticket moved on meanwhile): trying again cannot help, so
            # the pair is done with, and must not hold its event pending.
            log.warning("consumption_refused", consumer=consumer, event_id=parsed.id, code=exc.code)
            async with self._slots, self._transaction() as session:
                await self._record_done(session, consumer, parsed, self.clock.now(), kept=kept)
            return False
        return first_time

    async def _record_done(self, session: AsyncSession, consumer: str, event: Event, now: datetime, *,
                           kept: bool) -> bool:
        """Records the pair as handled; False if it was already. A kept failure's record
        goes (its event was marked dispatched when it was kept); otherwise the event is
        marked once this was its last pair."""
        if kept:
            await session.execute(_forget(consumer, event.id))
        first_time = bool(await first_time_many(session, [(consumer, event.id)], now))
        if not kept:
            await self._settle(session, [event], now)
        return first_time

    async def keep_failed(self, job: dict[str, Any], error: Exception) -> None:
        """``outbox.consume_one`` gave up: keep the pair, to be tried again later."""
        event = job["event"]
        log.error("consumption_gave_up", consumer=job["consumer"], event_id=event["id"],
                  event_type=event["type"], error=repr(error))
        await self._keep([(job["consumer"], event)], _described(error), due_in=RETRY_PAUSES[0])

    async def retry_failed(self, *, everything: bool = False, limit: int = 100,
                           progress: Callable[[int, int], None] | None = None,
                           workspace_id: uuid.UUID | None = None) -> tuple[int, int]:
        """The periodic ``outbox.retry_failed`` job: the kept failures whose pause is over,
        oldest first, each in its own transaction. ``everything`` (an operator's retry) takes
        those whose tries are used up too; ``workspace_id``, only that workspace's. Returns
        (done, failed again)."""
        now = self.clock.now()
        stmt = select(FailedConsumption).order_by(FailedConsumption.failed_at).limit(limit)
        if not everything:
            stmt = stmt.where(FailedConsumption.next_attempt_at <= now)
        if workspace_id is not None:
            stmt = stmt.where(FailedConsumption.workspace_id == workspace_id)
        async with self.db.read_session() as session:
            rows = list(await session.scalars(stmt))
        done = failed = 0
        for index, row in enumerate(rows):
            try:
                await self.consume_one(row.consumer, row.event, kept=True)
                done += 1
            except Exception as exc:
                log.warning("consumption_failed_again", consumer=row.consumer, event_id=row.event_id,
                            error=repr(exc))
                await self._failed_again(row, exc)
                failed += 1
            if progress is not None:
                progress(index + 1, len(rows))
        return done, failed

    async def _failed_again(self, row: FailedConsumption, error: Exception) -> None:
        async with self._transaction() as session:
            kept = await session.get(FailedConsumption, (row.consumer, row.event_id))
            if kept is None:
                return
            kept.attempts += 1
            kept.error = _described(error)
            pauses_left = kept.attempts < len(RETRY_PAUSES)
            kept.next_attempt_at = self.clock.now() + RETRY_PAUSES[kept.attempts] if pauses_left else None


def _forget(consumer: str, event_id: int):  # noqa: ANN202
    return delete(FailedConsumption).where(FailedConsumption.consumer == consumer,
                                           FailedConsumption.event_id == event_id)


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:2000]

"""Delivers committed outbox events to live sockets, to the consumers (in batches, see
``core.consumers``) and to the jobs that subscribe to them by name.

Every process runs one: woken at once after a commit that published events, and on a
slow poll as a safety net (a process that died between commit and delivery leaves its
events pending; the next dispatcher anywhere picks them up). On PostgreSQL rows are
claimed with SKIP LOCKED so several dispatchers never deliver the same batch at once;
a crash after enqueueing but before the commit re-delivers, which consumers tolerate.

An event is done with (``dispatched_at``) once its consumers have taken care of it: the
transaction that ran them, or the one that kept a failure of theirs for later, marks it
(``core.consumers``); an event no consumer wants is done once its named jobs are queued.
Until then it stays pending, so nothing that happens to the jobs loses it:

* in one process the jobs live in memory and die with it; the next process hands out
  again whatever is still pending;
* on Redis a dispatcher notes when it handed an event out (``handed_out_at``) and any
  dispatcher hands it out again once that lease has run out unmarked: Redis restarted
  without its data, or the database was away longer than the consumer's retries and
  keeping the failure needed it too. What was done already is skipped by its record.
  Not while the workers have a backlog, though: then the event is most likely still
  queued, and each lease would only queue another copy.

In the scaled mode a dispatcher holds back while the workers have ``jobs_ahead`` jobs
queued or running (for at most ``max_hold_seconds``): events then gather in the outbox
and leave as one batch when a worker frees up. Without that, a dispatcher that is never
busy itself sends every event on its own the moment it commits, the workers' queue fills
with batches of one, and each event pays a batch's fixed cost (a transaction, its
idempotency records, reading the workspace's agents and rules) just when the workers
have the least time for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.clock import Clock
from relaydesk.core.consumers import Consumers, event_for_job
from relaydesk.core.db import Database
from relaydesk.core.jobs import Jobs
from relaydesk.core.outbox import COMMITTED_EVENTS, Event, OutboxEvent
from relaydesk.core.realtime import Hub, LiveEvent
from relaydesk.core.uow import run_after_commit

log = structlog.get_logger("relaydesk.dispatcher")
LIVE_ALREADY_KEPT = 10_000


class Dispatcher:
    def __init__(self, db: Database, jobs: Jobs, clock: Clock, hub: Hub, *, poll_seconds: float = 2.0,
                 batch: int = 200, consume_batch: int = 25, gather_seconds: float = 0.02,
                 max_gather_seconds: float = 0.1,
                 jobs_ahead: int | None = None, max_hold_seconds: float = 1.0, lease_seconds: float = 60.0,
                 on_committed: Callable[[list[Event]], None] | None = None) -> None:
        self.db = db
        self.jobs = jobs
        self.clock = clock
        self.hub = hub
        self.consumers = Consumers(db, clock, jobs, committed=self.committed)
        self.on_committed = on_committed  # sees every unit of work's events here (metrics)
        self.routes: dict[str, tuple[str, ...]] = {}
        self.poll_seconds = poll_seconds
        self.batch = batch
        # Events per consumer transaction: on SQLite that transaction holds the one writer,
        # so a bound keeps requests from waiting behind a long batch.
        self.consume_batch = consume_batch
        # After a wake-up, wait this long so a burst of commits leaves in one transaction,
        # and again while commits keep coming, up to ``max_gather_seconds``: under steady
        # load a batch then carries many events, and its fixed cost (a transaction, the
        # idempotency records, reading the workspace's agents, rules and policies) is
        # shared, while a lone commit on a quiet server still leaves after one pause.
        self.gather_seconds = gather_seconds
        self.max_gather_seconds = max(max_gather_seconds, gather_seconds)
        self.jobs_ahead = jobs_ahead
        # Events are held back at most this long: the jobs keeping the workers busy may be
        # slow ones of another kind (a webhook to a slow endpoint), and routing must not
        # wait behind them for long.
        self.max_hold_seconds = max_hold_seconds
        # Scaled mode: an event handed to the job queue and not done with this long after
        # was lost on the way. Longer than a consumer job normally waits and runs: one
        # handed out again while its job still runs costs a second look, no second effect.
        self.lease = timedelta(seconds=lease_seconds)
        # While the workers have a backlog, an event whose lease ran out is most likely still
        # queued, not lost: handing it out again would only queue another copy per lease
        # (a worker outage of an hour, sixty). What Redis lost shows as an empty queue.
        self._backlogged = False
        self._held_since: float | None = None  # monotonic time events were first held back
        self._handed_out_to = 0  # in one process: the last event id handed to jobs here
        self._wake = asyncio.Event()
        # Ids this process has pushed live itself, so its own dispatch does not repeat them.
        self._live_already: OrderedDict[int, None] = OrderedDict()

    def subscribe(self, routes: Mapping[str, Sequence[str]]) -> None:
        """Jobs that take single events by name (work that wants its own transaction
        and retries, such as emailing a mailbox its verification code); reactions belong in consumers."""
        for event_type, job_names in routes.items():
            self.routes[event_type] = (*self.routes.get(event_type, ()), *job_names)

    def nudge(self) -> None:
        self._wake.set()

    async def committed(self, session: AsyncSession) -> None:
        """Called by whoever owns a unit of work once it has committed: its events go to
        live sockets at once, without waiting for a dispatch round (which would queue
        behind the jobs for SQLite's writer), and the dispatcher is woken to hand them to
        the consumers. Should the process die in between, the dispatch round publishes
        them instead; sockets drop an id they have already sent."""
        events: list[Event] = session.info.pop(COMMITTED_EVENTS, [])
        if events:
            if self.on_committed is not None:
                self.on_committed(events)
            await self.hub.publish([LiveEvent(e.id, e.workspace_id, e.type, e.payload) for e in events])
            for e in events:
                self._live_already[e.id] = None
            while len(self._live_already) > LIVE_ALREADY_KEPT:
                self._live_already.popitem(last=False)
            self.nudge()
        await run_after_commit(session)

    async def dispatch_pending(self) -> int:
        """Deliver one batch; returns how many events it delivered.

        Jobs on Redis survive this process; jobs in memory do not. So in one process this
        process remembers how far it has handed events out, and a new process starts from
        the first pending one. On Redis the lease (``handed_out_at``) does that job across
        all dispatchers."""
        in_memory = self.jobs.in_process
        async with self.db.write_session() as session:
            now = self.clock.now()
            stmt = select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None)).order_by(OutboxEvent.id)
            if in_memory:
                stmt = stmt.where(OutboxEvent.id > self._handed_out_to)
            elif self._backlogged:
                stmt = stmt.where(OutboxEvent.handed_out_at.is_(None))
            else:
                stmt = stmt.where(or_(OutboxEvent.handed_out_at.is_(None), OutboxEvent.handed_out_at <= now - self.lease))
            stmt = stmt.limit(self.batch)
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            events = list(await session.scalars(stmt))
            # Sockets heard of an event the first time it was handed out.
            not_yet_live = [e for e in events if e.handed_out_at is None and e.id not in self._live_already]
            handed_before = {e.id for e in events if e.handed_out_at is not None}
            if handed_before:
                log.warning("events_handed_out_again", events=len(handed_before),
                            lease_seconds=self.lease.total_seconds())
            # A batch holds one workspace's events: its transaction then takes at most that
            # workspace's locks, so two batches cannot each hold what the other waits for.
            by_workspace: dict[uuid.UUID, list[dict[str, Any]]] = {}
            for e in events:
                event = Event(e.id, e.workspace_id, e.type, e.payload)
                if self.consumers.wanted(event):
                    by_workspace.setdefault(e.workspace_id, []).append(event_for_job(event))
                    if not in_memory:
                        e.handed_out_at = now
                else:
                    e.dispatched_at = now
            for consumed in by_workspace.values():
                for start in range(0, len(consumed), self.consume_batch):
                    batch = consumed[start:start + self.consume_batch]
                    # Handed out before: its consumers may have kept a failure to forget once done.
                    extra = {"again": True} if any(e["id"] in handed_before for e in batch) else {}
                    await self.jobs.enqueue("outbox.consume", events=batch, **extra)
            for event in events:
                for job in self.routes.get(event.type, ()):
                    await self.jobs.enqueue(job, event_id=event.id, workspace_id=str(event.workspace_id),
                                            type=event.type, payload=event.payload)
            await session.commit()
        if events:
            self._handed_out_to = max(self._handed_out_to, events[-1].id)
        for e in events:
            self._live_already.pop(e.id, None)
        # Live sockets hear about an event only once it is committed and on its way.
        await self.hub.publish([LiveEvent(e.id, e.workspace_id, e.type, e.payload) for e in not_yet_live])
        return len(events)

    async def drain(self) -> None:
        while not await self._hold_back() and await self.dispatch_pending() >= self.batch:
            pass

    async def _hold_back(self) -> bool:
        """Whether this round leaves the events in the outbox: the workers are busy, and
        events have not been held for ``max_hold_seconds`` yet (the clock starts now)."""
        if self.jobs_ahead is None:
            return False
        unfinished = await self.jobs.unfinished()
        self._backlogged = unfinished is not None and unfinished >= self.jobs_ahead
        now = time.monotonic()
        if unfinished is None or unfinished < self.jobs_ahead or (
                self._held_since is not None and now - self._held_since >= self.max_hold_seconds):
            self._held_since = None
            return False
        if self._held_since is None:
            self._held_since = now
        return True

    async def _gather(self) -> None:
        deadline = time.monotonic() + self.max_gather_seconds
        while True:
            self._wake.clear()
            await asyncio.sleep(min(self.gather_seconds, max(0.0, deadline - time.monotonic())))
            if not self._wake.is_set() or time.monotonic() >= deadline:
                return

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                # Held back: look again soon, not only when the next commit wakes us.
                timeout = self.gather_seconds if self._held_since is not None else self.poll_seconds
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass
            else:
                await self._gather()
            self._wake.clear()
            try:
                await self.drain()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: events stay pending
                failures += 1
                log.warning("dispatch_failed", error=str(exc), retry_in=min(2**failures, 30))
                await asyncio.sleep(min(2**failures, 30))

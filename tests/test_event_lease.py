"""The scaled mode loses no event on the way to its consumers: one whose job Redis lost
(restarted without its data), or whose consumer could not even keep its failure (the
database was away longer than the job's retries), is handed out again once its lease
has run out, and the ticket is routed after all."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from relaydesk.core.clock import FrozenClock
from relaydesk.core.outbox import OutboxEvent
from relaydesk.runtime import Runtime, build_runtime
from relaydesk.wiring import install_jobs
from test_outbox import new_ticket_for_a_desk

LEASE = timedelta(seconds=60)


@contextlib.asynccontextmanager
async def scaled_process(runtime: Runtime, redis_url: str, database_url: str | None = None
                         ) -> AsyncIterator[Runtime]:
    """A worker process of the scaled mode on the test's database (or ``database_url``,
    the same database by another road) and a job queue of its own on Redis."""
    queue = f"relaydesk-test:{secrets.token_hex(4)}"
    settings = runtime.settings.model_copy(update={
        "redis_url": redis_url, "job_queue": queue, "event_lease_seconds": LEASE.total_seconds(),
        **({"database_url": database_url} if database_url else {})})
    rt = build_runtime(settings, clock=FrozenClock(runtime.clock.now(), tick=timedelta(milliseconds=1)))
    install_jobs(rt)
    await rt.jobs.start()
    try:
        yield rt
    finally:
        await rt.close()
        async with aioredis.from_url(redis_url) as redis:
            await redis.delete(queue)


@contextlib.asynccontextmanager
async def worker(rt: Runtime) -> AsyncIterator[None]:
    finish = asyncio.Event()
    task = asyncio.create_task(rt.jobs.work(concurrency=2, finish=finish, grace=5))
    try:
        yield
    finally:
        finish.set()
        await asyncio.wait_for(task, 30)


async def created_event(rt: Runtime, ticket_id: str) -> OutboxEvent:
    async with rt.db.read_session() as s:
        return await s.scalar(select(OutboxEvent).where(
            OutboxEvent.type == "ticket.created", OutboxEvent.payload["ticket_id"].as_string() == ticket_id))


async def until(condition, seconds: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def assignee(client, ws, ticket_id: str) -> str | None:  # noqa: ANN001
    return (await client.get(f"/api/v1/tickets/{ticket_id}", headers=ws.admin.headers)).json()["assignee_id"]


async def test_an_event_whose_job_redis_lost_is_handed_out_again_when_its_lease_runs_out(client, runtime, redis_url):
    ws, agent, t = await new_ticket_for_a_desk(client)
    async with scaled_process(runtime, redis_url) as rt:
        assert await rt.dispatcher.dispatch_pending() > 0
        handed = await created_event(rt, t["id"])
        assert handed.dispatched_at is None and handed.handed_out_at is not None

        async with aioredis.from_url(redis_url) as redis:
            await redis.delete(rt.settings.job_queue)  # Redis restarted without its data
        assert await rt.dispatcher.dispatch_pending() == 0  # within its lease: still on its way

        rt.clock.advance(LEASE)
        assert await rt.dispatcher.dispatch_pending() > 0  # the lease ran out: handed out again
        async with worker(rt):
            await until(lambda: assignee(client, ws, t["id"]))
            await until(lambda: _all_done(rt))  # and what the reactions published in turn
        assert await assignee(client, ws, t["id"]) == agent.id
        rt.clock.advance(LEASE)
        assert await rt.dispatcher.dispatch_pending() == 0  # done with: never handed out again


async def test_while_the_workers_have_a_backlog_a_lease_that_ran_out_queues_no_copy(client, runtime, redis_url):
    """Workers down for an hour: the events' jobs wait in the queue, not lost. Handing them
    out again each lease would pile up copies for the workers to wade through later."""
    ws, agent, t = await new_ticket_for_a_desk(client)
    async with scaled_process(runtime, redis_url) as rt, aioredis.from_url(redis_url) as redis:
        rt.dispatcher.jobs_ahead, rt.dispatcher.max_hold_seconds = 1, 0  # busy, and new events never wait
        await rt.dispatcher.drain()
        queued = await redis.xlen(rt.settings.job_queue)
        assert queued >= 1
        for _ in range(3):
            rt.clock.advance(LEASE)
            await rt.dispatcher.drain()
        assert await redis.xlen(rt.settings.job_queue) == queued  # still there: no copies

        await redis.delete(rt.settings.job_queue)  # now Redis loses them: the queue is empty
        await rt.dispatcher.drain()
        assert await redis.xlen(rt.settings.job_queue) == queued
        async with worker(rt):
            await until(lambda: assignee(client, ws, t["id"]))
        assert await assignee(client, ws, t["id"]) == agent.id


async def _all_done(rt: Runtime) -> bool:
    await rt.dispatcher.dispatch_pending()
    async with rt.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.dispatched_at.is_(None))) == 0


class TcpProxy:
    """A road to a server that the test can close: a database outage as the application
    sees it (connections dropped, new ones refused), while the server itself stays up."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._links.update((client_writer, server_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)  # a database server to lose the road to
async def test_an_event_whose_consumer_could_not_keep_its_failure_is_handed_out_again(client, runtime, redis_url):
    """The database goes away while the event is being consumed, for longer than the
    job's retries: keeping the failure for later needs the database too, so nothing is
    kept. The event is still pending, and once the database is back it is done."""
    ws, agent, t = await new_ticket_for_a_desk(client)
    url = urlsplit(runtime.settings.database_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.open()
    by_proxy = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    async with scaled_process(runtime, redis_url, by_proxy) as rt:
        assert await rt.dispatcher.dispatch_pending() > 0
        await proxy.cut()  # the database is away
        async with worker(rt):
            await until(lambda: _no_jobs_left(rt))  # the consumer tried, gave up, could keep nothing
            assert await assignee(client, ws, t["id"]) is None
            assert (await created_event(runtime, t["id"])).dispatched_at is None

            await proxy.open()  # back, on the same port
            rt.clock.advance(LEASE)
            await until(lambda: _handed_out(rt))
            await until(lambda: assignee(client, ws, t["id"]))
        assert await assignee(client, ws, t["id"]) == agent.id
        assert (await created_event(runtime, t["id"])).dispatched_at is not None
    await proxy.cut()


async def _no_jobs_left(rt: Runtime) -> bool:
    return await rt.jobs.unfinished() == 0


async def _handed_out(rt: Runtime) -> bool:
    """One dispatch round that handed something out; a round that meets a connection the
    outage broke fails, as the running dispatcher's would, and the next one goes on."""
    try:
        return await rt.dispatcher.dispatch_pending() > 0
    except Exception:  # noqa: BLE001
        return False

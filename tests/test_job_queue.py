"""The scaled mode's job queue on a real Redis: the dispatcher lets events gather while
the workers are busy, so they leave as one batch, and the stream sheds the jobs the
workers are done with but never one still waiting or running."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from conftest import service_unavailable
from factories import make_workspace
from relaydesk.core.consumers import event_from_job
from relaydesk.core.dispatcher import Dispatcher
from relaydesk.core.jobs import CONSUMER_GROUP, Jobs, build_broker
from relaydesk.core.outbox import Outbox, OutboxEvent
from relaydesk.core.realtime import InProcessHub

REDIS_URL = os.environ.get("RELAYDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _nothing(**_: object) -> None:
    return None


@pytest.fixture
async def redis_jobs():
    """Jobs on a stream of their own, with no worker reading it: the test plays the
    workers by reading and acknowledging entries itself."""
    redis = aioredis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except (OSError, aioredis.RedisError) as exc:
        service_unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    queue = f"relaydesk-test:{secrets.token_hex(4)}"
    jobs = Jobs(build_broker(REDIS_URL, queue=queue))
    for name in ("outbox.consume", "mail.send"):
        jobs.register(name, _nothing)
    await jobs.broker.startup()
    try:
        yield jobs, redis, queue
    finally:
        await jobs.broker.shutdown()
        await redis.delete(queue)
        await redis.aclose()


async def take(redis, queue: str, count: int) -> list[tuple[bytes, dict]]:
    """A worker picking up jobs: they are handed out but not acknowledged yet."""
    got = await redis.xreadgroup(CONSUMER_GROUP, "test-worker", {queue: ">"}, count=count)
    return [(entry_id, fields) for _, entries in got for entry_id, fields in entries]


async def publish(runtime, workspace_id: uuid.UUID, count: int) -> None:
    for n in range(count):
        async with runtime.db.write_session() as session:
            Outbox(session).publish(workspace_id, "probe.happened", runtime.clock.now(), n=n)
            await session.commit()


async def test_events_wait_while_the_workers_are_busy_and_then_leave_as_one_batch(client, runtime, redis_jobs):
    jobs, redis, queue = redis_jobs
    ws = await make_workspace(client)
    dispatcher = Dispatcher(runtime.db, jobs, runtime.clock, InProcessHub(), jobs_ahead=2)
    dispatcher.consumers.add("probe", ["probe.happened"], react=lambda *_: _nothing())
    await jobs.enqueue("mail.send")
    await jobs.enqueue("mail.send")
    assert await jobs.unfinished() == 2

    await publish(runtime, uuid.UUID(ws.id), 5)
    await dispatcher.drain()
    assert await redis.xlen(queue) == 2  # nothing new queued behind the busy workers
    async with runtime.db.read_session() as s:
        waiting = list(await s.scalars(select(OutboxEvent).where(
            OutboxEvent.workspace_id == uuid.UUID(ws.id), OutboxEvent.dispatched_at.is_(None)).order_by(OutboxEvent.id)))
    assert len(waiting) == 5

    for entry_id, _ in await take(redis, queue, 2):  # the workers finish what they had
        await redis.xack(queue, CONSUMER_GROUP, entry_id)
    assert await jobs.unfinished() == 0
    await dispatcher.drain()

    [(_, fields)] = await take(redis, queue, 10)
    job = jobs.broker.formatter.loads(fields[b"data"])
    assert job.task_name == "outbox.consume"
    events = [event_from_job(e) for e in job.kwargs["events"]]
    assert [e.payload["n"] for e in events] == [0, 1, 2, 3, 4]
    assert [e.id for e in events] == [e.id for e in waiting]


async def test_events_are_held_back_for_a_bounded_time_only(client, runtime, redis_jobs):
    """Jobs that never seem to finish (slow jobs of another kind, a worker that died)
    delay events by at most max_hold_seconds, then they leave anyway."""
    jobs, redis, queue = redis_jobs
    ws = await make_workspace(client)
    dispatcher = Dispatcher(runtime.db, jobs, runtime.clock, InProcessHub(), jobs_ahead=2, max_hold_seconds=0.3)
    dispatcher.consumers.add("probe", ["probe.happened"], react=lambda *_: _nothing())
    await jobs.enqueue("mail.send")
    await jobs.enqueue("mail.send")
    await publish(runtime, uuid.UUID(ws.id), 3)
    await dispatcher.drain()
    assert await redis.xlen(queue) == 2
    await asyncio.sleep(0.35)
    await dispatcher.drain()  # still busy, but held long enough
    assert await redis.xlen(queue) == 3
    *_, (_, fields) = await redis.xrange(queue)
    assert [e["payload"]["n"] for e in jobs.broker.formatter.loads(fields[b"data"]).kwargs["events"]] == [0, 1, 2]


async def test_without_busy_workers_each_commit_leaves_at_once(client, runtime, redis_jobs):
    jobs, redis, queue = redis_jobs
    ws = await make_workspace(client)
    dispatcher = Dispatcher(runtime.db, jobs, runtime.clock, InProcessHub(), jobs_ahead=2)
    dispatcher.consumers.add("probe", ["probe.happened"], react=lambda *_: _nothing())
    await publish(runtime, uuid.UUID(ws.id), 1)
    await dispatcher.drain()
    assert len(await take(redis, queue, 10)) == 1
    assert await jobs.unfinished() == 1  # handed out, still running


async def test_the_stream_sheds_finished_jobs_and_keeps_those_waiting_or_running(redis_jobs):
    jobs, redis, queue = redis_jobs
    for _ in range(5):
        await jobs.enqueue("mail.send")
    first, second, third = await take(redis, queue, 3)
    await redis.xack(queue, CONSUMER_GROUP, first[0], third[0])  # the second is still running

    assert await jobs.trim_finished() == 1
    assert await redis.xlen(queue) == 4
    assert await jobs.unfinished() == 3  # the running one and the two never handed out

    await redis.xack(queue, CONSUMER_GROUP, second[0])
    assert await jobs.trim_finished() == 2
    remaining = await redis.xrange(queue)
    assert len(remaining) == 2 and all(entry_id > third[0] for entry_id, _ in remaining)
    assert await jobs.unfinished() == 2
    assert len(await take(redis, queue, 10)) == 2  # still there for a worker


async def until(condition, seconds: float = 15.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "it never happened"
        await asyncio.sleep(0.05)


async def test_a_stopping_worker_lets_its_running_job_finish(redis_jobs) -> None:  # noqa: ANN001
    """SIGTERM (a deploy, systemd, Kubernetes) sets ``finish``: no new jobs are taken, and
    the running one ends and is acknowledged instead of being cut off and lost."""
    jobs, redis, queue = redis_jobs
    started, done = asyncio.Event(), []

    async def slow(n: int) -> None:
        started.set()
        await asyncio.sleep(0.5)
        done.append(n)

    jobs.register("test.slow", slow)
    finish = asyncio.Event()
    worker = asyncio.create_task(jobs.work(concurrency=4, finish=finish, grace=5))
    await jobs.enqueue("test.slow", n=1)
    await asyncio.wait_for(started.wait(), 15)
    finish.set()
    await asyncio.wait_for(worker, 15)
    assert done == [1]
    assert (await redis.xpending(queue, CONSUMER_GROUP))["pending"] == 0


async def test_a_worker_carries_on_when_redis_comes_back_empty(redis_jobs) -> None:  # noqa: ANN001
    """A Redis restarted without its data has no consumer group: the worker declares it
    again and goes on, rather than failing on every read until someone restarts it."""
    jobs, redis, queue = redis_jobs
    ran: list[int] = []

    async def note(n: int) -> None:
        ran.append(n)

    jobs.register("test.note", note)
    finish = asyncio.Event()
    worker = asyncio.create_task(jobs.work(concurrency=4, finish=finish, grace=5))
    try:
        await jobs.enqueue("test.note", n=1)
        await until(lambda: ran == [1])
        await redis.delete(queue)  # the stream and its consumer group are gone
        await jobs.enqueue("test.note", n=2)
        await until(lambda: ran == [1, 2])
    finally:
        finish.set()
        await asyncio.wait_for(worker, 15)


async def test_a_worker_that_cannot_reach_redis_says_why(capsys) -> None:  # noqa: ANN001
    """The outage line names what failed (a refused connection, a host not found), not
    the task group the receiver wrapped it in."""
    from test_quickstart import free_port

    port = free_port()  # nothing listens there
    jobs = Jobs(build_broker(f"redis://127.0.0.1:{port}/0", queue=f"relaydesk-test:{secrets.token_hex(4)}"))
    finish = asyncio.Event()
    capsys.readouterr()
    worker = asyncio.create_task(jobs.work(concurrency=1, finish=finish, grace=1))
    try:
        async def outage_lines() -> list[dict]:
            lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("event") == "job_queue_unreachable"]

        seen: list[dict] = []
        for _ in range(100):
            seen += await outage_lines()
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen, "the worker logged no outage"
        assert f"connecting to 127.0.0.1:{port}" in seen[0]["error"], seen[0]
    finally:
        finish.set()
        await asyncio.wait_for(worker, 15)
        await jobs.broker.shutdown()

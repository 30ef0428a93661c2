"""Named background jobs on Taskiq.

The broker is picked by the runtime: Taskiq's in-memory broker inside the server in the
embedded mode, its Redis stream broker (acknowledged delivery) in the scaled mode. Jobs
are registered by name (``domain.verb``) and enqueued by name with plain arguments;
a job reloads what it needs by id and tolerates arriving late or twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

from relaydesk.core.errors import AppError

log = structlog.get_logger("relaydesk.jobs")
# Redis not answering (yet): what the scaled mode rides out.
_REDIS_AWAY = (RedisConnectionError, RedisTimeoutError, OSError)

JobFunction = Callable[..., Awaitable[Any]]
CONSUMER_GROUP = "relaydesk-workers"


def build_broker(redis_url: str | None, *, queue: str = "relaydesk:jobs") -> AsyncBroker:
    if not redis_url:
        return InMemoryBroker(max_async_tasks=50, propagate_exceptions=False)
    from taskiq_redis import RedisStreamBroker

    # consumer_id "0": a consumer group made after jobs were queued still reads them.
    # idle_timeout: a job taken by a worker that died is handed to another after 60 s.
    return RedisStreamBroker(redis_url, queue_name=queue, consumer_group_name=CONSUMER_GROUP,
                             consumer_id="0", idle_timeout=60_000, unacknowledged_lock_timeout=30,
                             xread_block=1000)


class Jobs:
    def __init__(self, broker: AsyncBroker, *, observe: Callable[[str, str, float], None] | None = None) -> None:
        """``observe(job, outcome, seconds)`` is told how each job ended (done, refused
        or failed) and how long it took with its retries: the process's metrics."""
        self.broker = broker
        self._names: set[str] = set()
        self._observe = observe or (lambda _job, _outcome, _seconds: None)

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, InMemoryBroker)

    def register(self, name: str, fn: JobFunction, *, attempts: int = 4,
                 on_give_up: Callable[[dict[str, Any], Exception], Awaitable[None]] | None = None) -> None:
        """``fn`` receives the job's keyword arguments. A failure (a deadlock, the
        database restarting) is retried with back-off; jobs are idempotent, so a retry
        after a partial failure is safe. ``on_give_up`` is told of a job whose last
        attempt failed too, to keep it for later."""

        observe = self._observe

        async def run(**kwargs: Any) -> Any:
            started = time.perf_counter()
            for attempt in range(1, attempts + 1):
                try:
                    result = await fn(**kwargs)
                    observe(name, "done", time.perf_counter() - started)
                    return result
                except AppError as exc:
                    # A rule said no (the ticket moved on meanwhile): retrying cannot help.
                    log.warning("job_refused", job=name, code=exc.code, detail=exc.detail)
                    observe(name, "refused", time.perf_counter() - started)
                    return None
                except Exception as exc:
                    if attempt == attempts:
                        observe(name, "failed", time.perf_counter() - started)
                        log.exception("job_failed", job=name, attempts=attempts)
                        if on_give_up is not None:
                            try:
                                await on_give_up(kwargs, exc)
                            except Exception:  # the database is gone too: the log has it all
                                log.exception("job_not_kept", job=name)
                        raise
                    log.warning("job_retry", job=name, attempt=attempt, exc_info=True)
                    await asyncio.sleep(0.1 * 2**attempt)
            return None

        run.__name__ = name.replace(".", "_")
        self.broker.register_task(run, task_name=name)
        self._names.add(name)

    async def start(self) -> bool:
        """Start the broker (scaled mode: declare the workers' consumer group). False when
        Redis cannot be reached now, said in one line: the process serves anyway, as it
        does when Redis goes away later, and ``start_once_reachable`` tries again."""
        try:
            await self.broker.startup()
        except _REDIS_AWAY as exc:  # anything else is a fault of ours, and stops the start
            log.warning("job_queue_unreachable_at_start", error=_why(exc)[:300],
                        detail="serving without it; jobs fail to enqueue until Redis answers")
            return False
        return True

    async def start_once_reachable(self) -> None:
        """After a ``start`` that failed: declare the consumer group once Redis answers."""
        pause = 1
        while True:
            pause = min(pause * 2, 30)
            await asyncio.sleep(pause)
            with contextlib.suppress(*_REDIS_AWAY):
                await self.broker._declare_consumer_group()  # type: ignore[attr-defined]
                log.info("job_queue_reachable")
                return

    async def enqueue(self, name: str, **kwargs: Any) -> None:
        if name not in self._names:
            raise KeyError(f"no job named {name!r}")
        await AsyncKicker(task_name=name, broker=self.broker, labels={}).kiq(**kwargs)

    async def work(self, *, concurrency: int, finish: asyncio.Event, grace: float) -> None:
        """A worker's loop (scaled mode): run jobs from the Redis stream until ``finish`` is
        set, then take no new ones and give those running ``grace`` seconds to end. Jobs
        handed to this worker and not started stay unacknowledged in the stream, and
        another worker takes them over (``idle_timeout``).

        While Redis is away it tries again with back-off (a line in the log each time, not
        a trace per poll), and declares the consumer group again first: a Redis that
        came back empty (no persistence, a failover) has none, and reading would fail for
        ever."""
        from concurrent.futures import ThreadPoolExecutor

        from taskiq.receiver import Receiver

        failures = 0
        self.broker.is_worker_process = True
        with ThreadPoolExecutor() as executor:
            while not finish.is_set():
                receiver = Receiver(broker=self.broker, executor=executor, run_startup=False,
                                    max_async_tasks=concurrency, wait_tasks_timeout=grace)
                listening = asyncio.ensure_future(receiver.listen(finish))
                unsticking = asyncio.ensure_future(self._unstick(listening, finish, grace))
                try:
                    await listening
                    failures = 0
                except Exception as exc:
                    failures += 1
                    pause = min(2 ** failures, 30)
                    log.warning("job_queue_unreachable", error=_why(exc)[:300], retry_in=pause)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(finish.wait(), timeout=pause)
                    with contextlib.suppress(Exception):
                        await self.broker._declare_consumer_group()  # type: ignore[attr-defined]
                finally:
                    unsticking.cancel()

    async def _unstick(self, listening: asyncio.Future[None], finish: asyncio.Event, grace: float) -> None:
        """Once told to finish, the receiver cancels its read of the stream. Under load a
        cancelled blocking read (redis-py 8) can keep waiting on its socket for good, and
        the worker never stopped: if the receiver has not ended a moment after the running
        jobs' grace, the connections under the read are dropped, which ends it."""
        await finish.wait()
        await asyncio.wait({listening}, timeout=grace + 2)
        if not listening.done():
            log.warning("job_queue_read_stuck", detail="dropping the stream connections to stop")
            await self.broker.connection_pool.disconnect()  # type: ignore[attr-defined]

    async def unfinished(self) -> int | None:
        """Jobs queued or running anywhere in the deployment (scaled mode): the consumer
        group's entries not yet handed to a worker plus those handed out and not yet
        acknowledged (Taskiq acknowledges a job once it has run). None in-process, and where
        Redis cannot tell (its lag is unknown after entries were deleted out of order)."""
        if self.in_process:
            return None
        group = await self._group()
        if group is None or group["lag"] is None:
            return None
        return int(group["pending"]) + int(group["lag"])

    async def trim_finished(self) -> int:
        """Drop the stream entries every worker is done with. Taskiq acknowledges jobs but
        never deletes them, so without this the stream (and Redis's memory) grows by every
        job ever run. Only entries already handed out and older than the oldest one still
        unacknowledged go, so a job not yet run or still running is never lost. Returns how
        many entries were removed."""
        if self.in_process:
            return 0
        group = await self._group()
        if group is None:
            return 0
        queue = self.broker.queue_name  # type: ignore[attr-defined]
        millis, sequence = _stream_id(group["last-delivered-id"])
        keep_from = (millis, sequence + 1)  # everything handed out has been acknowledged...
        async with self._redis() as redis:
            oldest_running = (await redis.xpending(queue, CONSUMER_GROUP))["min"]
            if oldest_running is not None:  # ...unless a job is still running: keep it and all after
                keep_from = min(keep_from, _stream_id(oldest_running))
            # Exact, not "~": an approximate trim removes only whole nodes of the stream.
            return int(await redis.xtrim(queue, minid=f"{keep_from[0]}-{keep_from[1]}", approximate=False))

    def _redis(self) -> Any:
        """A client on the broker's connection pool (scaled mode only)."""
        from redis.asyncio import Redis

        return Redis(connection_pool=self.broker.connection_pool)  # type: ignore[attr-defined]

    async def _group(self) -> dict[str, Any] | None:
        from redis.exceptions import ResponseError

        async with self._redis() as redis:
            try:
                groups = await redis.xinfo_groups(self.broker.queue_name)  # type: ignore[attr-defined]
            except ResponseError:  # no stream yet: no worker has started
                return None
        for group in groups:
            if group["name"] in (CONSUMER_GROUP, CONSUMER_GROUP.encode()):
                return group  # type: ignore[no-any-return]
        return None

    async def wait_idle(self) -> None:
        """Wait for every in-process job (and the jobs those enqueue) to finish: in tests,
        and when the server stops (see ``wiring.background``)."""
        if isinstance(self.broker, InMemoryBroker):
            while self.broker._running_tasks:
                await self.broker.wait_all()
                # Awaiting finished tasks never yields; let their done-callbacks run.
                await asyncio.sleep(0)


def _why(exc: BaseException) -> str:
    """What went wrong, for the log: Taskiq's receiver runs in a task group, whose own
    message ("unhandled errors in a TaskGroup") tells an operator nothing."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_why(inner) for inner in exc.exceptions))
    return str(exc) or type(exc).__name__


def _stream_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)

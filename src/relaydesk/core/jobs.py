"""Named background jobs on Taskiq.

The broker is picked by the runtime: Taskiq's in-memory broker inside the server in the
embedded mode, its Redis stream broker (acknowledged delivery) in the scaled mode. Jobs
are registered by name (``domain.verb``) and enqueued by name with plain arguments;
a job reloads what it needs by id and tolerates arriving late or twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

from relaydesk.core.errors import AppError

log = structlog.get_logger("relaydesk.jobs")

JobFunction = Callable[..., Awaitable[Any]]


def build_broker(redis_url: str | None, *, queue: str = "relaydesk:jobs") -> AsyncBroker:
    if not redis_url:
        return InMemoryBroker(max_async_tasks=50, propagate_exceptions=False)
    from taskiq_redis import RedisStreamBroker

    # consumer_id "0": a consumer group made after jobs were queued still reads them.
    # idle_timeout: a job taken by a worker that died is handed to another after 60 s.
    return RedisStreamBroker(redis_url, queue_name=queue, consumer_group_name="relaydesk-workers",
                             consumer_id="0", idle_timeout=60_000, unacknowledged_lock_timeout=30,
                             xread_block=1000)


class Jobs:
    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self._names: set[str] = set()

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, InMemoryBroker)

    def register(self, name: str, fn: JobFunction, *, attempts: int = 4) -> None:
        """``fn`` receives the job's keyword arguments. A failure (a deadlock, the
        database restarting) is retried with back-off; jobs are idempotent, so a retry
        after a partial failure is safe."""

        async def run(**kwargs: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return await fn(**kwargs)
                except AppError as exc:
                    # A rule said no (the ticket moved on meanwhile): retrying cannot help.
                    log.warning("job_refused", job=name, code=exc.code, detail=exc.detail)
                    return None
                except Exception:
                    if attempt == attempts:
                        log.exception("job_failed", job=name, attempts=attempts)
                        raise
                    log.warning("job_retry", job=name, attempt=attempt, exc_info=True)
                    await asyncio.sleep(0.1 * 2**attempt)
            return None

        run.__name__ = name.replace(".", "_")
        self.broker.register_task(run, task_name=name)
        self._names.add(name)

    async def enqueue(self, name: str, **kwargs: Any) -> None:
        if name not in self._names:
            raise KeyError(f"no job named {name!r}")
        await AsyncKicker(task_name=name, broker=self.broker, labels={}).kiq(**kwargs)

    async def wait_idle(self) -> None:
        """Tests: wait for every in-process job (and the jobs those enqueue) to finish."""
        if isinstance(self.broker, InMemoryBroker):
            while self.broker._running_tasks:
                await self.broker.wait_all()
                # Awaiting finished tasks never yields; let their done-callbacks run.
                await asyncio.sleep(0)

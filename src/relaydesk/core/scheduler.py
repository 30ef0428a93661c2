"""Periodic jobs: enqueued on a fixed interval by `relaydesk scheduler` (scaled mode) or
by a task inside `relaydesk serve` (embedded mode). Every periodic job is an idempotent
scan of what is due, so two schedulers at once do no harm."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from relaydesk.core.jobs import Jobs

log = structlog.get_logger("relaydesk.scheduler")


@dataclass(frozen=True, slots=True)
class Periodic:
    job: str
    every_seconds: float


async def run_scheduler(jobs: Jobs, periodic: list[Periodic], *, tick: float = 0.5) -> None:
    next_run = {p.job: 0.0 for p in periodic}
    while True:
        now = time.monotonic()
        for p in periodic:
            if now >= next_run[p.job]:
                next_run[p.job] = now + p.every_seconds
                try:
                    await jobs.enqueue(p.job)
                except Exception as exc:  # broker away: try again next interval
                    log.warning("schedule_failed", job=p.job, error=str(exc))
        await asyncio.sleep(tick)

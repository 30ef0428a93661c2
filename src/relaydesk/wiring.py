"""The composition root for background work: registers every domain's jobs and event
subscriptions on one process's runtime, and starts the loops that process runs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from relaydesk.channels import tasks as channel_tasks
from relaydesk.channels.smtp import SmtpListener
from relaydesk.core.scheduler import Periodic, run_scheduler
from relaydesk.notifications import tasks as notification_tasks
from relaydesk.runtime import Runtime
from relaydesk.routing import tasks as routing_tasks
from relaydesk.routing.classifier import CategoryClassifier
from relaydesk.sla import tasks as sla_tasks
from relaydesk.tickets import tasks as ticket_tasks

INSTALLERS = (ticket_tasks.install, routing_tasks.install, sla_tasks.install, channel_tasks.install,
              notification_tasks.install)
log = structlog.get_logger("relaydesk.wiring")


def install_jobs(runtime: Runtime) -> list[Periodic]:
    """Idempotent per runtime; returns the periodic jobs for a scheduler."""
    if "periodic" not in runtime.extras:
        async def dispatch() -> None:
            await runtime.dispatcher.drain()

        async def trim_job_queue() -> None:
            removed = await runtime.jobs.trim_finished()
            if removed:
                log.info("job_queue_trimmed", removed=removed)

        runtime.jobs.register("outbox.dispatch", dispatch)
        runtime.jobs.register("jobs.trim", trim_job_queue)
        consumers = runtime.dispatcher.consumers
        runtime.jobs.register("outbox.consume", consumers.consume, attempts=1)
        runtime.jobs.register("outbox.consume_one", consumers.consume_one, on_give_up=consumers.keep_failed)

        async def retry_failed() -> None:
            await consumers.retry_failed()

        runtime.jobs.register("outbox.retry_failed", retry_failed)
        periodic = [Periodic("outbox.dispatch", max(runtime.settings.outbox_poll_seconds * 5, 5)),
                    Periodic("jobs.trim", 60), Periodic("outbox.retry_failed", 60)]
        for install in INSTALLERS:
            periodic += install(runtime)
        runtime.extras["periodic"] = periodic
    return runtime.extras["periodic"]  # type: ignore[return-value]


async def _settle_in(*, train_classifier: bool) -> None:
    if train_classifier:
        # The shipped category model is trained from its data set on first use (about a
        # second of CPU): do it now, off the event loop, not in the first ticket's job.
        await asyncio.to_thread(CategoryClassifier.shipped)
    # What is loaded by now lives as long as the process (modules, the model, settings):
    # move it out of the collector's sight. Each full collection scanned it all again and
    # stalled every request for ~90 ms.
    gc.freeze()


@asynccontextmanager
async def background(runtime: Runtime, *, dispatcher: bool = True, scheduler: bool = False,
                     smtp: bool = False, runs_jobs: bool = False) -> AsyncIterator[None]:
    """Run this process's share of the background work while the body runs."""
    periodic = install_jobs(runtime)
    job_queue_started = await runtime.jobs.start()
    await runtime.hub.start()
    listener = None
    if smtp and runtime.settings.smtp_listen_port:
        listener = SmtpListener(runtime, runtime.settings.smtp_listen_host, runtime.settings.smtp_listen_port)
        try:
            await listener.start()
        except OSError as exc:  # another process of this deployment has the port: it listens for all
            log.warning("smtp_listener_not_started", port=runtime.settings.smtp_listen_port, error=str(exc))
            listener = None
    tasks = [asyncio.create_task(_settle_in(train_classifier=runs_jobs), name="settle-in")]
    if not job_queue_started:
        tasks.append(asyncio.create_task(runtime.jobs.start_once_reachable(), name="job-queue-start"))
    if dispatcher:
        tasks.append(asyncio.create_task(runtime.dispatcher.run(), name="dispatcher"))
        runtime.dispatcher.nudge()  # deliver whatever a previous process left pending
    if scheduler:
        tasks.append(asyncio.create_task(run_scheduler(runtime.jobs, periodic), name="scheduler"))
    try:
        yield
    finally:
        if listener is not None:
            await listener.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if runs_jobs and runtime.jobs.in_process:
            await _finish_running_jobs(runtime)


async def _finish_running_jobs(runtime: Runtime) -> None:
    """In one process the jobs live in memory: a stopping server lets them finish first,
    for a while, rather than leave their work to be handed out again after the restart
    (their events stay pending until consumed, see ``Dispatcher.dispatch_pending``)."""
    try:
        await asyncio.wait_for(runtime.jobs.wait_idle(), timeout=runtime.settings.shutdown_grace_seconds)
    except TimeoutError:
        log.warning("jobs_cut_off_at_shutdown", grace_seconds=runtime.settings.shutdown_grace_seconds)

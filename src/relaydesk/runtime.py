"""The one place that reads the configuration and builds the adapters.

Everything else receives a ``Runtime``; nothing else looks at URLs or modes.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from relaydesk.config import Settings
from relaydesk.core.clock import Clock, SystemClock
from relaydesk.core.db import AsyncSession, Database
from relaydesk.core.dispatcher import Dispatcher
from relaydesk.core.jobs import Jobs, build_broker
from relaydesk.core.mail import FolderMailer, Mailer, SmtpMailer
from relaydesk.core.observability import Metrics
from relaydesk.core.ratelimit import RateLimiter
from relaydesk.core.realtime import Hub, InProcessHub, RedisHub
from relaydesk.core.storage import FileStorage, LocalFileStorage
from relaydesk.core.uow import job_transaction
from relaydesk.identity.security import PasswordHasher, TokenSigner


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    hasher: PasswordHasher
    signer: TokenSigner
    metrics: Metrics
    files: FileStorage
    jobs: Jobs
    dispatcher: Dispatcher
    hub: Hub
    mailer: Mailer
    limits: RateLimiter = field(default_factory=RateLimiter)
    extras: dict[str, object] = field(default_factory=dict)  # per-process caches (e.g. loaded models)

    @property
    def scaled(self) -> bool:
        return not self.jobs.in_process

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A job's unit of work: commit at the end (rollback on error), then push what it
        published and wake the dispatcher."""
        return job_transaction(self.db, self.dispatcher.committed)

    async def close(self) -> None:
        await self.limits.close()
        await self.hub.stop()
        await self.jobs.broker.shutdown()
        await self.db.dispose()


def build_runtime(settings: Settings | None = None, *, clock: Clock | None = None) -> Runtime:
    settings = settings or Settings()
    settings.make_data_dir()
    db = Database(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    clock = clock or SystemClock()
    metrics = Metrics()
    jobs = Jobs(build_broker(settings.redis_url, queue=settings.job_queue), observe=metrics.observe_job)
    hub: Hub = RedisHub(settings.redis_url, settings.realtime_channel) if settings.redis_url else InProcessHub()
    mailer: Mailer = (SmtpMailer(settings.smtp_host, settings.smtp_port, starttls=settings.smtp_starttls,
                                 use_tls=settings.smtp_tls, username=settings.smtp_username,
                                 password=settings.smtp_password)
                      if settings.smtp_host else FolderMailer(settings.data_dir / "mail-outbox"))
    return Runtime(
        settings=settings,
        db=db,
        clock=clock,
        hasher=PasswordHasher(settings.password_hash_time_cost, settings.password_hash_memory_kib),
        signer=TokenSigner(settings.resolved_secret_key(), timedelta(seconds=settings.access_token_ttl_seconds)),
        metrics=metrics,
        files=LocalFileStorage(settings.resolved_upload_dir),
        jobs=jobs,
        dispatcher=Dispatcher(db, jobs, clock, hub, poll_seconds=settings.outbox_poll_seconds,
                              jobs_ahead=settings.jobs_ahead, lease_seconds=settings.event_lease_seconds,
                              on_committed=metrics.count_events),
        hub=hub,
        mailer=mailer,
        limits=RateLimiter(settings.redis_url, f"{settings.job_queue}:limits"),
    )

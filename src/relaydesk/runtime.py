"""The one place that reads the configuration and builds the adapters.

Everything else receives a ``Runtime``; nothing else looks at URLs or modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from relaydesk.config import Settings
from relaydesk.core.clock import Clock, SystemClock
from relaydesk.core.db import Database
from relaydesk.core.observability import Metrics
from relaydesk.core.storage import FileStorage, LocalFileStorage
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

    async def close(self) -> None:
        await self.db.dispose()


def build_runtime(settings: Settings | None = None, *, clock: Clock | None = None) -> Runtime:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(
        settings=settings,
        db=Database(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms),
        clock=clock or SystemClock(),
        hasher=PasswordHasher(settings.password_hash_time_cost, settings.password_hash_memory_kib),
        signer=TokenSigner(settings.resolved_secret_key(), timedelta(seconds=settings.access_token_ttl_seconds)),
        metrics=Metrics(),
        files=LocalFileStorage(settings.resolved_upload_dir),
    )

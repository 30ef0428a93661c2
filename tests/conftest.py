"""Test harness: every database test runs on SQLite and on PostgreSQL.

Each pytest run makes its own SQLite file and its own PostgreSQL database (dropped at
the end), migrates it once, and every test then works in workspaces of its own, so
tests never see each other's data.  Where PostgreSQL is unreachable its tests are
skipped with a one-line reason, unless RELAYDESK_REQUIRE_SERVICES=1 (as in CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import structlog
from sqlalchemy import event

from mailpeers import ImapServer, SmtpSink
from relaydesk.app import create_app
from relaydesk.config import Settings
from relaydesk.core.clock import FrozenClock
from relaydesk.migrate import upgrade
from relaydesk.runtime import Runtime, build_runtime
from relaydesk.wiring import install_jobs

from relaydesk.core.observability import configure_logging

# JSON lines, warnings and up: what an operator would see, and cheap to produce.
configure_logging("WARNING", json=True)


class _CurrentStderr:
    """Whatever sys.stderr is at the time of writing, so that a test's ``capsys`` reads the
    log lines its requests wrote (the logger otherwise keeps the stream of start-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()))

REQUIRE_SERVICES = os.environ.get("RELAYDESK_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("RELAYDESK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def service_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (RELAYDESK_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@contextmanager
def statements_run(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL the runtime's writers send while the block runs, in order: for tests that
    show how often something is read or locked."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    engine = runtime.db.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """One private Dovecot for the whole run; each test makes mailboxes of its own
    (`user, password = imap_server.make_user()`)."""
    reason = ImapServer.unavailable_reason()
    if reason is not None:
        service_unavailable(reason)
    with ImapServer() as server:
        yield server


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A fresh SMTP server collecting what is sent to it, for outbound mail."""
    with SmtpSink() as sink:
        yield sink


REDIS_URL = os.environ.get("RELAYDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_url() -> str:
    """The test Redis's URL, once it answers (else the test is skipped, with the reason)."""
    import redis.asyncio as aioredis

    try:
        async with aioredis.from_url(REDIS_URL) as r:
            await r.ping()
    except (OSError, aioredis.RedisError) as exc:
        service_unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    return REDIS_URL


def test_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    return Settings(
        env="test", data_dir=data_dir, database_url=database_url, secret_key="test-" + secrets.token_hex(16),
        password_hash_time_cost=1, password_hash_memory_kib=1024, log_json=False,
        # The test suite's mail and SMS peers run on loopback.
        **{"allow_private_targets": True, **overrides},
    )


async def _create_pg_database() -> str:
    name = f"relaydesk_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        service_unavailable(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


async def _drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    data_dir = tmp_path_factory.mktemp(request.param)
    pg_url = await _create_pg_database() if request.param == "postgres" else None
    rt = build_runtime(test_settings(data_dir, pg_url), clock=FrozenClock(tick=timedelta(milliseconds=1)))
    install_jobs(rt)
    try:
        await upgrade(rt.db)
        yield rt
    finally:
        await rt.close()
        if pg_url:
            await _drop_pg_database(pg_url)


@pytest.fixture(scope="session")
def app(runtime: Runtime):  # noqa: ANN201
    return create_app(runtime)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://relaydesk.test") as c:
        yield c


@pytest.fixture
def clock(runtime: Runtime) -> FrozenClock:
    assert isinstance(runtime.clock, FrozenClock)
    return runtime.clock


@pytest.fixture
def backend(runtime: Runtime) -> str:
    return "sqlite" if runtime.db.is_sqlite else "postgres"


async def settle_runtime(runtime: Runtime) -> None:
    """Deliver every pending event and wait for the jobs (and the jobs they cause)."""
    for _ in range(100):
        delivered = await runtime.dispatcher.dispatch_pending()
        await runtime.jobs.wait_idle()
        if delivered == 0:
            return
    raise AssertionError("events keep coming: a handler loop?")


@pytest.fixture
def settle(runtime: Runtime):  # noqa: ANN201
    return lambda: settle_runtime(runtime)


@pytest.fixture(autouse=True)
async def quiet_background(request: pytest.FixtureRequest) -> None:
    """Tests share one database per backend. Before each test that uses it, retire the
    background work earlier tests left behind (undelivered events, due SLA checks,
    queued routing, pending auto-closes, deliveries still to retry), so a test's jobs do
    only its own work. Their IMAP mailboxes are switched off: a poll round polls only
    the test's own."""
    if "runtime" not in request.fixturenames:
        return
    runtime: Runtime = request.getfixturevalue("runtime")
    from sqlalchemy import delete, update

    from relaydesk.channels.models import Mailbox
    from relaydesk.core.outbox import FailedConsumption, OutboxEvent
    from relaydesk.notifications.models import Delivery
    from relaydesk.routing.models import TicketRouting
    from relaydesk.sla.models import SlaTracker
    from relaydesk.tickets.models import Ticket

    await runtime.jobs.wait_idle()
    async with runtime.db.write_session() as session:
        now = runtime.clock.now()
        await session.execute(update(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))
                              .values(dispatched_at=now))
        await session.execute(update(SlaTracker).where(SlaTracker.next_check_at.is_not(None))
                              .values(next_check_at=None))
        await session.execute(update(TicketRouting).where(TicketRouting.state == "queued").values(state="manual"))
        await session.execute(update(Ticket).where(Ticket.auto_close_at.is_not(None)).values(auto_close_at=None))
        await session.execute(update(Delivery).where(Delivery.next_attempt_at.is_not(None))
                              .values(next_attempt_at=None))
        await session.execute(delete(FailedConsumption))
        await session.execute(update(Mailbox).where(Mailbox.active.is_(True), Mailbox.imap_host.is_not(None))
                              .values(active=False))
        await session.commit()

"""SQLite statements run on the event loop's thread; a write lock held by another
process is waited for without holding the loop, and only up to the busy timeout, after
which a request is answered 503 with Retry-After."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from relaydesk.app import create_app
from relaydesk.core.db import Database
from relaydesk.migrate import upgrade
from relaydesk.runtime import build_runtime


@asynccontextmanager
async def locked_by_another_process(tmp_path: Path, busy_timeout_ms: int) -> AsyncIterator[
        tuple[Database, sqlite3.Connection]]:
    """A database with a ``notes`` table, and a second connection (standing in for
    another process) that holds its write lock until the test commits it."""
    path = tmp_path / "x.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE notes (body TEXT)")
    raw.commit()
    raw.close()
    db = Database(f"sqlite:///{path}", busy_timeout_ms=busy_timeout_ms)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield db, other
    finally:
        other.close()
        await db.dispose()


async def notes(db: Database) -> list[str]:
    async with db.read_session() as session:
        return list((await session.execute(text("SELECT body FROM notes"))).scalars())


async def write(db: Database, body: str) -> None:
    async with db.write_session() as session:
        await session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})
        await session.commit()


async def test_a_write_waits_for_another_process_without_holding_the_loop(tmp_path: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async with locked_by_another_process(tmp_path, busy_timeout_ms=5_000) as (db, other):
        ticking = asyncio.create_task(ticker())
        writing = asyncio.create_task(write(db, "mine"))
        await asyncio.sleep(0.3)
        assert not writing.done()  # still waiting for the lock...
        assert ticks >= 10  # ...while the loop kept running everything else
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        ticking.cancel()
        assert await notes(db) == ["mine"]


async def test_a_write_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    async with locked_by_another_process(tmp_path, busy_timeout_ms=200) as (db, other):
        with pytest.raises(OperationalError, match="locked"):
            await asyncio.wait_for(write(db, "mine"), 5)
        other.execute("COMMIT")
        await write(db, "later")  # the writer connection is still usable afterwards
        assert await notes(db) == ["later"]


async def test_a_request_that_cannot_get_the_lock_is_told_to_try_again(tmp_path: Path) -> None:
    from conftest import test_settings

    runtime = build_runtime(test_settings(tmp_path, sqlite_busy_timeout_ms=200))
    await upgrade(runtime.db)
    signup = {"name": "Busy Co", "admin_name": "Ada", "admin_email": "ada@busy.example.com",
              "admin_password": "correct horse battery staple"}
    other = sqlite3.connect(runtime.settings.data_dir / "relaydesk.db", isolation_level=None)
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://relaydesk.test") as client:
            other.execute("BEGIN IMMEDIATE")  # another process is writing, longer than the timeout
            busy = await client.post("/api/v1/workspaces", json=signup)
            assert busy.status_code == 503
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.headers["retry-after"] == "1" and busy.json()["code"] == "database_busy"
            other.execute("COMMIT")
            # Nothing was half-written: the same sign-up now goes through.
            assert (await client.post("/api/v1/workspaces", json=signup)).status_code == 201
    finally:
        other.close()
        await runtime.close()


def test_ids_made_in_one_millisecond_keep_the_order_they_were_made_in(monkeypatch) -> None:
    """Rows sort by (time, id): a ticket's first message and the note made right after
    it, in the same millisecond, must not swap places in the thread."""
    import time

    from relaydesk.core import db
    from relaydesk.core.db import new_id

    monkeypatch.setattr(db, "_last_id", (0, 0))
    monkeypatch.setattr(time, "time_ns", lambda: 1_796_000_000_000_000_000)
    ids = [new_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert {i.version for i in ids} == {7} and {i.int >> 80 for i in ids} == {1_796_000_000_000}

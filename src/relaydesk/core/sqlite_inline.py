"""SQLite for SQLAlchemy's async engine, run on the event loop's own thread.

aiosqlite runs every statement on a helper thread and wakes the loop when it is done:
on this project's hardware that hand-off cost 120-290 µs per statement, against a few
µs for the indexed statements the app actually runs, and a ticket with its background
work runs ~100 of them.  This connection exposes the small part of aiosqlite's
interface that SQLAlchemy's ``sqlite+aiosqlite`` dialect uses, but executes inline, so
``await`` returns at once and the only cost is the statement itself.

What that trades away: a statement now holds the loop while it runs.  The app's
statements are index lookups and small writes, so that is microseconds; the one wait
that could be long, another *process* holding the write lock, is not allowed to block:
connections get ``busy_timeout=0`` and ``InlineConnection.begin`` retries ``BEGIN``
with ``asyncio.sleep`` until the configured timeout instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class _InlineCursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _InlineCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> _InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    def __aiter__(self) -> _InlineCursor:
        return self

    async def __anext__(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect feeds
    directly to change ``isolation_level``: the function runs at once."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed back to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class InlineConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def _connection(self) -> sqlite3.Connection | None:  # SQLAlchemy checks this before commit/rollback
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live.isolation_level

    @property
    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    def cursor(self) -> _InlineCursor:
        return _InlineCursor(self._live.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._live.commit()

    async def rollback(self) -> None:
        self._live.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:  # SQLAlchemy's forced close; the same thing here
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def begin(self, statement: str, timeout_seconds: float, wait: Callable[[float], None]) -> None:
        """Run ``BEGIN ...``; while another process holds the write lock, ``wait``
        (which yields to the event loop) and try again until ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        delay = 0.001
        while True:
            try:
                self._live.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= deadline:
                    raise
            wait(delay)
            delay = min(delay * 2, 0.05)


def connector(database: str, *, uri: bool = False) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``."""

    async def connect() -> InlineConnection:
        # The pool may hand a connection to another thread only to close it.
        return InlineConnection(sqlite3.connect(database, uri=uri, check_same_thread=False,
                                                isolation_level=None))

    return connect

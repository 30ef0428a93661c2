"""SQLite for SQLAlchemy's async engine, run on the event loop's own thread.

aiosqlite runs every statement on a helper thread and wakes the loop when it is done:
on this project's hardware that hand-off cost 120-290 µs per statement, against a few
µs for the indexed statements the app actually runs.  An aiosqlite look-alike that ran
inline still paid SQLAlchemy's async adaptation: a greenlet switch out to the loop and
back for each driver call, three or four per statement (~50 µs in all here).  So this
is SQLAlchemy's plain ``pysqlite`` dialect declared async, with a driver that never
awaits: the async engine runs its sync code in a greenlet as usual, and the statements
inside never leave it.

What that trades away: a statement holds the loop while it runs.  The app's statements
are index lookups and small writes, so that is microseconds; the one wait that could be
long, another *process* holding the write lock, is not allowed to block: connections
get ``busy_timeout=0`` and ``begin`` retries ``BEGIN`` with ``asyncio.sleep`` until the
configured timeout instead.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

DRIVER = "relaydesk_inline"


class _Cursor:
    """A sqlite3 cursor whose rows are read as soon as it runs, as SQLAlchemy's async
    adapters do: a result then outlives its statement, and the async layer's "soft
    close" after each execute has nothing left to wait for."""

    __slots__ = ("_cursor", "_rows", "description", "rowcount", "lastrowid", "arraysize")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        cursor = self._cursor
        cursor.execute(sql, () if parameters is None else parameters)
        self._took(cursor)
        return self

    def executemany(self, sql: str, parameters: Any) -> _Cursor:
        cursor = self._cursor
        cursor.executemany(sql, parameters)
        self._took(cursor)
        return self

    def _took(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        if cursor.description:
            self._rows = deque(cursor.fetchall())
        self.rowcount = cursor.rowcount  # after the fetch: RETURNING counts rows as they are read
        self.lastrowid = cursor.lastrowid

    async def _async_soft_close(self) -> None:
        self._cursor.close()

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(self.arraysize if size is None else size, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows


class _Connection:
    """The part of a sqlite3 connection SQLAlchemy's pysqlite dialect uses, handing out
    ``_Cursor``s."""

    __slots__ = ("_conn",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, parameters)

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    driver = DRIVER
    supports_statement_cache = True
    # Declared so the async engine accepts it and picks an asyncio-aware pool: a writer
    # waiting for the single write connection must yield to the loop, not block it.
    is_async = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")


class _InlineAsyncConnection(AsyncConnection):
    """``AsyncConnection.execute`` insists that the driver awaited something, as a guard
    against sync drivers blocking the loop; this driver never does, on purpose."""

    async def execute(self, statement: Any, parameters: Any = None, *,  # type: ignore[override]
                      execution_options: Any = None) -> Any:
        return await greenlet_spawn(self._proxied.execute, statement, parameters,
                                    execution_options=execution_options)

    async def exec_driver_sql(self, statement: str, parameters: Any = None, *,  # type: ignore[override]
                              execution_options: Any = None) -> Any:
        return await greenlet_spawn(self._proxied.exec_driver_sql, statement, parameters,
                                    execution_options=execution_options)


class _InlineAsyncEngine(AsyncEngine):
    _connection_cls = _InlineAsyncConnection


def create_engine(url: URL, *, uri: bool = False, **options: Any) -> AsyncEngine:
    """An async engine for the SQLite file (or ``:memory:``) that ``url`` names."""
    database = url.database or ":memory:"

    def connect() -> _Connection:
        # The pool may hand a connection to another thread only to close it.  Transaction
        # control is taken from the driver: ``begin`` chooses BEGIN or BEGIN IMMEDIATE.
        return _Connection(sqlite3.connect(database, uri=uri, check_same_thread=False, isolation_level=None))

    engine = create_async_engine(url.set(drivername=f"sqlite+{DRIVER}"), creator=connect, **options)
    return _InlineAsyncEngine(engine.sync_engine)


def begin(connection: _Connection, statement: str, timeout_seconds: float,
          wait: Callable[[float], None]) -> None:
    """Run ``BEGIN ...``; while another process holds the write lock, ``wait`` (which
    yields to the event loop) and try again until ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.001
    while True:
        try:
            connection.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= deadline:
                raise
        wait(delay)
        delay = min(delay * 2, 0.05)

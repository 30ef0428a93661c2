"""Database plumbing: declarative base, column types, and the engines.

SQLite is run as a production database: WAL, foreign keys on, and a single writer
connection per process that opens its transactions with ``BEGIN IMMEDIATE``.  Writers
therefore queue in the pool instead of failing with "database is locked", while readers
use their own pool and never wait on a writer.  Statements run on the event loop's
thread (``core.sqlite_inline``); a write lock held by another process is waited for
with ``asyncio.sleep``, up to ``busy_timeout_ms``.  PostgreSQL uses one pool for both.
"""

from __future__ import annotations

import asyncio
import hashlib
import errno
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    ForeignKey,
    MetaData,
    Uuid,
    bindparam,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    declared_attr,
    mapped_column,
)
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_

from relaydesk.core import sqlite_inline

_T = TypeVar("_T")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Always-aware UTC datetimes, stored naive on SQLite (which has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_last_id = (0, 0)  # (milliseconds, the 74 random bits) of this process's latest id


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout) so new rows land at the end of indexes.
    Within one process each is above the one before, even in the same millisecond (the
    random bits then count up, RFC 9562's "monotonic random"): a thread sorted by (time,
    id) shows a ticket's first message before the note made right after it."""
    global _last_id
    ms, rand = time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big") >> 6
    last_ms, last_rand = _last_id
    if ms <= last_ms:  # the same millisecond, or the clock stepped back
        ms, rand = last_ms, last_rand + 1
        if rand >> 74:
            ms, rand = ms + 1, 0
    _last_id = (ms, rand)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0x2 << 62 | rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class WorkspaceScoped:
    """Every tenant-owned row names its workspace; repositories filter on it first."""

    @declared_attr
    def workspace_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class SoftDelete:
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


_HELD = "held_rows"
_HOLD_AT_MOST = 2_000


@event.listens_for(Session, "loaded_as_persistent")
def _hold(session: Session, instance: object) -> None:
    """Keep what a transaction loads alive until the session ends: the ORM's identity
    map holds rows only weakly, so without this a row read in one step is gone by the
    next and ``already_loaded`` could not find it. Bounded, for the rare bulk reader."""
    held: list[object] = session.info.setdefault(_HELD, [])
    if len(held) < _HOLD_AT_MOST:
        held.append(instance)


_LOCKED = "locked_rows"


def note_locked(session: AsyncSession | Session, model: type, pk: Any) -> None:
    """Remember that this transaction holds the row's lock (it read it FOR UPDATE or
    inserted it), so a later ``already_loaded(..., for_update=True)`` needs no SQL."""
    session.info.setdefault(_LOCKED, set()).add(identity_key(model, pk))


def first_to_lock(session: AsyncSession | Session, key: Hashable) -> bool:
    """True the first time this transaction asks for ``key``, then False until it ends:
    for a lock held until commit (a PostgreSQL advisory lock) that a batch would
    otherwise take again for every event."""
    held = session.info.setdefault(_LOCKED, set())
    if key in held:
        return False
    held.add(key)
    return True


async def hold_until_commit(session: AsyncSession, name: str) -> None:
    """A PostgreSQL lock on ``name`` that this transaction holds until it ends (an advisory
    lock, taken once however often it is asked for); nothing on SQLite, whose write
    transaction already holds the only write lock."""
    if session.bind.dialect.name != "postgresql" or not first_to_lock(session, ("advisory", name)):
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@event.listens_for(Session, "pending_to_persistent")
def _inserted(session: Session, instance: object) -> None:
    # A row this transaction inserted is invisible to others until the commit: it is ours.
    session.info.setdefault(_LOCKED, set()).add(inspect(instance).key)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _locks_released(session: Session) -> None:
    session.info.pop(_LOCKED, None)


def already_loaded(session: AsyncSession, model: type[_T], pk: Any, *, for_update: bool = False) -> _T | None:
    """The row if this transaction has loaded it already (no SQL), else None.

    Background work looks at the same ticket, customer or tracker from several places in
    one transaction; the ORM keeps one object per row and every change made through it,
    so a second SELECT would only return that object again. A read that must take a row
    lock asks PostgreSQL unless this transaction holds that lock already (``note_locked``;
    on SQLite the transaction holds the only write lock anyway)."""
    if for_update and session.get_bind().dialect.name != "sqlite" and \
            identity_key(model, pk) not in session.info.get(_LOCKED, ()):
        return None
    obj = session.identity_map.get(identity_key(model, pk))
    if obj is None:
        return None
    state = inspect(obj)
    return None if state.expired_attributes or state.deleted or state.was_deleted else obj


async def get_many_in_workspace(session: AsyncSession, model: type[_T], workspace_id: uuid.UUID,
                                ids: set[uuid.UUID]) -> dict[uuid.UUID, _T]:
    """Rows of one workspace by their primary key (an id, or a profile's user id): those
    this transaction holds already without SQL, the rest in one query. Ids of other
    workspaces are left out."""
    key = inspect(model).primary_key[0]
    found: dict[uuid.UUID, _T] = {}
    for row_id in ids:
        known = already_loaded(session, model, row_id)
        if known is not None and known.workspace_id == workspace_id:  # type: ignore[attr-defined]
            found[row_id] = known
    missing = ids - found.keys()
    if missing:
        stmt = _BY_IDS.get(model)
        if stmt is None:  # built once per model (docs/architecture.md, "Statements built once")
            stmt = _BY_IDS[model] = select(model).where(
                model.workspace_id == bindparam("workspace_id"),  # type: ignore[attr-defined]
                key.in_(bindparam("ids", expanding=True)))
        rows = await session.scalars(stmt, {"workspace_id": workspace_id, "ids": list(missing)})
        found.update((getattr(row, key.key), row) for row in rows)
    return found


_BY_IDS: dict[type, Any] = {}


async def read_once(session: AsyncSession, key: tuple[Any, ...], load: Callable[[], Awaitable[_T]]) -> _T:
    """``load()`` the first time this transaction asks for ``key``, the same answer after.

    For read-mostly configuration that background work consults per event (webhook
    endpoints, assignment rules, categories, templates): a batch of events shares one
    transaction, so it reads them once. Use it only where the transaction itself does
    not change what it reads."""
    cache: dict[tuple[Any, ...], Any] = session.info.setdefault("read_once", {})
    if key not in cache:
        cache[key] = await load()
    return cache[key]


def read_ahead(session: AsyncSession, key: tuple[Any, ...], value: Any) -> None:
    """What ``read_once`` will answer for ``key``: for a batch's reads made in one query."""
    session.info.setdefault("read_once", {})[key] = value


def forget_read(session: AsyncSession, key: tuple[Any, ...]) -> None:
    """For the rare transaction that changes what ``read_once`` gave it: ask again next time."""
    session.info.get("read_once", {}).pop(key, None)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (event payloads, SLA clocks, routing decisions, settings) through orjson: a
# ticket reads and writes a few dozen of them, and the standard library took ~3x as long.
_JSON: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


# A host that is down or cut off: what asyncpg's connect raises as a plain OSError.
_NO_WAY_THERE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EHOSTDOWN})


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached, the connection to it was lost, or none was free
    in time: a matter of the service, not of the statement that was running."""
    if isinstance(exc, (ConnectionError, socket.gaierror, PoolTimeout, TimeoutError)):  # the connect, or the pool
        return True
    if isinstance(exc, OSError) and exc.errno in _NO_WAY_THERE:  # not every OSError: a full disk stays a 500
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return (exc.connection_invalidated or isinstance(exc, InterfaceError)
            or isinstance(exc.orig, (OSError, asyncio.TimeoutError))
            or "unable to open database file" in str(exc.orig))


class Database:
    """The engines and session factories for one database URL."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _create_private(sqlite_file(self.url))
            uri = bool(self.url.query.get("uri"))
            self.read_engine = sqlite_inline.create_engine(self.url, uri=uri, echo=echo, pool_size=8, max_overflow=8,
                                                           **_JSON)
            self.write_engine = sqlite_inline.create_engine(self.url, uri=uri, echo=echo, pool_size=1, max_overflow=0,
                                                            pool_timeout=120, **_JSON)
            _tune_sqlite(self.read_engine, busy_timeout_ms, begin="BEGIN")
            _tune_sqlite(self.write_engine, busy_timeout_ms, begin="BEGIN IMMEDIATE")
        else:
            engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True, **_JSON)
            self.read_engine = self.write_engine = engine
        self.read_session = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)
        self.write_session = async_sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names; None for another database, an in-memory one or a URI."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite" or url.query.get("uri") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _create_private(path: Path | None) -> None:
    """Make a new SQLite file readable and writable by its owner only, before SQLite makes
    it with the umask's 0644: it holds every workspace's data. SQLite gives the -wal and
    -shm files the database file's mode. An existing file is left as it is."""
    if path is None:
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:  # it exists, or its directory does not: connecting will say what is wrong
        pass


def like_pattern(text: str) -> str:
    """``text`` anywhere, its own % and _ taken literally (escaped with a backslash)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def on_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def contains_text(column: Any, text: str, *, sqlite: bool) -> ColumnElement[bool]:
    """``text`` anywhere in ``column``, whatever the case. SQLite's LIKE folds only A-Z, so
    there a search with other letters ("Đơn hàng") compares both sides casefolded by
    ``rd_casefold``, a Python function called per row: only such searches pay for it."""
    if sqlite and not text.isascii():
        return func.rd_casefold(column).like(like_pattern(text.casefold()), escape="\\")
    return column.ilike(like_pattern(text), escape="\\")


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Never wait inside SQLite: that would hold the event loop (see _on_begin).
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        dbapi_connection.create_function("rd_casefold", 1, _casefold, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        try:
            sqlite_inline.begin(conn.connection.driver_connection, begin, busy_timeout_ms / 1000,
                                lambda seconds: await_(asyncio.sleep(seconds)))
        except sqlite3.OperationalError as exc:  # the same error type as a failing statement
            raise OperationalError(begin, None, exc) from exc


__all__ = [
    "AsyncSession",
    "Base",
    "Database",
    "IdMixin",
    "SoftDelete",
    "Timestamps",
    "UTCDateTime",
    "WorkspaceScoped",
    "already_loaded",
    "first_to_lock",
    "get_many_in_workspace",
    "new_id",
    "note_locked",
    "read_once",
]

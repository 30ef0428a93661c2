"""Units of work: a request's session, committed when the route returns, and a
background job's (``job_transaction``).

Services only ``add``/``flush``; these boundaries commit, or roll everything back when
the work raised.  Safe methods get a read session, everything else the writer.  After a
commit the dispatcher's ``committed`` pushes the events it published; work that must
wait for the commit (enqueueing a job) is registered with ``after_commit``.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import Database
from relaydesk.core.errors import AppError

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, key: str, action: Callable[[], Awaitable[Any]]) -> None:
    """Run ``action`` once the session's transaction has committed (never if it rolls
    back). Actions are kept by ``key``: a batch that asks five times runs it once."""
    session.info.setdefault(_AFTER_COMMIT, {})[key] = action


async def run_after_commit(session: AsyncSession) -> None:
    for action in session.info.pop(_AFTER_COMMIT, {}).values():
        await action()


@asynccontextmanager
async def job_transaction(db: Database, committed: Callable[[AsyncSession], Awaitable[None]]
                          ) -> AsyncIterator[AsyncSession]:
    """A background job's unit of work: commit at the end (rollback on error), then
    ``committed(session)``."""
    async with db.write_session() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await committed(session)


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A part of a transaction that may fail on its own (one email of a batch): on an
    error its writes are rolled back to here, and ``session.info`` is put back as it was.
    The audit's and outbox's rollback hooks run for a savepoint too and clear what the
    parts before this one queued (the events to push live once committed), while what
    the failed part noted (after-commit actions, locks) must go."""
    kept = {key: copy.copy(value) for key, value in session.info.items()}
    try:
        async with session.begin_nested():
            yield
    except BaseException:
        session.info.clear()
        session.info.update(kept)
        raise


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    db: Database = request.app.state.db
    factory = db.read_session if request.method in _READ_METHODS else db.write_session
    async with factory() as session:
        try:
            yield session
            await session.commit()
            await request.app.state.runtime.dispatcher.committed(session)
        except AppError as exc:
            if exc.keep_changes:
                await session.commit()
                await request.app.state.runtime.dispatcher.committed(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is the
# caller's error response rather than a silent loss after a 2xx.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]

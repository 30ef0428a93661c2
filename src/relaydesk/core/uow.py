"""The request's unit of work: one session, committed when the route returns.

Services only ``add``/``flush``; this boundary commits, or rolls everything back when
the route raised.  Safe methods get a read session, everything else the writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import Database
from relaydesk.core.errors import AppError

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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

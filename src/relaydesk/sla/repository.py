"""The monitor's tracker queries, in SQLAlchemy Core.

A monitor pass reads and rewrites hundreds of trackers; as ORM objects their loading and
change tracking cost more than the clock arithmetic itself, so the pass works on plain
rows (``DueTracker``) and writes them back in one statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.sla.models import SlaTracker

_T = SlaTracker.__table__
# What a pass may change on a tracker: the same names as SlaTracker's attributes.
_WRITTEN = ("clocks", "state", "breached", "breach_count", "escalation_level", "next_escalation_at",
            "escalation_timer_held", "next_check_at", "updated_at")


@dataclass(slots=True, eq=False)
class DueTracker:
    """A tracker as the monitor holds it for one pass; attribute for attribute what
    ``SlaService`` reads and sets on an ``SlaTracker``."""

    ticket_id: uuid.UUID
    workspace_id: uuid.UUID
    policy_id: uuid.UUID | None
    clocks: dict[str, Any]
    state: str
    breached: bool
    breach_count: int
    escalation_level: int
    next_escalation_at: datetime | None
    escalation_timer_held: bool
    next_check_at: datetime | None
    updated_at: datetime


_DUE = select(*(_T.c[name] for name in ("ticket_id", "workspace_id", "policy_id", *_WRITTEN)))  # DueTracker's order
_KEY = ("workspace_id", "ticket_id")
# SQLite: an executemany, which runs in-process.
_SAVE = (update(_T).where(_T.c.workspace_id == bindparam("tracker_workspace_id"),
                          _T.c.ticket_id == bindparam("tracker_ticket_id"))
         .values({name: bindparam(name) for name in _WRITTEN}))
# PostgreSQL: one UPDATE ... FROM unnest(arrays), one execution on the server instead of one
# per row (asyncpg's executemany): 2.4 instead of 3.2 ms for 100 trackers.
_ROWS = select(*(func.unnest(bindparam(f"rows_{name}", type_=ARRAY(_T.c[name].type))).label(name)
                 for name in (*_KEY, *_WRITTEN))).subquery("rows")
_SAVE_PG = (update(_T).where(*(_T.c[name] == _ROWS.c[name] for name in _KEY))
            .values({name: _ROWS.c[name] for name in _WRITTEN}))


class TrackerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_due(self, now: datetime, limit: int) -> list[DueTracker]:
        """The trackers whose next check has come, earliest first, through the
        ``next_check_at`` index; locked for this transaction, skipping rows another
        scanner holds."""
        rows = await self.session.execute(_DUE.where(_T.c.next_check_at <= now).order_by(_T.c.next_check_at)
                                          .limit(limit).with_for_update(skip_locked=True))
        return [DueTracker(*row) for row in rows]

    async def save(self, trackers: list[DueTracker]) -> None:
        """Write the pass's trackers back: one statement for all of them."""
        if not trackers:
            return
        if self.session.bind.dialect.name == "postgresql":
            await self.session.execute(_SAVE_PG, {f"rows_{name}": [getattr(t, name) for t in trackers]
                                                  for name in (*_KEY, *_WRITTEN)})
            return
        await self.session.execute(_SAVE, [
            {"tracker_workspace_id": t.workspace_id, "tracker_ticket_id": t.ticket_id,
             **{name: getattr(t, name) for name in _WRITTEN}} for t in trackers])

"""In-app notifications: who hears about what, recorded per recipient.

The channels that deliver them further (email, WebSocket push) hang off these rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import NotFound
from relaydesk.core.principal import Principal
from relaydesk.notifications.models import Notification


class NotificationService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def notify(self, workspace_id: uuid.UUID, user_ids: set[uuid.UUID | None], *, kind: str, title: str,
               now: datetime, body: str = "", ticket_id: uuid.UUID | None = None,
               event_id: int | None = None) -> int:
        recipients = {u for u in user_ids if u is not None}
        self.session.add_all(Notification(
            workspace_id=workspace_id, user_id=u, kind=kind, title=title[:300], body=body, ticket_id=ticket_id,
            event_id=event_id, created_at=now) for u in sorted(recipients))
        return len(recipients)

    def _mine(self, principal: Principal):  # noqa: ANN202 - a select
        return select(Notification).where(Notification.workspace_id == principal.workspace_id,
                                          Notification.user_id == principal.user_id)

    async def list(self, principal: Principal, *, unread_only: bool, after: tuple[datetime, uuid.UUID] | None,
                   limit: int) -> list[Notification]:
        stmt = self._mine(principal)
        if unread_only:
            stmt = stmt.where(Notification.read_at.is_(None))
        if after is not None:
            stmt = stmt.where(or_(Notification.created_at < after[0],
                                  and_(Notification.created_at == after[0], Notification.id < after[1])))
        return list(await self.session.scalars(
            stmt.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)))

    async def unread_count(self, principal: Principal) -> int:
        return await self.session.scalar(select(func.count()).select_from(
            self._mine(principal).where(Notification.read_at.is_(None)).subquery())) or 0

    async def mark_read(self, principal: Principal, notification_id: uuid.UUID, now: datetime) -> Notification:
        row = await self.session.scalar(self._mine(principal).where(Notification.id == notification_id))
        if row is None:
            raise NotFound("No such notification.")
        row.read_at = row.read_at or now
        return row

    async def mark_all_read(self, principal: Principal, now: datetime) -> None:
        await self.session.execute(update(Notification).where(
            Notification.workspace_id == principal.workspace_id, Notification.user_id == principal.user_id,
            Notification.read_at.is_(None)).values(read_at=now))

"""In-app notifications: who hears about what, recorded per recipient.

The channels that deliver them further (email, WebSocket push) hang off these rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import hold_until_commit, new_id
from relaydesk.core.errors import NotFound, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal
from relaydesk.notifications import templates
from relaydesk.notifications.models import Notification, NotificationTemplate
from relaydesk.tenancy.service import WorkspaceService


class NotificationService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def notify_one(self, workspace_id: uuid.UUID, user_id: uuid.UUID, *, kind: str, title: str, now: datetime,
                   body: str = "", ticket_id: uuid.UUID | None = None, event_id: int | None = None) -> Notification:
        row = Notification(id=new_id(), workspace_id=workspace_id, user_id=user_id, kind=kind, title=title[:300],
                           body=body, ticket_id=ticket_id, event_id=event_id, created_at=now)
        self.session.add(row)
        return row

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

    async def _one(self, principal: Principal, notification_id: uuid.UUID) -> Notification:
        row = await self.session.scalar(self._mine(principal).where(Notification.id == notification_id))
        if row is None:
            raise NotFound("No such notification.")
        return row

    async def mark_read(self, principal: Principal, notification_id: uuid.UUID, now: datetime) -> Notification:
        row = await self._one(principal, notification_id)
        if row.read_at is None:
            row.read_at = now
            await self._count_changed(principal, "notification.read", now, notification_id=row.id)
        return row

    async def mark_unread(self, principal: Principal, notification_id: uuid.UUID, now: datetime) -> Notification:
        """Back among the unread, to come back to later."""
        row = await self._one(principal, notification_id)
        if row.read_at is not None:
            row.read_at = None
            await self._count_changed(principal, "notification.unread", now, notification_id=row.id)
        return row

    async def mark_all_read(self, principal: Principal, now: datetime) -> None:
        result = await self.session.execute(update(Notification).where(
            Notification.workspace_id == principal.workspace_id, Notification.user_id == principal.user_id,
            Notification.read_at.is_(None)).values(read_at=now))
        if result.rowcount:
            await self._count_changed(principal, "notification.read", now, notification_id=None)

    async def _count_changed(self, principal: Principal, event_type: str, now: datetime, *,
                             notification_id: uuid.UUID | None) -> None:
        """Tells the person's sockets (their other tabs and devices) the new unread count,
        so every badge shows it, not only the one in the tab that made the change.
        ``notification_id`` None: every notification of theirs. One person's changes take
        turns (on PostgreSQL; SQLite's writer does that already): two tabs at once would each
        count without the other's change, and the badge would keep the higher count."""
        await hold_until_commit(self.session, f"unread:{principal.workspace_id}:{principal.user_id}")
        await self.session.flush()
        Outbox(self.session).publish(principal.workspace_id, event_type, now, user_id=principal.user_id,
                                     notification_id=notification_id,
                                     unread_count=await self.unread_count(principal))


class TemplateService:
    """A workspace's own email wording, checked before it is saved."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _check(kind: str, locale: str) -> None:
        if kind not in templates.KINDS:
            raise NotFound("No such notification kind.")
        if locale not in templates.LOCALES:
            raise NotFound(f"No such language; templates exist for {', '.join(templates.LOCALES)}.")

    async def _row(self, workspace_id: uuid.UUID, kind: str, locale: str) -> NotificationTemplate | None:
        return await self.session.scalar(select(NotificationTemplate).where(
            NotificationTemplate.workspace_id == workspace_id, NotificationTemplate.kind == kind,
            NotificationTemplate.locale == locale))

    async def get(self, principal: Principal, kind: str, locale: str) -> dict[str, Any]:
        self._check(kind, locale)
        row = await self._row(principal.workspace_id, kind, locale)
        source = templates.TemplateSource(row.subject, row.text, row.html) if row else \
            templates.default_template(kind, locale)
        return {"kind": kind, "locale": locale, "subject": source.subject, "text": source.text,
                "html": source.html, "customised": row is not None, "variables": list(templates.variables(kind))}

    async def save(self, principal: Principal, kind: str, locale: str, source: templates.TemplateSource,
                   now: datetime) -> dict[str, Any]:
        self._check(kind, locale)
        try:
            templates.validate(source, kind, locale)
        except templates.TemplateInvalid as exc:
            raise ValidationFailed(str(exc), field=exc.field) from None
        row = await self._row(principal.workspace_id, kind, locale)
        if row is None:
            row = NotificationTemplate(workspace_id=principal.workspace_id, kind=kind, locale=locale)
            self.session.add(row)
        row.subject, row.text, row.html = source.subject, source.text, source.html
        row.updated_at, row.updated_by = now, principal.user_id
        await self.session.flush()
        return await self.get(principal, kind, locale)

    async def reset(self, principal: Principal, kind: str, locale: str) -> None:
        self._check(kind, locale)
        row = await self._row(principal.workspace_id, kind, locale)
        if row is not None:
            await self.session.delete(row)

    async def preview(self, principal: Principal, kind: str, locale: str, source: templates.TemplateSource | None,
                      context: dict[str, Any] | None, *, app_url: str | None = None) -> templates.RenderedEmail:
        """Sample values, but the workspace's own name and links, so the admin sees their email."""
        self._check(kind, locale)
        if source is None:
            row = await self._row(principal.workspace_id, kind, locale)
            source = templates.TemplateSource(row.subject, row.text, row.html) if row else None
        if source is not None:
            try:
                templates.validate(source, kind, locale)
            except templates.TemplateInvalid as exc:
                raise ValidationFailed(str(exc), field=exc.field) from None
        sample = templates.sample_context(kind)
        workspace = await WorkspaceService(self.session).get(principal.workspace_id)
        own = {"workspace_name": workspace.name,
               "unsubscribe_url": templates.app_link(app_url, "/settings/notifications")}
        if isinstance(sample.get("ticket"), dict):
            staff_page = kind not in templates.CUSTOMER_KINDS
            own["ticket"] = {**sample["ticket"], "url": templates.app_link(
                app_url, f"/{'tickets' if staff_page else 'portal/tickets'}/{sample['ticket']['reference']}")}
        try:
            return templates.render(kind, locale, {**sample, **own, **(context or {})}, source)
        except templates.TemplateInvalid as exc:  # the template is fine with its sample; not with this context
            raise ValidationFailed(f"Cannot be previewed with this context: {exc}", field="context") from None

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from relaydesk.core.http import Cursor, Limit, now
from relaydesk.core.pagination import decode_keyset, encode_keyset
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import CurrentPrincipal
from relaydesk.notifications.schemas import NotificationOut, NotificationPage
from relaydesk.notifications.service import NotificationService

router = APIRouter(prefix="/api/v1")


@router.get("/notifications", response_model=NotificationPage, tags=["notifications"],
            summary="My in-app notifications, newest first, with the unread count")
async def list_notifications(principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50,
                             cursor: Cursor = None, unread: bool = False) -> dict:
    service = NotificationService(session)
    rows = await service.list(principal, unread_only=unread, after=decode_keyset(cursor) if cursor else None,
                              limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "unread_count": await service.unread_count(principal),
            "next_cursor": encode_keyset(rows[-1].created_at, rows[-1].id) if more else None}


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut, tags=["notifications"],
             summary="Mark one notification read")
async def mark_read(notification_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                    session: SessionDep):  # noqa: ANN201
    return await NotificationService(session).mark_read(principal, notification_id, now(request))


@router.post("/notifications/read-all", status_code=status.HTTP_204_NO_CONTENT, tags=["notifications"],
             summary="Mark all my notifications read")
async def mark_all_read(principal: CurrentPrincipal, request: Request, session: SessionDep) -> None:
    await NotificationService(session).mark_all_read(principal, now(request))

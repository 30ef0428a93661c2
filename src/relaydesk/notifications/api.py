from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import ValidationFailed
from relaydesk.core.http import Cursor, Limit, now
from relaydesk.core.pagination import decode_keyset, encode_keyset
from relaydesk.core.principal import Principal
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import AdminPrincipal, CurrentPrincipal
from relaydesk.notifications.delivery import (
    CHANNELS,
    CUSTOMER_EMAIL_KINDS,
    EMAIL_CHANNELS,
    HTTP_CHANNELS,
    STAFF_EMAIL_KINDS,
    DeliveryService,
    PreferenceService,
    Recipient,
    wants,
)
from relaydesk.notifications.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    NotificationOut,
    NotificationPage,
    PreferenceOut,
    PreferencesIn,
    PreviewIn,
    RenderedOut,
    RetriedOut,
    RetryDeadIn,
    TemplateIn,
    TemplateOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from relaydesk.notifications.service import NotificationService, TemplateService
from relaydesk.notifications.tasks import call_out_after_commit, send_after_commit
from relaydesk.notifications.templates import KINDS, LOCALES, TemplateSource
from relaydesk.notifications.webhooks import WebhookService

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


@router.post("/notifications/{notification_id}/unread", response_model=NotificationOut, tags=["notifications"],
             summary="Mark one notification unread again")
async def mark_unread(notification_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                      session: SessionDep):  # noqa: ANN201
    return await NotificationService(session).mark_unread(principal, notification_id, now(request))


@router.post("/notifications/read-all", status_code=status.HTTP_204_NO_CONTENT, tags=["notifications"],
             summary="Mark all my notifications read")
async def mark_all_read(principal: CurrentPrincipal, request: Request, session: SessionDep) -> None:
    await NotificationService(session).mark_all_read(principal, now(request))


# -- preferences ----------------------------------------------------------------------------
def _relevant_kinds(principal: Principal) -> list[str]:
    return sorted(STAFF_EMAIL_KINDS if principal.is_staff else CUSTOMER_EMAIL_KINDS)


async def _preferences(principal: Principal, session: AsyncSession) -> list[dict]:
    assert principal.user_id is not None
    chosen = {(p.kind, p.channel): p.enabled
              for p in await PreferenceService(session).of_user(principal.workspace_id, principal.user_id)}
    me = Recipient(None, "", "en", principal.user_id, staff=principal.is_staff)
    return [{"kind": kind, "channel": channel, "enabled": chosen.get((kind, channel), wants({}, me, kind, channel)),
             "default": (kind, channel) not in chosen}
            for kind in _relevant_kinds(principal) for channel in CHANNELS]


@router.get("/me/notification-preferences", response_model=list[PreferenceOut], tags=["notifications"],
            summary="What I am told about, on which channel")
async def get_preferences(principal: CurrentPrincipal, session: SessionDep) -> list[dict]:
    return await _preferences(principal, session)


@router.put("/me/notification-preferences", response_model=list[PreferenceOut], tags=["notifications"],
            summary="Change what I am told about (only the listed choices change)")
async def set_preferences(data: PreferencesIn, principal: CurrentPrincipal, session: SessionDep) -> list[dict]:
    allowed = set(_relevant_kinds(principal))
    service = PreferenceService(session)
    assert principal.user_id is not None
    listed: set[tuple[str, str]] = set()
    for i, choice in enumerate(data.preferences):
        if choice.kind not in allowed:
            raise ValidationFailed(f"You do not receive '{choice.kind}' notifications.",
                                   field=f"preferences.{i}.kind")
        if (choice.kind, choice.channel) in listed:
            raise ValidationFailed(f"'{choice.kind}' by {choice.channel} is listed twice; list each choice once.",
                                   field=f"preferences.{i}")
        listed.add((choice.kind, choice.channel))
        await service.set(principal.workspace_id, principal.user_id, choice.kind, choice.channel, choice.enabled)
    await session.flush()
    return await _preferences(principal, session)


# -- templates --------------------------------------------------------------------------------
@router.get("/notification-templates", response_model=list[TemplateOut], tags=["notifications"],
            summary="Every email template, per kind and language, with whether it is customised")
async def list_templates(principal: AdminPrincipal, session: SessionDep) -> list[dict]:
    service = TemplateService(session)
    return [await service.get(principal, kind, locale) for kind in KINDS for locale in LOCALES]


@router.get("/notification-templates/{kind}/{locale}", response_model=TemplateOut, tags=["notifications"],
            summary="One email template as it is used now")
async def get_template(kind: str, locale: str, principal: AdminPrincipal, session: SessionDep) -> dict:
    return await TemplateService(session).get(principal, kind, locale)


@router.put("/notification-templates/{kind}/{locale}", response_model=TemplateOut, tags=["notifications"],
            summary="Use the workspace's own wording (checked first: errors name the part and line)")
async def put_template(kind: str, locale: str, data: TemplateIn, principal: AdminPrincipal, request: Request,
                       session: SessionDep) -> dict:
    return await TemplateService(session).save(principal, kind, locale,
                                               TemplateSource(data.subject, data.text, data.html), now(request))


@router.delete("/notification-templates/{kind}/{locale}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["notifications"], summary="Go back to the built-in wording")
async def reset_template(kind: str, locale: str, principal: AdminPrincipal, session: SessionDep) -> None:
    await TemplateService(session).reset(principal, kind, locale)


@router.post("/notification-templates/{kind}/{locale}/preview", response_model=RenderedOut, tags=["notifications"],
             summary="Render a template (saved or not) with sample values")
async def preview_template(kind: str, locale: str, data: PreviewIn, principal: AdminPrincipal,
                           session: SessionDep, request: Request):  # noqa: ANN201
    source = TemplateSource(data.template.subject, data.template.text, data.template.html) if data.template else None
    return await TemplateService(session).preview(principal, kind, locale, source, data.context,
                                                  app_url=request.app.state.runtime.settings.app_url)


# -- deliveries --------------------------------------------------------------------------------
@router.get("/notifications/deliveries", response_model=DeliveryPage, tags=["notifications"],
            summary="Everything sent or being sent (emails, webhooks), with each attempt")
async def list_deliveries(principal: AdminPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
                          status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
                          recipient: Annotated[str | None, Query(max_length=500)] = None) -> dict:
    rows = await DeliveryService(session).list(principal.workspace_id, status=status_, recipient=recipient,
                                               after=decode_keyset(cursor) if cursor else None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_keyset(rows[-1].created_at, rows[-1].id) if more else None}


@router.post("/notifications/deliveries/retry-dead", response_model=RetriedOut, tags=["notifications"],
             summary="Send again, at once, the dead deliveries of a period, kind or channel (no filter: all)")
async def retry_dead_deliveries(principal: AdminPrincipal, request: Request, session: SessionDep,
                                data: RetryDeadIn = RetryDeadIn()) -> dict:  # noqa: B008 - no body: no filter
    retried, more = await DeliveryService(session).retry_dead(
        principal.workspace_id, now(request), by=principal.user_id, since=data.since, until=data.until,
        kind=data.kind, channel=data.channel)
    if retried:
        send_after_commit(request.app.state.runtime, session,
                          [data.channel] if data.channel else EMAIL_CHANNELS | HTTP_CHANNELS)
    return {"retried": retried, "more": more}


@router.post("/notifications/deliveries/{delivery_id}/retry", response_model=DeliveryOut,
             status_code=status.HTTP_202_ACCEPTED, tags=["notifications"],
             summary="Send a dead or failed delivery again now (same idempotency key; the log keeps its history)")
async def retry_delivery(delivery_id: uuid.UUID, principal: AdminPrincipal, request: Request,
                         session: SessionDep):  # noqa: ANN201
    delivery = await DeliveryService(session).retry(principal.workspace_id, delivery_id, now(request),
                                                    by=principal.user_id)
    send_after_commit(request.app.state.runtime, session, [delivery.channel])
    return delivery


# -- webhooks ------------------------------------------------------------------------------------
@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED, tags=["webhooks"],
             summary="Send ticket events to a URL (signed) or escalations to a Slack channel")
async def create_webhook(data: WebhookIn, principal: AdminPrincipal, request: Request,
                         session: SessionDep):  # noqa: ANN201
    return await WebhookService(session).create(
        principal, url=data.url, kind=data.kind, events=data.events, description=data.description,
        allow_private=data.allow_private, now=now(request),
        private_targets_allowed=request.app.state.runtime.settings.allow_private_targets)


@router.get("/webhooks", response_model=list[WebhookOut], tags=["webhooks"], summary="The workspace's webhooks")
async def list_webhooks(principal: AdminPrincipal, session: SessionDep):  # noqa: ANN201
    return await WebhookService(session).list(principal)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"], summary="Change a webhook")
async def update_webhook(webhook_id: uuid.UUID, data: WebhookPatch, principal: AdminPrincipal, request: Request,
                         session: SessionDep):  # noqa: ANN201
    return await WebhookService(session).update(
        principal, webhook_id, data.model_dump(exclude_unset=True),
        private_targets_allowed=request.app.state.runtime.settings.allow_private_targets)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreated, tags=["webhooks"],
             summary="Give the webhook a new signing secret (shown only now; the old one signs nothing more)")
async def rotate_webhook_secret(webhook_id: uuid.UUID, principal: AdminPrincipal,
                                session: SessionDep):  # noqa: ANN201
    return await WebhookService(session).rotate_secret(principal, webhook_id)


@router.post("/webhooks/{webhook_id}/test", response_model=DeliveryOut, status_code=status.HTTP_202_ACCEPTED,
             tags=["webhooks"], summary="Send the webhook a signed ping now; how it went shows in the delivery log")
async def test_webhook(webhook_id: uuid.UUID, principal: AdminPrincipal, request: Request,
                       session: SessionDep):  # noqa: ANN201
    delivery = await WebhookService(session).ping(principal, webhook_id, now(request))
    call_out_after_commit(request.app.state.runtime, session)
    return delivery


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["webhooks"],
               summary="Remove a webhook")
async def delete_webhook(webhook_id: uuid.UUID, principal: AdminPrincipal, session: SessionDep) -> None:
    await WebhookService(session).delete(principal, webhook_id)

"""Outbound webhooks: a workspace's endpoints, what each receives, and how it is signed.

A body is signed as ``X-Relaydesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under the endpoint's secret>`` so the receiver can check both origin and
freshness. Internal notes never leave through a webhook. Targets that resolve to
loopback, private, link-local or otherwise non-public addresses are refused, when the
endpoint is saved and again at each send, unless the operator allows private targets
(anyone can make a workspace) and an admin allowed them for that endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import hold_until_commit, new_id, read_once
from relaydesk.core.errors import Conflict, NotFound, ValidationFailed
from relaydesk.core.principal import Principal
from relaydesk.core.targets import UnsafeTarget, check_target
from relaydesk.notifications.delivery import WEBHOOK_PING, DeliveryService
from relaydesk.notifications.models import Delivery, WebhookEndpoint
from relaydesk.tickets.lifecycle import Channel
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.schemas import ticket_reference

if TYPE_CHECKING:
    from relaydesk.customers.models import Customer

WEBHOOK_EVENTS = ("ticket.created", "ticket.status_changed", "ticket.assigned", "ticket.priority_changed",
                  "ticket.category_changed", "message.posted", "sla.threshold_crossed", "ticket.escalated")
SLACK_EVENTS = ("ticket.escalated", "sla.threshold_crossed")
# Each event is posted to every endpoint that wants it: the cap bounds what one event of
# a workspace can cost the delivery job.
MAX_WEBHOOKS = 20
# Keys of an event's payload that stay inside Relaydesk.
TEXT_CHANNELS = {Channel.SMS.value, Channel.SOCIAL.value}
_PRIVATE_KEYS = {"actor_id", "requester_id", "organisation_id", "body_html"}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _slack_escaped(text: object) -> str:
    """Slack reads <...> as mentions and links (<!channel>, <http://x|label>): whatever a
    customer wrote is shown as written, never as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(event_type: str, payload: dict[str, Any], ticket: Ticket, url: str) -> str:
    reference = ticket_reference(ticket.number)
    # Without a web app (RELAYDESK_APP_URL) there is no page to link to: the reference alone.
    linked = f"<{url}|{reference}>" if url else reference
    ref = f"{linked} “{_slack_escaped(ticket.subject)}”"
    if event_type == "ticket.escalated":
        return (f":rotating_light: {ref} escalated to level {_slack_escaped(payload.get('level'))}: "
                f"{_slack_escaped(payload.get('reason') or '')}")
    clock = str(payload.get("clock", "")).replace("_", " ")
    return f":alarm_clock: {ref}: {_slack_escaped(clock)} SLA {_slack_escaped(payload.get('level'))}"


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def _channel(endpoint: WebhookEndpoint) -> str:
    """The delivery channel a call to this endpoint goes on (``slack`` bodies are not signed)."""
    return "slack" if endpoint.kind == "slack" else "webhook"


def _check_events(kind: str, events: list[str]) -> None:
    allowed = SLACK_EVENTS if kind == "slack" else WEBHOOK_EVENTS
    unknown = sorted(set(events) - set(allowed))
    if unknown:
        raise ValidationFailed(f"Not an event a {kind} target can receive: {', '.join(unknown)}. "
                               f"Choose from {', '.join(allowed)}.", field="events")


# A webhook reaches a private target only with both switches on: the operator's, and the
# endpoint's own ``allow_private``.
_WEBHOOK_HINT = ("; use a publicly reachable host, or set allow_private on this endpoint (the operator must "
                 "also allow private targets with RELAYDESK_ALLOW_PRIVATE_TARGETS)")


async def _check_url(url: str, allow_private: bool) -> None:
    try:
        await check_target(url, allow_private=allow_private, hint=_WEBHOOK_HINT)
    except UnsafeTarget as exc:
        raise ValidationFailed(str(exc), field="url") from None


def _may_allow_private(private_targets_allowed: bool) -> None:
    if not private_targets_allowed:
        raise ValidationFailed("Private targets are off on this server: the operator must allow them "
                               "(RELAYDESK_ALLOW_PRIVATE_TARGETS) before an endpoint may reach one.",
                               field="allow_private")


class WebhookService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, principal: Principal, *, url: str, kind: str, events: list[str], description: str,
                     allow_private: bool, now: datetime, private_targets_allowed: bool = False) -> WebhookEndpoint:
        """``private_targets_allowed``: the operator's ``RELAYDESK_ALLOW_PRIVATE_TARGETS``,
        without which no endpoint may ask for them."""
        if allow_private:
            _may_allow_private(private_targets_allowed)
        _check_events(kind, events)
        await _check_url(url, allow_private)  # allowed by the operator, or refused above
        # A workspace's creations take turns from the count to the commit (on PostgreSQL;
        # SQLite's writer does that already): two at once would each count the other's
        # endpoint out, and both would pass the cap.
        await hold_until_commit(self.session, f"webhooks:{principal.workspace_id}")
        if await self.session.scalar(select(func.count()).where(
                WebhookEndpoint.workspace_id == principal.workspace_id)) >= MAX_WEBHOOKS:
            raise Conflict(f"A workspace can have at most {MAX_WEBHOOKS} webhooks: remove one that is no longer "
                           "needed, or change an existing one's URL and events.", code="webhook_limit",
                           extra={"limit": MAX_WEBHOOKS})
        endpoint = WebhookEndpoint(
            workspace_id=principal.workspace_id, url=url, kind=kind, description=description,
            secret=_new_secret(), events=sorted(set(events)), active=True,
            allow_private=allow_private, created_at=now)
        self.session.add(endpoint)
        await self.session.flush()
        return endpoint

    async def get(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = await self.session.scalar(select(WebhookEndpoint).where(
            WebhookEndpoint.workspace_id == principal.workspace_id, WebhookEndpoint.id == endpoint_id))
        if endpoint is None:
            raise NotFound("No such webhook.")
        return endpoint

    async def list(self, principal: Principal) -> list[WebhookEndpoint]:
        return list(await self.session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.workspace_id == principal.workspace_id).order_by(WebhookEndpoint.created_at)))

    async def update(self, principal: Principal, endpoint_id: uuid.UUID, changes: dict[str, Any], *,
                     private_targets_allowed: bool = False) -> WebhookEndpoint:
        for field, value in changes.items():
            if value is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
        if changes.get("allow_private"):
            _may_allow_private(private_targets_allowed)
        endpoint = await self.get(principal, endpoint_id)
        for key, value in changes.items():
            setattr(endpoint, key, sorted(set(value)) if key == "events" else value)
        _check_events(endpoint.kind, endpoint.events)
        if changes.keys() & {"url", "allow_private"}:
            # Only where it would post changed: switching off an endpoint the server would
            # no longer post to must not be refused for that.
            await _check_url(endpoint.url, endpoint.allow_private and private_targets_allowed)
        return endpoint

    async def delete(self, principal: Principal, endpoint_id: uuid.UUID) -> None:
        await self.session.delete(await self.get(principal, endpoint_id))

    async def rotate_secret(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        """A new signing secret (say, the old one leaked): everything sent from now on, a
        retry of an earlier delivery included, is signed with it, never the old one."""
        endpoint = await self.get(principal, endpoint_id)
        endpoint.secret = _new_secret()
        return endpoint

    async def ping(self, principal: Principal, endpoint_id: uuid.UUID, now: datetime) -> Delivery:
        """A test call, queued like any event's (signed, retried, in the delivery log), so
        the admin sees exactly what an event would meet at the endpoint."""
        endpoint = await self.get(principal, endpoint_id)
        if not endpoint.active:
            raise Conflict("This webhook is switched off, so nothing is sent to it; switch it on first.",
                           code="webhook_inactive")
        if endpoint.kind == "slack":
            body: dict[str, Any] = {"text": f":wave: A test message from Relaydesk: this channel receives "
                                            f"{', '.join(endpoint.events)}."}
        else:
            body = {"id": None, "type": "ping", "workspace_id": str(principal.workspace_id),
                    "created_at": now.isoformat(), "webhook_id": str(endpoint.id), "ticket": None,
                    "data": {"events": endpoint.events}}
        delivery = await DeliveryService(self.session).queue(
            principal.workspace_id, channel=_channel(endpoint), kind=WEBHOOK_PING, recipient=endpoint.url[:500],
            key=f"ping:{endpoint.id}:{new_id()}", context={"body": body}, now=now, target_id=endpoint.id,
            key_is_new=True)
        assert delivery is not None  # a new key is always queued
        await self.session.flush()
        return delivery

    async def endpoint(self, workspace_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return await self.session.scalar(select(WebhookEndpoint).where(
            WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.id == endpoint_id))

    async def queue_for_event(self, workspace_id: uuid.UUID, event_id: int, event_type: str,
                              payload: dict[str, Any], ticket: Ticket, now: datetime, *, ticket_url: str = "",
                              requester: Callable[[], Awaitable[Customer | None]] | None = None) -> int:
        """``requester``: loads the ticket's customer, asked only for what a text channel's
        connector needs to answer (their platform id)."""
        if event_type == "message.posted" and payload.get("internal"):
            return 0
        async def active() -> list[WebhookEndpoint]:
            return list(await self.session.scalars(select(WebhookEndpoint).where(
                WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.active.is_(True))))

        endpoints = [e for e in await read_once(self.session, ("webhooks", workspace_id), active)
                     if event_type in e.events]
        deliveries = DeliveryService(self.session)
        queued = 0
        summary: dict[str, Any] | None = None
        for endpoint in endpoints:
            if endpoint.kind == "slack" and payload.get("notify") is False:
                continue  # people read Slack: a level overtaken in the same SLA pass is noise there too
            if endpoint.kind == "slack":
                body: dict[str, Any] = {"text": slack_text(event_type, payload, ticket, ticket_url)}
            else:
                summary = summary or await self._summary(ticket, requester)
                data = {k: v for k, v in payload.items() if k not in _PRIVATE_KEYS}
                body = {"id": event_id, "type": event_type, "workspace_id": str(workspace_id),
                        "created_at": payload.get("at"), "ticket": summary, "data": data}
            queued += await deliveries.queue(
                workspace_id, channel=_channel(endpoint), kind=event_type,
                recipient=endpoint.url[:500], key=f"{event_id}:webhook:{endpoint.id}", context={"body": body},
                now=now, ticket_id=ticket.id, target_id=endpoint.id) is not None
        return queued


    @staticmethod
    async def _summary(ticket: Ticket, requester: Callable[[], Awaitable[Customer | None]] | None) -> dict[str, Any]:
        summary: dict[str, Any] = {"id": str(ticket.id), "reference": ticket_reference(ticket.number),
                                   "subject": ticket.subject, "status": ticket.status, "priority": ticket.priority,
                                   "channel": ticket.channel}
        if ticket.channel in TEXT_CHANNELS:
            # What a connector needs to answer on the platform: whom, there.
            customer = await requester() if requester is not None else None
            if customer is not None:
                summary["requester"] = {"channel_user_id": (customer.attributes or {}).get("channel_user_id"),
                                        "phone": customer.phone}
        return summary


def encode_body(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)

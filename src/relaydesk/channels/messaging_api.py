"""Inbound webhooks for text channels: Twilio SMS, and a generic signed JSON endpoint.

Connecting a social channel (Facebook, WhatsApp, Instagram...): a small connector
receives the platform's webhook and posts ``{"channel": "social", "user_id", "name",
"email"?, "text", "message_id"?}`` to ``/api/v1/channels/<workspace>/messages``, signed
like our outbound webhooks (``X-Relaydesk-Signature: t=<unix>,v1=<HMAC-SHA256 of
"<t>.<body>">`` under the workspace's ``channel_webhook_secret``). Agents' replies reach
the connector through an outbound webhook subscribed to ``message.posted``; it sends
those whose ticket channel is ``social`` back to the platform. See docs/channels.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid

import orjson
from fastapi import APIRouter, Request, Response, status
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from relaydesk.channels.messaging import TextChannelService, valid_twilio_signature
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.http import now
from relaydesk.core.schemas import Email, Input, Output
from relaydesk.core.uow import SessionDep
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.lifecycle import Channel
from relaydesk.tickets.schemas import ticket_reference
from relaydesk.tickets.tasks import ticket_service

router = APIRouter(prefix="/api/v1")
SIGNATURE_MAX_AGE_SECONDS = 300
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_TEXTER = re.compile(r"\+?[0-9]{3,15}")  # E.164 (15 digits at most), or a short code


def _texts(request: Request, session) -> TextChannelService:  # noqa: ANN001
    runtime = request.app.state.runtime
    return TextChannelService(session, ticket_service(runtime, session),
                              CustomerService(session, UserService(session, runtime.hasher)))


def _media_lines(fields: dict[str, str]) -> list[str]:
    """An MMS's pictures (or other media) as links on the ticket: Twilio keeps the files and
    gives their addresses (``MediaUrl0``…), at most ten."""
    try:
        count = min(int(fields.get("NumMedia") or 0), 10)
    except ValueError:
        count = 0
    lines = []
    for n in range(count):
        url = fields.get(f"MediaUrl{n}", "").strip()
        if url.startswith(("https://", "http://")):
            lines.append(f"[{fields.get(f'MediaContentType{n}') or 'media'}] {url}")
    return lines


@router.post("/sms/{workspace}/twilio", tags=["channels"], response_class=Response,
             summary="Twilio's incoming-message webhook (form-encoded, X-Twilio-Signature checked)")
async def twilio_incoming(workspace: str, request: Request, session: SessionDep) -> Response:
    runtime = request.app.state.runtime
    ws = await WorkspaceService(session).find(workspace)
    settings = await WorkspaceService(session).settings(ws.id) if ws else None
    if ws is None or settings is None or not settings.sms_auth_token:
        raise NotFound("SMS is not set up for this workspace.")
    form = await request.form()
    params = [(k, str(v)) for k, v in form.multi_items()]
    # Twilio signs the URL it called; behind a proxy that is the public address, not ours.
    url = runtime.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not valid_twilio_signature(settings.sms_auth_token, url, params, request.headers.get("X-Twilio-Signature", "")):
        raise Forbidden("The X-Twilio-Signature does not match.", code="bad_signature")
    fields = dict(params)
    sender, body, sid = fields.get("From", "").strip(), fields.get("Body", ""), fields.get("MessageSid", "").strip()
    body = "\n".join(filter(None, [body.strip(), *_media_lines(fields)]))
    # Twilio always sends both: a request without them is not Twilio's incoming message,
    # and a texter must be a number their answers can be texted to.
    if not _TEXTER.fullmatch(sender):
        raise ValidationFailed("From must be the texter's number, as Twilio sends it (+15551234567).", field="From")
    if not sid:
        raise ValidationFailed("MessageSid is missing; Twilio sends one with every message.", field="MessageSid")
    await _texts(request, session).take(ws.id, Channel.SMS, body, now(request), handle=sender, phone=sender,
                                        external_id=f"twilio:{sid}")
    return Response(EMPTY_TWIML, media_type="text/xml")  # a retried message too: Twilio wants an answer


class ChannelMessageIn(Input):
    channel: Channel = Field(default=Channel.SOCIAL, description="Usually social.")
    user_id: str = Field(min_length=1, max_length=200, description="The person's id on the platform.")
    name: str | None = Field(default=None, max_length=200)
    email: Email | None = None
    phone: str | None = Field(default=None, max_length=40)
    text: str = Field(min_length=1, max_length=20_000)
    message_id: str | None = Field(default=None, max_length=200, description="The platform's id, for de-duplication.")

    model_config = {"json_schema_extra": {"examples": [
        {"channel": "social", "user_id": "fb:1029384756", "name": "Lan Nguyen", "text": "Is the blue one in stock?",
         "message_id": "m_9f8e7d"}]}}


class ChannelMessageOut(Output):
    ticket_id: uuid.UUID
    number: str


@router.post("/channels/{workspace}/messages", response_model=ChannelMessageOut,
             status_code=status.HTTP_202_ACCEPTED, tags=["channels"],
             summary="A message from a connected channel (signed JSON; see docs/channels.md)")
async def channel_message(workspace: str, request: Request, session: SessionDep) -> dict:
    ws = await WorkspaceService(session).find(workspace)
    secret = (await WorkspaceService(session).settings(ws.id)).channel_webhook_secret if ws else None
    if ws is None or not secret:
        raise NotFound("The channel webhook is not set up for this workspace.")
    raw = await request.body()
    _check_signature(secret, raw, request.headers.get("X-Relaydesk-Signature", ""))
    try:
        data = ChannelMessageIn.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise ValidationFailed("The body is not JSON.", field="body") from None
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(first["msg"], field=".".join(str(p) for p in first["loc"]) or "body") from None
    if data.channel in (Channel.EMAIL, Channel.WEB, Channel.API):
        raise ValidationFailed("Use the email channel, the portal or the API for these.", field="channel")
    ticket = await _texts(request, session).take(
        ws.id, data.channel, data.text, now(request), handle=data.user_id, name=data.name, email=data.email,
        phone=data.phone, external_id=f"{data.channel.value}:{data.message_id}" if data.message_id else None)
    if ticket is None:
        raise Conflict("This message_id was received before.", field="message_id", code="duplicate")
    return {"ticket_id": ticket.id, "number": ticket_reference(ticket.number)}


def _check_signature(secret: str, body: bytes, header: str) -> None:
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        raise Forbidden("Sign the body: X-Relaydesk-Signature: t=<unix>,v1=<hex>.", code="bad_signature") from None
    if abs(int(time.time()) - stamp) > SIGNATURE_MAX_AGE_SECONDS:  # in ints: a huge t cannot overflow
        raise Forbidden("The signature is too old.", code="bad_signature")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):  # bytes: the header may hold any character
        raise Forbidden("The signature does not match.", code="bad_signature")

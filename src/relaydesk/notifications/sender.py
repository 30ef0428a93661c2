"""The delivery job: claim what is due, send it, record how it went.

Three steps, each its own transaction or none: (1) claim the due deliveries and render
them (templates, digests) while the database is at hand; (2) send, holding no
transaction; (3) record each outcome. See ``delivery.py`` for why claiming first makes a
crash neither lose nor duplicate a delivery.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from html import escape
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from relaydesk.agents.service import AgentService
from relaydesk.channels.ccs import CcService
from relaydesk.channels.verification import ascii_form
from relaydesk.channels.messaging import TWILIO_MESSAGES_URL
from relaydesk.channels.service import MailboxService
from relaydesk.channels.threading import make_message_id, with_token
from relaydesk.core.db import read_once
from relaydesk.core.errors import NotFound
from relaydesk.core.mail import MailError, Refused, header_text, needs_smtputf8
from relaydesk.core.principal import Principal
from relaydesk.core.targets import UnsafeTarget, check_target
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.notifications.delivery import ROUND_SECONDS, SMS_REPLY, DeliveryService, retried_after_giving_up
from relaydesk.notifications.models import Delivery, NotificationTemplate
from relaydesk.notifications.default_templates import DIGEST_TITLES
from relaydesk.notifications.inline_images import SHOWN_TYPES, Image, for_email, uploads_linked, uploads_shown
from relaydesk.notifications.templates import (
    TemplateInvalid,
    TemplateSource,
    normalize_locale,
    render,
    status_label,
)
from relaydesk.notifications.webhooks import WebhookService, encode_body, sign
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.attachments import AttachmentService
from relaydesk.tickets.models import Attachment
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.deliveries")

WEBHOOK_TIMEOUT_SECONDS = 10  # for one call, all in: resolving, connecting, sending and the answer
# A round's webhook, Slack and SMS calls in flight together: a full round of 100 that
# all time out takes 100 s, inside ROUND_SECONDS.
HTTP_CALLS_AT_ONCE = 10
ERROR_BODY_CHARS = 300  # of an endpoint's or provider's answer to a failed send, kept with the failure
# The customer's emails that copy the ticket's CCs: the answers, and the acknowledgement.
COPIES_CCS = frozenset({"reply_to_customer", "ticket_created"})
EMAIL_ATTACHMENT_BYTES = 10 * 1024 * 1024  # what an email to a customer carries at most; the rest is named
# Readable in the raw message (mostly ASCII text), safe for any UTF-8.
_QUOTED_PRINTABLE_UTF8 = Charset("utf-8")
_QUOTED_PRINTABLE_UTF8.body_encoding = QP


@dataclass(slots=True)
class Outgoing:
    delivery_id: uuid.UUID
    channel: str
    email: Message | None = None
    url: str | None = None
    body: bytes | None = None
    secret: str | None = None
    form: dict[str, str] | None = None  # SMS: the provider's form fields
    auth: tuple[str, str] | None = None
    allow_private: bool = False
    problem: str | None = None  # found while preparing: fails the delivery without sending
    # Email: files still to attach, read once the round has let go of the database (on
    # SQLite a read waited on a thread while holding the only writer); and the images its
    # HTML shows, each with its Content-ID.
    files: tuple[Attachment, ...] = ()
    images: tuple[tuple[Attachment, str], ...] = ()
    refused: Refused | None = None  # email: the recipients the relay refused, once sent
    # Email: whom it goes to when not everyone its To and Cc name (``alone``).
    envelope: list[str] | None = None


class SendFailed(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


# Hot statements, built once (docs/architecture.md, "Statements built once").
_HELD = (select(Delivery).where(Delivery.id.in_(bindparam("ids", expanding=True)))
         .order_by(Delivery.id).with_for_update())


async def deliver_due(runtime: Runtime, channels: frozenset[str], *, limit: int = 100,
                      claiming: Callable[[], None] | None = None) -> int:
    """One round over ``channels`` (``EMAIL_CHANNELS`` or ``HTTP_CHANNELS``: each kind has
    a job of its own, so slow calls never hold up email); returns how many deliveries it
    claimed. ``claiming`` is called once the round holds the writer, just before it reads
    what is due."""
    async with runtime.transaction() as session:
        await session.connection()  # on SQLite, waits for the writer (BEGIN IMMEDIATE)
        if claiming is not None:
            claiming()
        now = runtime.clock.now()
        claimed = await DeliveryService(session).claim_due(now, limit=limit, channels=channels,
                                                           is_sqlite=runtime.db.is_sqlite)
        held = {d.id: d.attempts for d in claimed}  # which claim is this round's
        outgoing = [await _prepare_alone(runtime, session, d, now) for d in claimed]
    if not outgoing:
        return 0
    last_start = now + timedelta(seconds=ROUND_SECONDS)
    done = await _send_emails(runtime, [i for i in outgoing if i.url is None], last_start)
    done |= await _call_all(runtime, [i for i in outgoing if i.url is not None], last_start)
    outcomes = [(item.delivery_id, done[item.delivery_id]) for item in outgoing if item.delivery_id in done]
    async with runtime.transaction() as session:
        deliveries = DeliveryService(session)
        now = runtime.clock.now()
        # Locked, so that no round claims one between this look and the commit; one claimed
        # again meanwhile (this round outlived its claim) is the other round's to record.
        rows = {d.id: d for d in await session.scalars(_HELD, {"ids": list(held)})
                if d.status == "sending" and d.attempts == held[d.id]}
        if len(rows) < len(held):
            log.warning("delivery_claims_lost", deliveries=[str(i) for i in held if i not in rows])
        noted: set[object] = set()  # the texts of one long answer fail together: one note says so
        for item in outgoing:
            if item.delivery_id in rows and item.delivery_id not in done:
                deliveries.put_back(rows[item.delivery_id], now)
        sent_as = {item.delivery_id: str(item.email["Message-ID"]).strip("<> ") for item in outgoing
                   if item.email is not None and item.email["Message-ID"]}
        refused = {item.delivery_id: item.refused for item in outgoing if item.refused}
        for delivery_id, failure in outcomes:
            row = rows.get(delivery_id)
            if row is None:
                continue
            row.message_id = sent_as.get(delivery_id, row.message_id)  # to find it in a mailbox or the relay's log
            if delivery_id in refused and not row.context.get("alone"):
                await _settle_ccs(runtime, session, row, refused[delivery_id], now)
            if failure is None:
                deliveries.succeeded(row, now)
                answer = row.context.get("answer") or row.id
                if row.kind in _SENT_AS and row.ticket_id is not None and retried_after_giving_up(row) and \
                        answer not in noted:
                    noted.add(answer)
                    await _note_reply_sent_after_all(runtime, session, row, now)
            else:
                deliveries.failed(row, now, str(failure), permanent=failure.permanent,
                                  max_attempts=runtime.settings.delivery_max_attempts)
                log.warning("delivery_failed", delivery_id=str(delivery_id), channel=row.channel,
                            attempts=row.attempts, error=str(failure), gave_up=row.status == "dead")
                answer = row.context.get("answer") or row.id
                if row.status == "dead" and row.kind in _SENT_AS and row.ticket_id is not None and answer not in noted:
                    noted.add(answer)
                    if "copy_of" in row.context:  # a CC's own try at the reply
                        await _leave_out_cc(runtime, session, row, row.recipient, f"Relaydesk gave up after "
                                            f"{row.attempts} attempt(s): {row.last_error}", now)
                    else:
                        await _note_reply_lost(runtime, session, row, now)
    return len(outgoing)


async def _send_emails(runtime: Runtime, items: list[Outgoing], last_start: datetime
                       ) -> dict[uuid.UUID, SendFailed | None]:
    """One after another, over one connection to the relay: the outcome of each started
    by ``last_start``."""
    done: dict[uuid.UUID, SendFailed | None] = {}
    if not items:
        return done
    async with runtime.mailer.batch():
        for item in items:
            if runtime.clock.now() > last_start:
                break
            # Its files read just before it goes: a slow store holds up no email before it.
            done[item.delivery_id] = await _outcome(
                runtime, await _with_files(runtime, item) if item.files or item.images else item)
    return done


async def _call_all(runtime: Runtime, items: list[Outgoing], last_start: datetime
                    ) -> dict[uuid.UUID, SendFailed | None]:
    """Several at once: a round of targets that answer only at the timeout takes
    ``len(items) / HTTP_CALLS_AT_ONCE`` timeouts, not one each. The outcome of each call
    started by ``last_start``."""
    at_once = asyncio.Semaphore(HTTP_CALLS_AT_ONCE)
    done: dict[uuid.UUID, SendFailed | None] = {}

    async def call(item: Outgoing) -> None:
        async with at_once:
            if runtime.clock.now() <= last_start:
                done[item.delivery_id] = await _outcome(runtime, item)

    await asyncio.gather(*(call(item) for item in items))
    return done


async def _outcome(runtime: Runtime, item: Outgoing) -> SendFailed | None:
    try:
        await _send(runtime, item)
    except SendFailed as exc:
        return exc
    except Exception as exc:
        # One delivery's fault is its own: the round's others are sent and every outcome
        # recorded (a round that died left them all claimed, and re-sent those that had
        # gone once the claim ran out).
        log.exception("delivery_not_sent", delivery_id=str(item.delivery_id))
        return SendFailed(f"could not be sent: {type(exc).__name__}: {exc}", permanent=False)
    return None


_SENT_AS = {"reply_to_customer": "emailed", SMS_REPLY: "texted"}  # the replies whose loss the ticket shows


async def _note_reply_lost(runtime: Runtime, session: AsyncSession, delivery: Delivery, now: datetime) -> None:
    """Tells the agents on the ticket that the customer never got a reply: the thread
    shows it as answered otherwise."""
    await _note_on_ticket(runtime, session, delivery, now, f"A reply could not be {_SENT_AS[delivery.kind]} to "
                          f"{delivery.recipient}, and Relaydesk gave up after {delivery.attempts} attempt(s): "
                          f"{delivery.last_error}")


async def _note_reply_sent_after_all(runtime: Runtime, session: AsyncSession, delivery: Delivery,
                                     now: datetime) -> None:
    """The thread said the reply never reached the customer; an admin retried it and it
    went, so the thread says that too."""
    await _note_on_ticket(runtime, session, delivery, now, f"The reply Relaydesk had given up on was "
                          f"{_SENT_AS[delivery.kind]} to {delivery.recipient} after all, once an admin sent it again.")


async def _note_on_ticket(runtime: Runtime, session: AsyncSession, delivery: Delivery, now: datetime,
                          text: str) -> None:
    """An internal note on the delivery's ticket, unless the ticket is gone."""
    tickets = ticket_service(runtime, session)
    try:
        ticket = await tickets.get(Principal.system(delivery.workspace_id), delivery.ticket_id)
    except NotFound:
        return
    tickets.system_note(ticket, text, now, internal=True)


async def _settle_ccs(runtime: Runtime, session: AsyncSession, delivery: Delivery, refused: Refused,
                      now: datetime) -> None:
    """The relay answered for every CC of the email at RCPT: those it took have it. One it
    refused for good is left out (``_leave_out_cc``). One it refused for now (a 4xx:
    greylisting, a mailbox full for now) gets this very email later, on a delivery of its
    own, to its address alone and retried as any other, so the delivery log shows it. From
    then on the email's own retries go to its recipient alone: nobody gets it twice."""
    copied = delivery.context.get("cc") or []
    if delivery.ticket_id is None or not copied:
        return
    for cc in copied:
        why = refused.get(ascii_form(cc["email"]).lower())
        if why is None:
            continue
        error = f"recipient refused: {cc['email']}: {why}"
        if why.permanent:
            await _leave_out_cc(runtime, session, delivery, cc["email"], error, now)
            continue
        copy = DeliveryService(session).copy_to(delivery, cc["email"], error, now,
                                                max_attempts=runtime.settings.delivery_max_attempts)
        if copy.status == "dead":
            await _leave_out_cc(runtime, session, copy, cc["email"], error, now)
    delivery.context = {**delivery.context, "alone": True}


async def _leave_out_cc(runtime: Runtime, session: AsyncSession, delivery: Delivery, address: str, why: str,
                        now: datetime) -> None:
    """A CC whose copy of a reply could not be sent, for good, is left out of the next
    replies on the ticket, as one whose copy bounced is, until mail from them joins it
    again; and the agents are told, as when the requester's could not."""
    assert delivery.ticket_id is not None
    ccs = CcService(session, ticket_service(runtime, session), runtime.settings.mail_domain)
    if await ccs.mark_undeliverable(delivery.workspace_id, delivery.ticket_id, address, now):
        log.warning("cc_refused", delivery_id=str(delivery.id), address=address, error=why)
    await _note_on_ticket(runtime, session, delivery, now, f"A reply could not be emailed to {address}, in Cc: {why}. "
                          "Later replies leave them out until mail from them joins the ticket again.")


async def _prepare_alone(runtime: Runtime, session: AsyncSession, delivery: Delivery, now: datetime) -> Outgoing:
    """A delivery that cannot be put together fails on its own (recorded, with the reason),
    never the round it came in with: the other recipients still get theirs."""
    try:
        return await _prepare(runtime, session, delivery, now)
    except SQLAlchemyError:
        raise  # the transaction is gone: the round is retried as a whole
    except Exception as exc:
        log.exception("delivery_not_composed", delivery_id=str(delivery.id))
        return Outgoing(delivery.id, delivery.channel, problem=f"could not be composed: {type(exc).__name__}: {exc}")


async def _prepare(runtime: Runtime, session: AsyncSession, delivery: Delivery, now: datetime) -> Outgoing:
    if delivery.channel in ("webhook", "slack"):
        endpoint = await WebhookService(session).endpoint(delivery.workspace_id, delivery.target_id) \
            if delivery.target_id else None
        if endpoint is None or not endpoint.active:
            return Outgoing(delivery.id, delivery.channel, problem="the webhook was removed or switched off")
        return Outgoing(delivery.id, delivery.channel, url=endpoint.url, body=encode_body(delivery.context["body"]),
                        secret=endpoint.secret if delivery.channel == "webhook" else None,
                        allow_private=endpoint.allow_private and runtime.settings.allow_private_targets)
    if delivery.channel == "sms":
        settings = await WorkspaceService(session).settings(delivery.workspace_id)
        if not (settings.sms_number and settings.sms_auth_token and (settings.sms_api_url or settings.sms_account_sid)):
            return Outgoing(delivery.id, "sms", problem="SMS is not set up for this workspace")
        return Outgoing(delivery.id, "sms",
                        url=settings.sms_api_url or TWILIO_MESSAGES_URL.format(sid=settings.sms_account_sid),
                        form={"To": delivery.recipient, "From": settings.sms_number, "Body": delivery.context["body"]},
                        auth=(settings.sms_account_sid or "", settings.sms_auth_token),
                        allow_private=runtime.settings.allow_private_targets)
    # Mates join on the first attempt only, and the digest is frozen into the delivery: a
    # retry (after a failure, or a crash after the relay took it) sends the same email
    # under the same Message-ID; what arrived meanwhile leaves with the next one. (One put
    # back unsent has its first attempt again, and its digest already.)
    first = delivery.attempts <= 1 and "digest" not in delivery.context
    mates = await DeliveryService(session).batch_mates(delivery, now) if first else []
    if mates:
        in_order = sorted((delivery, *mates), key=lambda d: (d.created_at, d.id))
        zone = await _recipient_zone(runtime, session, delivery)
        delivery.context = {**delivery.context,
                            "digest": [_digest_item(d, delivery.locale, zone) for d in in_order]}
    email, files, images = await _compose(runtime, session, delivery, now)
    return Outgoing(delivery.id, "email", email=email, files=tuple(files), images=tuple(images),
                    envelope=[ascii_form(delivery.recipient)] if delivery.context.get("alone") else None)


async def _with_files(runtime: Runtime, item: Outgoing) -> Outgoing:
    """The email with its files attached and its images in; one that cannot be read fails
    the delivery (the reply without the file the agent attached would tell the customer
    something else)."""
    assert item.email is not None
    try:
        if item.images:
            [related] = [p for p in item.email.walk() if p.get_content_type() == "multipart/related"]
            for attachment, content_id in item.images:
                part = _file_part(attachment, await runtime.files.get(attachment.storage_key), "inline")
                part["Content-ID"] = f"<{content_id}>"
                related.attach(part)
        for attachment in item.files:
            item.email.attach(_file_part(attachment, await runtime.files.get(attachment.storage_key), "attachment"))
    except Exception as exc:
        log.exception("delivery_not_composed", delivery_id=str(item.delivery_id))
        return Outgoing(item.delivery_id, item.channel, problem=f"could not be composed: {type(exc).__name__}: {exc}")
    return item


def _file_part(attachment: Attachment, data: bytes, disposition: str) -> MIMEApplication:
    part = MIMEApplication(data, _subtype=attachment.content_type.partition("/")[2])
    part.replace_header("Content-Type", attachment.content_type)
    filename = attachment.filename if attachment.filename.isascii() else ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", disposition, filename=filename)
    return part


async def _recipient_zone(runtime: Runtime, session: AsyncSession, delivery: Delivery) -> str:
    """The time zone on the recipient's profile (staff: their agent profile; customers:
    theirs, by address), else the workspace's, for the times in a digest. Digests are few:
    asking the owning services costs little."""
    users = UserService(session, runtime.hasher)
    workspaces = WorkspaceService(session)
    if delivery.user_id is not None:
        try:
            agent = await AgentService(session, users).get(Principal.system(delivery.workspace_id), delivery.user_id)
            return await workspaces.timezone(delivery.workspace_id, agent.get("timezone"))
        except NotFound:
            pass  # a customer with a sign-in
    customer = await CustomerService(session, users).find_by_email(delivery.workspace_id, delivery.recipient)
    return await workspaces.timezone(delivery.workspace_id, customer.timezone if customer is not None else None)


def _clock_time(at: datetime, zone: str) -> str:
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        zone, local = "UTC", at
    return local.strftime("%H:%M") + (" UTC" if zone == "UTC" else "")


def _digest_item(delivery: Delivery, locale: str, zone: str = "UTC") -> dict[str, Any]:
    """One update of a digest, in the recipient's language (``locale``: the digest's own)
    and time zone."""
    ctx = delivery.context
    message = ctx.get("message") or {}
    words = DIGEST_TITLES[normalize_locale(locale)]
    writer = message.get("author_name") or words["customer" if delivery.kind == "reply_to_agent" else "team"]
    status = status_label(ctx.get("new_status", ""), locale)  # status news go to customers only
    title = words.get(delivery.kind, delivery.kind).format(name=writer, status=status,
                                                           minutes=ctx.get("waited_minutes", ""))
    item = {"kind": delivery.kind, "title": title, "text": message.get("text", ""), "ticket": ctx.get("ticket"),
            "at": _clock_time(delivery.created_at, zone), "attachment_ids": message.get("attachment_ids", [])}
    if delivery.kind == "reply_to_customer" and message.get("html"):
        item["html"] = message["html"]  # its images travel in the email, as a single reply's (``_compose``)
    return item


async def _compose(runtime: Runtime, session: AsyncSession, delivery: Delivery, now: datetime
                   ) -> tuple[Message, list[Attachment], list[tuple[Attachment, str]]]:
    """The email, the files it is to carry and the images its HTML shows, by Content-ID
    (``_with_files`` puts them in)."""
    settings = runtime.settings
    ctx = dict(delivery.context)
    ctx.pop("alone", None)
    # A CC's own try at a reply is the very email the others got: to the same To, under the same Message-ID.
    sent_as = ctx.pop("copy_of", None) or {"nonce": delivery.id.hex, "to": delivery.recipient}
    digest = ctx.pop("digest", None)
    copied = ctx.pop("cc", None) if delivery.kind in COPIES_CCS else None
    relayed = ctx.pop("relayed", False)  # a customer's reply copied to the others: no person wrote it to them
    kind = "digest" if digest else delivery.kind
    if digest:
        ctx["items"] = list(digest)  # the frozen digest stays as it was: a retry shows its images again
    images: list[tuple[Attachment, str]] = []
    if delivery.kind == "reply_to_customer" and not digest and ctx.get("message"):
        ctx["message"], images = await _images_of(runtime, session, delivery, ctx["message"])
    for n, item in enumerate(digest or []):
        if item.get("html"):
            room = EMAIL_ATTACHMENT_BYTES - sum(attachment.size for attachment, _ in images)
            shown, carried = await _images_of(runtime, session, delivery, item, room=room)
            ctx["items"][n] = shown
            images += [(a, cid) for a, cid in carried if cid not in {c for _, c in images}]
    rendered = None
    async def overrides() -> dict[tuple[str, str], NotificationTemplate]:
        return {(t.kind, t.locale): t for t in await session.scalars(select(NotificationTemplate).where(
            NotificationTemplate.workspace_id == delivery.workspace_id))}

    override = (await read_once(session, ("templates", delivery.workspace_id), overrides)).get(
        (kind, delivery.locale))
    if override is not None:
        try:
            rendered = render(kind, delivery.locale, ctx,
                              TemplateSource(override.subject, override.text, override.html))
        except TemplateInvalid as exc:  # saved templates are validated; this is the safety net
            log.warning("template_failed", kind=kind, locale=delivery.locale, error=str(exc))
    rendered = rendered or render(kind, delivery.locale, ctx)

    workspace = await WorkspaceService(session).get(delivery.workspace_id)
    about = (ctx.get("ticket") or {}).get("id")
    sender = await MailboxService(session).sending_address(workspace, settings.mail_domain,
                                                           uuid.UUID(about) if about else None)
    files, left_out = await _files_of(runtime, session, delivery, digest, images) \
        if delivery.kind == "reply_to_customer" else ([], [])
    text, html = rendered.text, rendered.html
    if left_out:
        url = (ctx.get("ticket") or {}).get("url", "")
        names = "; ".join(f"{a.filename} ({a.size / 1_000_000:.1f} MB)" for a in left_out)
        text += f"\n\nNot attached, too large for email (your request online has them: {url}): {names}\n"
        html += f"<p>Not attached, too large for email (<a href=\"{escape(url)}\">your request online</a> has " \
                f"them): {escape(names)}</p>"
    # compat32 MIME classes, not EmailMessage: the default policy parses every header it
    # is given, which made composing an email cost three times as much as rendering it.
    message = MIMEMultipart("mixed" if files else "alternative")
    message["From"] = formataddr((header_text(workspace.name), ascii_form(sender)), charset="utf-8")
    message["To"] = ascii_form(sent_as["to"])
    copied = _addressable(delivery, copied or [])
    if copied:
        # The relay sends to every address in To and Cc (core/mail.py): the CCs get this
        # very email, under its one Message-ID, and answering all reaches them again.
        message["Cc"] = ", ".join(formataddr((header_text(cc["name"]), ascii_form(cc["email"])), charset="utf-8")
                                  for cc in copied)
    ticket = ctx.get("ticket") or {}
    # A digest of one ticket's updates (all a customer's ever are) belongs to its thread.
    one_ticket = bool(ticket.get("id")) and all((item.get("ticket") or {}).get("id") == ticket["id"]
                                                for item in digest or [])
    subject = with_token(rendered.subject, ticket["reference"]) if ticket.get("reference") and one_ticket \
        else rendered.subject
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["Date"] = format_datetime(now)
    secret = settings.resolved_secret_key()
    anchor = uuid.UUID(ticket["id"]) if one_ticket else delivery.workspace_id
    own_id = make_message_id(anchor, sent_as["nonce"], secret=secret, domain=settings.mail_domain,
                             recipient=sent_as["to"])
    message["Message-ID"] = f"<{own_id}>"
    if one_ticket:
        # One stable root per ticket groups every email about it in the customer's client.
        root = make_message_id(anchor, "root", secret=secret, domain=settings.mail_domain)
        # A Message-ID with other than ASCII in it (some broken client's) would be written as
        # an encoded word, hiding every id around it from mail clients: leave it out.
        thread = [root, *(t for t in ctx.get("thread", []) if t.isascii())]
        message["In-Reply-To"] = f"<{thread[-1]}>"
        # The root and the latest: a long conversation's root must stay, or the clients that
        # thread by References (Thunderbird, Apple Mail) split it once it passes ten.
        message["References"] = " ".join(f"<{t}>" for t in [root, *thread[1:][-9:]])
    if delivery.kind != "reply_to_customer" or digest or relayed:
        message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"  # no out-of-office answers to what we send
    message["X-Relaydesk-Loop"] = str(delivery.workspace_id)
    alternative = MIMEMultipart("alternative") if files else message
    alternative.attach(MIMEText(text, "plain", _QUOTED_PRINTABLE_UTF8))
    html_part = MIMEText(html, "html", _QUOTED_PRINTABLE_UTF8)
    if images:
        # The HTML and the images it names by Content-ID (RFC 2387); the text names them.
        html_part = MIMEMultipart("related", _subparts=[html_part], type="text/html")
    alternative.attach(html_part)
    if files:
        message.attach(alternative)
    return message, files, images


def _addressable(delivery: Delivery, copied: list[dict[str, str]]) -> list[dict[str, str]]:
    """The CCs an email without SMTPUTF8 can reach: one kept before such addresses were
    refused (their local part has no ASCII form) is left out, not the whole reply."""
    left_out = [cc["email"] for cc in copied if needs_smtputf8(cc["email"])]
    if left_out:
        log.warning("cc_left_out", delivery_id=str(delivery.id), addresses=left_out,
                    reason="needs SMTPUTF8")
    return [cc for cc in copied if not needs_smtputf8(cc["email"])]


async def _images_of(runtime: Runtime, session: AsyncSession, delivery: Delivery, message: dict[str, Any], *,
                     room: int = EMAIL_ATTACHMENT_BYTES) -> tuple[dict[str, Any], list[tuple[Attachment, str]]]:
    """The reply as its email shows it, and the images it carries, each with its Content-ID:
    those of the ticket's customer side its text shows, in order, as many as fit in
    ``room`` bytes together (``inline_images.py``)."""
    settings = runtime.settings
    origins = tuple(url.rstrip("/") for url in (settings.public_url, settings.app_url) if url)
    linked = uploads_linked(message.get("html") or "", origins)
    if not linked:
        return message, []
    service = AttachmentService(session, runtime.files, settings.max_upload_bytes)
    found = {a.id: a for a in await service.public_on_ticket(delivery.workspace_id, delivery.ticket_id, linked)} \
        if delivery.ticket_id is not None else {}
    in_text = set(uploads_shown(message["html"], origins))  # not an image only a link leads to
    shown: dict[uuid.UUID, Image] = {}
    carried: list[tuple[Attachment, str]] = []
    for attachment in (found[i] for i in linked if i in found):
        content_id = None
        if attachment.id in in_text and attachment.content_type in SHOWN_TYPES and attachment.size <= room:
            room -= attachment.size
            content_id = ascii_form(f"{attachment.id.hex}@{settings.mail_domain}")
            carried.append((attachment, content_id))
        shown[attachment.id] = Image(attachment.filename, content_id)
    html, text = for_email(message["html"], origins, shown)
    return {**message, "html": html, "text": text}, carried


async def _files_of(runtime: Runtime, session: AsyncSession, delivery: Delivery, digest: list[dict[str, Any]] | None,
                    images: list[tuple[Attachment, str]]) -> tuple[list[Attachment], list[Attachment]]:
    """The files of the replies this email carries, in the order they were attached, as
    many as fit in ``EMAIL_ATTACHMENT_BYTES`` together with its ``images`` (many servers
    refuse larger mail); and those left out, which the email names instead. An image the
    text shows is not attached a second time."""
    in_text = {str(attachment.id) for attachment, _ in images}
    ids = [*((delivery.context.get("message") or {}).get("attachment_ids") or []),
           *(i for item in digest or [] for i in item.get("attachment_ids", []))]
    ids = [i for i in ids if i not in in_text]
    if not ids:
        return [], []
    service = AttachmentService(session, runtime.files, runtime.settings.max_upload_bytes)
    files: list[Attachment] = []
    left_out: list[Attachment] = []
    room = EMAIL_ATTACHMENT_BYTES - sum(attachment.size for attachment, _ in images)
    for attachment in await service.of_ids(delivery.workspace_id, [uuid.UUID(i) for i in dict.fromkeys(ids)]):
        if attachment.size > room:
            left_out.append(attachment)
            continue
        room -= attachment.size
        files.append(attachment)
    return files, left_out


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx builds a new TLS context for every client, reading the whole CA bundle: ~40 ms
    of CPU for each webhook, Slack or SMS call here. The same settings, built once."""
    return httpx.create_ssl_context()


async def _send(runtime: Runtime, item: Outgoing) -> None:
    if item.problem:
        raise SendFailed(item.problem, permanent=True)
    if item.email is not None:
        failure: MailError | None = None
        try:
            item.refused = await runtime.mailer.send(item.email, item.envelope)
        except MailError as exc:
            item.refused, failure = exc.refused, exc
        # Its fate is the answer for the one it is for, final or not by its own code, as it
        # would be without CCs (theirs are settled apart: ``_settle_ccs``).
        to = (item.envelope[0] if item.envelope else str(item.email["To"])).lower()
        why = (item.refused or {}).get(to)
        if why is not None:
            raise SendFailed(f"recipient refused: {to}: {why}", permanent=why.permanent)
        if failure is not None:
            raise SendFailed(str(failure), permanent=failure.permanent)
        return
    assert item.url is not None
    try:
        async with asyncio.timeout(WEBHOOK_TIMEOUT_SECONDS):
            await _call(item)
    except TimeoutError:
        raise SendFailed(f"no answer within {WEBHOOK_TIMEOUT_SECONDS} s", permanent=False) from None


async def _call(item: Outgoing) -> None:
    assert item.url is not None
    try:
        await check_target(item.url, allow_private=item.allow_private)
    except UnsafeTarget as exc:
        raise SendFailed(str(exc), permanent=True) from None
    headers = {"User-Agent": "Relaydesk-Webhooks/1", "X-Relaydesk-Delivery": str(item.delivery_id)}
    if item.body is not None:
        headers["Content-Type"] = "application/json"
    if item.secret and item.body is not None:
        headers["X-Relaydesk-Signature"] = sign(item.secret, int(time.time()), item.body)
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, verify=_tls()) as client:
        try:
            request = client.build_request("POST", item.url, content=item.body, data=item.form, headers=headers)
        except Exception as exc:  # the URL as saved (a host name no IDNA encoder takes): the same at every try
            raise SendFailed(f"could not be sent: {type(exc).__name__}: {exc}", permanent=True) from None
        try:
            response = await client.send(request, auth=item.auth)
        except httpx.HTTPError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None
    if response.status_code >= 300:
        # 4xx other than 408/429 will not change by retrying; everything else may.
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        # What the far end says is wrong (an SMS provider: "unsubscribed recipient") is what to fix.
        said = " ".join(response.text[:ERROR_BODY_CHARS * 4].split())  # not a whole error page's worth
        reason = f"HTTP {response.status_code}: {said[:ERROR_BODY_CHARS]}" if said else f"HTTP {response.status_code}"
        raise SendFailed(reason, permanent=permanent)

"""Who hears about an event, and how: in-app rows (pushed live), emails and webhooks.

Runs in the ``notifications.on_event`` job, once per event (idempotent by event id).
It only *decides* and queues; sending is the delivery job's (``notifications.sender``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.channels.ccs import CcService
from relaydesk.channels.messaging import is_placeholder
from relaydesk.core.errors import NotFound
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal, Role
from relaydesk.customers.service import CustomerService, phone_digits
from relaydesk.identity.service import UserService
from relaydesk.notifications.delivery import (
    BATCHABLE_KINDS,
    SMS_REPLY,
    DeliveryService,
    PreferenceService,
    Recipient,
    wants,
)
from relaydesk.notifications.service import NotificationService
from relaydesk.notifications.default_templates import CLAIM_REMOVED_NOTES, CUSTOMER_TITLES
from relaydesk.notifications.templates import app_link, normalize_locale, status_label, supported_locale
from relaydesk.notifications.webhooks import WebhookService
from relaydesk.tickets.lifecycle import Channel, customer_facing
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.schemas import ticket_reference
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.customers.models import Customer
    from relaydesk.runtime import Runtime
    from relaydesk.tenancy.models import Workspace

EVENTS = ("ticket.created", "ticket.assigned", "message.posted", "ticket.status_changed", "ticket.priority_changed",
          "ticket.category_changed", "routing.queue_waiting", "sla.threshold_crossed", "ticket.escalated")
# The customer hears about a status change only when it is news to them.
CUSTOMER_STATUS_NEWS = {"RESOLVED", "CLOSED"}
CHAT_RECAP_DELAY = timedelta(minutes=5)
DIGEST_REPLY_ANSWERED_EVERY = timedelta(hours=1)  # at most, per address
SUMMARY_PERIOD = timedelta(days=1)  # what a daily summary counts: the day up to its sending


class Notifier:
    def __init__(self, runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID, event_id: int,
                 now: datetime, *, happened_at: datetime | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.ws = workspace_id
        self.event_id = event_id
        self.now = now
        # When what the event tells of happened: a batch's events share ``now``, and its
        # rows (in-app, digest items) are ordered and timed by this instead.
        self.happened_at = happened_at or now
        self.tickets = ticket_service(runtime, session)
        users = UserService(session, runtime.hasher)
        self.users = users
        self.agents = AgentService(session, users)
        self.teams = TeamService(session, self.agents)
        self.customers = CustomerService(session, users)
        self.notes = NotificationService(session)
        self.prefs = PreferenceService(session)
        self.deliveries = DeliveryService(session)
        self.webhooks = WebhookService(session)
        self.outbox = Outbox(session)
        self.ccs = CcService(session, self.tickets, runtime.settings.mail_domain)
        self.emails_queued = 0
        self.calls_queued = 0  # webhooks, Slack, SMS

    async def handle(self, event_type: str, payload: dict[str, Any]) -> None:
        try:
            ticket = await self.tickets.get(Principal.system(self.ws), uuid.UUID(payload["ticket_id"]))
        except NotFound:
            return  # deleted meanwhile: nobody needs telling
        self.calls_queued += await self.webhooks.queue_for_event(
            self.ws, self.event_id, event_type, payload, ticket, self.now,
            ticket_url=self._ticket_context(ticket, staff=True)["url"],
            requester=lambda: self._requester_profile(ticket))
        ref = f"{ticket_reference(ticket.number)} “{ticket.subject}”"
        match event_type:
            case "ticket.created" if payload.get("acknowledge", True):
                # Under the customer's own email, in their mail client (only an emailed-in ticket has
                # one), with whoever they copied, as Zendesk's "notify requester and CCs" does: a
                # follow-up a CC's reply opened reaches its writer this way too.
                emailed = ticket.channel == Channel.EMAIL
                await self.send(await self._requester(ticket), "ticket_created", ticket, _for_customer(ticket),
                                thread=emailed, extra={"cc": await self._ccs(ticket)} if emailed else None)
            case "ticket.assigned" if payload.get("after") and payload.get("after") != payload.get("actor_id"):
                actor = await self._name_of(payload.get("actor_id"))
                await self.send(await self._staff({uuid.UUID(payload["after"])}), "assigned", ticket,
                                f"{ref} was assigned to you", extra={"actor_name": actor})
            case "message.posted" if not payload.get("internal"):
                await self._message(ticket, ref, payload)
            case "ticket.status_changed" if payload.get("after") in CUSTOMER_STATUS_NEWS and \
                    payload.get("actor_kind") != "customer":
                await self.send(await self._requester(ticket), "status_changed", ticket,
                                _for_customer(ticket, payload["after"]),
                                extra={"old_status": customer_facing(before) if (before := payload.get("before"))
                                       else None, "new_status": payload["after"]})
            case "routing.queue_waiting":
                lead = await self.teams.lead_of(self.ws, ticket.team_id)
                team = await self._team_name(ticket.team_id)
                await self.send(await self._staff({*await self.agents.managers(self.ws), lead}), "queue_waiting",
                                ticket, f"{ref} has waited {payload['waited_minutes']} minutes for an agent",
                                body=payload.get("reason") or "",
                                extra={"waited_minutes": payload["waited_minutes"], "team_name": team})
            case "sla.threshold_crossed" if payload.get("notify", True):
                level = payload["level"]
                users = {ticket.assignee_id} if level == "warning" else {ticket.assignee_id,
                                                                         *await self._someone_above(ticket)}
                clock = payload["clock"].replace("_", " ")
                percent = _percent(payload.get("share_of_target"))
                due_at = payload.get("due_at")
                await self.send(await self._staff(users), f"sla_{level}", ticket,
                                f"{ref}: {clock} SLA {_level_word(level, percent)}",
                                body=lambda recipient: f"Due {_when(due_at, recipient.zone)}",
                                extra={"clock": payload["clock"], "percent": percent}, times={"due_at": due_at})
            case "ticket.escalated":
                level = payload["level"]
                users: set[uuid.UUID | None] = {ticket.assignee_id, *await self._someone_above(ticket)}
                if level >= 3 or payload.get("kind") in ("incident", "high_impact"):
                    users |= set(await self.agents.managers(self.ws))
                users.discard(_uuid(payload.get("actor_id")))  # who raised it knows
                await self.send(await self._staff(users), "escalated", ticket, f"{ref} escalated to level {level}",
                                body=payload.get("reason") or "",
                                extra={"level": level, "reason": payload.get("reason") or "",
                                       "system_reason": payload.get("system_reason")})

    async def _someone_above(self, ticket: Ticket) -> set[uuid.UUID]:
        """Whom an SLA breach or an escalation goes up to: the team's lead, or, for a ticket
        without a team (or a team without a lead), the workspace's managers, so it always
        reaches someone besides the agent."""
        lead = await self.teams.lead_of(self.ws, ticket.team_id)
        return {lead} if lead is not None else set(await self.agents.managers(self.ws))

    async def _message(self, ticket: Ticket, ref: str, payload: dict[str, Any]) -> None:
        author = await self._name_of(payload.get("author_id"))
        message = {"author_name": author, "text": payload.get("body_text") or "", "html": payload.get("body_html")}
        if payload.get("author_kind") == "agent" and ticket.channel == "sms":
            await self._text_back(ticket, message["text"])
        if payload.get("author_kind") == "agent":
            # This email *is* the agent's reply reaching the customer: threaded, and sent at
            # once, except in a chat, where the visitor usually reads it live; they get a
            # recap a few minutes later (in case they left).
            customer = await self._requester_profile(ticket)
            await self.send(await self._as_recipients(customer), "reply_to_customer", ticket,
                            _for_customer(ticket), body=message["text"][:300],
                            extra={"message": {**message, "attachment_ids": payload.get("attachment_ids") or []},
                                   "cc": await self._ccs(ticket)},
                            thread=True,
                            batch=CHAT_RECAP_DELAY if ticket.channel == "chat" else None)
            if customer is not None and customer.email_undeliverable_at and not is_placeholder(customer.email):
                # Otherwise the agent believes the customer has the answer. Read by the whole
                # team: in the workspace's time zone.
                bounced = _when(customer.email_undeliverable_at, await self.tickets.workspaces.timezone(self.ws))
                self.tickets.system_note(
                    ticket, f"This reply was not emailed: mail to {customer.email} bounced for good on "
                    f"{bounced}. Email reaches the customer again once they write "
                    "in from that address, or their profile is given another one.", self.now, internal=True)
        elif payload.get("author_kind") == "customer":
            if ticket.assignee_id:
                await self.send(await self._staff({ticket.assignee_id}), "reply_to_agent", ticket,
                                f"{ref}: the customer replied", body=message["text"][:300],
                                extra={"message": message})
            await self._copy_customer_reply(ticket, payload, message)

    async def _copy_customer_reply(self, ticket: Ticket, payload: dict[str, Any], message: dict[str, Any]) -> None:
        """Another customer's reply on the requester's ticket (a CC's by email, a colleague's
        in a shared organisation) goes to the requester with the CCs copied, as an agent's
        does, but not back to its writer. The requester's own replies are copied to nobody:
        they answer their CCs themselves ("reply all"). So that out-of-office responders
        cannot answer each other through us for ever, the copy says it was sent
        automatically (``relayed``: Auto-Submitted), which responders leave unanswered."""
        customer = await self._requester_profile(ticket)
        writer = _uuid(payload.get("author_id"))
        if customer is None or writer is None or customer.user_id == writer:
            return
        user = (await self.users.get_many(self.ws, {writer})).get(writer)
        copied = [cc for cc in await self._ccs(ticket) if user is None or cc["email"] != user.email]
        await self.send(await self._as_recipients(customer), "reply_to_customer", ticket, _for_customer(ticket),
                        body=message["text"][:300],
                        extra={"message": {**message, "attachment_ids": payload.get("attachment_ids") or []},
                               "cc": copied, "relayed": True},
                        thread=True, batch=CHAT_RECAP_DELAY if ticket.channel == "chat" else None)

    async def _text_back(self, ticket: Ticket, text: str) -> None:
        """An agent's answer to a texter goes back as an SMS."""
        customer = await self._requester_profile(ticket)
        if customer is None or not customer.phone or not text.strip():
            return
        for n, part in enumerate(sms_parts(text)):
            queued = await self.deliveries.queue(
                self.ws, channel="sms", kind=SMS_REPLY, recipient=phone_digits(customer.phone),
                key=f"{self.event_id}:sms" + (f":{n}" if n else ""), context={"body": part, "answer": self.event_id},
                now=self.now, ticket_id=ticket.id, key_is_new=True)
            self.calls_queued += queued is not None

    async def send(self, recipients: list[Recipient], kind: str, ticket: Ticket,
                   title: str | Callable[[str, str], str], *, body: str | Callable[[Recipient], str] = "",
                   extra: dict[str, Any] | None = None, times: dict[str, object] | None = None,
                   thread: bool = False, batch: timedelta | None = None) -> None:
        """``title``: the in-app title, or a function of (kind, locale) for one in the
        recipient's language; ``body``: the in-app text, or a function of the recipient.
        ``times``: moments for the email's context, each written in the recipient's time zone."""
        if not recipients:
            return
        choices = await self.prefs.enabled(self.ws, {r.user_id for r in recipients if r.user_id}, kind)
        workspace = await self.tickets.workspaces.get(self.ws)
        requester: Customer | None = None
        for recipient in recipients:
            if wants(choices, recipient, kind, "in_app") and recipient.user_id is not None:
                heading = title if isinstance(title, str) else title(kind, normalize_locale(recipient.locale))
                text = body if isinstance(body, str) else body(recipient)
                row = self.notes.notify_one(self.ws, recipient.user_id, kind=kind, title=heading, body=text,
                                            ticket_id=ticket.id, now=self.happened_at, event_id=self.event_id)
                self.outbox.publish(self.ws, "notification.created", self.now, notification_id=row.id,
                                    user_id=recipient.user_id, kind=kind, title=row.title, ticket_id=ticket.id)
            if recipient.address and wants(choices, recipient, kind, "email"):
                requester = requester or await self._requester_profile(ticket)
                context = {"workspace_name": workspace.name, "recipient_name": recipient.name,
                           "ticket": {**self._ticket_context(ticket, staff=recipient.staff),
                                      "requester_name": requester.name if requester is not None else ""},
                           **(extra or {}), **{key: _when(at, recipient.zone) for key, at in (times or {}).items()}}
                if recipient.user_id is not None:
                    context["unsubscribe_url"] = app_link(self.settings.app_url, "/settings/notifications")
                if thread:
                    context["thread"] = await self.tickets.email_thread_ids(self.ws, ticket.id)
                if batch is None and kind in BATCHABLE_KINDS:
                    batch = timedelta(seconds=self.settings.notification_batch_seconds)
                queued = await self.deliveries.queue(
                    self.ws, channel="email", kind=kind, recipient=recipient.address,
                    key=f"{self.event_id}:{kind}:{recipient.user_id or recipient.address}", context=context,
                    now=self.now, user_id=recipient.user_id, ticket_id=ticket.id, locale=recipient.locale,
                    batch_window=batch, key_is_new=True, happened_at=self.happened_at)
                self.emails_queued += queued is not None

    # -- who --------------------------------------------------------------------------------
    async def _requester(self, ticket: Ticket) -> list[Recipient]:
        return await self._as_recipients(await self._requester_profile(ticket))

    async def _as_recipients(self, customer: Customer | None) -> list[Recipient]:
        if customer is None:
            return []
        address = None if customer.email_undeliverable_at else customer.email
        return [Recipient(address, customer.name, normalize_locale(customer.language), customer.user_id, staff=False,
                          zone=await self.tickets.workspaces.timezone(self.ws, customer.timezone))]

    async def _requester_profile(self, ticket: Ticket) -> Customer | None:
        customer = (await self.customers.get_many(self.ws, {ticket.requester_id})).get(ticket.requester_id)
        return None if customer is None or customer.deleted_at is not None else customer

    async def _ccs(self, ticket: Ticket) -> list[dict[str, str]]:
        """Whom the reply's email copies: the ticket's CCs, as they are now (frozen into the
        delivery, so a retry goes to the same people), but not an address that bounced."""
        copied = []
        for cc in await self.ccs.copied_on(self.ws, ticket.id):
            if cc.undeliverable_at is not None:
                continue
            profile = await self.customers.find_by_email(self.ws, cc.address)
            if profile is None or profile.email_undeliverable_at is None:
                copied.append({"email": cc.address, "name": cc.name or ""})
        return copied

    async def _staff(self, user_ids: set[uuid.UUID | None]) -> list[Recipient]:
        wanted = {u for u in user_ids if u is not None}
        users = await self.users.get_many(self.ws, wanted)
        languages = await self.agents.languages(self.ws, wanted)
        zones = await self.agents.timezones(self.ws, wanted)
        return [Recipient(u.email, u.name, staff_locale(languages.get(u.id, [])), u.id, staff=True,
                          zone=await self.tickets.workspaces.timezone(self.ws, zones.get(u.id)))
                for u in sorted(users.values(), key=lambda u: u.id) if u.is_active]

    async def _name_of(self, user_id: object) -> str:
        if not user_id:
            return ""
        user = (await self.users.get_many(self.ws, {uuid.UUID(str(user_id))})).get(uuid.UUID(str(user_id)))
        return user.name if user else ""

    async def _team_name(self, team_id: uuid.UUID | None) -> str:
        if team_id is None:
            return ""
        try:
            return (await self.teams.get(Principal.system(self.ws), team_id))["name"]
        except NotFound:
            return ""

    def _ticket_context(self, ticket: Ticket, *, staff: bool) -> dict[str, Any]:
        ref = ticket_reference(ticket.number)
        path = f"/tickets/{ref}" if staff else f"/portal/tickets/{ref}"
        return {"id": str(ticket.id), "reference": ref, "subject": ticket.subject,
                "status": ticket.status if staff else customer_facing(ticket.status),
                "priority": ticket.priority, "url": app_link(self.settings.app_url, path)}


def staff_locale(languages: list[str]) -> str:
    """The first of an agent's languages that emails are written in; English if none is."""
    return next(filter(None, map(supported_locale, languages)), "en")


def _level_word(level: str, percent: str) -> str:
    if level == "breached" or not percent:  # an event from before crossings carried their share
        return level
    return f"at {percent} % — {level}"


def _percent(share: object) -> str:
    """0.5 -> "50"; 0.875 -> "87.5"."""
    try:
        return f"{round(float(str(share)) * 100, 1):g}"
    except ValueError:
        return ""


def _when(value: object, zone: str = "UTC") -> str:
    """A moment as its reader's clock shows it, the zone named by its offset from UTC
    (11:22 alone could be anyone's): "2026-12-06 11:22 (UTC+07:00)", or "... 04:22 UTC"."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        zone, local = "UTC", at.astimezone(UTC)
    if zone == "UTC":
        return f"{local:%Y-%m-%d %H:%M} UTC"
    offset = f"{local:%z}"
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:5]})"


def _day_covered(start: datetime, end: datetime, zone: str) -> str:
    """The date on the reader's calendar that most of the period falls in: sent at 08:00
    UTC, the last 24 hours are all of yesterday in Los Angeles and mostly today in Hanoi."""
    middle = start + (end - start) / 2
    try:
        return f"{middle.astimezone(ZoneInfo(zone)):%Y-%m-%d}"
    except (ZoneInfoNotFoundError, ValueError):
        return f"{middle.astimezone(UTC):%Y-%m-%d}"


async def send_daily_summaries(runtime: Runtime, now: datetime) -> int:
    """Each team lead's summary of their team's last day, once a day (idempotent by date).
    A transaction per workspace: one for the whole deployment held SQLite's only writer
    for as long as every workspace's summaries took."""
    if now.hour != runtime.settings.daily_summary_hour_utc:
        return 0
    async with runtime.db.read_session() as session:
        workspaces = await ticket_service(runtime, session).workspaces.all()
    queued = 0
    for workspace in workspaces:
        async with runtime.transaction() as session:
            queued += await _queue_summaries(runtime, session, workspace, now)
    return queued


async def _queue_summaries(runtime: Runtime, session: AsyncSession, workspace: Workspace, now: datetime) -> int:
    tickets = ticket_service(runtime, session)
    users = UserService(session, runtime.hasher)
    agents = AgentService(session, users)
    prefs = PreferenceService(session)
    deliveries = DeliveryService(session)
    day = now.strftime("%Y-%m-%d")
    teams = await TeamService(session, agents).list(Principal.system(workspace.id))
    leads = await users.get_many(workspace.id, {t["lead_id"] for t in teams if t.get("lead_id")})
    languages = await agents.languages(workspace.id, set(leads))
    zones = await agents.timezones(workspace.id, set(leads))
    queued = 0
    for team in teams:
        lead = leads.get(team["lead_id"]) if team.get("lead_id") else None
        if lead is None or not lead.is_active:
            continue
        me = Recipient(lead.email, lead.name, staff_locale(languages.get(lead.id, [])), lead.id, staff=True,
                       zone=await tickets.workspaces.timezone(workspace.id, zones.get(lead.id)))
        if not wants(await prefs.enabled(workspace.id, {lead.id}, "daily_summary"), me, "daily_summary", "email"):
            continue
        summary = await tickets.team_summary(workspace.id, team["id"], now - SUMMARY_PERIOD)
        oldest = [{"reference": ticket_reference(t.number), "subject": t.subject, "status": t.status,
                   "priority": t.priority,
                   "url": app_link(runtime.settings.app_url, f"/tickets/{ticket_reference(t.number)}")}
                  for t in summary["oldest"]]
        context = {"workspace_name": workspace.name, "recipient_name": lead.name,
                   "date": _day_covered(now - SUMMARY_PERIOD, now, me.zone),
                   "team_name": team["name"], "counts": summary["counts"], "oldest": oldest,
                   "unsubscribe_url": app_link(runtime.settings.app_url, "/settings/notifications")}
        queued += await deliveries.queue(
            workspace.id, channel="email", kind="daily_summary", recipient=lead.email,
            key=f"daily:{team['id']}:{day}", context=context, now=now, user_id=lead.id) is not None
    return queued


async def addressee(runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID, address: str
                     ) -> tuple[str, str, uuid.UUID | None]:
    """Who has this address, as far as the workspace knows: their name, the language to
    write to them in, and their user id when they are staff."""
    users = UserService(session, runtime.hasher)
    user = await users.find_by_email(workspace_id, address)
    if user is not None and user.role != Role.CUSTOMER.value:
        languages = await AgentService(session, users).languages(workspace_id, {user.id})
        return user.name, staff_locale(languages.get(user.id, [])), user.id
    if (customer := await CustomerService(session, users).find_by_email(workspace_id, address)) is not None:
        return customer.name, normalize_locale(customer.language), None
    return "", "en", None


async def tell_password_changed(runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID, event_id: int,
                                payload: dict[str, Any], now: datetime) -> bool:
    """Tells someone their password changed (``user.password_changed``), whatever their
    notification choices, as a sign-in alert is: if it was not them, this is how they
    learn it. Whether an email was queued."""
    user_id = uuid.UUID(payload["user_id"])
    user = (await UserService(session, runtime.hasher).get_many(workspace_id, {user_id})).get(user_id)
    if user is None:
        return False
    workspace = await ticket_service(runtime, session).workspaces.get(workspace_id)
    name, locale, _ = await addressee(runtime, session, workspace_id, user.email)
    return await DeliveryService(session).queue(
        workspace_id, channel="email", kind="account_changed", recipient=user.email,
        key=f"account_changed:{event_id}:{user.email}", context={
            "workspace_name": workspace.name, "recipient_name": name or user.name, "change": "password",
            "reset_url": app_link(runtime.settings.app_url, "/forgot-password")},
        now=now, user_id=user.id, locale=locale, key_is_new=True) is not None


async def tell_email_changed(runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID, event_id: int,
                             payload: dict[str, Any], now: datetime) -> bool:
    """Tells a customer, at the address staff took off their profile and at the new one
    (``customer.email_changed``), that their email changed: the old address is where they
    learn it if it was not their wish. Whether an email was queued."""
    customer_id = uuid.UUID(payload["customer_id"])
    profiles = await CustomerService(session, UserService(session, runtime.hasher)).get_many(workspace_id,
                                                                                         {customer_id})
    profile = profiles.get(customer_id)
    workspace = await ticket_service(runtime, session).workspaces.get(workspace_id)
    queued = False
    for address in dict.fromkeys((payload["old_email"], payload["new_email"])):
        queued |= await DeliveryService(session).queue(
            workspace_id, channel="email", kind="account_changed", recipient=address,
            key=f"account_changed:{event_id}:{address}", context={
                "workspace_name": workspace.name, "recipient_name": profile.name if profile else "",
                "change": "email", "old_email": payload["old_email"], "new_email": payload["new_email"],
                "reset_url": ""},
            now=now, locale=normalize_locale(profile.language if profile else None), key_is_new=True) is not None
    return queued


async def refuse_digest_reply(runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID,
                              payload: dict[str, Any], now: datetime) -> bool:
    """Answers an email that replied to one of ours about several tickets (inbound email
    ignored it: ``email.digest_reply_refused``), so its writer knows it reached nobody and
    how to answer instead; in their language. Whether an email was queued.
    Once an hour at most: our answer is about no one ticket either, so answering it (or a
    responder that ignores Auto-Submitted) would be refused again, and again."""
    deliveries = DeliveryService(session)
    address = payload["address"]
    if await deliveries.queued_since(workspace_id, "digest_reply_refused", address, now - DIGEST_REPLY_ANSWERED_EVERY):
        return False
    name, locale, user_id = await addressee(runtime, session, workspace_id, address)
    workspace = await ticket_service(runtime, session).workspaces.get(workspace_id)
    context = {"workspace_name": workspace.name, "recipient_name": name, "subject": payload.get("subject") or "",
               "app_url": app_link(runtime.settings.app_url, "/tickets")}
    queued = await deliveries.queue(
        workspace_id, channel="email", kind="digest_reply_refused", recipient=address,
        key=f"digest_reply_refused:{payload['inbound_id']}", context=context, now=now, user_id=user_id,
        locale=locale)
    return queued is not None


async def tell_claim_removed(runtime: Runtime, session: AsyncSession, workspace_id: uuid.UUID, event_id: int,
                             payload: dict[str, Any], now: datetime) -> bool:
    """Tells a workspace's admins that another workspace verified an address theirs had
    claimed (``mailbox.claim_removed``): it vanished from their mailboxes, and its mail
    goes elsewhere now. In the app and by email, whatever their notification choices, as
    a sign-in alert is: a workspace that counts on the address must learn it lost it.
    Whether an email was queued."""
    users = UserService(session, runtime.hasher)
    admins = [u for u in await users.list_by_roles(workspace_id, {Role.ADMIN}, after=None, limit=500) if u.is_active]
    if not admins:
        return False
    languages = await AgentService(session, users).languages(workspace_id, {u.id for u in admins})
    workspace = await ticket_service(runtime, session).workspaces.get(workspace_id)
    notes, outbox, deliveries = NotificationService(session), Outbox(session), DeliveryService(session)
    address = payload["address"]
    queued = False
    for admin in admins:
        locale = staff_locale(languages.get(admin.id, []))
        title, text = (words.format(address=address) for words in CLAIM_REMOVED_NOTES[locale])
        row = notes.notify_one(workspace_id, admin.id, kind="mailbox_claim_removed", title=title, body=text,
                               now=now, event_id=event_id)
        outbox.publish(workspace_id, "notification.created", now, notification_id=row.id, user_id=admin.id,
                       kind=row.kind, title=row.title, ticket_id=None)
        queued |= await deliveries.queue(
            workspace_id, channel="email", kind="mailbox_claim_removed", recipient=admin.email,
            key=f"mailbox_claim_removed:{event_id}:{admin.id}", context={
                "workspace_name": workspace.name, "recipient_name": admin.name, "address": address},
            now=now, user_id=admin.id, locale=locale, key_is_new=True) is not None
    return queued


SMS_MAX = 1600  # characters in one message; the providers split it into segments themselves
SMS_MAX_PARTS = 10


def sms_parts(text: str) -> list[str]:
    """A long answer as several texts, cut between words and numbered ("(1/3) ..."), so
    the customer gets all of it, in an order they can follow; beyond ten texts, the rest
    is waiting on the ticket."""
    text = text.strip()
    if len(text) <= SMS_MAX:
        return [text]
    room = SMS_MAX - len(f"({SMS_MAX_PARTS}/{SMS_MAX_PARTS}) ")
    parts: list[str] = []
    while text and len(parts) < SMS_MAX_PARTS:
        if len(text) <= room:
            cut = len(text)
        else:
            cut = text.rfind(" ", room // 2, room + 1)
            cut = cut if cut > 0 else room
        parts.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        parts[-1] = parts[-1][:room - 60].rstrip() + " … (the rest is waiting on your request)"
    return [f"({n}/{len(parts)}) {part}" for n, part in enumerate(parts, 1)]


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _for_customer(ticket: Ticket, status: str | None = None) -> Callable[[str, str], str]:
    """A customer's in-app title, in their language."""
    def title(kind: str, locale: str) -> str:
        label = status_label(status, locale) if status else ""
        return CUSTOMER_TITLES[locale][kind].format(ref=ticket_reference(ticket.number),
                                                    status=label.lower() if locale == "en" else label)

    return title

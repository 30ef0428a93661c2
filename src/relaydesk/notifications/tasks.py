"""The notification jobs: deciding who hears about each event, and sending what is due."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from relaydesk.agents.service import AgentService
from relaydesk.channels.ccs import CcService
from relaydesk.core.scheduler import Periodic
from relaydesk.core.uow import after_commit
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.notifications.delivery import EMAIL_CHANNELS, HTTP_CHANNELS, PreferenceService
from relaydesk.notifications.notifier import (
    EVENTS,
    Notifier,
    refuse_digest_reply,
    send_daily_summaries,
    tell_claim_removed,
    tell_email_changed,
    tell_password_changed,
)
from relaydesk.notifications.account_mail import send_password_reset
from relaydesk.notifications.sender import deliver_due
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.core.outbox import Event
    from relaydesk.runtime import Runtime


def call_out_after_commit(runtime: Runtime, session: AsyncSession) -> None:
    """Wakes the job that sends webhook, Slack and SMS calls once ``session`` commits what
    it queued (the periodic scan would only take it within ``delivery_scan_seconds``)."""
    after_commit(session, "notifications.call_out", lambda: runtime.jobs.enqueue("notifications.call_out"))


def send_after_commit(runtime: Runtime, session: AsyncSession, channels: Iterable[str]) -> None:
    """Wakes the jobs that send ``channels`` once ``session`` commits what it put back to
    be sent (an admin's retry): at once, not at the next periodic scan."""
    wanted = set(channels)
    if wanted & EMAIL_CHANNELS:
        after_commit(session, "notifications.deliver", lambda: runtime.jobs.enqueue("notifications.deliver"))
    if wanted & HTTP_CHANNELS:
        call_out_after_commit(runtime, session)


def install(runtime: Runtime) -> list[Periodic]:
    def delivery_job(name: str, channels: frozenset[str]) -> Callable[[], Awaitable[None]]:
        """Registers the job that sends ``channels`` (each kind in its own job: a webhook
        that answers only at its timeout must not hold up anyone's email) and returns
        what wakes it."""
        # In one process: whether the job is queued and has not yet taken the writer.
        # Deliveries committed meanwhile are due when it claims, so it takes them too, and
        # their commits need not queue a job each (under load that was a round of one or
        # two emails per consumer batch, each round two transactions).
        waiting = False

        async def kick() -> None:
            nonlocal waiting
            if runtime.jobs.in_process:
                if waiting:
                    return
                waiting = True
            await runtime.jobs.enqueue(name)

        def claiming() -> None:
            nonlocal waiting
            waiting = False

        async def deliver() -> int:
            """Send what is due, round after round while rounds are full."""
            sent = 0
            try:
                for _ in range(20):  # bounded: the next run picks up what is left
                    batch = await deliver_due(runtime, channels, limit=100, claiming=claiming)
                    sent += batch
                    if batch < 100:
                        break
            finally:
                claiming()  # a round that failed early must not leave later commits waiting on it
            return sent

        runtime.jobs.register(name, deliver)
        return kick

    kick_emails = delivery_job("notifications.deliver", EMAIL_CHANNELS)
    kick_calls = delivery_job("notifications.call_out", HTTP_CHANNELS)

    async def on_event(session: AsyncSession, event: Event, now: datetime) -> None:
        """notifications.on_event: in-app rows, emails and webhooks for one event."""
        notifier = Notifier(runtime, session, event.workspace_id, event.id, now, happened_at=event.happened_at(now))
        await notifier.handle(event.type, event.payload)
        if notifier.emails_queued:
            after_commit(session, "notifications.deliver", kick_emails)
        if notifier.calls_queued:
            after_commit(session, "notifications.call_out", kick_calls)

    async def on_digest_reply(session: AsyncSession, event: Event, now: datetime) -> None:
        """notifications.on_digest_reply: tells who answered a digest by email that it reached nobody."""
        if await refuse_digest_reply(runtime, session, event.workspace_id, event.payload, now):
            after_commit(session, "notifications.deliver", kick_emails)

    async def on_claim_removed(session: AsyncSession, event: Event, now: datetime) -> None:
        """notifications.on_claim_removed: tells a workspace's admins another one verified an address it claimed."""
        if await tell_claim_removed(runtime, session, event.workspace_id, event.id, event.payload, now):
            after_commit(session, "notifications.deliver", kick_emails)

    async def on_password_changed(session: AsyncSession, event: Event, now: datetime) -> None:
        """notifications.on_password_changed: tells someone their password changed."""
        if await tell_password_changed(runtime, session, event.workspace_id, event.id, event.payload, now):
            after_commit(session, "notifications.deliver", kick_emails)

    async def on_email_changed(session: AsyncSession, event: Event, now: datetime) -> None:
        """notifications.on_email_changed: tells a customer, at both addresses, that staff changed theirs."""
        if await tell_email_changed(runtime, session, event.workspace_id, event.id, event.payload, now):
            after_commit(session, "notifications.deliver", kick_emails)

    async def on_password_reset_requested(event_id: int, workspace_id: str, type: str,
                                          payload: dict[str, Any]) -> str | None:
        """notifications.send_password_reset: a new reset token, emailed to the address."""
        return await send_password_reset(runtime, uuid.UUID(workspace_id), payload["email"])

    async def daily_summary() -> int:
        """notifications.daily_summary: run hourly; at the configured hour each team lead's summary."""
        queued = await send_daily_summaries(runtime, runtime.clock.now())
        if queued:
            await runtime.jobs.enqueue("notifications.deliver")
        return queued

    async def look_ahead(session: AsyncSession, events: list[Event]) -> None:
        """The people a batch's events will tell, and their notification choices, read
        together: each event would read its own (the customer an acknowledgement or a
        reply goes to, the agent a ticket is assigned to or a customer replied to)."""
        customers: dict[uuid.UUID, set[uuid.UUID]] = {}
        staff: dict[uuid.UUID, set[uuid.UUID]] = {}
        answered: dict[uuid.UUID, set[uuid.UUID]] = {}  # tickets whose CCs an agent's reply or an ack copies
        for e in events:
            payload = e.payload
            told_staff = None
            if (e.type == "message.posted" and payload.get("author_kind") == "agent" and not payload.get("internal")) \
                    or (e.type == "ticket.created" and payload.get("channel") == "email"
                        and payload.get("acknowledge", True)):
                answered.setdefault(e.workspace_id, set()).add(uuid.UUID(payload["ticket_id"]))
            if e.type == "ticket.assigned":
                told_staff = payload.get("after")
            elif e.type in ("ticket.created", "ticket.status_changed", "message.posted") and \
                    not payload.get("internal"):
                if payload.get("requester_id"):
                    customers.setdefault(e.workspace_id, set()).add(uuid.UUID(payload["requester_id"]))
                if e.type == "message.posted" and payload.get("author_kind") == "customer":
                    told_staff = payload.get("assignee_id")
            if told_staff:
                staff.setdefault(e.workspace_id, set()).add(uuid.UUID(told_staff))
        for ws, tickets in answered.items():
            if len(tickets) > 1:
                await CcService(session, ticket_service(runtime, session), runtime.settings.mail_domain).read_ahead(
                    ws, tickets)
        if sum(map(len, customers.values())) + sum(map(len, staff.values())) < 2:
            return
        users = UserService(session, runtime.hasher)
        for ws in customers.keys() | staff.keys():
            people = set(staff.get(ws, ()))
            if people:
                await users.get_many(ws, people)
                await AgentService(session, users).languages(ws, people)  # the language they are written to in
            if customers.get(ws):
                found = await CustomerService(session, users).get_many(ws, customers[ws])
                people |= {c.user_id for c in found.values() if c.user_id is not None}
            await PreferenceService(session).load_ahead(ws, people)

    runtime.dispatcher.consumers.add("notifications.on_event", EVENTS, on_event, prepare=look_ahead)
    runtime.dispatcher.consumers.add("notifications.on_digest_reply", ("email.digest_reply_refused",),
                                     on_digest_reply)
    runtime.dispatcher.consumers.add("notifications.on_claim_removed", ("mailbox.claim_removed",),
                                     on_claim_removed)
    runtime.dispatcher.consumers.add("notifications.on_password_changed", ("user.password_changed",),
                                     on_password_changed)
    runtime.dispatcher.consumers.add("notifications.on_email_changed", ("customer.email_changed",),
                                     on_email_changed)
    runtime.jobs.register("notifications.send_password_reset", on_password_reset_requested)
    runtime.dispatcher.subscribe({"user.password_reset_requested": ["notifications.send_password_reset"]})
    runtime.jobs.register("notifications.daily_summary", daily_summary)
    return [Periodic("notifications.deliver", runtime.settings.delivery_scan_seconds),
            Periodic("notifications.call_out", runtime.settings.delivery_scan_seconds),
            Periodic("notifications.daily_summary", 3600)]

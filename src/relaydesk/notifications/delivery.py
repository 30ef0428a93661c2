"""Deliveries: everything Relaydesk sends (email, webhooks), queued, retried and logged.

A delivery is queued in the transaction that decided it, under an idempotency key, so
an event handled twice queues it once. Sending happens later, in a job: each delivery
is first *claimed* (status ``sending`` and a claim deadline, committed) and only then
sent; a process that dies mid-send leaves a claim that runs out and is retried under
the same key, hence the same Message-ID. Failures back off exponentially; after
``delivery_max_attempts`` (or a permanent refusal) the delivery is given up as ``dead``,
until an admin retries it (``retry``, ``retry_dead``) once what refused it is fixed.
Every attempt is appended to the delivery's log, which admins read through the API.

Replies, status changes, assignments and queue-wait alerts to one person are *batchable*: they wait a short window,
and whatever is pending for that person when the first falls due leaves as one digest.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.service import stored_form
from relaydesk.core.errors import Conflict, NotFound
from relaydesk.notifications.models import Delivery, NotificationPreference

CLAIM_SECONDS = 300  # a send that has not finished in this long is presumed dead
# A round starts no send after this long from its claim, so that the send under way then
# (an HTTP call has WEBHOOK_TIMEOUT_SECONDS in all, an email the relay's 30-s step
# timeouts) ends before the claim runs out and no other round takes it and sends it too.
ROUND_SECONDS = 150
# Email and the HTTP targets go in rounds (and jobs) of their own: a slow webhook must
# not hold up anyone's email.
EMAIL_CHANNELS = frozenset({"email"})
HTTP_CHANNELS = frozenset({"webhook", "slack", "sms"})

# Who gets which email unless they say otherwise.
CUSTOMER_EMAIL_KINDS = frozenset({"ticket_created", "reply_to_customer", "status_changed"})
STAFF_EMAIL_KINDS = frozenset({"assigned", "reply_to_agent", "sla_warning", "sla_critical", "sla_breached",
                               "escalated", "queue_waiting", "daily_summary"})
# A queue backlog alerts on many tickets in one sweep: its alerts are batched too.
BATCHABLE_KINDS = frozenset({"reply_to_agent", "status_changed", "assigned", "queue_waiting"})
CHANNELS = ("in_app", "email")
# The kinds of delivery besides the notification emails' and the webhook events'.
SMS_REPLY = "reply_sms"
WEBHOOK_PING = "ping"
# What becomes of a delivery (``Delivery.status``): what the delivery log can be filtered by.
STATUSES = ("pending", "sending", "sent", "failed", "dead", "batched", "suppressed")
# What an admin may send again at once: given up, or waiting out a back-off.
RETRYABLE = frozenset({"dead", "failed"})
RETRY_AT_MOST = 500  # dead deliveries one bulk retry takes (the next call takes the rest)


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str | None  # None: no email (e.g. a bounced address)
    name: str
    locale: str
    user_id: uuid.UUID | None
    staff: bool
    zone: str = "UTC"  # the time zone their times are written in


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min ... capped at an hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def attempts_since_retried(delivery: Delivery) -> int:
    """The attempts that count toward giving up: those since an admin last retried it
    (each retry gets the whole allowance again). ``attempts`` itself only grows, since it
    is what tells one claim of a delivery from the next."""
    for entry in reversed(delivery.attempt_log):
        if entry.get("outcome") == "retried":
            return delivery.attempts - int(entry.get("attempts", 0))
    return delivery.attempts


def retried_after_giving_up(delivery: Delivery) -> bool:
    return any(e.get("outcome") == "retried" and e.get("was") == "dead" for e in delivery.attempt_log)


# Hot statements, built once (docs/architecture.md, "Statements built once").
_CHOICES = select(NotificationPreference).where(
    NotificationPreference.workspace_id == bindparam("workspace_id"),
    NotificationPreference.user_id.in_(bindparam("user_ids", expanding=True)),
    NotificationPreference.kind == bindparam("kind"))
_CHOICES_ANY_KIND = select(NotificationPreference).where(
    NotificationPreference.workspace_id == bindparam("workspace_id"),
    NotificationPreference.user_id.in_(bindparam("user_ids", expanding=True)))
_AHEAD = "preferences_ahead"  # session.info: (workspace, user) -> their choices, read for a whole batch

_DUE = (select(Delivery).where(Delivery.next_attempt_at.is_not(None), Delivery.next_attempt_at <= bindparam("now"),
                               Delivery.channel.in_(bindparam("channels", expanding=True)))
        .order_by(Delivery.next_attempt_at).limit(bindparam("limit")))
_DUE_UNCLAIMED = _DUE.with_for_update(skip_locked=True)


class PreferenceService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enabled(self, workspace_id: uuid.UUID, user_ids: set[uuid.UUID], kind: str
                      ) -> dict[tuple[uuid.UUID, str], bool]:
        """Each (user, channel) choice that differs from the default, for one kind."""
        if not user_ids:
            return {}
        ahead: dict[tuple[uuid.UUID, uuid.UUID], list[NotificationPreference]] = self.session.info.get(_AHEAD, {})
        if all((workspace_id, u) in ahead for u in user_ids):
            return {(p.user_id, p.channel): p.enabled for u in user_ids for p in ahead[(workspace_id, u)]
                    if p.kind == kind}
        rows = await self.session.execute(_CHOICES, {"workspace_id": workspace_id, "user_ids": list(user_ids),
                                                     "kind": kind})
        return {(p.user_id, p.channel): p.enabled for (p,) in rows}

    async def load_ahead(self, workspace_id: uuid.UUID, user_ids: set[uuid.UUID]) -> None:
        """Every choice of these users, for a batch of events about to ask ``enabled`` for
        each: one query instead of one per event."""
        ahead = self.session.info.setdefault(_AHEAD, {})
        for u in user_ids:
            ahead[(workspace_id, u)] = []
        for (p,) in await self.session.execute(_CHOICES_ANY_KIND, {"workspace_id": workspace_id,
                                                                   "user_ids": list(user_ids)}):
            ahead[(workspace_id, p.user_id)].append(p)

    async def of_user(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> list[NotificationPreference]:
        return list(await self.session.scalars(select(NotificationPreference).where(
            NotificationPreference.workspace_id == workspace_id, NotificationPreference.user_id == user_id)))

    async def set(self, workspace_id: uuid.UUID, user_id: uuid.UUID, kind: str, channel: str, enabled: bool) -> None:
        row = await self.session.get(NotificationPreference, (user_id, kind, channel))
        if row is None:
            self.session.add(NotificationPreference(workspace_id=workspace_id, user_id=user_id, kind=kind,
                                                    channel=channel, enabled=enabled))
        else:
            row.enabled = enabled


def wants(choices: dict[tuple[uuid.UUID, str], bool], recipient: Recipient, kind: str, channel: str) -> bool:
    if recipient.user_id is not None and (recipient.user_id, channel) in choices:
        return choices[(recipient.user_id, channel)]
    if channel == "in_app":
        return recipient.user_id is not None
    return kind in (STAFF_EMAIL_KINDS if recipient.staff else CUSTOMER_EMAIL_KINDS)


class DeliveryService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def queue(self, workspace_id: uuid.UUID, *, channel: str, kind: str, recipient: str, key: str,
                    context: dict[str, Any], now: datetime, user_id: uuid.UUID | None = None,
                    ticket_id: uuid.UUID | None = None, target_id: uuid.UUID | None = None, locale: str = "en",
                    batch_window: timedelta | None = None, key_is_new: bool = False,
                    happened_at: datetime | None = None) -> Delivery | None:
        """Queue one delivery; None when this key was queued before. ``key_is_new``: the
        key names an event whose consumer is idempotent already (so it cannot have been
        queued before): no need to look. ``happened_at``: when what it tells of happened
        (by default ``now``), which orders and times it in a digest."""
        if not key_is_new and await self.session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key)):
            return None
        delivery = Delivery(
            workspace_id=workspace_id, channel=channel, kind=kind, recipient=recipient, user_id=user_id,
            ticket_id=ticket_id, target_id=target_id, idempotency_key=key, status="pending",
            batchable=batch_window is not None, locale=locale, context=context, attempts=0, attempt_log=[],
            next_attempt_at=now + (batch_window or timedelta(0)), created_at=happened_at or now,
        )
        self.session.add(delivery)
        return delivery

    async def queued_since(self, workspace_id: uuid.UUID, kind: str, recipient: str, since: datetime) -> bool:
        """Whether an email of ``kind`` was queued for ``recipient`` at or after ``since``."""
        return await self.session.scalar(select(Delivery.id).where(
            Delivery.workspace_id == workspace_id, Delivery.kind == kind, Delivery.recipient == recipient,
            Delivery.created_at >= since).limit(1)) is not None

    async def claim_due(self, now: datetime, *, limit: int, channels: frozenset[str], is_sqlite: bool
                        ) -> list[Delivery]:
        """Take the due deliveries for sending; the caller commits before it sends. Each
        claim counts an attempt, so ``attempts`` tells one claim of a delivery from the next."""
        stmt = _DUE if is_sqlite else _DUE_UNCLAIMED
        due, batches = [], set()
        for delivery in await self.session.scalars(stmt, {"now": now, "limit": limit, "channels": list(channels)}):
            if delivery.batchable:
                # One per batch: the rest of it leaves inside this one (``batch_mates``).
                batch = (delivery.workspace_id, delivery.recipient, delivery.channel,
                         None if delivery.kind in STAFF_EMAIL_KINDS else delivery.ticket_id)
                if batch in batches:
                    continue
                batches.add(batch)
            due.append(delivery)
        for delivery in due:
            delivery.status = "sending"
            delivery.attempts += 1
            delivery.next_attempt_at = now + timedelta(seconds=CLAIM_SECONDS)
        return due

    async def batch_mates(self, delivery: Delivery, now: datetime) -> list[Delivery]:
        """Other batchable emails waiting for the same person: they leave with this one.
        A customer's only join others about the same ticket (and ``claim_due`` batches
        them so), so the email stays in that ticket's conversation and answering it
        reaches the ticket (a digest of several tickets could belong to none).

        Locked, skipping those another round holds (its own claim, or its mates): rounds
        at once on PostgreSQL otherwise each took the other's claimed email as a mate and
        waited on each other. What one round skips leaves with another."""
        if not delivery.batchable:
            return []
        stmt = select(Delivery).where(
            Delivery.workspace_id == delivery.workspace_id, Delivery.recipient == delivery.recipient,
            Delivery.channel == delivery.channel, Delivery.status == "pending", Delivery.batchable.is_(True),
            Delivery.id != delivery.id)
        if delivery.kind not in STAFF_EMAIL_KINDS:
            stmt = stmt.where(Delivery.ticket_id == delivery.ticket_id)
        mates = list(await self.session.scalars(stmt.order_by(Delivery.created_at, Delivery.id).limit(50)
                                                .with_for_update(skip_locked=True)))
        for mate in mates:
            mate.status = "batched"
            mate.batched_into_id = delivery.id
            mate.next_attempt_at = None
            mate.sent_at = now
        return mates

    def succeeded(self, delivery: Delivery, now: datetime, *, note: str = "sent") -> None:
        delivery.status = "sent"
        delivery.sent_at = now
        delivery.next_attempt_at = None
        delivery.last_error = None
        delivery.attempt_log = [*delivery.attempt_log, {"at": now.isoformat(), "outcome": note}]

    def failed(self, delivery: Delivery, now: datetime, error: str, *, permanent: bool, max_attempts: int) -> None:
        counted = attempts_since_retried(delivery)
        give_up = permanent or counted >= max_attempts
        delivery.status = "dead" if give_up else "failed"
        delivery.last_error = error[:2000]
        delivery.next_attempt_at = None if give_up else now + backoff(counted)
        delivery.attempt_log = [*delivery.attempt_log, {"at": now.isoformat(), "outcome": "failed",
                                                        "error": error[:500], "will_retry": not give_up}]

    def copy_to(self, delivery: Delivery, address: str, error: str, now: datetime, *, max_attempts: int) -> Delivery:
        """``delivery``'s email, still owed to ``address``, one of its CCs that the relay
        refused for now (``error``) on the attempt just made: a delivery of its own, the same
        email to that address alone, retried after a back-off as any other (that attempt
        counted)."""
        key = hashlib.sha256(address.encode()).hexdigest()[:32]
        copy = Delivery(
            workspace_id=delivery.workspace_id, channel=delivery.channel, kind=delivery.kind, recipient=address,
            ticket_id=delivery.ticket_id, idempotency_key=f"{delivery.id.hex}:cc:{key}", status="sending",
            batchable=False, locale=delivery.locale, message_id=delivery.message_id, attempts=1, attempt_log=[],
            context={**delivery.context, "alone": True,
                     "copy_of": {"nonce": delivery.id.hex, "to": delivery.recipient}},
            created_at=now)
        self.failed(copy, now, error, permanent=False, max_attempts=max_attempts)
        self.session.add(copy)
        return copy

    def put_back(self, delivery: Delivery, now: datetime) -> None:
        """Claimed but not sent, its round out of time: due again at once, the attempt
        not counted."""
        delivery.attempts -= 1
        delivery.status = "failed"  # never "pending": a pending one could be batched into another
        delivery.next_attempt_at = now
        delivery.attempt_log = [*delivery.attempt_log, {"at": now.isoformat(), "outcome": "put back",
                                                        "error": "not sent: its round ran out of time",
                                                        "will_retry": True}]

    def suppressed(self, delivery: Delivery, now: datetime, reason: str) -> None:
        delivery.status = "suppressed"
        delivery.next_attempt_at = None
        delivery.last_error = reason
        delivery.attempt_log = [*delivery.attempt_log, {"at": now.isoformat(), "outcome": "suppressed",
                                                        "error": reason}]

    async def retry(self, workspace_id: uuid.UUID, delivery_id: uuid.UUID, now: datetime, *,
                    by: uuid.UUID | None) -> Delivery:
        """An admin's "send it again now" (the relay or the endpoint fixed): due at once for
        the delivery job, under the same idempotency key (hence Message-ID), with the whole
        allowance of attempts again. Read locked: a round claiming it meanwhile is either
        before us (it is ``sending``: 409) or after us."""
        delivery = await self.session.scalar(select(Delivery).where(
            Delivery.workspace_id == workspace_id, Delivery.id == delivery_id).with_for_update())
        if delivery is None:
            raise NotFound("No such delivery.")
        if delivery.status not in RETRYABLE:
            raise Conflict(f"Only a dead or failed delivery can be retried; this one is {delivery.status}.",
                           code="delivery_not_retryable", extra={"status_now": delivery.status})
        self._retry(delivery, now, by)
        return delivery

    async def retry_dead(self, workspace_id: uuid.UUID, now: datetime, *, by: uuid.UUID | None,
                         since: datetime | None, until: datetime | None, kind: str | None,
                         channel: str | None) -> tuple[int, bool]:
        """The workspace's dead deliveries queued in [since, until), oldest first, at most
        ``RETRY_AT_MOST``: how many were retried, and whether more are left (a retried one
        is no longer dead, so calling again takes the next ones)."""
        stmt = select(Delivery).where(Delivery.workspace_id == workspace_id, Delivery.status == "dead")
        if since is not None:
            stmt = stmt.where(Delivery.created_at >= since)
        if until is not None:
            stmt = stmt.where(Delivery.created_at < until)
        if kind is not None:
            stmt = stmt.where(Delivery.kind == kind)
        if channel is not None:
            stmt = stmt.where(Delivery.channel == channel)
        rows = list(await self.session.scalars(stmt.order_by(Delivery.created_at, Delivery.id)
                                               .limit(RETRY_AT_MOST + 1).with_for_update()))
        for delivery in rows[:RETRY_AT_MOST]:
            self._retry(delivery, now, by)
        return min(len(rows), RETRY_AT_MOST), len(rows) > RETRY_AT_MOST

    def _retry(self, delivery: Delivery, now: datetime, by: uuid.UUID | None) -> None:
        was = delivery.status
        delivery.status = "failed"  # never "pending": a pending one could be batched into another
        delivery.next_attempt_at = now
        delivery.attempt_log = [*delivery.attempt_log, {
            "at": now.isoformat(), "outcome": "retried", "by": str(by) if by else None, "was": was,
            "attempts": delivery.attempts}]

    async def list(self, workspace_id: uuid.UUID, *, status: str | None, recipient: str | None,
                   after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Delivery]:
        stmt = select(Delivery).where(Delivery.workspace_id == workspace_id)
        if status:
            stmt = stmt.where(Delivery.status == status)
        if recipient:
            # An address is looked up as profiles keep it (LAN@Example.com finds lan@example.com).
            stmt = stmt.where(Delivery.recipient == (stored_form(recipient) if "@" in recipient else recipient))
        if after is not None:
            stmt = stmt.where(or_(Delivery.created_at < after[0],
                                  and_(Delivery.created_at == after[0], Delivery.id < after[1])))
        return list(await self.session.scalars(stmt.order_by(Delivery.created_at.desc(), Delivery.id.desc())
                                               .limit(limit)))

    async def stop_to(self, workspace_id: uuid.UUID, recipient: str, now: datetime, reason: str) -> int:
        """An address bounced for good: what is still waiting for it is not sent."""
        result = await self.session.execute(update(Delivery).where(
            Delivery.workspace_id == workspace_id, Delivery.recipient == recipient, Delivery.channel == "email",
            Delivery.status.in_(("pending", "failed"))).values(status="suppressed", next_attempt_at=None,
                                                                  last_error=reason))
        return result.rowcount or 0

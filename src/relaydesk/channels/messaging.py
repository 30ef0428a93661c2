"""Text channels without email: SMS (Twilio's webhook format) and a generic JSON webhook
that connectors for social channels post to.

A texter is a customer found by their number (or by the connector's user id); one who
has never written before becomes a customer with a placeholder address under the
reserved ``.invalid`` domain, marked undeliverable so no email is ever tried. Their
text joins their latest open ticket on that channel, or opens one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import hold_until_commit
from relaydesk.core.sanitize import cut_markup, text_to_html
from relaydesk.customers.models import Customer
from relaydesk.customers.schemas import CustomerIn
from relaydesk.customers.service import CustomerService
from relaydesk.tickets.lifecycle import Channel
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.schemas import MAX_BODY, MessageIn, TicketIn
from relaydesk.tickets.service import TicketService

TWILIO_MESSAGES_URL = "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"
_PLAIN_HANDLE = re.compile(r"[a-z0-9]{1,60}")  # these keep the placeholder the first scheme gave them


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's scheme: HMAC-SHA1 over the URL followed by each parameter name and value,
    sorted by name, base64-encoded."""
    payload = url + "".join(f"{k}{v}" for k, v in sorted(params, key=lambda kv: kv[0]))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def valid_twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]], given: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, which anyone can send.
    return hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), (given or "").encode())


def is_placeholder(address: str) -> bool:
    """Whether this address is one ``placeholder_email`` made: nobody's mailbox."""
    return address.endswith(".invalid")


def placeholder_email(channel: str, handle: str) -> str:
    """One address per distinct handle. A handle of lowercase letters and digits only is
    its own readable part; any other gets a slug plus a hash of the exact handle, so
    ``ig:AbC``, ``ig:abc`` and ``ig.abc`` stay three people (and, having a dash in the
    slug part, never meet a plain handle's address)."""
    if _PLAIN_HANDLE.fullmatch(handle):
        return f"{channel}-{handle}@{channel}.invalid"
    slug = re.sub(r"[^a-z0-9]+", "-", handle.lower()).strip("-")[:40]
    digest = hashlib.sha256(handle.encode()).hexdigest()[:16]
    return f"{channel}-{slug}-{digest}@{channel}.invalid"


class TextChannelService:
    def __init__(self, session: AsyncSession, tickets: TicketService, customers: CustomerService) -> None:
        self.session = session
        self.tickets = tickets
        self.customers = customers

    async def take(self, workspace_id: uuid.UUID, channel: Channel, text: str, now: datetime, *, handle: str,
                   external_id: str | None, name: str | None = None, email: str | None = None,
                   phone: str | None = None) -> Ticket | None:
        """A text that came in: the ticket it joined or opened, or None when the same message
        (``external_id``, the provider's id) was taken before: providers retry a webhook
        they think failed, and the same message twice is one message."""
        await self._one_at_a_time(workspace_id, channel, handle=handle, external_id=external_id)
        if external_id and await self.tickets.tickets_of_messages(workspace_id, [external_id]):
            return None
        customer = await self.texter(workspace_id, channel, handle=handle, name=name, email=email, phone=phone,
                                     now=now)
        return await self.receive_text(customer, channel, text, now, external_id=external_id)

    async def _one_at_a_time(self, workspace_id: uuid.UUID, channel: Channel, *, handle: str,
                             external_id: str | None) -> None:
        """Holds this message and its sender until the transaction ends. A provider that
        timed out sends the same message again while the first is still being stored, and
        a texter's burst arrives together: without this each copy found nothing stored yet
        (the same message saved several times), and a new texter was made twice (all but
        one copy refused as a clash). SQLite's one writer already serialises them."""
        # Always the message before its sender, so two transactions never wait on each other.
        for key in filter(None, (external_id and f"message:{external_id}", f"sender:{channel.value}:{handle}")):
            await hold_until_commit(self.session, f"text:{workspace_id}:{key}")

    async def texter(self, workspace_id: uuid.UUID, channel: Channel, *, handle: str, name: str | None = None,
                     email: str | None = None, phone: str | None = None, now: datetime) -> Customer:
        """The customer behind a number or a connector's user id, made on first contact.
        Someone already known by their handle stays that person whether or not the platform
        gives an email this time: their conversation must not split in two."""
        known = await self.customers.find_by_email(workspace_id, placeholder_email(channel.value, handle))
        if known is None and channel is not Channel.SMS:  # a texter's handle is their number, looked up below
            # First met with an email: the profile under that address holds the handle.
            known = await self.customers.find_by_channel_user_id(workspace_id, handle)
        if known is not None:
            return known
        if email:
            found = await self.customers.find_by_email(workspace_id, email)
            if found is not None:
                self.customers.note_channel_user_id(found, handle, now)
                return found
        if phone:
            found = await self.customers.find_by_phone(workspace_id, phone)
            if found is not None:
                return found
        address = email or placeholder_email(channel.value, handle)
        # A placeholder address is not a real one: skip the email check and never send to it.
        data = CustomerIn.model_construct(name=(name or phone or handle)[:200], email=address, phone=phone,
                                          organisation_id=None, tier=CustomerIn.model_fields["tier"].default,
                                          language="en", timezone=None, metadata={"channel_user_id": handle},
                                          password=None)
        customer = await self.customers.create_profile(workspace_id, data, now, actor=None)
        if not email:
            customer.email_undeliverable_at = now
        return customer

    async def receive_text(self, customer: Customer, channel: Channel, text: str, now: datetime, *,
                           external_id: str | None = None) -> Ticket:
        principal = await self.customers.principal_for(customer, now)
        ticket = await self.tickets.latest_on_channel(customer.workspace_id, customer.id, channel)
        text = text.strip() or "(empty message)"
        body = text_to_html(text)  # texts are plain: "<my office>" is what they typed, not markup
        # A text that can never be kept whole is kept cut, not refused: a provider retries
        # what it sees refused, for ever.
        cut = len(body) > MAX_BODY
        body = cut_markup(body, MAX_BODY)
        if ticket is None:
            first_line = text.splitlines()[0][:80]
            ticket = await self.tickets.create(principal, TicketIn(subject=first_line, description=body), now,
                                               external_id=external_id, channel=channel)
        else:
            posted = await self.tickets.post_message(principal, ticket.id, MessageIn(body=body), now,
                                                     channel=channel, external_id=external_id)
            if posted.follow_up_created:
                ticket = await self.tickets.get(principal, posted.message.ticket_id)
        if cut:
            self.tickets.system_note(ticket, f"This message was too long to keep whole (a message keeps "
                                     f"{MAX_BODY:,} characters, its formatting included); the thread shows "
                                     "its beginning, and the rest was not kept.", now, internal=True)
        return ticket

"""The people copied on a ticket's email conversation (CCs).

A customer who writes with a colleague in To or Cc keeps the colleague in the loop, as
their mail client would: agents' public replies go to the colleague in Cc, and the
colleague's answers to our emails join the ticket. Staff add and remove CCs by hand too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.mime import Address
from relaydesk.channels.models import TicketCc
from relaydesk.channels.service import MailboxService, in_mail_domain, stored_form, valid_form
from relaydesk.core.db import read_ahead, read_once
from relaydesk.core.errors import NotFound, ValidationFailed
from relaydesk.core.mail import header_text, needs_smtputf8
from relaydesk.core.principal import Principal, Role
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.service import TicketService

MAX_CCS = 20  # per ticket: every agent reply goes to each of them
# Of one email's To and Cc, at most this many are looked up (a few queries each): a
# message to a few hundred addresses costs no more than one to a few dozen.
LOOKED_UP_AT_MOST = 50


class CcService:
    def __init__(self, session: AsyncSession, tickets: TicketService, mail_domain: str) -> None:
        self.session = session
        self.tickets = tickets
        self.users = tickets.customers.users
        self.mailboxes = MailboxService(session)
        self.mail_domain = mail_domain

    # -- staff, through the API (routes let only staff in) ----------------------------------
    async def list(self, principal: Principal, ticket_ref: str) -> list[TicketCc]:
        ticket = await self.tickets.get(principal, ticket_ref)
        return await self.of_ticket(ticket.workspace_id, ticket.id)

    async def add(self, principal: Principal, ticket_ref: str, email: str, name: str | None,
                  now: datetime) -> tuple[TicketCc, bool]:
        """(the CC, whether it is new): adding one already there is asking again, not an error."""
        ticket = await self.tickets.get(principal, ticket_ref)
        address = stored_form(email.strip())
        found = await self.find(ticket.workspace_id, ticket.id, address)
        if found is not None:
            return found, False
        reason = await self.why_not(ticket.workspace_id, address, requester=await self.requester_of(ticket))
        if reason is not None:
            raise ValidationFailed(reason, field="email")
        if await self._count(ticket) >= MAX_CCS:
            raise ValidationFailed(f"A ticket has at most {MAX_CCS} CCs: remove one first.", field="email")
        cc = self._add(ticket, address, name, "staff", principal, now)
        await self.session.flush()  # two adding it at once: the unique constraint refuses the second (a 409)
        return cc, True

    async def remove(self, principal: Principal, ticket_ref: str, ref: str, now: datetime) -> None:
        """``ref``: the CC's id or its address."""
        ticket = await self.tickets.get(principal, ticket_ref)
        try:
            match = TicketCc.id == uuid.UUID(ref)
        except ValueError:
            address = valid_form(ref.strip())  # what no CC can have (a NUL, say) is not asked of the database
            if address is None:
                raise NotFound("No such CC on this ticket.") from None
            match = TicketCc.address == address
        cc = await self.session.scalar(select(TicketCc).where(
            TicketCc.workspace_id == ticket.workspace_id, TicketCc.ticket_id == ticket.id, match))
        if cc is None:
            raise NotFound("No such CC on this ticket.")
        await self.session.delete(cc)
        self.tickets.audit.record(workspace_id=ticket.workspace_id, entity_type="ticket", entity_id=ticket.id,
                                  actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                                  changes={"cc_removed": (cc.address, None)})

    async def requester_of(self, ticket: Ticket) -> str | None:
        customer = (await self.tickets.customers.get_many(ticket.workspace_id, {ticket.requester_id})).get(
            ticket.requester_id)
        return customer.email if customer is not None else None

    # -- email -------------------------------------------------------------------------------
    async def of_ticket(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID) -> list[TicketCc]:
        return list(await self.session.scalars(select(TicketCc).where(
            TicketCc.workspace_id == workspace_id, TicketCc.ticket_id == ticket_id)
            .order_by(TicketCc.created_at, TicketCc.id)))

    async def copied_on(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID) -> list[TicketCc]:
        """The CCs an email about the ticket copies, read once per transaction: a batch of
        agents' replies reads them together (``read_ahead``), not one query per reply."""
        return await read_once(self.session, ("ticket_ccs", ticket_id), lambda: self.of_ticket(workspace_id, ticket_id))

    async def read_ahead(self, workspace_id: uuid.UUID, ticket_ids: set[uuid.UUID]) -> None:
        found: dict[uuid.UUID, list[TicketCc]] = {ticket_id: [] for ticket_id in ticket_ids}
        for cc in await self.session.scalars(select(TicketCc).where(
                TicketCc.workspace_id == workspace_id, TicketCc.ticket_id.in_(ticket_ids))
                .order_by(TicketCc.created_at, TicketCc.id)):
            found[cc.ticket_id].append(cc)
        for ticket_id, ccs in found.items():
            read_ahead(self.session, ("ticket_ccs", ticket_id), ccs)

    async def find(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, address: str) -> TicketCc | None:
        return await self.session.scalar(select(TicketCc).where(
            TicketCc.workspace_id == workspace_id, TicketCc.ticket_id == ticket_id, TicketCc.address == address))

    async def why_not(self, workspace_id: uuid.UUID, address: str, *, requester: str | None) -> str | None:
        """Why ``address`` (stored form) cannot be a CC, or None if it can. Our own addresses
        would mail us our own replies (a loop); the team follows tickets in Relaydesk, and
        their mail to support is theirs, not the customer's side; the requester gets every
        reply already."""
        if valid_form(address) is None:
            return "This is no address mail can be sent to."
        if needs_smtputf8(address):
            # Our emails go out without SMTPUTF8, which most relays do not offer: a copy
            # to it could never be sent.
            return "Relaydesk cannot send to an address with other than ASCII before the @."
        if in_mail_domain(address, self.mail_domain) or await self.mailboxes.is_address_of(workspace_id, address):
            return "This is one of the support addresses."
        if requester is not None and address == requester:
            return "This is the ticket's requester, who gets every reply anyway."
        user = await self.users.find_by_email(workspace_id, address)
        if user is not None and user.role != Role.CUSTOMER.value:
            return "This is a member of the team: they follow the ticket in Relaydesk."
        return None

    async def add_from_email(self, ticket: Ticket, addresses: Iterable[Address], *, sender: str,
                             requester: str | None, now: datetime) -> list[TicketCc]:
        """Copies those of an email's To and Cc who may be CCs onto the ticket, up to
        ``MAX_CCS`` in all. The sender never is one: they are the requester, a CC already,
        or the team, or they just opened the ticket."""
        have = await self._count(ticket)
        added: list[TicketCc] = []
        seen = {sender}
        for person in addresses:
            address = stored_form(person.email)
            if have + len(added) >= MAX_CCS or len(seen) > LOOKED_UP_AT_MOST:
                break
            if address in seen:
                continue
            seen.add(address)
            if await self.why_not(ticket.workspace_id, address, requester=requester) is not None \
                    or await self.find(ticket.workspace_id, ticket.id, address) is not None:
                continue
            added.append(self._add(ticket, address, person.name, "email", Principal.system(ticket.workspace_id),
                                   now))
        if added:
            await self.session.flush()
        return added

    async def carry_over(self, closed: Ticket, follow_up: Ticket, now: datetime) -> list[TicketCc]:
        """A closed ticket's CCs follow the conversation to its follow-up, as in Zendesk;
        not those whose mail bounced (on the ticket or on their profile), nor whoever may
        not be one of the follow-up's (its requester, say, whose profile took a CC's address)."""
        requester = await self.requester_of(follow_up)
        carried = []
        for cc in await self.of_ticket(closed.workspace_id, closed.id):
            if cc.undeliverable_at is not None or await self._bounced(closed.workspace_id, cc.address) \
                    or await self.why_not(follow_up.workspace_id, cc.address, requester=requester) is not None:
                continue
            copy = self._add(follow_up, cc.address, cc.name, cc.added_by, Principal.system(closed.workspace_id),
                             now)
            copy.added_by_id = cc.added_by_id  # who chose them is still who chose them
            carried.append(copy)
        if carried:
            await self.session.flush()
        return carried

    async def _bounced(self, workspace_id: uuid.UUID, address: str) -> bool:
        profile = await self.tickets.customers.find_by_email(workspace_id, address)
        return profile is not None and profile.email_undeliverable_at is not None

    async def mark_undeliverable(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, address: str,
                                 now: datetime) -> bool:
        cc = await self.find(workspace_id, ticket_id, address)
        if cc is None:
            return False
        cc.undeliverable_at = now
        return True

    async def _count(self, ticket: Ticket) -> int:
        return await self.session.scalar(select(func.count()).select_from(TicketCc).where(
            TicketCc.workspace_id == ticket.workspace_id, TicketCc.ticket_id == ticket.id)) or 0

    def _add(self, ticket: Ticket, address: str, name: str | None, added_by: str, actor: Principal,
             now: datetime) -> TicketCc:
        cc = TicketCc(workspace_id=ticket.workspace_id, ticket_id=ticket.id, address=address,
                      name=header_text(name or "")[:200] or None, added_by=added_by, added_by_id=actor.user_id,
                      created_at=now)
        self.session.add(cc)
        self.tickets.audit.record(workspace_id=ticket.workspace_id, entity_type="ticket", entity_id=ticket.id,
                                  actor_id=actor.user_id, actor_kind=actor.actor_kind, at=now,
                                  changes={"cc_added": (None, address)})
        return cc


"""Inbound email: stored raw first, then parsed, screened and threaded into tickets.

``receive`` only stores the bytes (the SMTP listener answers 250 once that committed);
``process`` runs as a job and decides what the message is:

* a mailbox's verification email coming back (our X-Relaydesk-Verification header with
  a code we know): it verifies that mailbox when it reached that mailbox's workspace,
  and is recorded as *ignored*, never a ticket;
* a second copy of a message (same Message-ID: a sender retrying after our 250 got lost,
  or mail reaching us by two routes), our own mail coming back (our loop header or one of
  our addresses in From), an auto-reply or a bounce: recorded as *ignored*, never a
  ticket, never acknowledged; a permanent bounce about an email we sent marks the address
  it went to undeliverable (until its owner writes in again);
* a reply: it joins its ticket through In-Reply-To/References (a Message-ID we signed,
  or one of the emails already on the ticket) or the ``[T-000123]`` token in the subject,
  but only when the sender belongs to the ticket: its requester, one of its CCs (a
  customer of the workspace, found or made as a new sender is, who writes on the
  requester's side of the ticket without seeing it), or one of the staff answering an
  email we sent to their address; anyone else, however the subject reads, opens a new
  ticket. An answer to an email we sent about several tickets at once (a digest of
  updates, a daily summary) joins none, as which one it means cannot be told, and opens
  none, being no request of the sender's own: it is *ignored*, and the sender is told
  by email (``email.digest_reply_refused``) to answer the one ticket's email or in the
  app. A follow-up to a closed ticket keeps the closed ticket's CCs. Whom an
  email that opens or joins a ticket has in To and Cc (besides our own addresses, the
  team and the requester) become the ticket's CCs, unless it came through a mailing list;
* mail a spam filter before us marked as spam (its headers say so): held as *spam*, never
  a ticket or a reply, never acknowledged (spam's From is mostly forged: answering it is
  backscatter), until an admin releases it, which processes it with the verdict set aside;
* anything else opens a new ticket; unknown senders become customers. It is acknowledged
  unless it came through a mailing list, with the null return path (``MAIL FROM:<>``, or
  ``Return-Path: <>`` on polled mail) or from a sender opening ticket after ticket.

What cannot be parsed or stored goes to the quarantine with its raw bytes, for an admin
to retry or discard. Nothing is dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.ccs import CcService
from relaydesk.channels.mime import Address, Bounce, ParsedEmail, UnparseableEmail, parse_email
from relaydesk.channels.models import InboundEmail
from relaydesk.channels.service import MailboxService, in_mail_domain, stored_form, valid_form
from relaydesk.channels.threading import sent_to, ticket_of
from relaydesk.core.db import new_id
from relaydesk.core.errors import AppError, Conflict, NotFound
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal, Role
from relaydesk.core.sanitize import cut_markup, looks_like_html, text_to_html
from relaydesk.customers.schemas import CustomerIn
from relaydesk.customers.service import CustomerService
from relaydesk.identity.models import User
from relaydesk.identity.service import UserService
from relaydesk.tickets.attachments import AttachmentService
from relaydesk.tickets.lifecycle import Channel
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.schemas import MAX_BODY, MessageIn, TicketIn
from relaydesk.tickets.service import TicketService

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.email")

MAX_SUBJECT = 500
MAX_ATTACHMENTS = 20  # per message, as uploads to one message
EMPTY_BODY = "(This email had no text.)"
# New tickets from one sender acknowledged in a while; the ones after that still open.
ACKNOWLEDGED_AT_MOST = 5
ACKNOWLEDGED_WITHIN = timedelta(hours=1)
# Stored and waiting to be processed; "released": an admin said it is not spam.
WAITING = ("received", "released")
DIGEST_REPLY_REFUSED = (
    "A reply to an email about several tickets (a digest of updates or a daily summary): which ticket it is "
    "for cannot be told, so it was added to none and opened none. Its sender is told by email (once an hour "
    "at most) to reply to the one ticket's email or to answer in the app.")


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # processed | ignored | quarantined | spam
    reason: str | None = None
    ticket_id: uuid.UUID | None = None
    new_ticket: bool = False


class InboundMailService:
    def __init__(self, runtime: Runtime, session: AsyncSession, tickets: TicketService) -> None:
        self.runtime = runtime
        self.session = session
        self.tickets = tickets
        users = UserService(session, runtime.hasher)
        self.users = users
        self.customers = CustomerService(session, users)
        self.mailboxes = MailboxService(session)
        self.ccs = CcService(session, tickets, runtime.settings.mail_domain)
        self.files = AttachmentService(session, runtime.files, runtime.settings.max_upload_bytes)

    # -- arrival ---------------------------------------------------------------------------
    def receive(self, workspace_id: uuid.UUID, raw: bytes, *, source: str, now: datetime,
                mailbox_id: uuid.UUID | None = None, envelope_from: str = "", envelope_to: str = "") -> InboundEmail:
        row = InboundEmail(id=new_id(), workspace_id=workspace_id, mailbox_id=mailbox_id, source=source,
                           envelope_from=envelope_from[:320], envelope_to=envelope_to[:320],
                           header_message_id=header_message_id(raw), raw=raw, size=len(raw), status="received",
                           attempts=0, received_at=now)
        self.session.add(row)
        # Processing is started by an event, so a crash right after the commit loses nothing.
        Outbox(self.session).publish(workspace_id, "email.received", now, inbound_id=row.id)
        return row

    async def already_received(self, workspace_id: uuid.UUID, message_id: str | None) -> bool:
        """An IMAP poll that fetched a message twice (a crash before it was marked seen)."""
        if not message_id:
            return False
        return await self.session.scalar(select(InboundEmail.id).where(
            InboundEmail.workspace_id == workspace_id, InboundEmail.header_message_id == message_id[:500]).limit(1)) \
            is not None

    # -- processing -------------------------------------------------------------------------
    async def process(self, row: InboundEmail, now: datetime) -> Outcome:
        if await self._copy_taken_care_of(row):
            return self._finish(row, Outcome("ignored", "A copy of an email already received (same Message-ID)."),
                                now)
        try:
            parsed = parse_email(row.raw, max_attachment_bytes=self.runtime.settings.max_upload_bytes,
                                 envelope_sender=row.envelope_from)
        except UnparseableEmail as exc:
            return self._finish(row, Outcome("quarantined", f"Cannot be parsed: {exc}"), now)
        if parsed.verification_code:
            verification = await self._verification(row, parsed.verification_code, now)
            if verification is not None:
                return self._finish(row, verification, now)
        sender = _answerable(parsed.sender, row.envelope_from)
        # Bounces and auto-replies are ignored whoever sent them, so they are screened first.
        screened = await self._screen(row.workspace_id, parsed, stored_form((sender or parsed.sender).email), now,
                                      released=row.status == "released")
        if screened is not None:
            return self._finish(row, screened, now)
        if sender is None:
            return self._finish(row, Outcome(
                "quarantined", f"No sender to answer: From {parsed.sender.email!r} is no address a customer can "
                f"have, and the envelope's {row.envelope_from!r} is none either."), now)
        address = stored_form(sender.email)
        ticket, author, cc_author = await self._thread(row.workspace_id, parsed, address, now)
        flooding = False
        forwarded_by = None
        if author is None:  # no ticket of theirs either: a new one
            forward = await self._forwarded_by_staff(row.workspace_id, parsed, address)
            if forward is None and self._answers_several_tickets(row.workspace_id, parsed, address):
                Outbox(self.session).publish(row.workspace_id, "email.digest_reply_refused", now, inbound_id=row.id,
                                             address=address, subject=parsed.subject.strip()[:MAX_SUBJECT])
                return self._finish(row, Outcome("ignored", DIGEST_REPLY_REFUSED), now)
            if forward is not None:
                requester, forwarded_by = forward
            else:
                requester = await self._requester(row.workspace_id, parsed, sender)
            customer = await self.customers.contact(row.workspace_id, CustomerIn(
                name=(requester.name or requester.email.split("@")[0])[:200], email=requester.email), now)
            self.customers.wrote_in(customer, now)
            author = await self.customers.principal_for(customer, now)
            # Two helpdesks acknowledging each other would otherwise write for ever.
            flooding = await self.tickets.count_opened_by(
                row.workspace_id, customer.id, Channel.EMAIL, now - ACKNOWLEDGED_WITHIN) >= ACKNOWLEDGED_AT_MOST
        attachment_ids, left_out, inline = await self._attachments(cc_author or author, parsed, now)
        if ticket is None:
            # A forward opened for the customer shows them their own email: the forwarder's
            # words above it are for colleagues, and go into the note.
            description, cut = _forwarded_body(parsed) if forwarded_by else _body(parsed, whole=True, inline=inline)
            created = await self.tickets.create(author, TicketIn(
                subject=((parsed.forwarded_subject if forwarded_by else parsed.subject).strip()
                         or "(no subject)")[:MAX_SUBJECT],
                description=description,
                attachment_ids=attachment_ids), now, channel=Channel.EMAIL, external_id=parsed.message_id,
                acknowledge=not (parsed.mailing_list or flooding or parsed.null_sender))
            self._note_left_out(created, row, left_out, now, cut=cut)
            if forwarded_by is not None:
                note = f"Forwarded by {forwarded_by.name} ({forwarded_by.email}): the ticket is " \
                    f"{requester.email}'s, who wrote the forwarded email."
                if parsed.forward_note:
                    note += f" {forwarded_by.name} wrote above it:\n\n{parsed.forward_note}"
                self.tickets.system_note(created, note[:MAX_BODY], now, internal=True)
            else:  # a forward's To and Cc are the forwarder's, not the customer's conversation
                await self._copy_ccs(created, parsed, address, now)
            reason = "Not acknowledged: sent with no return path (MAIL FROM:<> or Return-Path: <>), as bounces " \
                "and other automatic mail are." if parsed.null_sender else \
                f"Not acknowledged: this sender opened {ACKNOWLEDGED_AT_MOST} tickets by email within the " \
                "hour already." if flooding else None
            return self._finish(row, Outcome("processed", reason, ticket_id=created.id, new_ticket=True), now)
        body, cut = _body(parsed, whole=False, inline=inline)
        posted = await self.tickets.post_message(
            author, ticket.id, MessageIn(body=body, attachment_ids=attachment_ids), now, channel=Channel.EMAIL,
            external_id=parsed.message_id, author=cc_author,
            acknowledge=not (parsed.mailing_list or parsed.null_sender))
        row.message_id = posted.message.id
        replied_on = ticket
        if posted.follow_up_created:
            replied_on = await self.tickets.get(Principal.system(row.workspace_id), posted.message.ticket_id)
            await self.ccs.carry_over(ticket, replied_on, now)
        if left_out or cut:
            self._note_left_out(replied_on, row, left_out, now, cut=cut)
        await self._copy_ccs(replied_on, parsed, address, now)
        return self._finish(row, Outcome("processed", ticket_id=posted.message.ticket_id,
                                         new_ticket=posted.follow_up_created), now)

    async def _verification(self, row: InboundEmail, code: str, now: datetime) -> Outcome | None:
        """A mailbox's verification email come back in. It verifies the address only when
        it came by a way only the address's owner can arrange: forwarded to the claiming
        workspace's built-in address, or fetched by one of its IMAP mailboxes. Sent straight
        to the address at the listener, it proves only that the address's mail reaches
        Relaydesk, not whose it is; it then goes to the earliest claimant, who may be a
        squatter, so its code is withheld from the stored email and no longer counts. A
        code we no longer know (an older email) is left to the screening, as any of our own
        mail coming back."""
        mailbox = await self.mailboxes.by_code(code)
        if mailbox is None:
            return None
        if mailbox.workspace_id == row.workspace_id and (row.mailbox_id is None or row.source == "imap"):
            await self.mailboxes.mark_verified(mailbox, now)
            log.info("mailbox_verified", mailbox_id=str(mailbox.id), address=mailbox.address, inbound_id=str(row.id))
            return Outcome("ignored", f"Mailbox verification: {mailbox.address} is verified.")
        mailbox.verification_code_hash = None
        row.raw = row.raw.replace(code.encode(), b"[withheld]")
        row.size = len(row.raw)
        log.info("mailbox_verification_code_withheld", mailbox_id=str(mailbox.id), inbound_id=str(row.id))
        return Outcome("ignored", "A mailbox verification email sent straight to the address: that verifies "
                       "nothing (forward the address to this workspace's own address, or connect it over "
                       "IMAP), and its code was withheld and no longer counts.")

    def _note_left_out(self, ticket: Ticket, row: InboundEmail, left_out: list[str], now: datetime, *,
                       cut: bool = False) -> None:
        """Tells the agents, not only the log, what an email brought that the thread does
        not show (files, the end of a long text), and where the original is."""
        said = []
        if cut:
            said.append(f"This email's text was longer than {MAX_BODY:,} characters; the thread shows the first "
                        f"{MAX_BODY:,} and the rest is only in the original.")
        if left_out:
            said.append("Not attached from this email: " + "; ".join(left_out) + ".")
        if said:
            self.tickets.system_note(ticket, " ".join(said) + f" The original email has it all: "
                                     f"/api/v1/inbound-emails/{row.id}/raw", now, internal=True)

    async def _copy_taken_care_of(self, row: InboundEmail) -> bool:
        """Whether another copy of this message (same Message-ID) became a ticket or a reply,
        or waits ahead of this one (received earlier). Of two copies processed at once each
        sees the other still waiting, and only the later one steps back. A copy that was
        quarantined, held as spam, discarded or ignored does not count, so retrying it still works."""
        if not row.header_message_id:
            return False
        ahead = or_(InboundEmail.received_at < row.received_at,
                    and_(InboundEmail.received_at == row.received_at, InboundEmail.id < row.id))
        return await self.session.scalar(select(InboundEmail.id).where(
            InboundEmail.workspace_id == row.workspace_id, InboundEmail.header_message_id == row.header_message_id,
            or_(InboundEmail.status == "processed", and_(InboundEmail.status.in_(WAITING), ahead))).limit(1)) \
            is not None

    def _finish(self, row: InboundEmail, outcome: Outcome, now: datetime) -> Outcome:
        # Counted here, with the outcome, so the row is written once (an attempt that fails
        # rolls back anyway, and the quarantine counts it in its own transaction).
        row.attempts += 1
        row.status, row.reason, row.ticket_id = outcome.status, outcome.reason, outcome.ticket_id
        row.processed_at = now
        log.info("email_processed", inbound_id=str(row.id), status=outcome.status, reason=outcome.reason)
        return outcome

    async def _requester(self, workspace_id: uuid.UUID, parsed: ParsedEmail, sender: Address) -> Address:
        """Who a new ticket is for: the sender, or whom the email asks answers to go to
        (Reply-To), as a mail client would answer: a web form mails from its own noreply
        address with the visitor in Reply-To. Not for a mailing list (its Reply-To is the
        list) nor when Reply-To names one of our own addresses."""
        wanted = parsed.reply_to
        if wanted is None or parsed.mailing_list or not valid_form(wanted.email):
            return sender
        address = stored_form(wanted.email)
        if address == stored_form(sender.email) or in_mail_domain(address, self.runtime.settings.mail_domain) \
                or await self.mailboxes.is_address_of(workspace_id, address):
            return sender
        return wanted

    async def _forwarded_by_staff(self, workspace_id: uuid.UUID, parsed: ParsedEmail, sender: str
                                  ) -> tuple[Address, User] | None:
        """(whom the ticket is for, who forwarded it) when one of the staff forwards a
        customer's email to support, as they do with mail that reached them directly: the
        ticket is the customer's, as if they had written in. A From header proves nothing,
        but whoever forges a staff address here could as well forge the customer's."""
        original = parsed.forwarded_from
        if original is None or not valid_form(original.email):
            return None
        staff = await self.users.find_by_email(workspace_id, sender)
        if staff is None or not staff.is_active or staff.role == Role.CUSTOMER.value:
            return None
        address = stored_form(original.email)
        if address == sender or in_mail_domain(address, self.runtime.settings.mail_domain) \
                or await self.mailboxes.is_address_of(workspace_id, address):
            return None
        colleague = await self.users.find_by_email(workspace_id, address)
        if colleague is not None and colleague.role != Role.CUSTOMER.value:
            return None  # a colleague's email, handed on: still the forwarder's own request
        return Address(original.name, address), staff

    async def _screen(self, workspace_id: uuid.UUID, parsed: ParsedEmail, sender: str,
                      now: datetime, *, released: bool = False) -> Outcome | None:
        """Mail that must never become a ticket or get an acknowledgement, or not before an
        admin has seen it. ``released``: an admin judged it not spam, whatever the headers say."""
        # The header names the workspace that sent it: mail another workspace sent (an agent
        # of another shop writing to this one's address) is a person's, not an echo.
        if parsed.loop_marker and parsed.loop_marker.strip() == str(workspace_id):
            return Outcome("ignored", "Our own email came back (loop header).")
        if parsed.bounce is not None:
            if parsed.bounce.permanent:
                return Outcome("ignored", await self._bounced(workspace_id, parsed.bounce, now))
            return Outcome("ignored", "Delivery delay notice.")
        if parsed.auto_submitted:
            return Outcome("ignored", "Automatic reply (out of office or bulk mail).")
        if in_mail_domain(sender, self.runtime.settings.mail_domain):
            return Outcome("ignored", "Sent from Relaydesk's own domain.")
        if await self.mailboxes.is_address_of(workspace_id, sender):
            # Acknowledging it would write from the support address to itself: a mail loop.
            return Outcome("ignored", "Sent from this workspace's own support address.")
        if parsed.spam_verdict and not released:
            # Held rather than ignored: filters are wrong at times, and a reply the customer
            # really wrote must be able to reach its ticket once an admin releases it.
            return Outcome("spam", f"Marked as spam by a filter before Relaydesk ({parsed.spam_verdict}). "
                           "Retry releases it as not spam; discard drops it.")
        return None

    async def _bounced(self, workspace_id: uuid.UUID, bounce: Bounce, now: datetime) -> str:
        """Marks the addresses a permanent bounce reports, and says what it did. Anyone can
        send a delivery report naming anyone, so only a report about an email we sent from
        this workspace counts, and only for the address that email went to (both signed
        into our Message-IDs): otherwise one forged report silenced a customer."""
        secret = self.runtime.settings.resolved_secret_key()
        original = bounce.original_message_id or ""
        if not await self._sent_from(workspace_id, ticket_of(original, secret=secret)):
            return "Bounce about no email we sent: nobody marked undeliverable."
        # Reports name the address as it went out: an internationalised domain in its
        # ASCII form, which profiles keep in Unicode.
        failed = [a for a in map(stored_form, bounce.failed_recipients) if sent_to(original, a, secret=secret)]
        marked = [a for a in failed if await self.customers.mark_undeliverable(workspace_id, a, now)]
        # Our replies go to a ticket's CCs in Cc, under the Message-ID signed for the
        # requester: a CC's failure counts for that ticket, where they were copied.
        anchor = ticket_of(original, secret=secret)
        marked += [a for a in dict.fromkeys(map(stored_form, bounce.failed_recipients))
                   if a not in failed and anchor is not None and anchor != workspace_id
                   and await self.ccs.mark_undeliverable(workspace_id, anchor, a, now)]
        return "Bounce: " + (", ".join(marked) + " marked undeliverable" if marked else "no known customer")

    async def _sent_from(self, workspace_id: uuid.UUID, anchor: uuid.UUID | None) -> bool:
        """Whether our Message-ID's anchor (a ticket, or the workspace for mail about
        several tickets) is this workspace's."""
        if anchor is None:
            return False
        if anchor == workspace_id:
            return True
        try:
            await self.tickets.get(Principal.system(workspace_id), anchor)
        except NotFound:
            return False
        return True

    async def _thread(self, workspace_id: uuid.UUID, parsed: ParsedEmail, sender: str, now: datetime
                      ) -> tuple[Ticket | None, Principal | None, Principal | None]:
        """The ticket this is a reply to, and who is replying, if they belong to it (for a
        CC: the requester, on whose side they write, and the CC)."""
        secret = self.runtime.settings.resolved_secret_key()
        candidates: list[uuid.UUID] = []
        references = [*reversed(parsed.references), *parsed.in_reply_to]
        for ref in references:
            ours = ticket_of(ref, secret=secret)
            if ours is not None:
                candidates.append(ours)
        candidates += await self.tickets.tickets_of_messages(workspace_id, references)
        for number in parsed.ticket_tokens:
            found = await self.tickets.id_by_number(workspace_id, number)
            if found is not None:
                candidates.append(found)
        # Tickets about which an email went to this very address (signed into our ids).
        answered = {ticket for ticket in (sent_to(ref, sender, secret=secret) for ref in references) if ticket}
        for ticket_id in dict.fromkeys(candidates):
            try:
                ticket = await self.tickets.get(Principal.system(workspace_id), ticket_id)
            except NotFound:
                continue
            member = await self._member(ticket, sender, parsed.sender.name, now, answers_us=ticket.id in answered)
            if member is not None:
                return ticket, *member
        return None, None, None

    def _answers_several_tickets(self, workspace_id: uuid.UUID, parsed: ParsedEmail, sender: str) -> bool:
        """Whether this answers an email we sent this very address about no one ticket: such
        mail is anchored on the workspace (``channels.threading``), as a digest covering
        several tickets is. The signed address keeps anyone else from being answered."""
        secret = self.runtime.settings.resolved_secret_key()
        return any(sent_to(ref, sender, secret=secret) == workspace_id
                   for ref in (*parsed.references, *parsed.in_reply_to))

    async def _member(self, ticket: Ticket, sender: str, name: str, now: datetime, *, answers_us: bool
                      ) -> tuple[Principal, Principal | None] | None:
        """Who ``sender`` is on this ticket: its requester; one of its CCs, a customer who
        writes on the requester's side (the ticket stays the requester's, and a CC gets no
        sight of it); or a team member answering an email we sent them. A From header
        proves no more for a CC than for the requester. But anyone can put a team
        member's address in From, and what an agent writes is emailed to the customer
        from the support address; so a team member's reply must prove it answers our
        email to them (its token alone, or the customer's copy of the
        thread, does not). Otherwise it is new mail from them."""
        customer = (await self.customers.get_many(ticket.workspace_id, {ticket.requester_id})).get(ticket.requester_id)
        if customer is not None and customer.email == sender:
            self.customers.wrote_in(customer, now)
            return await self.customers.principal_for(customer, now), None
        if customer is not None and customer.deleted_at is None:
            cc = await self.ccs.find(ticket.workspace_id, ticket.id, sender)
            if cc is not None:
                cc.undeliverable_at = None  # mail just came from the address: it works
                writer = await self.customers.contact(ticket.workspace_id, CustomerIn(
                    name=(name or cc.name or sender.split("@")[0])[:200], email=sender), now)
                self.customers.wrote_in(writer, now)
                return (await self.customers.principal_for(customer, now),
                        await self.customers.principal_for(writer, now))
        if not answers_us:
            return None
        user = await self.users.find_by_email(ticket.workspace_id, sender)
        if user is not None and user.is_active and user.role != Role.CUSTOMER.value:
            return Principal(user.id, ticket.workspace_id, Role(user.role)), None
        return None

    async def _copy_ccs(self, ticket: Ticket, parsed: ParsedEmail, sender: str, now: datetime) -> None:
        """Whom the email has in To and Cc follow the ticket's email from now on, as in the
        mail client the sender chose them in. Not a mailing list's post: its To is the
        list, whose every member would get our replies."""
        if parsed.mailing_list:
            return
        # Most email is addressed to support alone: that needs no look at the ticket's CCs.
        domain = self.runtime.settings.mail_domain
        others = [p for p in (*parsed.to, *parsed.cc)
                  if stored_form(p.email) != sender and not in_mail_domain(p.email, domain)]
        if others:
            await self.ccs.add_from_email(ticket, others, sender=sender,
                                          requester=await self.ccs.requester_of(ticket), now=now)

    async def _attachments(self, author: Principal, parsed: ParsedEmail, now: datetime
                           ) -> tuple[list[uuid.UUID], list[str], dict[str, uuid.UUID]]:
        """The uploads made from the email's attachments, what was left out and why, and
        the uploads of inline images by the Content-ID the HTML names them with."""
        ids: list[uuid.UUID] = []
        inline: dict[str, uuid.UUID] = {}
        left_out = [f"{name} (too large, or damaged)" for name in parsed.omitted_attachments]
        for part in parsed.attachments:
            if len(ids) == MAX_ATTACHMENTS:
                left_out.append(f"{part.filename} (more than {MAX_ATTACHMENTS} attachments)")
                continue
            try:
                upload = await self.files.upload(author, part.filename, part.data, now)
            except AppError as exc:  # a type we do not keep: the raw email still has it
                log.info("email_attachment_skipped", filename=part.filename, reason=exc.detail)
                left_out.append(f"{part.filename} ({exc.detail.rstrip('.')})")
                continue
            ids.append(upload.id)
            if part.content_id:
                inline[part.content_id] = upload.id
        return ids, left_out, inline

    # -- the quarantine ----------------------------------------------------------------------
    async def list(self, principal: Principal, *, status: str | None, after: tuple[datetime, uuid.UUID] | None,
                   limit: int) -> list[InboundEmail]:
        stmt = select(InboundEmail).where(InboundEmail.workspace_id == principal.workspace_id)
        if status:
            stmt = stmt.where(InboundEmail.status == status)
        if after is not None:
            stmt = stmt.where(or_(InboundEmail.received_at < after[0],
                                  and_(InboundEmail.received_at == after[0], InboundEmail.id < after[1])))
        return list(await self.session.scalars(
            stmt.order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc()).limit(limit)))

    async def get(self, principal: Principal, inbound_id: uuid.UUID) -> InboundEmail:
        row = await self.session.scalar(select(InboundEmail).where(
            InboundEmail.workspace_id == principal.workspace_id, InboundEmail.id == inbound_id))
        if row is None:
            raise NotFound("No such email.")
        return row

    async def retry(self, principal: Principal, inbound_id: uuid.UUID, now: datetime) -> InboundEmail:
        """Processes the email again. One held as spam is released: the admin judged it
        not spam, so the filter's verdict no longer holds it (every other rule still applies)."""
        row = await self.get(principal, inbound_id)
        if row.status not in ("quarantined", "spam", "discarded"):
            raise Conflict(f"Only quarantined, spam or discarded emails can be retried; this one is {row.status}.",
                           code="not_quarantined")
        row.status, row.reason = "released" if row.status == "spam" else "received", None
        Outbox(self.session).publish(row.workspace_id, "email.received", now, inbound_id=row.id)
        return row

    async def discard(self, principal: Principal, inbound_id: uuid.UUID, now: datetime) -> InboundEmail:
        row = await self.get(principal, inbound_id)
        if row.status not in ("quarantined", "spam"):
            raise Conflict(f"Only quarantined or spam emails can be discarded; this one is {row.status}.",
                           code="not_quarantined")
        row.status, row.processed_at = "discarded", now
        return row

    async def due(self, limit: int) -> list[InboundEmail]:
        return list(await self.session.scalars(select(InboundEmail).where(InboundEmail.status.in_(WAITING))
                                               .order_by(InboundEmail.received_at).limit(limit)))


def _answerable(sender: Address, envelope_from: str) -> Address | None:
    """Who the email is from, as a customer profile may keep them: the From header's
    address, else SMTP's envelope sender (MAIL FROM) with From's name (``jo@corp.local``:
    a machine that knows no public name for itself)."""
    if valid_form(sender.email):
        return sender
    return Address(sender.name, envelope_from.strip().lower()) if valid_form(envelope_from.strip()) else None


def _body(parsed: ParsedEmail, *, whole: bool, inline: dict[str, uuid.UUID]) -> tuple[str, bool]:
    """The thread shows the new words of a reply; a new ticket keeps all it was sent, up
    to ``MAX_BODY``, and says whether it was cut (the agents are told). Inline images
    (``cid:`` references) point at their uploads, which those who may see the message
    may download."""
    html = (parsed.html if whole else parsed.reply_html).strip()
    text = (parsed.text if whole else parsed.reply_text).strip()
    if not text and "<img" not in html:
        html = ""  # markup with nothing in it (<div><br></div>): the thread says there was no text
    for content_id, upload in inline.items():
        html = html.replace(f'src="cid:{content_id}"', f'src="/api/v1/attachments/{upload}"')
    if html and not looks_like_html(html):
        # Sanitised HTML without a tag left ("Tom &amp; Jerry") would be taken for plain
        # text and escaped a second time.
        html = f"<p>{html}</p>"
    if html:
        return cut_markup(html, MAX_BODY), len(html) > MAX_BODY
    body = text or EMPTY_BODY
    return body[:MAX_BODY], len(body) > MAX_BODY


def _forwarded_body(parsed: ParsedEmail) -> tuple[str, bool]:
    """The forwarded email alone, for the customer who wrote it. From its text, escaped: the
    HTML has no mark of where the forwarder's words and the forward's header lines end that
    every client writes, and a cut in the wrong place would show the customer the forwarder's
    words. Its inline images stay attached to the message."""
    if not parsed.forwarded_text.strip():
        return EMPTY_BODY, False
    html = text_to_html(parsed.forwarded_text)
    return cut_markup(html, MAX_BODY), len(html) > MAX_BODY


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID, read without parsing the whole email. A long id is often folded onto
    the next line (``Message-ID:\r\n <...>``, as Python's own email package writes it)."""
    head = raw[:16384].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.splitlines()
    for index, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:]
            for continuation in lines[index + 1:]:
                if continuation[:1] not in (b" ", b"\t"):
                    break
                value += continuation
            return value.decode("ascii", "replace").strip().strip("<>")[:500] or None
    return None

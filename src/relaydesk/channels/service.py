"""Support addresses (mailboxes) of a workspace."""

from __future__ import annotations

import functools
import hmac
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.models import InboundEmail, Mailbox
from relaydesk.channels.verification import MAX_CODE, RESEND_AFTER, VERIFICATION_NOT_SENT, code_hash, new_code
from relaydesk.core.db import read_once
from relaydesk.core.errors import Conflict, NotFound, TooManyAttempts, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal
from relaydesk.core.schemas import Email
from relaydesk.core.targets import UnsafeTarget, check_host
from relaydesk.identity.service import normalise_email
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.service import OPERATOR_ADDRESSES, WorkspaceService

log = structlog.get_logger("relaydesk.email")

# How long a mailbox waits after its 1st, 2nd, ... failed poll in a row; then the last,
# for ever. A wrong password tried every minute gets the account locked at Gmail or
# Microsoft 365, and a server that is down gains nothing from being asked so often.
POLL_BACKOFF = tuple(timedelta(minutes=m) for m in (1, 2, 5, 10, 30))
# A round may start a moment less than a whole interval after the one before (the queue
# ran that one late): a mailbox due within this much is taken now, not a round later.
POLL_GRACE = timedelta(seconds=5)
# Where a poll connects to: what it found, or failed to find, is about these settings.
CONNECTION = ("imap_host", "imap_port", "imap_tls", "imap_username", "imap_password", "imap_folder")
CREDENTIALS = ("imap_host", "imap_username", "imap_password")


class MailboxService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sending_address(self, workspace: Workspace, mail_domain: str,
                              ticket_id: uuid.UUID | None = None) -> str:
        """The address mail about ``ticket_id`` goes out from: the one of this workspace's
        verified mailboxes the customer last wrote to about it (a customer who wrote to
        sales@ is answered from sales@), else the workspace's first verified address, else
        its built-in one. An unverified mailbox is never sent from: nothing shows the
        address is the workspace's, and our relay would send in its owner's name. Nor is
        one in the mail domain (saved before such addresses were refused): it may be
        another workspace's built-in address."""
        async def own() -> list[tuple[uuid.UUID, str]]:
            rows = await self.session.execute(select(Mailbox.id, Mailbox.address).where(
                Mailbox.workspace_id == workspace.id, Mailbox.active.is_(True), Mailbox.verified_at.is_not(None))
                .order_by(Mailbox.created_at))
            return [(box, address) for box, address in rows if not in_mail_domain(address, mail_domain)]

        mailboxes = await read_once(self.session, ("sending_addresses", workspace.id), own)
        if len(mailboxes) > 1 and ticket_id is not None:  # with one mailbox there is no choosing
            written_to = await self.session.scalar(
                select(InboundEmail.mailbox_id).where(
                    InboundEmail.workspace_id == workspace.id, InboundEmail.ticket_id == ticket_id,
                    InboundEmail.mailbox_id.is_not(None))
                .order_by(InboundEmail.received_at.desc()).limit(1))
            address = next((address for box, address in mailboxes if box == written_to), None)
            if address is not None:
                return address
        return mailboxes[0][1] if mailboxes else f"{workspace.slug}@{mail_domain}"

    async def workspace_for(self, address: str, mail_domain: str) -> tuple[uuid.UUID, uuid.UUID | None] | None:
        """Which workspace (and mailbox) mail to this address is for, if any (a mail server
        gives an internationalised domain in its ASCII form)."""
        address = stored_form(address.strip())
        if in_mail_domain(address, mail_domain):
            # Only the built-in addresses live there, each its own workspace's: a mailbox
            # row in it (saved before such addresses were refused) must not divert them.
            local, _, domain = address.rpartition("@")
            # A workspace may hold a reserved slug from before it was reserved: an operator's
            # address is the deployment's all the same, and is refused like any unknown one.
            built_in = bool(local) and domain == _domain_of(mail_domain) and local not in OPERATOR_ADDRESSES
            workspace = await WorkspaceService(self.session).find(local) if built_in else None
            return (workspace.id, None) if workspace is not None else None
        # Several workspaces may claim an address until one verifies it: the verified one
        # has it, else the earliest claim (who had it before anyone else asked).
        row = await self.session.execute(select(Mailbox.workspace_id, Mailbox.id).where(
            Mailbox.address == address, Mailbox.active.is_(True))
            .order_by(Mailbox.verified_at.is_(None), Mailbox.created_at, Mailbox.id).limit(1))
        found = row.first()
        return (found[0], found[1]) if found is not None else None

    async def is_address_of(self, workspace_id: uuid.UUID, address: str) -> bool:
        """Whether ``address`` (as mailboxes keep it) is one of the workspace's own, active or not."""
        return await self.session.scalar(select(Mailbox.id).where(
            Mailbox.workspace_id == workspace_id, Mailbox.address == address).limit(1)) is not None

    async def create(self, principal: Principal, data: dict[str, Any], now: datetime, *, mail_domain: str,
                     allow_private: bool = False) -> Mailbox:
        """``allow_private``: the operator lets IMAP hosts be on loopback or private networks.
        The mailbox starts unverified, and its verification email goes out after the
        commit. An address only claimed by other workspaces can be claimed again: whoever
        typed it first need not own it; one another workspace verified is taken."""
        address = data["address"].strip().lower()
        if in_mail_domain(address, mail_domain):
            raise ValidationFailed(f"Addresses at {mail_domain} are Relaydesk's own: each workspace already "
                                   f"receives mail at <workspace slug>@{mail_domain}.", field="address")
        held = or_(Mailbox.workspace_id == principal.workspace_id, Mailbox.verified_at.is_not(None))
        if await self.session.scalar(select(Mailbox.id).where(Mailbox.address == address, held).limit(1)) is not None:
            raise Conflict("This address is already a support address.", field="address", code="address_taken")
        _check_credentials(data)
        await self._check_host(data.get("imap_host"), data.get("imap_port"), data.get("imap_tls", True), allow_private)
        mailbox = Mailbox(workspace_id=principal.workspace_id, created_at=now, **{**data, "address": address})
        self.session.add(mailbox)
        await self.session.flush()
        self._ask_for_verification(mailbox, now)
        return mailbox

    # -- verification ------------------------------------------------------------------------
    def _ask_for_verification(self, mailbox: Mailbox, now: datetime) -> None:
        mailbox.verification_sent_at = now
        # The code is made by the job that sends it, so that it is never stored, not even
        # in the outbox; the event's time lets a late job see that a newer request took over.
        Outbox(self.session).publish(mailbox.workspace_id, "mailbox.verification_requested", now,
                                     mailbox_id=mailbox.id)

    async def send_verification(self, principal: Principal, mailbox_id: uuid.UUID, now: datetime) -> Mailbox:
        """Another verification email (with a new code; the earlier ones stop counting), at
        most one a minute: each goes to an address the workspace may not own."""
        mailbox = await self._locked(principal, mailbox_id)
        if mailbox.verified_at is not None:
            raise Conflict("This address is verified already.", code="already_verified")
        sent = mailbox.verification_sent_at
        if sent is not None and now < sent + RESEND_AFTER:
            wait = max(1, math.ceil((sent + RESEND_AFTER - now).total_seconds()))
            raise TooManyAttempts(f"A verification email went to {mailbox.address} less than a minute ago; "
                                  f"ask again in {wait} seconds.", code="verification_throttled",
                                  extra={"retry_after": wait})
        self._ask_for_verification(mailbox, now)
        return mailbox

    async def issue_code(self, mailbox_id: uuid.UUID, requested_at: datetime) -> tuple[Mailbox, str] | None:
        """A new code for the mailbox (the job about to send it), replacing any earlier one;
        None when there is nothing to send: the mailbox is gone or verified, or a newer
        request (a minute later at least) has its own job."""
        mailbox = await self.session.scalar(select(Mailbox).where(Mailbox.id == mailbox_id).with_for_update())
        if mailbox is None or mailbox.verified_at is not None:
            return None
        asked = mailbox.verification_sent_at
        if asked is not None and asked > requested_at + timedelta(seconds=1):
            return None
        code = new_code()
        mailbox.verification_code_hash = code_hash(code)
        if (mailbox.last_error or "").startswith(VERIFICATION_NOT_SENT):
            mailbox.last_error = None  # this attempt says again if it fails too
        return mailbox, code

    async def verify(self, principal: Principal, mailbox_id: uuid.UUID, code: str, now: datetime) -> Mailbox:
        """Verifies the mailbox with the code of its latest verification email."""
        mailbox = await self._locked(principal, mailbox_id)
        if mailbox.verified_at is not None:
            return mailbox  # a retried request: nothing left to prove
        expected = mailbox.verification_code_hash
        if expected is None:
            raise ValidationFailed("No verification email has been sent to this address yet: ask for one "
                                   "(send-verification).", field="code")
        if not hmac.compare_digest(code_hash(code[:MAX_CODE]), expected):
            raise ValidationFailed("This is not the code of the latest verification email to this address: use the "
                                   "newest email's code, or ask for another email (POST .../send-verification).",
                                   field="code")
        await self.mark_verified(mailbox, now)
        return mailbox

    async def by_code(self, code: str) -> Mailbox | None:
        """The unverified mailbox whose latest verification email carries ``code``. Looked up
        by the hash of a 96-bit random code: timing tells nothing that helps find one."""
        if not code.strip() or len(code) > MAX_CODE:
            return None
        return await self.session.scalar(select(Mailbox).where(
            Mailbox.verification_code_hash == code_hash(code), Mailbox.verified_at.is_(None)).limit(1))

    async def mark_verified(self, mailbox: Mailbox, now: datetime) -> None:
        """The address is this workspace's: other workspaces' claims of it go (their mail
        comes here from now on, and they could never verify it anyway)."""
        others = list(await self.session.execute(select(Mailbox.id, Mailbox.workspace_id).where(
            Mailbox.address == mailbox.address, Mailbox.workspace_id != mailbox.workspace_id,
            Mailbox.verified_at.is_(None))))
        if others:
            await self.session.execute(delete(Mailbox).where(Mailbox.id.in_([row.id for row in others]))
                                       .execution_options(synchronize_session=False))
            log.info("mailbox_claims_removed", address=mailbox.address, verified_by=str(mailbox.workspace_id),
                     workspaces=[str(row.workspace_id) for row in others])
            for workspace_id in dict.fromkeys(row.workspace_id for row in others):
                # Its admins are told the address went, not to whom: that is the other workspace's business.
                Outbox(self.session).publish(workspace_id, "mailbox.claim_removed", now, address=mailbox.address)
        mailbox.verified_at, mailbox.verification_code_hash = now, None
        # Two workspaces verifying at once: the unique index refuses the second (a 409).
        await self.session.flush()

    async def _locked(self, principal: Principal, mailbox_id: uuid.UUID) -> Mailbox:
        mailbox = await self.session.scalar(select(Mailbox).where(
            Mailbox.workspace_id == principal.workspace_id, Mailbox.id == mailbox_id).with_for_update())
        if mailbox is None:
            raise NotFound("No such mailbox.")
        return mailbox

    async def get(self, principal: Principal, mailbox_id: uuid.UUID) -> Mailbox:
        mailbox = await self.session.scalar(select(Mailbox).where(
            Mailbox.workspace_id == principal.workspace_id, Mailbox.id == mailbox_id))
        if mailbox is None:
            raise NotFound("No such mailbox.")
        return mailbox

    async def list(self, principal: Principal) -> list[Mailbox]:
        return list(await self.session.scalars(select(Mailbox).where(
            Mailbox.workspace_id == principal.workspace_id).order_by(Mailbox.created_at)))

    async def update(self, principal: Principal, mailbox_id: uuid.UUID, changes: dict[str, Any], *,
                     allow_private: bool = False) -> Mailbox:
        mailbox = await self.get(principal, mailbox_id)
        for key in ("imap_tls", "imap_folder", "active"):  # null means nothing for these
            if key in changes and changes[key] is None:
                raise ValidationFailed("Give a value or leave it out.", field=key)
        if changes.keys() & CREDENTIALS:
            # Only then: switching off a mailbox saved before this was checked stays possible.
            _check_credentials({key: changes.get(key, getattr(mailbox, key)) for key in CREDENTIALS})
        moved = any(key in changes and changes[key] != getattr(mailbox, key)
                    for key in ("imap_host", "imap_port", "imap_username", "imap_folder"))
        for key, value in changes.items():
            setattr(mailbox, key, value)
        if moved:  # another folder's UIDs mean other messages: start again from its unread ones
            mailbox.imap_uid_validity = mailbox.imap_last_uid = None
        # Saved (a new password, say, or the provider unlocked the account): the next round
        # tries it, and what the last poll found no longer stands.
        mailbox.poll_failures, mailbox.next_poll_at = 0, None
        if shows_poll_error(mailbox):
            mailbox.last_error = None
        if changes.keys() & {"imap_host", "imap_port", "imap_tls"}:
            # Only where it would connect changed: switching off a mailbox whose host no
            # longer resolves, or giving it a new password, must not be refused for that.
            await self._check_host(mailbox.imap_host, mailbox.imap_port, mailbox.imap_tls, allow_private)
        return mailbox

    @staticmethod
    async def _check_host(host: str | None, port: int | None, tls: bool, allow_private: bool) -> None:
        if host and not allow_private:
            try:
                await check_host(host, imap_port(port, tls))
            except UnsafeTarget as exc:
                raise ValidationFailed(str(exc), field="imap_host") from None

    async def delete(self, principal: Principal, mailbox_id: uuid.UUID) -> None:
        await self.session.delete(await self.get(principal, mailbox_id))

    async def pollable(self, now: datetime) -> list[Mailbox]:
        """The IMAP mailboxes a poll round takes: all that are on, but a failing one only
        once its backoff is over."""
        return list(await self.session.scalars(select(Mailbox).where(
            Mailbox.active.is_(True), Mailbox.imap_host.is_not(None), Mailbox.imap_host != "",  # "": saved blank before
            or_(Mailbox.next_poll_at.is_(None), Mailbox.next_poll_at <= now + POLL_GRACE))))

    async def to_record_poll(self, polled: Mailbox) -> Mailbox | None:
        """The mailbox, locked, for a poll to record what it found; None when it is gone or
        was given other connection settings while the poll ran: what the poll found is about
        settings no longer in force (the next round tries the new ones from the start)."""
        row = await self.session.scalar(select(Mailbox).where(Mailbox.id == polled.id).with_for_update())
        if row is None or any(getattr(row, key) != getattr(polled, key) for key in CONNECTION):
            return None
        return row

    @staticmethod
    def poll_failed(mailbox: Mailbox, error: str, started: datetime, now: datetime) -> None:
        """``started``: when the failed poll began, so that the wait is counted in rounds."""
        mailbox.poll_failures += 1
        mailbox.next_poll_at = started + poll_backoff(mailbox.poll_failures)
        mailbox.last_error, mailbox.last_polled_at = error, now

    @staticmethod
    def poll_succeeded(mailbox: Mailbox, now: datetime) -> None:
        mailbox.poll_failures, mailbox.next_poll_at, mailbox.last_polled_at = 0, None, now
        if shows_poll_error(mailbox):  # a verification email that failed is still to be told
            mailbox.last_error = None


def poll_backoff(failures: int) -> timedelta:
    """How long a mailbox waits after ``failures`` (at least 1) failed polls in a row."""
    return POLL_BACKOFF[min(failures, len(POLL_BACKOFF)) - 1]


def shows_poll_error(mailbox: Mailbox) -> bool:
    """Whether the mailbox's ``last_error`` is a poll's (it also tells of a verification
    email that could not be sent)."""
    return mailbox.last_error is not None and not mailbox.last_error.startswith(VERIFICATION_NOT_SENT)


_EMAIL = TypeAdapter(Email)


def _check_credentials(settings: dict[str, Any]) -> None:
    """A polled mailbox signs in: without a user name and password every poll would fail."""
    if settings.get("imap_host"):
        for key, what in (("imap_username", "a user name"), ("imap_password", "a password")):
            if not settings.get(key):
                raise ValidationFailed(f"An IMAP mailbox needs {what} to sign in with; or leave out imap_host "
                                       "to have the address's mail forwarded instead.", field=key)


def imap_port(port: int | None, tls: bool) -> int:
    """The mailbox's port, else IMAP's usual one for the connection."""
    return port or (993 if tls else 143)


def in_mail_domain(address: str, mail_domain: str) -> bool:
    """Whether ``address`` is at the deployment's mail domain or under it, in either
    spelling of an internationalised domain."""
    domain, own = stored_form(address).rpartition("@")[2], _domain_of(mail_domain)
    return domain == own or domain.endswith("." + own)


def _domain_of(mail_domain: str) -> str:
    return stored_form(f"postmaster@{mail_domain}").rpartition("@")[2]


def stored_form(address: str) -> str:
    """An address as customer profiles, users and mailboxes keep it (validated as they are:
    an internationalised domain in Unicode, ``user@xn--bcher-kva.example`` as
    ``user@bücher.example``), so mail from either spelling is recognised as theirs."""
    return valid_form(address) or normalise_email(address)


@functools.lru_cache(maxsize=4096)
def valid_form(address: str) -> str | None:
    """``stored_form`` of an address a customer profile may have, else None (``jo@corp.local``
    and other domains no mail server can reach). Remembered: an inbound email asks this of
    the same few addresses (its sender, our domain, the support address) several times,
    at ~0.1 ms a validation."""
    try:
        return normalise_email(_EMAIL.validate_python(address))
    except ValidationError:
        return None

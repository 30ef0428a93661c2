"""Email jobs: process what arrived, poll the IMAP mailboxes, send verification emails."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.inbound import WAITING, InboundMailService, header_message_id
from relaydesk.channels.models import InboundEmail, Mailbox
from relaydesk.channels.service import MailboxService, imap_port
from relaydesk.channels.verification import VERIFICATION_NOT_SENT, verification_email
from relaydesk.core.mail import MailError
from relaydesk.core.outbox import Event
from relaydesk.core.scheduler import Periodic
from relaydesk.core.targets import UnsafeTarget, check_host
from relaydesk.core.uow import savepoint
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.email")

IMAP_BATCH = 200
SWEEP_AFTER = timedelta(minutes=5)  # longer than any email waits for its batch


def inbound_service(runtime: Runtime, session) -> InboundMailService:  # noqa: ANN001
    return InboundMailService(runtime, session, ticket_service(runtime, session))


async def process_email(runtime: Runtime, inbound_id: uuid.UUID) -> str | None:
    """Process one stored email in a transaction of its own (the sweep of those left
    waiting); the status it ended with, or None if it was not waiting."""
    async with runtime.transaction() as session:
        row = await session.scalar(select(InboundEmail).where(InboundEmail.id == inbound_id).with_for_update())
        return await thread_email(runtime, session, row, runtime.clock.now())


async def thread_email(runtime: Runtime, session: AsyncSession, row: InboundEmail | None, now: datetime
                       ) -> str | None:
    """Parse, screen and thread one stored email within the caller's transaction, which
    may hold a whole batch of them: whatever goes wrong with this one is rolled back to
    its savepoint and sends it to the quarantine, kept, and the batch goes on."""
    if row is None or row.status not in WAITING:
        return None
    for _ in range(3):
        try:
            async with savepoint(session):
                return (await inbound_service(runtime, session).process(row, now)).status
        except IntegrityError as exc:
            # Two emails from one new sender at once (PostgreSQL, two batches): the other
            # made the customer, and a second look finds it.
            await session.refresh(row)
            error: Exception = exc
        except Exception as exc:
            await session.refresh(row)
            error = exc
            break
    log.warning("email_quarantined", inbound_id=str(row.id), error=str(error))
    row.status, row.processed_at = "quarantined", now
    row.reason = f"Could not be threaded: {type(error).__name__}: {error}"[:2000]
    row.attempts += 1
    return "quarantined"


async def send_verification(runtime: Runtime, mailbox_id: uuid.UUID, requested_at: datetime) -> str | None:
    """Makes the mailbox a new code and emails it to the address: the code is committed
    (as its hash) first, then the email goes, with no transaction held while the relay
    answers. A retry makes another code; only the latest counts."""
    settings = runtime.settings
    async with runtime.transaction() as session:
        issued = await MailboxService(session).issue_code(mailbox_id, requested_at)
        if issued is None:
            return None
        mailbox, code = issued
        workspace = await WorkspaceService(session).get(mailbox.workspace_id)
        message = verification_email(
            address=mailbox.address, mailbox_id=mailbox.id, code=code, workspace_id=workspace.id,
            workspace_name=workspace.name, built_in=f"{workspace.slug}@{settings.mail_domain}",
            public_url=settings.public_url, secret=settings.resolved_secret_key(), mail_domain=settings.mail_domain,
            now=runtime.clock.now())
    try:
        await runtime.mailer.send(message)
    except MailError as exc:
        # Shown with the mailbox, where the admin waiting for the email looks.
        async with runtime.transaction() as session:
            row = await session.get(Mailbox, mailbox_id)
            if row is not None:
                row.last_error = f"{VERIFICATION_NOT_SENT}: {exc}"[:300]
                # Nothing went out: asking again must not wait the minute meant for real emails.
                row.verification_sent_at = None
        log.warning("verification_email_failed", mailbox_id=str(mailbox_id), error=str(exc), permanent=exc.permanent)
        if not exc.permanent:
            raise  # the job's retries
        return "failed"
    return "sent"


IMAP_TIMEOUT = 30  # seconds for the connection and for each answer


class LoginRefused(imaplib.IMAP4.error):
    """The server said no to the user name and password; ``words``: its own."""

    def __init__(self, words: str) -> None:
        super().__init__(words)
        self.words = words


class FolderRefused(imaplib.IMAP4.error):
    """The server would not open the folder; ``words``: its own, ``folders``: those it has."""

    def __init__(self, words: str, folders: list[str]) -> None:
        super().__init__(words)
        self.words, self.folders = words, folders


@contextmanager
def _imap(mailbox: Mailbox) -> Iterator[imaplib.IMAP4]:
    """A signed-in IMAP session on the mailbox's folder; blocking, so callers use a thread."""
    client_class = imaplib.IMAP4_SSL if mailbox.imap_tls else imaplib.IMAP4
    port = imap_port(mailbox.imap_port, mailbox.imap_tls)
    with client_class(mailbox.imap_host or "", port, timeout=IMAP_TIMEOUT) as client:
        try:
            client.login(mailbox.imap_username or mailbox.address, mailbox.imap_password or "")
        except imaplib.IMAP4.abort:
            raise  # the connection broke: no answer to the password
        except imaplib.IMAP4.error as exc:
            raise LoginRefused(_server_words(exc.args[0] if exc.args else "")) from exc
        # imaplib only returns a refused SELECT; the next command would fail for another reason.
        result, data = client.select(_quote(mailbox.imap_folder))
        if result != "OK":
            raise FolderRefused(_server_words(data[-1] if data else ""), _folders(client))
        yield client


def _folders(client: imaplib.IMAP4) -> list[str]:
    """The folders the account has, as LIST names them, for the admin to pick the right one."""
    try:
        result, lines = client.list()
    except imaplib.IMAP4.error:
        return []
    names = []
    for line in lines if result == "OK" else ():
        if isinstance(line, bytes):
            # (\HasNoChildren) "." INBOX  |  (\HasNoChildren) "/" "Sent Items"
            match = re.match(rb'\(.*?\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
            if match:
                name = match.group(1).decode("utf-8", "replace")
                names.append(name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name.startswith('"') else name)
    return names


@dataclass(frozen=True, slots=True)
class ImapPosition:
    """How far a mailbox's folder has been read: its UIDVALIDITY and the highest UID taken."""

    uid_validity: int | None
    last_uid: int | None


def _fetch_new(mailbox: Mailbox, limit: int) -> tuple[ImapPosition, list[tuple[bytes, bytes]]]:
    """(the position after these, [(uid, raw)]) of the messages not taken yet, oldest first.

    Past the position, every message is new, read or not: whoever watches the mailbox in
    their own mail client may open a message before the poll comes round, and it must
    still become a ticket. Where there is no position yet (the first poll) or the folder's
    UIDVALIDITY changed (its UIDs now mean other messages), the unread messages are what
    is new, and the position is set from there: a mailbox connected with years of read
    mail in it does not turn that history into tickets."""
    with _imap(mailbox) as client:
        validity = _status_number(client, mailbox.imap_folder, "UIDVALIDITY")
        known = mailbox.imap_uid_validity == validity and mailbox.imap_last_uid is not None
        if known:
            # "n:*" always names the newest message, even when its UID is below n.
            _, found = client.uid("SEARCH", f"UID {mailbox.imap_last_uid + 1}:*")  # type: ignore[operator]
            uids = sorted(u for u in map(int, (found[0] or b"").split()) if u > mailbox.imap_last_uid)  # type: ignore[operator]
        else:
            _, found = client.uid("SEARCH", "UNSEEN")
            uids = sorted(map(int, (found[0] or b"").split()))
        taken = uids[:limit]
        messages = []
        for uid in taken:
            # BODY.PEEK leaves \Seen alone: a message is marked only once it is stored.
            _, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raw = next((part[1] for part in data if isinstance(part, tuple)), None)
            if raw is not None:
                messages.append((str(uid).encode(), raw))
        if known:
            last = taken[-1] if taken else mailbox.imap_last_uid  # the rest, if any, on the next poll
        elif len(taken) < len(uids):
            # Still working through the unread backlog: no position yet, or the next poll
            # would take the read mail between these and the unread ones left.
            last = None
        else:
            last = _status_number(client, mailbox.imap_folder, "UIDNEXT") - 1  # all there is now was looked at
        return ImapPosition(validity, last), messages


def _status_number(client: imaplib.IMAP4, folder: str, item: str) -> int:
    """A number SELECT reported (UIDVALIDITY, UIDNEXT), or else STATUS's."""
    _, reported = client.response(item)
    value = next((v for v in reported or () if v), None)
    if value is None:
        _, data = client.status(_quote(folder), f"({item})")
        match = re.search(rf"{item} (\d+)".encode(), data[0] or b"")
        value = match.group(1) if match else b"0"
    return int(value)


def _mark_seen(mailbox: Mailbox, uids: list[bytes]) -> None:
    with _imap(mailbox) as client:
        for uid in uids:
            client.uid("STORE", uid, "+FLAGS", r"(\Seen)")


def _quote(folder: str) -> str:
    """A folder name as IMAP commands carry it: quoted, in IMAP's modified UTF-7."""
    return '"' + _modified_utf7(folder).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _modified_utf7(name: str) -> str:
    """RFC 3501 5.1.3: printable ASCII stays (``&`` as ``&-``), any other run is UTF-16
    in base64 with ``,`` for ``/``, between ``&`` and ``-`` ("Boîte" is "Bo&AO4-te")."""
    out: list[str] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            end_run()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    end_run()
    return "".join(out)


async def poll_mailbox(runtime: Runtime, mailbox: Mailbox) -> int:
    """Store every new message (``_fetch_new``) and where the folder has been read to,
    then mark them seen; a crash between the two is harmless: the next poll starts past
    them, and recognises by Message-ID any it is shown again. A failure is shown on the
    mailbox, which then waits longer before each next try (``service.poll_backoff``)."""
    started = runtime.clock.now()
    try:
        if not runtime.settings.allow_private_targets:  # again at each poll: a name may resolve elsewhere now
            await check_host(mailbox.imap_host or "", imap_port(mailbox.imap_port, mailbox.imap_tls))
        position, fetched = await asyncio.to_thread(_fetch_new, mailbox, IMAP_BATCH)
    except (OSError, imaplib.IMAP4.error, UnsafeTarget) as exc:
        async with runtime.transaction() as session:
            service = MailboxService(session)
            row = await service.to_record_poll(mailbox)
            if row is not None:
                service.poll_failed(row, _poll_error(exc, mailbox), started, runtime.clock.now())
        log.warning("imap_poll_failed", mailbox=mailbox.address, error=repr(exc),
                    failures=row.poll_failures if row is not None else None)
        return 0
    stored: list[uuid.UUID] = []
    async with runtime.transaction() as session:
        inbound = inbound_service(runtime, session)
        now = runtime.clock.now()
        for _uid, raw in fetched:
            if await inbound.already_received(mailbox.workspace_id, header_message_id(raw)):
                continue
            row = inbound.receive(mailbox.workspace_id, raw, source="imap", now=now, mailbox_id=mailbox.id,
                                  envelope_to=mailbox.address)
            await session.flush()
            stored.append(row.id)
        service = MailboxService(session)
        box = await service.to_record_poll(mailbox)
        if box is not None:
            service.poll_succeeded(box, now)
            box.imap_uid_validity, box.imap_last_uid = position.uid_validity, position.last_uid
    if fetched:
        try:
            await asyncio.to_thread(_mark_seen, mailbox, [uid for uid, _ in fetched])
        except (OSError, imaplib.IMAP4.error) as exc:
            # They are stored and the position is past them: only their \Seen flag is missing,
            # and the other mailboxes of the round are still to be polled.
            log.warning("imap_mark_seen_failed", mailbox=mailbox.address, error=repr(exc))
    return len(stored)


def _poll_error(exc: Exception, mailbox: Mailbox) -> str:
    """What the admin is shown: what went wrong and which setting to check, with the IMAP
    server's own words where it gave some; never what a server that is not an IMAP one
    answered (whatever it sent would otherwise be read back through this field)."""
    host, port = mailbox.imap_host or "", imap_port(mailbox.imap_port, mailbox.imap_tls)
    at = f"{host} port {port}"
    usual = "IMAP is usually port 993 with TLS on, 143 with TLS off"
    if isinstance(exc, UnsafeTarget):
        return str(exc)[:300]
    if isinstance(exc, LoginRefused):
        user = mailbox.imap_username or mailbox.address
        code = re.match(r"\[([A-Z-]+)", exc.words)
        if code and code.group(1) == "UNAVAILABLE":
            advice = f"The server could not check the sign-in of {user} just now; it is tried again later."
        elif code and code.group(1) == "PRIVACYREQUIRED":
            advice = f"The server takes the password only over an encrypted connection: switch TLS on ({usual})."
        else:
            advice = (f"The server refused the sign-in of {user}: check the user name and the password "
                      "(many providers want an app password for IMAP, or IMAP switched on in the account).")
        return f"{advice} The server said: {exc.words}"[:1000]
    if isinstance(exc, FolderRefused):
        shown = ", ".join(f'"{name}"' for name in exc.folders[:20]) + (", ..." if len(exc.folders) > 20 else "")
        there = f" The account's folders: {shown}." if exc.folders else ""
        return (f'The folder "{mailbox.imap_folder}" could not be opened: check the folder name (as the server '
                f'names it; the inbox is "INBOX"). The server said: {exc.words}{there}')[:1000]
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"The TLS certificate of {at} was not accepted ({exc.verify_message}): check that the host is "
                "the name the certificate is for (the provider's IMAP host name, not an IP address).")[:1000]
    if isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":  # a greeting in plain text
        return (f"The server at {at} did not answer with TLS: switch TLS off for this port, or give the port "
                f"that takes TLS ({usual}).")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or exc.__class__.__name__).replace("_", " ").lower()
        return f"The TLS connection to {at} failed ({reason}): check whether this port takes TLS ({usual})."
    if isinstance(exc, imaplib.IMAP4.abort) and "unexpected response" in str(exc):
        return f"The server at {at} did not answer as an IMAP server does: check the host and port ({usual})."
    if isinstance(exc, ConnectionRefusedError):
        return f"The connection to {at} was refused: check the host and port ({usual}), and that the server is up."
    if isinstance(exc, socket.gaierror):
        return f"The host name {host} could not be found: check the host."
    if isinstance(exc, TimeoutError):
        tls = "" if mailbox.imap_tls else " A port that takes only TLS (usually 993) never answers without it: " \
            "switch TLS on for such a port."
        return (f"{at} did not answer within {IMAP_TIMEOUT} seconds: check the host and port ({usual}), and that "
                f"a firewall lets the connection through.{tls}")
    if isinstance(exc, OSError):
        return (f"Could not talk to {at} ({exc.strerror or exc.__class__.__name__}): check the host and port "
                f"({usual}); it is tried again later.")
    if isinstance(exc, imaplib.IMAP4.abort):
        return f"The connection to {at} broke off; it is tried again later."
    words = _server_words(exc.args[0] if exc.args else "")
    return f'The server refused to read the folder "{mailbox.imap_folder}". The server said: {words}'[:1000]


def _server_words(said: object) -> str:
    """An IMAP server's answer as text (imaplib gives bytes, or writes their repr into its
    own messages: ``SEARCH command error: BAD [b'...']``), without Dovecot's timing."""
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    text = re.sub(r"""\[?(?<!\w)b(['"])(.*?)\1\]?""", r"\2", text)
    text = re.sub(r"\s*\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)* secs\)", "", text)
    return "".join(c if c.isprintable() else " " for c in text).strip()[:300]


def install(runtime: Runtime) -> list[Periodic]:
    async def load_batch(session: AsyncSession, events: list[Event]) -> None:
        """One read (and on PostgreSQL one lock) for a batch's emails, not one each."""
        ids = [uuid.UUID(e.payload["inbound_id"]) for e in events]
        stmt = select(InboundEmail).where(InboundEmail.id.in_(ids))
        await session.scalars(stmt if runtime.db.is_sqlite else stmt.with_for_update())

    async def on_received(session: AsyncSession, event: Event, now: datetime) -> None:
        """channels.thread_email: emails arriving together are threaded together, in their
        batch's one transaction (idempotent: the row's status says whether it was done)."""
        await thread_email(runtime, session, await session.get(InboundEmail, uuid.UUID(event.payload["inbound_id"])),
                           now)

    async def sweep() -> int:
        """channels.process_pending: emails stored but never processed (a crash, a lost job).
        Only those waiting a while: the ones of a burst still queued for their batch would
        otherwise be taken one transaction each, at a batch's cost each."""
        async with runtime.db.read_session() as session:
            ids = list(await session.scalars(select(InboundEmail.id).where(
                InboundEmail.status.in_(WAITING), InboundEmail.received_at < runtime.clock.now() - SWEEP_AFTER)
                .order_by(InboundEmail.received_at).limit(500)))
        for inbound_id in ids:
            await process_email(runtime, inbound_id)
        return len(ids)

    async def poll() -> int:
        """channels.poll_imap: fetch new mail from every IMAP mailbox that is due."""
        async with runtime.db.read_session() as session:
            mailboxes = await MailboxService(session).pollable(runtime.clock.now())
        return sum([await poll_mailbox(runtime, m) for m in mailboxes])

    async def on_verification_requested(event_id: int, workspace_id: str, type: str,
                                        payload: dict[str, Any]) -> str | None:
        """channels.send_verification: a new code, emailed to the mailbox's address."""
        return await send_verification(runtime, uuid.UUID(payload["mailbox_id"]),
                                       datetime.fromisoformat(payload["at"]))

    runtime.dispatcher.consumers.add("channels.thread_email", ("email.received",), on_received, prepare=load_batch)
    runtime.jobs.register("channels.send_verification", on_verification_requested)
    runtime.dispatcher.subscribe({"mailbox.verification_requested": ["channels.send_verification"]})
    runtime.jobs.register("channels.process_pending", sweep)
    runtime.jobs.register("channels.poll_imap", poll)
    return [Periodic("channels.process_pending", 60), Periodic("channels.poll_imap", runtime.settings.imap_poll_seconds)]

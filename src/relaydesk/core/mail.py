"""Outbound mail: an SMTP relay in production, a folder of .eml files until one is set.

Picked in ``runtime.py`` from the settings. A fresh install with no relay configured
still "sends": each message lands in ``<data dir>/mail-outbox`` where an operator can
read it, so nothing fails and nothing is lost while mail is being set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import re
from collections.abc import AsyncIterator
from contextvars import ContextVar
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender


class _OneLineHeaders(Compat32):
    """compat32, except that a header which fits on its line is written as it is.

    compat32 puts every header through ``email.header.Header``'s folding, which was two
    thirds of writing out a notification (~300 of ~450 µs here) and, for such a header,
    writes the same text back (a test compares the two)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value \
                and len(name) + 2 + len(value) <= (self.max_line_length or 78):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)  # type: ignore[misc]


_ONE_LINE_HEADERS = _OneLineHeaders()


class _Generator(BytesGenerator):
    @classmethod
    def _make_boundary(cls, text: bytes | None = None) -> str:
        """A random boundary that occurs nowhere in the parts. The standard library checks
        with a regular expression made for each boundary (so never cached): a third of a
        millisecond per multipart email here. A plain search is as safe (stricter: it
        refuses the boundary anywhere, not only at the start of a line). It need not be
        unpredictable, only absent, so no system call for randomness (the standard library
        uses ``random`` too)."""
        while True:
            boundary = f"==============={random.getrandbits(80):020x}=="
            if text is None or boundary.encode() not in text:
                return boundary


def flatten(message: Message) -> bytes:
    """The message as it goes on the wire (or into a .eml file)."""
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=_ONE_LINE_HEADERS).flatten(message)
    return out.getvalue()


_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def header_text(value: str) -> str:
    """``value`` (a display name) as a header may carry it: a line break would end the
    header there (and what follows would be read as another, a Bcc say), so control
    characters become one space."""
    return " ".join(_BREAKS.sub(" ", value).split())


def needs_smtputf8(address: str) -> bool:
    """Whether mail to ``address`` needs SMTPUTF8: a local part other than ASCII has no
    ASCII form (an internationalised domain has, its punycode)."""
    return not address.rpartition("@")[0].isascii()


class MailError(Exception):
    """``permanent``: the relay refused the message, or every recipient, for good (5xx);
    retrying won't help. ``dropped``: the connection is gone (or going), so it cannot carry
    another. ``refused``: when the relay refused every recipient, why, for each."""

    def __init__(self, message: str, *, permanent: bool = False, dropped: bool = False,
                 refused: Refused | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.dropped = dropped
        self.refused: Refused = refused or {}


# The recipients a relay refused at RCPT, by the address as sent (in lower case), each
# with why (``permanent`` for a 5xx).
Refused = dict[str, MailError]


def _refused(answers: dict[str, Any]) -> Refused:
    return {address.lower(): MailError(f"{answer.code} {answer.message}", permanent=500 <= answer.code < 600)
            for address, answer in answers.items()}


class Mailer(Protocol):
    async def send(self, message: Message, recipients: list[str] | None = None) -> Refused | None:
        """Raises ``MailError`` if the message went to nobody; else the recipients the relay
        refused while taking it for the others (None or empty: it took every one).
        ``recipients``: whom it goes to, when not everyone its To and Cc name (the same
        email again for those a relay refused for now)."""
        ...

    def batch(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Messages sent inside may share a connection: a delivery round's."""
        ...


class _Held:
    """A batch's connection, or why it could not be made."""

    __slots__ = ("client", "unreachable")

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None
        self.unreachable: MailError | None = None


class SmtpMailer:
    """Sends through a relay. Within ``batch()`` one connection carries every message:
    a relay's TCP and TLS handshakes and AUTH cost more than a notification itself, and
    relays limit connections per minute. Outside a batch each message has its own."""

    def __init__(self, host: str, port: int, *, starttls: bool = False, use_tls: bool = False,
                 username: str | None = None, password: str | None = None, timeout: float = 30) -> None:
        self.host, self.port = host, port
        self.starttls, self.use_tls = starttls, use_tls
        self.username, self.password = username, password
        self.timeout = timeout
        # Per task, so that concurrent rounds never talk over each other on one connection.
        self._held: ContextVar[_Held | None] = ContextVar(f"smtp_batch_{id(self)}", default=None)

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        held = _Held()
        token = self._held.set(held)
        try:
            yield
        finally:
            self._held.reset(token)
            if held.client is not None:
                await _close(held.client)

    async def send(self, message: Message, recipients: list[str] | None = None) -> Refused:
        held = self._held.get()
        if held is None:
            async with self.batch():
                return await self.send(message, recipients)
        reused = held.client is not None and held.client.is_connected
        if not reused:
            await self._dial(held)
        client = held.client
        assert client is not None
        try:
            return await self._send_on(client, message, recipients)
        except MailError as exc:
            if client.is_connected and not exc.dropped:
                raise  # the message was refused; the connection can carry the next one
            client.close()
            held.client = None
            if not reused:
                raise
            # The relay closed a connection that had carried earlier messages (an idle
            # or per-connection limit): once more on a fresh one, as a new round would.
            await self._dial(held)
            assert held.client is not None
            return await self._send_on(held.client, message, recipients)

    async def _dial(self, held: _Held) -> None:
        """Connect for the batch. A relay that could not be reached (or refused our login)
        fails the rest of the batch at once: each message waiting out its own connect
        timeout would hold a round of 100 for most of an hour, past its claim."""
        if held.unreachable is not None:
            raise MailError(f"{held.unreachable} (earlier in this round)")
        try:
            held.client = await self._connect()
        except MailError as exc:
            held.unreachable = exc
            raise

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, start_tls=self.starttls, use_tls=self.use_tls,
                                 username=self.username, password=self.password, timeout=self.timeout)
        # Never permanent, even a 5xx: a relay that will not take us (a wrong password, a
        # refused greeting) is our set-up to fix, and the emails should go once it is fixed.
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise MailError(f"the relay refused our login: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(f"the relay refused the connection: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"could not connect to the relay: {type(exc).__name__}: {exc}") from exc
        return client

    @staticmethod
    async def _send_on(client: aiosmtplib.SMTP, message: Message, recipients: list[str] | None) -> Refused:
        sender, recipients = extract_sender(message), recipients or extract_recipients(message)
        try:
            if sender and recipients and sender.isascii() and all(r.isascii() for r in recipients):
                answers, _ = await client.sendmail(sender, recipients, flatten(message))
            else:  # no addresses, or ones that need SMTPUTF8: the library's path says so or negotiates it
                answers, _ = await client.send_message(message, recipients=recipients or None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # Each refusal is final or not by its own code: a 4xx (greylisting, a mailbox
            # full for now) is worth trying again.
            refused = _refused({r.recipient: r for r in exc.recipients})
            raise MailError(f"recipient refused: {exc}", permanent=all(why.permanent for why in refused.values()),
                            refused=refused) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 421: the relay is closing this connection (RFC 5321 4.2.2). A 5xx is final for
            # the message, except the ones about our own set-up: a login or encryption the
            # relay wants first (RFC 4954: 530, 535, 538), which once fixed lets it go.
            raise MailError(f"{exc.code} {exc.message}",
                            permanent=500 <= exc.code < 600 and exc.code not in _OUR_SET_UP,
                            dropped=exc.code == 421) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}", dropped=True) from exc
        # Some recipients refused, the others took it: not a failure of the message, each
        # refusal is its recipient's (the caller decides what it means).
        return _refused(answers)


_OUR_SET_UP = frozenset({530, 535, 538})


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


class FolderMailer:
    """Writes each message to ``<folder>/<Message-ID>.eml`` (no relay configured).

    Creating a file is kernel work, 40 µs on one day and 350-800 µs on another on the same
    machine, so it is done on a worker thread rather than holding up the loop; and since
    each trip there cost the loop ~200 µs under load, a batch's files go in one trip, once
    the batch is done (before its outcomes are recorded)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pending: ContextVar[list[tuple[str, bytes]] | None] = ContextVar(
            f"folder_batch_{id(self)}", default=None)

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        pending: list[tuple[str, bytes]] = []
        token = self._pending.set(pending)
        try:
            yield
        finally:
            self._pending.reset(token)
        if pending:
            await asyncio.to_thread(self._write, pending)

    async def send(self, message: Message, recipients: list[str] | None = None) -> Refused:
        name = (message["Message-ID"] or "message").strip("<>").replace("/", "_") + ".eml"
        file = (name, flatten(message))
        pending = self._pending.get()
        if pending is not None:
            pending.append(file)
        else:
            await asyncio.to_thread(self._write, [file])
        return {}

    def _write(self, files: list[tuple[str, bytes]]) -> None:
        for name, data in files:
            try:
                (self.folder / name).write_bytes(data)
            except FileNotFoundError:  # the first message (or the folder was removed): make it, once
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / name).write_bytes(data)

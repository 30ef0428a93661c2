"""Outbound mail: an SMTP relay in production, a folder of .eml files until one is set.

Picked in ``runtime.py`` from the settings. A fresh install with no relay configured
still "sends": each message lands in ``<data dir>/mail-outbox`` where an operator can
read it, so nothing fails and nothing is lost while mail is being set up.
"""

from __future__ import annotations

import asyncio
from email.message import Message
from pathlib import Path
from typing import Protocol

import aiosmtplib


class MailError(Exception):
    """``permanent``: the relay refused the recipient or the message (5xx); retrying won't help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    async def send(self, message: Message) -> None: ...


class SmtpMailer:
    def __init__(self, host: str, port: int, *, starttls: bool = False, use_tls: bool = False,
                 username: str | None = None, password: str | None = None, timeout: float = 30) -> None:
        self.host, self.port = host, port
        self.starttls, self.use_tls = starttls, use_tls
        self.username, self.password = username, password
        self.timeout = timeout

    async def send(self, message: Message) -> None:
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, start_tls=self.starttls, use_tls=self.use_tls,
                username=self.username, password=self.password, timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"recipient refused: {exc}", permanent=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc


class FolderMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: Message) -> None:
        name = (message["Message-ID"] or "message").strip("<>").replace("/", "_") + ".eml"
        await asyncio.to_thread(self._write, name, bytes(message))

    def _write(self, name: str, data: bytes) -> None:
        try:
            (self.folder / name).write_bytes(data)
        except FileNotFoundError:  # the first message (or the folder was removed): make it, once
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_bytes(data)

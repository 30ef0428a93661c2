"""The built-in SMTP listener (aiosmtpd), on the process's own event loop.

A recipient is accepted only when it is a support address (a mailbox, or
``<workspace slug>@<mail domain>``); anything else is refused at RCPT (550), so the
sending server bounces it and nothing disappears silently. The message is answered 250
only after its raw bytes are committed, once per workspace it was addressed to;
processing follows in a job, started by the ``email.received`` event of that commit.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from relaydesk.channels.inbound import InboundMailService
from relaydesk.channels.service import MailboxService
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.email")

MAX_MESSAGE_BYTES = 35 * 1024 * 1024  # attachments up to the upload limit, base64-encoded, and then some


class _Handler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        async with self.runtime.db.read_session() as db:
            target = await MailboxService(db).workspace_for(address, self.runtime.settings.mail_domain)
        if target is None:
            return "550 5.1.1 No such support address here"
        targets: dict[str, tuple[uuid.UUID, uuid.UUID | None]] = envelope.__dict__.setdefault("relaydesk_targets", {})
        targets[address.lower()] = target
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        targets: dict[str, tuple[uuid.UUID, uuid.UUID | None]] = envelope.__dict__.get("relaydesk_targets", {})
        seen: set[uuid.UUID] = set()
        try:
            async with self.runtime.transaction() as db:
                inbound = InboundMailService(self.runtime, db, ticket_service(self.runtime, db))
                now = self.runtime.clock.now()
                for address, (workspace_id, mailbox_id) in targets.items():
                    if workspace_id in seen:
                        continue  # two addresses of one workspace: one ticket, not two
                    seen.add(workspace_id)
                    inbound.receive(workspace_id, raw, source="smtp", now=now, mailbox_id=mailbox_id,
                                    envelope_from=envelope.mail_from or "", envelope_to=address)
        except Exception as exc:  # the database is away: the sender keeps the message and retries
            log.warning("smtp_store_failed", error=str(exc))
            return "451 4.3.0 Temporary failure storing the message, try again later"
        return "250 2.0.0 Message accepted"


class SmtpListener:
    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        handler = _Handler(self.runtime)
        settings = self.runtime.settings
        tls_context = settings.smtp_listen_tls_context()

        def factory() -> SMTP:
            return SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True, decode_data=False,
                        hostname=settings.mail_domain, ident="Relaydesk ESMTP", tls_context=tls_context,
                        require_starttls=tls_context is not None and settings.smtp_listen_require_tls)

        self._server = await asyncio.get_running_loop().create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("smtp_listening", host=self.host, port=self.port, starttls=tls_context is not None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmtpListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

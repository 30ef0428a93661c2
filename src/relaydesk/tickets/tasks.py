"""Background work of the tickets domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.scheduler import Periodic
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.tickets.attachments import AttachmentService
from relaydesk.tickets.service import TicketService

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.tickets")

def ticket_service(runtime: Runtime, session: AsyncSession) -> TicketService:
    users = UserService(session, runtime.hasher)
    agents = AgentService(session, users)
    return TicketService(session, customers=CustomerService(session, users), agents=agents,
                         teams=TeamService(session, agents))


def install(runtime: Runtime) -> list[Periodic]:
    async def auto_close() -> int:
        """tickets.auto_close: close RESOLVED tickets whose quiet period has run out."""
        closed = 0
        for _ in range(50):  # bounded: the next run picks up what is left
            async with runtime.transaction() as session:
                batch = await ticket_service(runtime, session).auto_close_due(runtime.clock.now(), limit=200)
            closed += batch
            if batch < 200:
                break
        return closed

    async def sweep_uploads() -> int:
        """tickets.sweep_uploads: delete uploads no message took within a day, rows and files."""
        deleted = 0
        for _ in range(50):  # bounded: the next run picks up what is left
            async with runtime.transaction() as session:
                uploads = AttachmentService(session, runtime.files, runtime.settings.max_upload_bytes)
                keys = await uploads.delete_unattached(runtime.clock.now(), limit=200)
            await uploads.delete_files(keys)
            deleted += len(keys)
            if len(keys) < 200:
                break
        if deleted:
            log.info("unattached_uploads_deleted", deleted=deleted)
        return deleted

    runtime.jobs.register("tickets.auto_close", auto_close)
    runtime.jobs.register("tickets.sweep_uploads", sweep_uploads)
    return [Periodic("tickets.auto_close", runtime.settings.auto_close_scan_seconds),
            Periodic("tickets.sweep_uploads", 3600)]

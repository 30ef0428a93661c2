"""Background work of the tickets domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.scheduler import Periodic
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.tickets.service import TicketService

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.runtime import Runtime


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

    runtime.jobs.register("tickets.auto_close", auto_close)
    return [Periodic("tickets.auto_close", runtime.settings.auto_close_scan_seconds)]

"""SLA jobs: keep trackers in step with ticket events, and the monitor that advances
the trackers whose next check has come."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from relaydesk.core.outbox import first_time
from relaydesk.core.scheduler import Periodic
from relaydesk.sla.service import SlaService
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.runtime import Runtime

# Moving into or out of these is what pauses, resumes, stops or re-opens a clock.
CLOCK_STATUSES = {"WAITING_ON_CUSTOMER", "RESOLVED", "CLOSED"}
TICKET_EVENTS = ("ticket.created", "message.posted", "ticket.status_changed", "ticket.priority_changed",
                 "ticket.category_changed")


def sla_service(runtime: Runtime, session: AsyncSession) -> SlaService:
    tickets = ticket_service(runtime, session)
    return SlaService(session, tickets=tickets, customers=tickets.customers, teams=tickets.teams)


def install(runtime: Runtime) -> list[Periodic]:
    async def on_ticket_event(event_id: int, workspace_id: str, type: str, payload: dict[str, Any]) -> None:
        async with runtime.transaction() as session:
            now = runtime.clock.now()
            if not await first_time(session, "sla.on_ticket_event", event_id, now):
                return
            if type == "ticket.status_changed" and not CLOCK_STATUSES & {payload.get("before"), payload.get("after")}:
                return  # e.g. OPEN -> ASSIGNED: no clock pauses, resumes or stops
            message = None
            if type == "message.posted":
                if payload.get("internal"):
                    return
                message = "customer" if payload.get("actor_kind") == "customer" else "agent"
            at = datetime.fromisoformat(payload["at"]) if payload.get("at") else now
            await sla_service(runtime, session).sync(uuid.UUID(workspace_id), uuid.UUID(payload["ticket_id"]),
                                                     at, now, message=message)

    async def on_policy_changed(event_id: int, workspace_id: str, type: str, payload: dict[str, Any]) -> None:
        async with runtime.transaction() as session:
            now = runtime.clock.now()
            if await first_time(session, "sla.on_policy_changed", event_id, now):
                await sla_service(runtime, session).retarget_policy(
                    uuid.UUID(workspace_id), uuid.UUID(payload["policy_id"]), now)

    async def scan_due() -> int:
        """sla.scan_due: advance due trackers in batches until a batch comes back short
        (bounded, so one tracker that stays due can never keep a worker spinning)."""
        total = 0
        for _ in range(50):
            async with runtime.transaction() as session:
                done = await sla_service(runtime, session).scan_due(runtime.clock.now(), limit=200)
            total += done
            if done < 200:
                break
        return total

    runtime.jobs.register("sla.on_ticket_event", on_ticket_event)
    runtime.jobs.register("sla.on_policy_changed", on_policy_changed)
    runtime.jobs.register("sla.scan_due", scan_due)
    runtime.dispatcher.subscribe({**{e: ["sla.on_ticket_event"] for e in TICKET_EVENTS},
                                  "sla.policy_changed": ["sla.on_policy_changed"]})
    return [Periodic("sla.scan_due", runtime.settings.sla_scan_seconds)]

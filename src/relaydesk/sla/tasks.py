"""SLA jobs: keep trackers in step with ticket events, and the monitor that advances
the trackers whose next check has come."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from relaydesk.core.scheduler import Periodic
from relaydesk.sla.service import SlaService
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.core.outbox import Event
    from relaydesk.runtime import Runtime

# Moving into or out of these is what pauses, resumes, stops or re-opens a clock.
CLOCK_STATUSES = {"WAITING_ON_CUSTOMER", "RESOLVED", "CLOSED"}
# After these another policy may apply: policy_for reads the ticket's category and customer.
POLICY_EVENTS = {"ticket.priority_changed", "ticket.category_changed"}
TICKET_EVENTS = ("ticket.created", "message.posted", "ticket.status_changed", "ticket.priority_changed",
                 "ticket.category_changed")


def sla_service(runtime: Runtime, session: AsyncSession) -> SlaService:
    tickets = ticket_service(runtime, session)
    return SlaService(session, tickets=tickets, customers=tickets.customers, teams=tickets.teams)


def _moves_a_clock(event: Event) -> bool:
    if event.type == "ticket.status_changed":  # e.g. OPEN -> ASSIGNED: no clock pauses, resumes or stops
        return bool(CLOCK_STATUSES & {event.payload.get("before"), event.payload.get("after")})
    return not (event.type == "message.posted" and event.payload.get("internal"))  # internal notes: none


def install(runtime: Runtime) -> list[Periodic]:
    async def on_ticket_event(session: AsyncSession, event: Event, now: datetime) -> None:
        payload = event.payload
        message = None
        if event.type == "message.posted":
            message = "customer" if payload.get("actor_kind") == "customer" else "agent"
        await sla_service(runtime, session).sync(event.workspace_id, uuid.UUID(payload["ticket_id"]),
                                                 event.happened_at(now), now, message=message,
                                                 priority_only=event.type == "ticket.priority_changed",
                                                 rechoose_policy=event.type in POLICY_EVENTS,
                                                 new_ticket=event.type == "ticket.created")

    async def look_ahead(session: AsyncSession, events: list[Event]) -> None:
        tickets: dict[uuid.UUID, list[uuid.UUID]] = {}
        for e in events:
            tickets.setdefault(e.workspace_id, []).append(uuid.UUID(e.payload["ticket_id"]))
        # A new ticket's tracker is made by its ticket.created: there is none to lock yet.
        existing = sorted({uuid.UUID(e.payload["ticket_id"]) for e in events if e.type != "ticket.created"})
        await sla_service(runtime, session).load_ahead(tickets, existing)

    async def on_policy_changed(session: AsyncSession, event: Event, now: datetime) -> None:
        await sla_service(runtime, session).retarget_policy(event.workspace_id,
                                                            uuid.UUID(event.payload["policy_id"]), now)

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

    runtime.dispatcher.consumers.add("sla.on_ticket_event", TICKET_EVENTS, on_ticket_event, prepare=look_ahead,
                                     wants=_moves_a_clock)
    runtime.dispatcher.consumers.add("sla.on_policy_changed", ("sla.policy_changed",), on_policy_changed)
    runtime.jobs.register("sla.scan_due", scan_due)
    return [Periodic("sla.scan_due", runtime.settings.sla_scan_seconds)]

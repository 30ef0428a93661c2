"""Turns domain events into notifications for the people they concern."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.errors import NotFound
from relaydesk.core.outbox import first_time
from relaydesk.core.principal import Principal
from relaydesk.core.scheduler import Periodic
from relaydesk.identity.service import UserService
from relaydesk.notifications.service import NotificationService
from relaydesk.tickets.schemas import ticket_reference
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

SUBSCRIPTIONS = {
    "ticket.assigned": "assigned",
    "routing.queue_waiting": "queue_waiting",
    "sla.threshold_crossed": "sla",
    "ticket.escalated": "escalated",
}


def install(runtime: Runtime) -> list[Periodic]:
    async def job(event_id: int, workspace_id: str, type: str, payload: dict[str, Any]) -> None:
        ws = uuid.UUID(workspace_id)
        async with runtime.transaction() as session:
            now = runtime.clock.now()
            if not await first_time(session, "notifications.on_event", event_id, now):
                return
            tickets = ticket_service(runtime, session)
            agents = AgentService(session, UserService(session, runtime.hasher))
            teams = TeamService(session, agents)
            try:
                ticket = await tickets.get(Principal.system(ws), uuid.UUID(payload["ticket_id"]))
            except NotFound:
                return
            ref = f"{ticket_reference(ticket.number)} “{ticket.subject}”"
            lead = await teams.lead_of(ws, ticket.team_id)
            notes = NotificationService(session)

            def send(users: set[uuid.UUID | None], kind: str, title: str, body: str = "") -> None:
                notes.notify(ws, users, kind=kind, title=title, body=body, ticket_id=ticket.id, now=now,
                             event_id=event_id)

            match type:
                case "ticket.assigned" if payload.get("after") and payload.get("after") != payload.get("actor_id"):
                    send({uuid.UUID(payload["after"])}, "assigned", f"{ref} was assigned to you")
                case "routing.queue_waiting":
                    send({*await agents.managers(ws), lead}, "queue_waiting",
                         f"{ref} has waited {payload['waited_minutes']} minutes for an agent",
                         payload.get("reason") or "")
                case "sla.threshold_crossed":
                    level, clock = payload["level"], payload["clock"].replace("_", " ")
                    users = {ticket.assignee_id} if level == "warning" else {ticket.assignee_id, lead}
                    send(users, f"sla_{level}", f"{ref}: {clock} SLA {_level_word(level)}",
                         f"Due {payload.get('due_at')}")
                case "ticket.escalated":
                    level = payload["level"]
                    users: set[uuid.UUID | None] = {lead, ticket.assignee_id}
                    if level >= 3 or payload.get("kind") in ("incident", "high_impact"):
                        users |= set(await agents.managers(ws))
                    send(users, "escalated", f"{ref} escalated to level {level}", payload.get("reason") or "")

    runtime.jobs.register("notifications.on_event", job)
    runtime.dispatcher.subscribe({event: ["notifications.on_event"] for event in SUBSCRIPTIONS})
    return []


def _level_word(level: str) -> str:
    return {"warning": "at 75 % — warning", "critical": "critical", "breached": "breached"}.get(level, level)

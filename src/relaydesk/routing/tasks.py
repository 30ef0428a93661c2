"""Routing's jobs: react to new tickets, freed capacity and agents coming online, and a
periodic sweep of the queues."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from relaydesk.core.principal import Principal
from relaydesk.core.scheduler import Periodic
from relaydesk.routing.service import ModelCache, RoutingService
from relaydesk.tickets.lifecycle import OPEN_WORK, Status
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from relaydesk.core.outbox import Event
    from relaydesk.runtime import Runtime


def routing_service(runtime: Runtime, session: AsyncSession) -> RoutingService:
    tickets = ticket_service(runtime, session)
    models = runtime.extras.setdefault("category_models", ModelCache())
    return RoutingService(session, tickets=tickets, agents=tickets.agents, teams=tickets.teams,
                          customers=tickets.customers, models=models)  # type: ignore[arg-type]


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _routed(p: dict[str, Any]) -> bool:
    """Routing (or another system step) gave an unassigned ticket to somebody."""
    return p.get("actor_kind") == "system" and bool(p.get("after")) and not p.get("before")


def _back_to_open(p: dict[str, Any]) -> bool:
    """Re-opened without an owner to lose (a ticket that lost one is routed from
    ticket.assigned, which says whom to pass over)."""
    return Status(p["after"]) is Status.OPEN and not p.get("unassigned")


def _by_a_person(p: dict[str, Any]) -> bool:
    return p.get("actor_kind") != "system"


def _frees_capacity(p: dict[str, Any]) -> bool:
    return Status(p["before"]) in OPEN_WORK and Status(p["after"]) not in OPEN_WORK


def install(runtime: Runtime) -> list[Periodic]:
    def handler(consumer: str, event_types: tuple[str, ...], react, prepare=None, wants=None):  # noqa: ANN001, ANN202
        async def on_event(session: AsyncSession, event: Event, now: datetime) -> None:
            await react(routing_service(runtime, session), event.workspace_id, event.type, event.payload, now)

        # alone: routing takes the workspace's routing lock, which other batches wait for.
        runtime.dispatcher.consumers.add(consumer, event_types, on_event, prepare=prepare, alone=True,
                                         wants=wants)

    async def look_ahead(session: AsyncSession, events: list[Event]) -> None:
        """A batch's new tickets: classified in one call to the model, and looked up for a
        routing record in one query."""
        service = routing_service(runtime, session)
        await service.find_unrouted_ahead([uuid.UUID(e.payload["ticket_id"]) for e in events])
        by_workspace: dict[uuid.UUID, list[uuid.UUID]] = {}
        for e in events:
            if not e.payload.get("category_given"):
                by_workspace.setdefault(e.workspace_id, []).append(uuid.UUID(e.payload["ticket_id"]))
        for ws, ticket_ids in by_workspace.items():
            await service.classify_ahead(ws, ticket_ids)

    async def on_created(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        await service.intake(ws, uuid.UUID(p["ticket_id"]), now, category_given=p.get("category_given", False),
                             priority_given=p.get("priority_given", False), assigned=p.get("assigned", False),
                             opened_with=p.get("opened_with"))

    async def on_assigned(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        await service.on_assignee_changed(ws, uuid.UUID(p["ticket_id"]), _uuid(p.get("before")),
                                          _uuid(p.get("after")), p.get("actor_kind") == "system", now,
                                          actor_id=_uuid(p.get("actor_id")))

    async def on_status(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        ticket_id = uuid.UUID(p["ticket_id"])
        if _back_to_open(p):
            await service.route(ws, ticket_id, now)
        if _frees_capacity(p):
            ticket = await service.tickets.get(Principal.system(ws), ticket_id)
            if ticket.assignee_id is not None:
                await service.drain_for_agent(ws, ticket.assignee_id, now)

    async def on_priority(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        await service.follow_priority(uuid.UUID(p["ticket_id"]))

    async def on_category(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        await service.follow_category(ws, uuid.UUID(p["ticket_id"]), _uuid(p.get("before")), now)

    async def on_agent(service: RoutingService, ws: uuid.UUID, type: str, p: dict, now) -> None:  # noqa: ANN001
        if type == "agent.capacity_changed" and "is_active" in p.get("fields", ()):
            if await service.release_from_inactive(ws, uuid.UUID(p["agent_id"]), now):
                return  # deactivated: their tickets are on their way to others
        if type == "agent.availability_changed" and p.get("after") != "online":
            return
        await service.drain_for_agent(ws, uuid.UUID(p["agent_id"]), now)

    async def on_escalated(service: RoutingService, ws: uuid.UUID, _type: str, p: dict, now) -> None:  # noqa: ANN001
        if p.get("level") == 2:
            await service.reassign_to_senior(ws, uuid.UUID(p["ticket_id"]), now)

    handler("routing.on_ticket_created", ("ticket.created",), on_created, prepare=look_ahead)
    handler("routing.on_escalated", ("ticket.escalated",), on_escalated)
    # Routing's own assignment (and the status change it brings) needs nothing more from it.
    handler("routing.on_assignee_changed", ("ticket.assigned",), on_assigned,
            wants=lambda e: not _routed(e.payload))
    handler("routing.on_status_changed", ("ticket.status_changed",), on_status,
            wants=lambda e: _back_to_open(e.payload) or _frees_capacity(e.payload))
    # Intake's own category and priority are in the record it makes.
    handler("routing.on_priority_changed", ("ticket.priority_changed",), on_priority,
            wants=lambda e: _by_a_person(e.payload))
    handler("routing.on_category_changed", ("ticket.category_changed",), on_category,
            wants=lambda e: _by_a_person(e.payload))
    handler("routing.on_agent_changed", ("agent.availability_changed", "agent.capacity_changed"), on_agent)

    async def sweep() -> None:
        async with runtime.transaction() as session:
            await routing_service(runtime, session).sweep(runtime.clock.now())

    runtime.jobs.register("routing.sweep_queues", sweep)
    return [Periodic("routing.sweep_queues", runtime.settings.queue_sweep_seconds)]

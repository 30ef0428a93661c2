from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.http import now
from relaydesk.core.schemas import Page
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import CurrentPrincipal, StaffPrincipal
from relaydesk.sla.schemas import (
    CalendarIn,
    CalendarOut,
    CalendarPatch,
    CategoryPolicyIn,
    EscalationIn,
    EscalationOut,
    PolicyIn,
    PolicyOut,
    PolicyPatch,
    SlaOut,
)
from relaydesk.sla.service import SlaService
from relaydesk.sla.tasks import sla_service
from relaydesk.tickets.api import TicketRef
from relaydesk.tickets.schemas import CategoryOut

router = APIRouter(prefix="/api/v1")


def service(request: Request, session: AsyncSession) -> SlaService:
    return sla_service(request.app.state.runtime, session)


@router.get("/tickets/{ticket_ref}/sla", response_model=SlaOut, tags=["sla"],
            summary="Each SLA clock of the ticket: due, remaining, percent used, state")
async def ticket_sla(ticket_ref: TicketRef, principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return await service(request, session).view(principal, ticket_ref, now(request))


@router.post("/tickets/{ticket_ref}/escalations", status_code=status.HTTP_201_CREATED, response_model=EscalationOut,
             tags=["sla"], summary="Escalate a ticket by hand (customers: a customer_request)")
async def escalate(ticket_ref: TicketRef, body: EscalationIn, principal: CurrentPrincipal, request: Request,
                   session: SessionDep):  # noqa: ANN201
    return await service(request, session).escalate(principal, ticket_ref, body, now(request))


@router.get("/tickets/{ticket_ref}/escalations", response_model=list[EscalationOut], tags=["sla"],
            summary="The ticket's escalations, oldest first")
async def escalations(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request,
                      session: SessionDep):  # noqa: ANN201
    return await service(request, session).escalations(principal, ticket_ref)


@router.post("/sla-policies", status_code=status.HTTP_201_CREATED, response_model=PolicyOut, tags=["sla"],
             summary="Add an SLA policy (supervisors, admins)")
async def create_policy(body: PolicyIn, principal: StaffPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).create_policy(principal, body, now(request))


@router.get("/sla-policies", response_model=Page[PolicyOut], tags=["sla"], summary="SLA policies")
async def list_policies(principal: CurrentPrincipal, request: Request, session: SessionDep) -> dict:
    return {"items": await service(request, session).list_policies(principal), "next_cursor": None}


@router.get("/sla-policies/{policy_id}", response_model=PolicyOut, tags=["sla"], summary="One SLA policy")
async def get_policy(policy_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).get_policy(principal, policy_id)


@router.patch("/sla-policies/{policy_id}", response_model=PolicyOut, tags=["sla"],
              summary="Change an SLA policy; open tickets' clocks follow")
async def update_policy(policy_id: uuid.UUID, body: PolicyPatch, principal: StaffPrincipal, request: Request,
                        session: SessionDep):  # noqa: ANN201
    return await service(request, session).update_policy(principal, policy_id, body, now(request))


@router.delete("/sla-policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["sla"],
               summary="Retire an SLA policy; its open tickets move to the policy that applies then")
async def delete_policy(policy_id: uuid.UUID, principal: StaffPrincipal, request: Request,
                        session: SessionDep) -> None:
    await service(request, session).delete_policy(principal, policy_id, now(request))


@router.put("/categories/{category_id}/sla-policy", response_model=CategoryOut, tags=["sla"],
            summary="Give a category its own SLA policy (supervisors, admins)")
async def set_category_policy(category_id: uuid.UUID, body: CategoryPolicyIn, principal: StaffPrincipal,
                              request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).set_category_policy(principal, category_id, body.policy_id, now(request))


@router.post("/sla-calendars", status_code=status.HTTP_201_CREATED, response_model=CalendarOut, tags=["sla"],
             summary="Add a business-hours calendar")
async def create_calendar(body: CalendarIn, principal: StaffPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).create_calendar(principal, body, now(request))


@router.get("/sla-calendars", response_model=Page[CalendarOut], tags=["sla"], summary="Business-hours calendars")
async def list_calendars(principal: CurrentPrincipal, request: Request, session: SessionDep) -> dict:
    return {"items": await service(request, session).list_calendars(principal), "next_cursor": None}


@router.get("/sla-calendars/{calendar_id}", response_model=CalendarOut, tags=["sla"], summary="One calendar")
async def get_calendar(calendar_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).get_calendar(principal, calendar_id)


@router.patch("/sla-calendars/{calendar_id}", response_model=CalendarOut, tags=["sla"],
              summary="Change a calendar; open tickets' clocks follow")
async def update_calendar(calendar_id: uuid.UUID, body: CalendarPatch, principal: StaffPrincipal,
                          request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).update_calendar(principal, calendar_id, body, now(request))


@router.delete("/sla-calendars/{calendar_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["sla"],
               summary="Remove a calendar no SLA policy uses")
async def delete_calendar(calendar_id: uuid.UUID, principal: StaffPrincipal, request: Request,
                          session: SessionDep) -> None:
    await service(request, session).delete_calendar(principal, calendar_id, now(request))

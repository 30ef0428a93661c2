from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.http import now
from relaydesk.core.schemas import Page
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import AdminPrincipal, CurrentPrincipal, StaffPrincipal
from relaydesk.routing.schemas import RoutingOut, RuleIn, RuleOut, RulePatch, WorkspaceSettingsOut
from relaydesk.routing.service import RoutingService
from relaydesk.routing.tasks import routing_service
from relaydesk.tenancy.schemas import WorkspaceSettingsPatch
from relaydesk.tickets.api import TicketRef

router = APIRouter(prefix="/api/v1")


def service(request: Request, session: AsyncSession) -> RoutingService:
    return routing_service(request.app.state.runtime, session)


@router.post("/assignment-rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut,
             tags=["routing"], summary="Add an assignment rule (supervisors, admins)")
async def create_rule(body: RuleIn, principal: StaffPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).create_rule(principal, body, now(request))


@router.get("/assignment-rules", response_model=Page[RuleOut], tags=["routing"],
            summary="Assignment rules in the order they are tried")
async def list_rules(principal: CurrentPrincipal, request: Request, session: SessionDep) -> dict:
    return {"items": await service(request, session).list_rules(principal), "next_cursor": None}


@router.get("/assignment-rules/{rule_id}", response_model=RuleOut, tags=["routing"], summary="One assignment rule")
async def get_rule(rule_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await service(request, session).get_rule(principal, rule_id)


@router.patch("/assignment-rules/{rule_id}", response_model=RuleOut, tags=["routing"],
              summary="Change an assignment rule")
async def update_rule(rule_id: uuid.UUID, body: RulePatch, principal: StaffPrincipal, request: Request,
                      session: SessionDep):  # noqa: ANN201
    return await service(request, session).update_rule(principal, rule_id, body, now(request))


@router.delete("/assignment-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["routing"],
               summary="Remove an assignment rule")
async def delete_rule(rule_id: uuid.UUID, principal: StaffPrincipal, request: Request, session: SessionDep) -> None:
    await service(request, session).delete_rule(principal, rule_id, now(request))


@router.get("/tickets/{ticket_ref}/routing", response_model=RoutingOut, tags=["routing"],
            summary="Why the ticket got its category, priority and agent (staff)")
async def ticket_routing(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request,
                         session: SessionDep) -> dict:
    return await service(request, session).explain(principal, ticket_ref)


# Served here, above the tickets domain, because routing's settings are checked against the
# workspace's categories and shown with routing's built-in keywords.
@router.get("/workspace/settings", response_model=WorkspaceSettingsOut, tags=["workspaces"],
            summary="This workspace's behaviour settings (staff)")
async def get_settings(principal: StaffPrincipal, request: Request, session: SessionDep) -> WorkspaceSettingsOut:
    return await service(request, session).settings_shown(principal.workspace_id)


@router.patch("/workspace/settings", response_model=WorkspaceSettingsOut, tags=["workspaces"],
              summary="Change this workspace's settings (admins)")
async def update_settings(body: WorkspaceSettingsPatch, principal: AdminPrincipal, request: Request,
                          session: SessionDep) -> WorkspaceSettingsOut:
    return await service(request, session).update_settings(
        principal.workspace_id, body, allow_private=request.app.state.runtime.settings.allow_private_targets)

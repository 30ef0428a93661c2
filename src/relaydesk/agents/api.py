from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.schemas import (
    AgentIn,
    AgentOut,
    AgentPatch,
    TeamIn,
    TeamOut,
    TeamPatch,
)
from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.http import Cursor, Limit, now, uuid_cursor
from relaydesk.core.schemas import Page
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import StaffPrincipal
from relaydesk.identity.wiring import user_service

router = APIRouter(prefix="/api/v1")


def agent_service(request: Request, session: AsyncSession) -> AgentService:
    return AgentService(session, user_service(request, session))


def team_service(request: Request, session: AsyncSession) -> TeamService:
    return TeamService(session, agent_service(request, session))


@router.post("/agents", status_code=status.HTTP_201_CREATED, response_model=AgentOut, tags=["agents"],
             summary="Add a member of staff (admins)")
async def create_agent(body: AgentIn, principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return await agent_service(request, session).create(principal, body, now(request))


@router.get("/agents", response_model=Page[AgentOut], tags=["agents"], summary="List staff")
async def list_agents(principal: StaffPrincipal, request: Request, session: SessionDep,
                      limit: Limit = 50, cursor: Cursor = None) -> dict:
    items = await agent_service(request, session).list(principal, after=uuid_cursor(cursor), limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if more else None}


@router.get("/agents/{agent_id}", response_model=AgentOut, tags=["agents"], summary="One member of staff")
async def get_agent(agent_id: uuid.UUID, principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return await agent_service(request, session).get(principal, agent_id)


@router.patch("/agents/{agent_id}", response_model=AgentOut, tags=["agents"],
              summary="Change a member of staff (agents: only their own availability)")
async def update_agent(agent_id: uuid.UUID, body: AgentPatch, principal: StaffPrincipal, request: Request,
                       session: SessionDep) -> dict:
    return await agent_service(request, session).update(principal, agent_id, body, now(request))


@router.post("/teams", status_code=status.HTTP_201_CREATED, response_model=TeamOut, tags=["teams"],
             summary="Create a team (supervisors, admins)")
async def create_team(body: TeamIn, principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return await team_service(request, session).create(principal, body, now(request))


@router.get("/teams", response_model=Page[TeamOut], tags=["teams"], summary="List teams")
async def list_teams(principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return {"items": await team_service(request, session).list(principal), "next_cursor": None}


@router.get("/teams/{team_id}", response_model=TeamOut, tags=["teams"], summary="One team")
async def get_team(team_id: uuid.UUID, principal: StaffPrincipal, request: Request, session: SessionDep) -> dict:
    return await team_service(request, session).get(principal, team_id)


@router.patch("/teams/{team_id}", response_model=TeamOut, tags=["teams"], summary="Change a team")
async def update_team(team_id: uuid.UUID, body: TeamPatch, principal: StaffPrincipal, request: Request,
                      session: SessionDep) -> dict:
    return await team_service(request, session).update(principal, team_id, body, now(request))

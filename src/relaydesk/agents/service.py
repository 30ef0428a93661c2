"""Support staff (agent profiles, skills) and teams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from relaydesk.agents.models import AgentProfile, AgentSkill, Team, TeamMember
from relaydesk.agents.schemas import AgentIn, AgentPatch, TeamIn, TeamPatch
from relaydesk.core.audit import AuditLog
from relaydesk.core.db import already_loaded, get_many_in_workspace, note_locked, read_once
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import STAFF_ROLES, Principal, Role
from relaydesk.identity.models import User
from relaydesk.identity.service import UserService

# Hot statement, built once (docs/architecture.md, "Statements built once").
_LOCK_CAP = select(AgentProfile.max_concurrent).where(AgentProfile.user_id == bindparam("agent_id")).with_for_update()


@dataclass(frozen=True, slots=True)
class _Roster:
    """Staff rows as loaded; ``views`` reads the live ORM objects, so changes made since
    (availability, last assignment) show."""

    staff: list[User]
    profiles: dict[uuid.UUID, AgentProfile]
    skills: dict[uuid.UUID, list[AgentSkill]]
    teams: dict[uuid.UUID, list[uuid.UUID]]

    def views(self) -> list[dict[str, Any]]:
        views = []
        for u in self.staff:
            p = self.profiles.get(u.id)
            views.append({
                "id": u.id, "name": u.name, "email": u.email, "role": u.role, "is_active": u.is_active,
                "max_concurrent": p.max_concurrent if p else 5, "availability": p.availability if p else "offline",
                "is_senior": p.is_senior if p else False, "languages": p.languages if p else ["en"],
                "timezone": p.timezone if p else None, "skills": self.skills.get(u.id, []),
                "team_ids": self.teams.get(u.id, []), "created_at": u.created_at,
                "shifts": p.shifts if p else [], "last_assigned_at": p.last_assigned_at if p else None,
            })
        return views


class AgentService:
    def __init__(self, session: AsyncSession, users: UserService) -> None:
        self.session = session
        self.users = users
        self.audit = AuditLog(session)
        self.outbox = Outbox(session)

    async def create(self, principal: Principal, data: AgentIn, now: datetime) -> dict[str, Any]:
        if not principal.is_admin:
            raise Forbidden("Only workspace admins may add staff.")
        ws = principal.workspace_id
        user = await self.users.create(workspace_id=ws, email=data.email, name=data.name, role=Role(data.role),
                                       password=data.password, now=now)
        profile = AgentProfile(
            workspace_id=ws, user_id=user.id, max_concurrent=data.max_concurrent,
            availability=data.availability.value, is_senior=data.is_senior,
            languages=[lang.lower() for lang in data.languages], timezone=data.timezone,
            shifts=_shifts(data.shifts),
        )
        self.session.add(profile)
        await self.session.flush()
        await self._replace_skills(ws, user.id, data.skills)
        await self._replace_teams(ws, user.id, data.team_ids, now)
        self.audit.record(workspace_id=ws, entity_type="agent", entity_id=user.id, actor_id=principal.user_id,
                          actor_kind="agent", at=now, changes={"created": (None, user.email)})
        return await self.get(principal, user.id)

    async def get(self, principal: Principal, agent_id: uuid.UUID) -> dict[str, Any]:
        views = await self._views(principal.workspace_id, [agent_id])
        if not views:
            raise NotFound("No such agent.")
        return views[0]

    async def list(self, principal: Principal, *, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
        users = await self.users.list_by_roles(principal.workspace_id, set(STAFF_ROLES), after=after, limit=limit)
        return await self._views(principal.workspace_id, [u.id for u in users])

    async def update(self, principal: Principal, agent_id: uuid.UUID, data: AgentPatch, now: datetime, *,
                     by_socket: bool = False) -> dict[str, Any]:
        """``by_socket``: the availability comes from the agent's live socket, and lasts as
        long as one of their sockets is open."""
        ws = principal.workspace_id
        user = await self._staff_user(ws, agent_id)
        fields = data.model_fields_set
        # What is the agent's own to say; their workload and standing are their managers'.
        self_service = {"availability", "timezone", "languages"}
        if not principal.can_manage_team and not (principal.user_id == agent_id and fields <= self_service):
            raise Forbidden("Agents may only change their own availability, time zone and languages.")
        if ({"role", "is_active"} & fields) and not principal.is_admin:
            raise Forbidden("Only workspace admins may change roles or deactivate staff.")
        if principal.user_id == agent_id and data.is_active is False:
            raise ValidationFailed("You cannot deactivate yourself.", field="is_active")
        changes = await self.users.update(
            user, now=now, name=data.name, role=Role(data.role) if data.role else None, is_active=data.is_active,
        )
        profile = await self._profile(ws, agent_id)
        for field in ("max_concurrent", "is_senior", "timezone"):
            # A time zone may be emptied: theirs is then the workspace's.
            emptied = field == "timezone" and field in fields
            if field in fields and (getattr(data, field) is not None or emptied) \
                    and getattr(profile, field) != getattr(data, field):
                changes[field] = (getattr(profile, field), getattr(data, field))
                setattr(profile, field, getattr(data, field))
        # Deactivated staff are at nobody's desk: offline (and routing gives their tickets away).
        availability = "offline" if data.is_active is False else (
            data.availability.value if data.availability is not None else None)
        if availability is not None:
            profile.availability_by_socket = by_socket
            if profile.availability != availability:
                changes["availability"] = (profile.availability, availability)
                profile.availability = availability
        if data.shifts is not None and _shifts(data.shifts) != profile.shifts:
            changes["shifts"] = (profile.shifts, _shifts(data.shifts))
            profile.shifts = _shifts(data.shifts)
        if data.languages is not None:
            langs = [lang.lower() for lang in data.languages]
            changes["languages"] = (profile.languages, langs)
            profile.languages = langs
        if data.skills is not None:
            before = await self._skills(ws, [agent_id])
            await self._replace_skills(ws, agent_id, data.skills)
            changes["skills"] = (
                sorted(f"{s.skill}:{s.level}" for s in before.get(agent_id, [])),
                sorted(f"{s.skill}:{s.level}" for s in data.skills),
            )
        if data.team_ids is not None:
            before_teams = await self._team_ids(ws, [agent_id])
            await self._replace_teams(ws, agent_id, data.team_ids, now)
            changes["team_ids"] = (sorted(map(str, before_teams.get(agent_id, []))), sorted(map(str, data.team_ids)))
        self.audit.record(workspace_id=ws, entity_type="agent", entity_id=agent_id, actor_id=principal.user_id,
                          actor_kind="agent", at=now, changes=changes)
        # Routing reacts: someone came online or got room for more work.
        if "availability" in changes:
            self.outbox.publish(ws, "agent.availability_changed", now, agent_id=agent_id,
                                before=changes["availability"][0], after=changes["availability"][1])
        if {"max_concurrent", "skills", "team_ids", "shifts", "languages", "is_active"} & changes.keys():
            self.outbox.publish(ws, "agent.capacity_changed", now, agent_id=agent_id, fields=sorted(changes))
        return await self.get(principal, agent_id)

    async def pool(self, workspace_id: uuid.UUID, team_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """Active staff to route to: the team's members, or every active agent when there is no team."""
        async def roster() -> _Roster:
            if team_id is not None:
                ids = list(await self.session.scalars(select(TeamMember.user_id).where(
                    TeamMember.workspace_id == workspace_id, TeamMember.team_id == team_id)))
            else:
                ids = [u.id for u in await self.users.list_by_roles(workspace_id, {Role.AGENT}, after=None,
                                                                    limit=1000)]
            return await self._roster(workspace_id, ids)

        # Routing asks for every ticket of a batch; who is in the team and their skills do not
        # change inside the batch, while load, availability and last assignment are read
        # from the live rows each time.
        cached = await read_once(self.session, ("agent_pool", workspace_id, team_id), roster)
        return [v for v in cached.views() if v["is_active"]]

    async def present_by_socket(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(workspace, agent) of everyone online or away through a socket, in every workspace."""
        return [(row.workspace_id, row.user_id) for row in await self.session.execute(
            select(AgentProfile.workspace_id, AgentProfile.user_id).where(
                AgentProfile.availability_by_socket.is_(True), AgentProfile.availability != "offline"))]

    async def anyone_online(self, workspace_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(AgentProfile.user_id).where(
            AgentProfile.workspace_id == workspace_id, AgentProfile.availability == "online").limit(1)) is not None

    async def teams_of(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> list[uuid.UUID]:
        return list(await self.session.scalars(select(TeamMember.team_id).where(
            TeamMember.workspace_id == workspace_id, TeamMember.user_id == agent_id)))

    async def note_assigned(self, workspace_id: uuid.UUID, agent_id: uuid.UUID, now: datetime) -> None:
        """Round-robin remembers who got the last ticket."""
        profile = await self._profile(workspace_id, agent_id)
        profile.last_assigned_at = now

    async def managers(self, workspace_id: uuid.UUID) -> list[uuid.UUID]:
        """Supervisors and admins: who hears about escalations and long queues."""
        users = await self.users.list_by_roles(workspace_id, {Role.SUPERVISOR, Role.ADMIN}, after=None, limit=500)
        return [u.id for u in users if u.is_active]

    async def senior_pool(self, workspace_id: uuid.UUID, team_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """Senior agents of the team (else of the workspace), then supervisors: who takes an L2 escalation."""
        team = [v for v in await self.pool(workspace_id, team_id) if v["is_senior"]] if team_id else []
        if team:
            return team
        staff = await self.users.list_by_roles(workspace_id, {Role.AGENT, Role.SUPERVISOR}, after=None, limit=1000)
        views = [v for v in await self._views(workspace_id, [u.id for u in staff]) if v["is_active"]]
        return [v for v in views if v["is_senior"]] or [v for v in views if v["role"] == Role.SUPERVISOR.value]

    async def lock_capacity(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> int:
        """The agent's cap, with their profile row locked until the transaction ends, so
        concurrent assignments to one agent take turns (SQLite's single writer already
        serialises them)."""
        known = already_loaded(self.session, AgentProfile, agent_id, for_update=True)
        if known is not None:  # locked by this transaction already (a batch routing to them again)
            return known.max_concurrent
        profile = await self._profile(workspace_id, agent_id)
        cap = int(await self.session.scalar(_LOCK_CAP, {"agent_id": agent_id}) or 0)
        # The profile may have been read before the lock; what the lock read is what holds
        # until commit. Set as loaded, not as a change to write.
        set_committed_value(profile, "max_concurrent", cap)
        note_locked(self.session, AgentProfile, agent_id)
        return cap

    async def languages(self, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        """The languages on these agents' profiles, the one they prefer first."""
        profiles = await get_many_in_workspace(self.session, AgentProfile, workspace_id, ids)
        return {user_id: profile.languages for user_id, profile in profiles.items()}

    async def timezones(self, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The time zones on these agents' profiles, which the times they are sent are written in
        (those without one of their own are left out)."""
        profiles = await get_many_in_workspace(self.session, AgentProfile, workspace_id, ids)
        return {user_id: profile.timezone for user_id, profile in profiles.items() if profile.timezone}

    async def staff_ids(self, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are active staff of the workspace (for assignment checks)."""
        users = await self.users.get_many(workspace_id, ids)
        return {u.id for u in users.values() if u.role in STAFF_ROLES and u.is_active}

    # -- helpers -------------------------------------------------------------------
    async def _staff_user(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> User:
        try:
            user = await self.users.get(workspace_id, user_id)
        except NotFound:
            raise NotFound("No such agent.") from None
        if user.role not in STAFF_ROLES:
            raise NotFound("No such agent.")
        return user

    async def _profile(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> AgentProfile:
        """Admins made at sign-up have no profile until they need one."""
        profile = await self.session.get(AgentProfile, user_id)
        if profile is None:
            profile = AgentProfile(workspace_id=workspace_id, user_id=user_id, max_concurrent=5,
                                   availability="offline", is_senior=False, languages=["en"])
            self.session.add(profile)
            await self.session.flush()
        return profile

    async def _views(self, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        return (await self._roster(workspace_id, ids)).views()

    async def _roster(self, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> _Roster:
        users = await self.users.get_many(workspace_id, set(ids))
        staff = [users[i] for i in ids if i in users and users[i].role in STAFF_ROLES]
        if not staff:
            return _Roster([], {}, {}, {})
        staff_ids = [u.id for u in staff]
        profiles = {p.user_id: p for p in await self.session.scalars(
            select(AgentProfile).where(AgentProfile.workspace_id == workspace_id, AgentProfile.user_id.in_(staff_ids))
        )}
        return _Roster(staff, profiles, await self._skills(workspace_id, staff_ids),
                       await self._team_ids(workspace_id, staff_ids))

    async def _skills(self, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[AgentSkill]]:
        out: dict[uuid.UUID, list[AgentSkill]] = {}
        for s in await self.session.scalars(
            select(AgentSkill).where(AgentSkill.workspace_id == workspace_id, AgentSkill.agent_id.in_(ids))
            .order_by(AgentSkill.skill)
        ):
            out.setdefault(s.agent_id, []).append(s)
        return out

    async def _team_ids(self, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        out: dict[uuid.UUID, list[uuid.UUID]] = {}
        for m in await self.session.scalars(
            select(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.user_id.in_(ids))
        ):
            out.setdefault(m.user_id, []).append(m.team_id)
        return out

    async def _replace_skills(self, workspace_id: uuid.UUID, agent_id: uuid.UUID, skills: list) -> None:  # noqa: ANN001
        names = [s.skill.lower() for s in skills]
        if len(names) != len(set(names)):
            raise ValidationFailed("Each skill may appear only once.", field="skills")
        await self.session.execute(delete(AgentSkill).where(AgentSkill.agent_id == agent_id))
        self.session.add_all(AgentSkill(workspace_id=workspace_id, agent_id=agent_id, skill=s.skill.lower(),
                                        level=s.level) for s in skills)
        await self.session.flush()

    async def _replace_teams(self, workspace_id: uuid.UUID, agent_id: uuid.UUID, team_ids: list[uuid.UUID],
                             now: datetime) -> None:
        wanted = set(team_ids)
        found = set(await self.session.scalars(
            select(Team.id).where(Team.workspace_id == workspace_id, Team.id.in_(wanted))
        )) if wanted else set()
        if found != wanted:
            raise ValidationFailed("One or more teams do not exist.", field="team_ids")
        await self.session.execute(delete(TeamMember).where(TeamMember.user_id == agent_id))
        self.session.add_all(TeamMember(workspace_id=workspace_id, team_id=t, user_id=agent_id, joined_at=now)
                             for t in wanted)
        await self.session.flush()


class TeamService:
    def __init__(self, session: AsyncSession, agents: AgentService) -> None:
        self.session = session
        self.agents = agents
        self.audit = AuditLog(session)

    async def create(self, principal: Principal, data: TeamIn, now: datetime) -> dict[str, Any]:
        self._require_manager(principal)
        ws = principal.workspace_id
        if await self.session.scalar(select(Team.id).where(Team.workspace_id == ws, Team.name == data.name)):
            raise Conflict("A team with this name already exists.", field="name", code="name_taken")
        await self._check_staff(ws, {data.lead_id} if data.lead_id else set(), "lead_id")
        team = Team(workspace_id=ws, name=data.name, description=data.description, lead_id=data.lead_id,
                    created_at=now, updated_at=now)
        self.session.add(team)
        await self.session.flush()
        await self._replace_members(ws, team.id, data.member_ids, now)
        self.audit.record(workspace_id=ws, entity_type="team", entity_id=team.id, actor_id=principal.user_id,
                          actor_kind="agent", at=now, changes={"created": (None, team.name)})
        return await self.get(principal, team.id)

    async def get(self, principal: Principal, team_id: uuid.UUID) -> dict[str, Any]:
        teams = await self._views(principal.workspace_id, [team_id])
        if not teams:
            raise NotFound("No such team.")
        return teams[0]

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        ids = list(await self.session.scalars(
            select(Team.id).where(Team.workspace_id == principal.workspace_id).order_by(Team.name)
        ))
        return await self._views(principal.workspace_id, ids)

    async def update(self, principal: Principal, team_id: uuid.UUID, data: TeamPatch, now: datetime) -> dict[str, Any]:
        self._require_manager(principal)
        ws = principal.workspace_id
        team = await self.session.scalar(select(Team).where(Team.workspace_id == ws, Team.id == team_id))
        if team is None:
            raise NotFound("No such team.")
        changes: dict[str, tuple[object, object]] = {}
        fields = data.model_fields_set
        if data.name is not None and data.name != team.name:
            if await self.session.scalar(select(Team.id).where(Team.workspace_id == ws, Team.name == data.name)):
                raise Conflict("A team with this name already exists.", field="name", code="name_taken")
            changes["name"] = (team.name, data.name)
            team.name = data.name
        if data.description is not None and data.description != team.description:
            changes["description"] = (team.description, data.description)
            team.description = data.description
        if "lead_id" in fields and data.lead_id != team.lead_id:
            await self._check_staff(ws, {data.lead_id} if data.lead_id else set(), "lead_id")
            changes["lead_id"] = (team.lead_id, data.lead_id)
            team.lead_id = data.lead_id
        if data.member_ids is not None:
            before = await self._member_ids(ws, [team_id])
            await self._replace_members(ws, team_id, data.member_ids, now)
            changes["member_ids"] = (sorted(map(str, before.get(team_id, []))), sorted(map(str, set(data.member_ids))))
        if changes:
            team.updated_at = now
        self.audit.record(workspace_id=ws, entity_type="team", entity_id=team_id, actor_id=principal.user_id,
                          actor_kind="agent", at=now, changes=changes)
        return await self.get(principal, team_id)

    async def lead_of(self, workspace_id: uuid.UUID, team_id: uuid.UUID | None) -> uuid.UUID | None:
        if team_id is None:
            return None
        return await self.session.scalar(select(Team.lead_id).where(Team.workspace_id == workspace_id,
                                                                    Team.id == team_id))

    async def exists(self, workspace_id: uuid.UUID, team_id: uuid.UUID) -> bool:
        return await self.session.scalar(
            select(Team.id).where(Team.workspace_id == workspace_id, Team.id == team_id)
        ) is not None

    @staticmethod
    def _require_manager(principal: Principal) -> None:
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins manage teams.")

    async def _check_staff(self, workspace_id: uuid.UUID, ids: set[uuid.UUID], field: str) -> None:
        if ids and await self.agents.staff_ids(workspace_id, ids) != ids:
            raise ValidationFailed("Not an active member of staff in this workspace.", field=field)

    async def _replace_members(self, workspace_id: uuid.UUID, team_id: uuid.UUID, member_ids: list[uuid.UUID],
                               now: datetime) -> None:
        wanted = set(member_ids)
        await self._check_staff(workspace_id, wanted, "member_ids")
        await self.session.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
        self.session.add_all(TeamMember(workspace_id=workspace_id, team_id=team_id, user_id=u, joined_at=now)
                             for u in wanted)
        await self.session.flush()

    async def _member_ids(self, workspace_id: uuid.UUID, team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        out: dict[uuid.UUID, list[uuid.UUID]] = {}
        for m in await self.session.scalars(
            select(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.team_id.in_(team_ids))
        ):
            out.setdefault(m.team_id, []).append(m.user_id)
        return out

    async def _views(self, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        if not ids:
            return []
        teams = {t.id: t for t in await self.session.scalars(
            select(Team).where(Team.workspace_id == workspace_id, Team.id.in_(ids))
        )}
        members = await self._member_ids(workspace_id, list(teams))
        return [{"id": t.id, "name": t.name, "description": t.description, "lead_id": t.lead_id,
                 "member_ids": sorted(members.get(t.id, [])), "created_at": t.created_at}
                for i in ids if (t := teams.get(i))]


def _shifts(shifts: list) -> list[dict[str, Any]]:  # noqa: ANN001 - ShiftIn models
    return [{"weekday": s.weekday, "start": s.start.strftime("%H:%M"), "end": s.end.strftime("%H:%M")}
            for s in sorted(shifts, key=lambda s: (s.weekday, s.start))]

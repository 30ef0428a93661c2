"""Hierarchical ticket categories with the defaults they carry."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import TeamService
from relaydesk.core.audit import AuditLog
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.principal import Principal
from relaydesk.tickets.models import Category
from relaydesk.tickets.schemas import CategoryIn, CategoryPatch

MAX_DEPTH = 5


class CategoryService:
    def __init__(self, session: AsyncSession, teams: TeamService) -> None:
        self.session = session
        self.teams = teams
        self.audit = AuditLog(session)

    async def find(self, workspace_id: uuid.UUID, category_id: uuid.UUID) -> Category | None:
        return await self.session.scalar(select(Category).where(
            Category.workspace_id == workspace_id, Category.id == category_id))

    async def get(self, principal: Principal, category_id: uuid.UUID) -> Category:
        category = await self.find(principal.workspace_id, category_id)
        if category is None:
            raise NotFound("No such category.")
        return category

    async def list(self, principal: Principal) -> list[Category]:
        return list(await self.session.scalars(select(Category).where(
            Category.workspace_id == principal.workspace_id).order_by(Category.name, Category.id)))

    async def create(self, principal: Principal, data: CategoryIn, now: datetime) -> Category:
        self._require_manager(principal)
        ws = principal.workspace_id
        await self._check_refs(ws, data.parent_id, data.team_id, moving=None)
        await self._check_name(ws, data.parent_id, data.name)
        category = Category(
            workspace_id=ws, parent_id=data.parent_id, name=data.name, description=data.description,
            default_priority=data.default_priority.value,
            required_skills=sorted({s.lower() for s in data.required_skills}), team_id=data.team_id,
            created_at=now, updated_at=now,
        )
        self.session.add(category)
        await self.session.flush()
        self.audit.record(workspace_id=ws, entity_type="category", entity_id=category.id,
                          actor_id=principal.user_id, actor_kind="agent", at=now,
                          changes={"created": (None, category.name)})
        return category

    async def update(self, principal: Principal, category_id: uuid.UUID, data: CategoryPatch,
                     now: datetime) -> Category:
        self._require_manager(principal)
        category = await self.get(principal, category_id)
        fields = data.model_fields_set
        for field in ("name", "description", "default_priority", "required_skills"):
            if field in fields and getattr(data, field) is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
        parent_id = data.parent_id if "parent_id" in fields else category.parent_id
        team_id = data.team_id if "team_id" in fields else category.team_id
        await self._check_refs(category.workspace_id, parent_id, team_id, moving=category.id)
        name = data.name or category.name
        if (name, parent_id) != (category.name, category.parent_id):
            await self._check_name(category.workspace_id, parent_id, name)
        new = {
            "name": name, "description": data.description if data.description is not None else category.description,
            "parent_id": parent_id, "team_id": team_id,
            "default_priority": data.default_priority.value if data.default_priority else category.default_priority,
            "required_skills": sorted({s.lower() for s in data.required_skills})
            if data.required_skills is not None else category.required_skills,
        }
        changes = {k: (getattr(category, k), v) for k, v in new.items() if getattr(category, k) != v}
        for k, (_, v) in changes.items():
            setattr(category, k, v)
        if changes:
            category.updated_at = now
            self.audit.record(workspace_id=category.workspace_id, entity_type="category", entity_id=category.id,
                              actor_id=principal.user_id, actor_kind="agent", at=now, changes=changes)
        return category

    @staticmethod
    def _require_manager(principal: Principal) -> None:
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins manage categories.")

    async def _check_name(self, workspace_id: uuid.UUID, parent_id: uuid.UUID | None, name: str) -> None:
        taken = await self.session.scalar(select(Category.id).where(
            Category.workspace_id == workspace_id, Category.name == name,
            Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
        ))
        if taken:
            raise Conflict("A category with this name already exists at this level.", field="name", code="name_taken")

    async def _levels_below(self, workspace_id: uuid.UUID, category_id: uuid.UUID) -> int:
        children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
        for row_id, parent in await self.session.execute(select(Category.id, Category.parent_id).where(
                Category.workspace_id == workspace_id)):
            children.setdefault(parent, []).append(row_id)
        levels, layer = 0, children.get(category_id, [])
        while layer:
            levels += 1
            layer = [child for parent in layer for child in children.get(parent, [])]
        return levels

    async def _check_refs(self, workspace_id: uuid.UUID, parent_id: uuid.UUID | None, team_id: uuid.UUID | None,
                          *, moving: uuid.UUID | None) -> None:
        if team_id is not None and not await self.teams.exists(workspace_id, team_id):
            raise ValidationFailed("No such team in this workspace.", field="team_id")
        depth, cursor = 0, parent_id
        while cursor is not None:
            if cursor == moving:
                raise ValidationFailed("A category cannot be placed under itself.", field="parent_id")
            parent = await self.find(workspace_id, cursor)
            if parent is None:
                raise ValidationFailed("No such parent category in this workspace.", field="parent_id")
            depth += 1
            cursor = parent.parent_id
        # What moves takes its sub-categories along: the deepest of them must fit too.
        below = await self._levels_below(workspace_id, moving) if moving is not None and parent_id else 0
        if depth + 1 + below > MAX_DEPTH:
            raise ValidationFailed(f"Categories nest at most {MAX_DEPTH} levels deep.", field="parent_id")

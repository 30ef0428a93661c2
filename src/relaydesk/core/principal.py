"""Who is calling: built by the identity domain, read by every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


STAFF_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """``user_id`` None is Relaydesk itself acting (routing, SLA, auto-close), with an
    admin's reach inside one workspace."""

    user_id: uuid.UUID | None
    workspace_id: uuid.UUID
    role: Role

    @classmethod
    def system(cls, workspace_id: uuid.UUID) -> "Principal":
        return cls(user_id=None, workspace_id=workspace_id, role=Role.ADMIN)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    @property
    def actor_kind(self) -> str:
        return "system" if self.user_id is None else "customer" if self.role is Role.CUSTOMER else "agent"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_customer(self) -> bool:
        return self.role is Role.CUSTOMER

    @property
    def can_manage_team(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

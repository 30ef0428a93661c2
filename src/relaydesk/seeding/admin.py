"""Operator commands that create workspaces and users from the shell."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from relaydesk.agents.schemas import AgentIn
from relaydesk.agents.service import AgentService
from relaydesk.config import Settings
from relaydesk.core.errors import AppError
from relaydesk.core.principal import Principal, Role
from relaydesk.core.schemas import Email
from relaydesk.customers.schemas import CustomerIn
from relaydesk.customers.service import CustomerService
from relaydesk.identity.models import User
from relaydesk.identity.service import UserService
from relaydesk.runtime import build_runtime
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.service import WorkspaceService


class CommandError(Exception):
    """A mistake in what the operator typed; the CLI prints it and exits non-zero."""


def _check(email: str, password: str) -> None:
    try:
        TypeAdapter(Email).validate_python(email)
    except ValidationError:
        raise CommandError(f"'{email}' is not a valid email address.") from None
    if len(password) < 10:
        raise CommandError("Passwords need at least 10 characters.")


async def create_workspace_with_admin(
    settings: Settings, name: str, admin_name: str, admin_email: str, admin_password: str,
) -> Workspace:
    _check(admin_email, admin_password)
    runtime = build_runtime(settings)
    try:
        async with runtime.db.write_session() as session:
            now = runtime.clock.now()
            ws = await WorkspaceService(session).create(name, now)
            await UserService(session, runtime.hasher).create(
                workspace_id=ws.id, email=admin_email, name=admin_name, role=Role.ADMIN, password=admin_password,
                now=now)
            await session.commit()
            return ws
    finally:
        await runtime.close()


async def create_user(settings: Settings, workspace: str, email: str, name: str, role: str, password: str) -> User:
    _check(email, password)
    try:
        wanted = Role(role)
    except ValueError:
        raise CommandError(f"Unknown role '{role}'; use customer, agent, supervisor or admin.") from None
    runtime = build_runtime(settings)
    try:
        async with runtime.db.write_session() as session:
            now = runtime.clock.now()
            ws = await WorkspaceService(session).find(workspace)
            if ws is None:
                raise CommandError(f"No workspace '{workspace}'.")
            users = UserService(session, runtime.hasher)
            # The CLI acts as the workspace's first admin, so the audit trail names a person.
            admin = await users.list_by_roles(ws.id, {Role.ADMIN}, after=None, limit=1)
            if not admin:
                raise CommandError(f"Workspace '{workspace}' has no admin to act as.")
            operator = Principal(user_id=admin[0].id, workspace_id=ws.id, role=Role.ADMIN)
            try:
                if wanted is Role.CUSTOMER:
                    customer = await CustomerService(session, users).create_profile(
                        ws.id, CustomerIn(name=name, email=email, password=password), now, actor=None)
                    user = await users.get(ws.id, customer.user_id)  # type: ignore[arg-type]
                else:
                    created = await AgentService(session, users).create(
                        operator, AgentIn(name=name, email=email, password=password, role=wanted.value), now)
                    user = await users.get(ws.id, created["id"])
            except AppError as exc:
                raise CommandError(exc.detail) from None
            await session.commit()
            return user
    finally:
        await runtime.close()

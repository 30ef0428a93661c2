"""Operator commands that create workspaces and users from the shell."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from relaydesk.agents.schemas import AgentIn
from relaydesk.agents.service import AgentService
from relaydesk.config import Settings
from relaydesk.core.errors import AppError
from relaydesk.core.principal import Principal, Role
from relaydesk.core.schemas import Input
from relaydesk.customers.schemas import CustomerIn
from relaydesk.customers.service import CustomerService
from relaydesk.identity.models import User
from relaydesk.identity.schemas import SignupIn
from relaydesk.identity.service import UserService
from relaydesk.runtime import build_runtime
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.service import WorkspaceService


class CommandError(Exception):
    """A mistake in what the operator typed; the CLI prints it and exits with ``exit_code``."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _validated(schema: type[Input], options: dict[str, str], **values: Any) -> Any:
    """``values`` checked by the schema the API checks them with; ``options`` names each
    field's command-line option, for the message."""
    try:
        return schema(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise CommandError(f"{options.get(field, field)}: {error['msg'].removeprefix('Value error, ')}.",
                           exit_code=2) from None


async def create_workspace_with_admin(
    settings: Settings, name: str, admin_name: str, admin_email: str, admin_password: str,
) -> Workspace:
    signup = _validated(SignupIn, {"name": "--name", "admin_name": "--admin-name", "admin_email": "--admin-email",
                                   "admin_password": "--admin-password"},
                        name=name, admin_name=admin_name, admin_email=admin_email, admin_password=admin_password)
    runtime = build_runtime(settings)
    try:
        async with runtime.db.write_session() as session:
            now = runtime.clock.now()
            ws = await WorkspaceService(session).create(signup.name, now)
            await UserService(session, runtime.hasher).create(
                workspace_id=ws.id, email=signup.admin_email, name=signup.admin_name, role=Role.ADMIN,
                password=signup.admin_password, now=now)
            await session.commit()
            return ws
    finally:
        await runtime.close()


async def create_user(settings: Settings, workspace: str, email: str, name: str, role: str, password: str) -> User:
    try:
        wanted = Role(role)
    except ValueError:
        raise CommandError(f"Unknown role '{role}'; use customer, agent, supervisor or admin.", exit_code=2) from None
    options = {"name": "--name", "email": "--email", "password": "--password", "role": "--role"}
    if wanted is Role.CUSTOMER:
        profile = _validated(CustomerIn, options, name=name, email=email, password=password)
    else:
        profile = _validated(AgentIn, options, name=name, email=email, password=password, role=wanted.value)
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
                    customer = await CustomerService(session, users).create_profile(ws.id, profile, now, actor=None)
                    user = await users.get(ws.id, customer.user_id)  # type: ignore[arg-type]
                else:
                    created = await AgentService(session, users).create(operator, profile, now)
                    user = await users.get(ws.id, created["id"])
            except AppError as exc:
                raise CommandError(exc.detail) from None
            await session.commit()
            return user
    finally:
        await runtime.close()

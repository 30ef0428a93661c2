"""Who is calling, as FastAPI dependencies: the principal and role gates."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from relaydesk.core.errors import Forbidden, Unauthenticated
from relaydesk.core.principal import Principal, Role
from relaydesk.core.uow import SessionDep
from relaydesk.identity.security import API_TOKEN_PREFIX
from relaydesk.identity.service import AuthService
from relaydesk.identity.wiring import auth_service

_bearer = HTTPBearer(auto_error=False, description="An access token from /auth/login or a personal API token (rdk_…)")


async def current_principal(
    request: Request, session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("Send 'Authorization: Bearer <token>'.")
    service: AuthService = auth_service(request, session)
    return await service.authenticate(credentials.credentials, request.app.state.runtime.clock.now())


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def signed_in_principal(
    principal: CurrentPrincipal, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, signed in with a password (an access token), not through an API token:
    an API token that could make API tokens or change the password would let whoever
    leaked it keep the account after it is revoked."""
    if credentials is not None and credentials.credentials.startswith(API_TOKEN_PREFIX):
        raise Forbidden("Sign in with your password to do this; an API token cannot.", code="session_required")
    return principal


SignedInPrincipal = Annotated[Principal, Depends(signed_in_principal)]


def _require(*roles: Role, message: str):  # noqa: ANN202 - a dependency factory
    async def _check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden(message)
        return principal

    return _check


StaffPrincipal = Annotated[
    Principal, Depends(_require(Role.AGENT, Role.SUPERVISOR, Role.ADMIN, message="Only support staff may do this."))
]
ManagerPrincipal = Annotated[
    Principal, Depends(_require(Role.SUPERVISOR, Role.ADMIN, message="Only supervisors and admins may do this."))
]
AdminPrincipal = Annotated[Principal, Depends(_require(Role.ADMIN, message="Only workspace admins may do this."))]

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from relaydesk.core.http import now
from relaydesk.core.errors import Forbidden, ValidationFailed
from relaydesk.core.principal import Role
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import CurrentPrincipal, SignedInPrincipal, StaffPrincipal
from relaydesk.identity.schemas import (
    ApiTokenCreatedOut,
    ApiTokenIn,
    ApiTokenOut,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RefreshIn,
    SignupIn,
    SignupOut,
    TokenOut,
    UserOut,
    WorkspaceOut,
)
from relaydesk.identity.service import TokenPair, normalise_email
from relaydesk.identity.wiring import auth_service, user_service
from relaydesk.tenancy.service import WorkspaceService

router = APIRouter(prefix="/api/v1")

# A web app served by the deployment opens the live socket with this cookie
# (docs/realtime.md). Scoped to the socket's path, so no REST request ever carries it (a
# cookie there would make every endpoint open to cross-site requests); HttpOnly, so
# scripts cannot read it; strict, so other sites' pages do not send it.
LIVE_COOKIE, LIVE_COOKIE_PATH = "relaydesk_access", "/api/v1/ws"


def _set_live_cookie(request: Request, response: Response, pair: TokenPair) -> TokenPair:
    secure = request.app.state.runtime.settings.public_url.startswith("https://")
    response.set_cookie(LIVE_COOKIE, pair.access_token, max_age=pair.expires_in, path=LIVE_COOKIE_PATH,
                        httponly=True, secure=secure, samesite="strict")
    return pair


@router.post("/workspaces", status_code=status.HTTP_201_CREATED, response_model=SignupOut, tags=["workspaces"],
             summary="Create a workspace and its first admin")
async def create_workspace(body: SignupIn, request: Request, session: SessionDep) -> dict:
    # Creating a workspace means creating its first admin, which is identity's job;
    # the tenancy domain below only knows workspaces.
    if not request.app.state.runtime.settings.allow_signup:
        raise Forbidden("Sign-up is switched off on this deployment; ask its operator.", code="signup_disabled")
    at = now(request)
    workspace = await WorkspaceService(session).create(body.name, at)
    admin = await user_service(request, session).create(
        workspace_id=workspace.id, email=body.admin_email, name=body.admin_name, role=Role.ADMIN,
        password=body.admin_password, now=at,
    )
    return {"workspace": workspace, "admin": admin}


@router.post("/auth/login", response_model=TokenOut, tags=["auth"], summary="Sign in with email and password")
async def login(body: LoginIn, request: Request, response: Response, session: SessionDep):  # noqa: ANN201
    return _set_live_cookie(request, response, await auth_service(request, session).login(
        workspace=body.workspace, email=body.email, password=body.password, now=now(request),
        client_ip=request.client.host if request.client else None,
    ))


@router.post("/auth/refresh", response_model=TokenOut, tags=["auth"],
             summary="Swap a refresh token for a new pair (the old one stops working)")
async def refresh(body: RefreshIn, request: Request, response: Response, session: SessionDep):  # noqa: ANN201
    return _set_live_cookie(request, response,
                            await auth_service(request, session).refresh(body.refresh_token, now(request)))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
             summary="End the session the refresh token belongs to")
async def logout(body: RefreshIn, request: Request, response: Response, session: SessionDep) -> None:
    await auth_service(request, session).logout(body.refresh_token, now(request))
    response.delete_cookie(LIVE_COOKIE, path=LIVE_COOKIE_PATH, httponly=True, samesite="strict")


# Each request emails someone: at most this many an hour per address (whether it has an
# account or not, so the answer tells nothing) and per client address.
RESETS_PER_ADDRESS, RESETS_PER_CLIENT = 3, 20


@router.post("/auth/password-reset", status_code=status.HTTP_202_ACCEPTED, tags=["auth"],
             summary="Email a one-time link to set a new password (the same answer for any address)")
async def request_password_reset(body: PasswordResetIn, request: Request, session: SessionDep) -> dict:
    runtime = request.app.state.runtime
    client_ip = request.client.host if request.client else "unknown"
    email = normalise_email(body.email)
    await runtime.limits.hit(f"password-reset:ip:{client_ip}", limit=RESETS_PER_CLIENT, seconds=3600,
                             message="Too many password resets asked for from here; try again later.")
    await runtime.limits.hit(f"password-reset:{body.workspace.lower()}:{email}", limit=RESETS_PER_ADDRESS,
                             seconds=3600, message="Too many password resets asked for this address; "
                                                   "try again later.")
    await auth_service(request, session).ask_password_reset(body.workspace, email, now(request))
    return {"detail": "If this address can sign in to the workspace, a link to set a new password is on its way."}


@router.post("/auth/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
             summary="Set a new password with the token from the reset email (ends every session)")
async def confirm_password_reset(body: PasswordResetConfirmIn, request: Request, session: SessionDep) -> None:
    await auth_service(request, session).reset_password(body.token, body.new_password, now(request))


@router.post("/me/password", response_model=TokenOut, tags=["auth"],
             summary="Change my password (ends my other sessions; answers with a fresh one)")
async def change_password(body: PasswordChangeIn, principal: SignedInPrincipal, request: Request,
                          response: Response, session: SessionDep):  # noqa: ANN201
    return _set_live_cookie(request, response, await auth_service(request, session).change_password(
        principal, current=body.current_password, new=body.new_password, now=now(request)))


@router.get("/me", response_model=MeOut, tags=["auth"], summary="The signed-in user")
async def me(principal: CurrentPrincipal, request: Request, session: SessionDep) -> MeOut:
    user = await user_service(request, session).get(principal.workspace_id, principal.user_id)
    workspace = await WorkspaceService(session).get(principal.workspace_id)
    return MeOut(**UserOut.model_validate(user).model_dump(), workspace=WorkspaceOut.model_validate(workspace))


@router.post("/me/api-tokens", status_code=status.HTTP_201_CREATED, response_model=ApiTokenCreatedOut,
             tags=["auth"], summary="Create a personal API token for an integration")
async def create_api_token(body: ApiTokenIn, principal: SignedInPrincipal, request: Request,
                           session: SessionDep) -> dict:
    at = now(request)
    if body.expires_at is not None and body.expires_at <= at:
        raise ValidationFailed("The expiry must be in the future.", field="expires_at")
    row, secret = await auth_service(request, session).create_api_token(
        principal, name=body.name, expires_at=body.expires_at, now=at
    )
    return {**ApiTokenOut.model_validate(row).model_dump(), "token": secret}


@router.get("/me/api-tokens", response_model=list[ApiTokenOut], tags=["auth"], summary="My active API tokens")
async def list_api_tokens(principal: SignedInPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await auth_service(request, session).list_api_tokens(principal)


@router.delete("/me/api-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
               summary="Revoke one of my API tokens")
async def revoke_api_token(token_id: uuid.UUID, principal: SignedInPrincipal, request: Request,
                           session: SessionDep) -> None:
    await auth_service(request, session).revoke_api_token(principal, token_id, now(request))


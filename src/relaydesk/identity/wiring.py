"""Builds identity services from the app's runtime for one request's session."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.identity.service import AuthService, LoginPolicy, UserService

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime


def auth_service(request: Request, session: AsyncSession) -> AuthService:
    return auth_service_for(request.app.state.runtime, session)


def auth_service_for(runtime: Runtime, session: AsyncSession) -> AuthService:
    """For callers without an HTTP request: WebSockets, mail and chat adapters."""
    s = runtime.settings
    policy = LoginPolicy(
        slowdown_after=s.login_slowdown_after, max_failures=s.login_max_failures,
        lockout=timedelta(seconds=s.login_lockout_seconds),
        refresh_ttl=timedelta(seconds=s.refresh_token_ttl_seconds),
    )
    return AuthService(session, runtime.hasher, runtime.signer, policy)


def user_service(request: Request, session: AsyncSession) -> UserService:
    return UserService(session, request.app.state.runtime.hasher)

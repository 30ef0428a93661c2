"""Whether a signed-in user's access tokens still stand.

An access token says who calls and with which role for 15 minutes without a database
read. Left at that, a deactivated agent, a demoted admin or a stolen laptop signed out
elsewhere would keep their access until the token ran out. So each process re-reads a
user's state (active, role) and their sign-in's (not signed out) at most every
``RECHECK_SECONDS``: one small read per user per few seconds, not one per request. A
change made in this process is forgotten here at once; other processes (the scaled mode)
follow within ``RECHECK_SECONDS``, as the live sockets do.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import Unauthenticated
from relaydesk.core.principal import Principal
from relaydesk.core.uow import after_commit
from relaydesk.identity.models import RefreshToken, User

RECHECK_SECONDS = 5.0
KEPT = 50_000  # entries per kind before the cache starts over

_USER = select(User.is_active, User.role).where(User.id == bindparam("id"))
_SIGN_IN_OPEN = select(RefreshToken.family_id).where(
    RefreshToken.family_id == bindparam("family"), RefreshToken.revoked_at.is_(None)).limit(1)


@dataclass(frozen=True, slots=True)
class _UserState:
    read_at: float
    active: bool
    role: str


class Standing:
    def __init__(self, seconds: float = RECHECK_SECONDS) -> None:
        self.seconds = seconds
        self._users: dict[uuid.UUID, _UserState] = {}
        self._sign_ins: dict[uuid.UUID, tuple[float, bool]] = {}

    async def check(self, session: AsyncSession, principal: Principal, sign_in: uuid.UUID | None) -> None:
        """Raises ``Unauthenticated`` when the token no longer says the truth."""
        now = time.monotonic()
        assert principal.user_id is not None
        user = self._users.get(principal.user_id)
        if user is None or now - user.read_at >= self.seconds:
            row = (await session.execute(_USER, {"id": principal.user_id})).first()
            user = _UserState(now, bool(row and row.is_active), row.role if row else "")
            _remember(self._users, principal.user_id, user)
        if not user.active:
            raise Unauthenticated("This account has been deactivated.", code="account_inactive")
        if user.role != principal.role.value:
            raise Unauthenticated("Your role has changed; refresh the token or sign in again.", code="role_changed")
        if sign_in is None:
            return
        known = self._sign_ins.get(sign_in)
        if known is None or now - known[0] >= self.seconds:
            known = (now, await session.scalar(_SIGN_IN_OPEN, {"family": sign_in}) is not None)
            _remember(self._sign_ins, sign_in, known)
        if not known[1]:
            raise Unauthenticated("This sign-in has ended; sign in again.", code="signed_out")

    def changed(self, session: AsyncSession, *, user: uuid.UUID | None = None, sign_in: uuid.UUID | None = None,
                every_sign_in: bool = False) -> None:
        """Once the session commits, read these again on their next request. ``every_sign_in``:
        a new password ends all of a user's sign-ins, whose ids are not at hand, so start over."""
        async def forget() -> None:
            if user is not None:
                self._users.pop(user, None)
            if sign_in is not None:
                self._sign_ins.pop(sign_in, None)
            if every_sign_in:
                self._sign_ins.clear()

        after_commit(session, f"standing:{user}:{sign_in}:{every_sign_in}", forget)


def _remember(cache: dict, key: uuid.UUID, value: object) -> None:  # type: ignore[type-arg]
    if len(cache) >= KEPT:
        cache.clear()
    cache[key] = value


# One per process: a change made by any request or job here is seen by the next request.
standing = Standing()

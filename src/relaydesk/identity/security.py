"""Password hashing (Argon2id), JWT access tokens and opaque secret tokens."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from relaydesk.core.errors import Unauthenticated
from relaydesk.core.principal import Principal, Role

ACCESS_TOKEN_TYPE = "access"
API_TOKEN_PREFIX = "rdk_"
_JWT_ALGORITHM = "HS256"


class PasswordHasher:
    """Argon2id; hashing runs in a thread so a sign-in never stalls the event loop."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against unknown emails so a miss costs as much time as a wrong password.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def _verify() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._dummy, password) and stored_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(_verify)


@dataclass(frozen=True, slots=True)
class TokenSigner:
    """Signs and checks short-lived access tokens (HS256, algorithm pinned)."""

    secret: str
    ttl: timedelta

    def issue(self, principal: Principal, now: datetime, *, session: uuid.UUID | None = None) -> str:
        """``session``: the sign-in's refresh-token family, so what holds a token open (a
        live socket) can tell when that sign-in ends."""
        claims = {
            "sub": str(principal.user_id),
            "ws": str(principal.workspace_id),
            "role": principal.role.value,
            "typ": ACCESS_TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if session is not None:
            claims["sid"] = session.hex
        return jwt.encode(claims, self.secret, algorithm=_JWT_ALGORITHM)

    def verify(self, token: str, now: datetime) -> Principal:
        return self.verify_sign_in(token, now)[0]

    def verify_sign_in(self, token: str, now: datetime) -> tuple[Principal, uuid.UUID | None]:
        """The caller, and the sign-in (refresh-token family) the token was issued for."""
        expires, principal, sign_in = _checked(token, self.secret)
        # Expiry is checked against the injected clock, not the machine's, on every use.
        if expires <= now.timestamp():
            raise Unauthenticated("The access token has expired; refresh it or sign in again.")
        return principal, sign_in


@functools.lru_cache(maxsize=4096)
def _checked(token: str, secret: str) -> tuple[float, Principal, uuid.UUID | None]:
    """A token's signature and claims, checked once: a client sends the same token with every
    request until it refreshes, and decoding it again cost ~0.1 ms a request. (What the
    token's sign-in is worth now, revoked or not, is ``Standing``'s to check each time.)"""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "ws", "role", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is invalid.") from exc
    if claims["typ"] != ACCESS_TOKEN_TYPE:
        raise Unauthenticated("The access token is invalid.")
    try:
        return claims["exp"], Principal(
            user_id=uuid.UUID(claims["sub"]),
            workspace_id=uuid.UUID(claims["ws"]),
            role=Role(claims["role"]),
        ), uuid.UUID(claims["sid"]) if "sid" in claims else None
    except (ValueError, TypeError) as exc:
        raise Unauthenticated("The access token is invalid.") from exc


def new_secret_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Secret tokens are high-entropy, so a plain SHA-256 is the right lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()

"""Whether each open socket's sign-in still holds, checked for all of them at once.

A socket authenticates when it connects, but what it authenticated with can stop being
good while it stays open: the access token runs out, the API token is revoked, the
person is deactivated or signs out, a customer leaves the organisation whose tickets
they saw. The registry's sweep asks here every few seconds about every socket of the
process together, so a round costs a few queries whatever the number of sockets, and
an event costs nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import jwt
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.chat import read_chat_token
from relaydesk.core.errors import Unauthenticated
from relaydesk.customers.models import Customer, Organisation
from relaydesk.identity.models import ApiToken, RefreshToken, User
from relaydesk.identity.security import API_TOKEN_PREFIX, token_digest
from relaydesk.realtime.audience import Viewer

if TYPE_CHECKING:
    from relaydesk.realtime.sockets import Connection
    from relaydesk.runtime import Runtime

_T = TypeVar("_T")
_CHUNK = 500  # values per IN list, well inside every driver's limit on bound parameters


@dataclass(frozen=True, slots=True)
class Credential:
    """What a socket signed in with, read once so that re-checking it costs no decoding."""

    token: str
    chat: bool = False  # a chat visitor's grant
    expires_at: float | None = None  # an access token's expiry (epoch seconds)
    session: uuid.UUID | None = None  # an access token's sign-in (its refresh-token family)
    api_digest: str | None = None  # a personal API token's lookup key

    @classmethod
    def of(cls, token: str) -> Credential:
        """For a bearer token that AuthService.authenticate has just accepted."""
        if token.startswith(API_TOKEN_PREFIX):
            return cls(token, api_digest=token_digest(token))
        claims = jwt.decode(token, options={"verify_signature": False})  # verified already
        return cls(token, expires_at=claims["exp"], session=uuid.UUID(claims["sid"]) if "sid" in claims else None)


@dataclass
class Verdict:
    lapsed: dict[Connection, str] = field(default_factory=dict)  # the socket, and why it must close
    viewers: dict[Connection, Viewer] = field(default_factory=dict)  # customers who now see other tickets


async def recheck(runtime: Runtime, connections: Collection[Connection]) -> Verdict:
    verdict = Verdict()
    now = runtime.clock.now()
    secret = runtime.settings.resolved_secret_key()
    signed_in: dict[Connection, uuid.UUID] = {}  # sockets on an access token: its sign-in
    api_tokens: dict[Connection, str] = {}  # sockets on a personal API token: its digest
    for connection in connections:
        credential = connection.credential
        if credential.chat:
            try:
                read_chat_token(credential.token, secret, now)
            except Unauthenticated as exc:
                verdict.lapsed[connection] = exc.detail
        elif credential.api_digest is not None:
            api_tokens[connection] = credential.api_digest
        elif credential.expires_at is not None and credential.expires_at <= now.timestamp():
            verdict.lapsed[connection] = "The access token has expired; refresh it and connect again."
        elif credential.session is not None:
            signed_in[connection] = credential.session
    standing = [c for c in connections if c not in verdict.lapsed]
    if not standing:
        return verdict
    async with runtime.db.read_session() as session:
        users: dict[uuid.UUID, str] = {}  # the active ones, with their role
        for chunk in _chunks(list({c.principal.user_id for c in standing})):
            users.update((row.id, row.role) for row in await session.execute(
                select(User.id, User.role).where(User.id.in_(chunk), User.is_active.is_(True))))
        live_api_tokens: set[str] = set()
        for chunk in _chunks(list(api_tokens.values())):
            live_api_tokens.update(await session.scalars(select(ApiToken.token_hash).where(
                ApiToken.token_hash.in_(chunk), ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))))
        ended = await _signed_out(session, signed_in)
        customers = {c for c in standing if not c.principal.is_staff and c.only_ticket is None}
        viewers = await _customer_viewers(session, customers)
    for connection in standing:
        principal = connection.principal
        if users.get(principal.user_id) != principal.role.value:
            verdict.lapsed[connection] = "The account is no longer active, or its role has changed."
        elif connection in api_tokens and api_tokens[connection] not in live_api_tokens:
            verdict.lapsed[connection] = "The API token has been revoked or has expired."
        elif connection in ended:
            verdict.lapsed[connection] = "The session has ended; sign in again."
        elif connection in customers:
            viewer = viewers.get(principal.user_id)
            if viewer is None:
                verdict.lapsed[connection] = "This sign-in no longer has a customer profile."
            elif viewer != connection.viewer:
                verdict.viewers[connection] = viewer
    return verdict


async def _signed_out(session: AsyncSession, signed_in: dict[Connection, uuid.UUID]) -> set[Connection]:
    """Sockets whose sign-in has ended: signing out (or a new password, or a stolen
    refresh token coming back) revokes every refresh token of its family. A token minted
    without a sign-in (a script's) names none and is left alone."""
    alive: set[uuid.UUID] = set()
    for chunk in _chunks(list(set(signed_in.values()))):
        alive.update(await session.scalars(select(RefreshToken.family_id).where(
            RefreshToken.family_id.in_(chunk), RefreshToken.revoked_at.is_(None))))
    return {connection for connection, family in signed_in.items() if family not in alive}


async def _customer_viewers(session: AsyncSession, connections: Collection[Connection]) -> dict[uuid.UUID, Viewer]:
    """What each customer sees now (the rule of TicketService.visibility, for many at once)."""
    found: dict[uuid.UUID, Viewer] = {}
    for chunk in _chunks(list({c.principal.user_id for c in connections})):
        for row in await session.execute(
                select(Customer.user_id, Customer.id, Customer.organisation_id, Organisation.shared_tickets)
                .outerjoin(Organisation, Organisation.id == Customer.organisation_id)
                .where(Customer.user_id.in_(chunk), Customer.deleted_at.is_(None))):
            found[row.user_id] = Viewer(row.user_id, is_staff=False, customer_id=row.id,
                                        organisation_id=row.organisation_id if row.shared_tickets else None)
    return found


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]

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

from relaydesk.channels.chat import read_chat_token
from relaydesk.core.errors import Unauthenticated
from relaydesk.customers.service import CustomerService
from relaydesk.identity.security import API_TOKEN_PREFIX, token_digest
from relaydesk.identity.wiring import auth_service_for
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
    customers = {c for c in standing if not c.principal.is_staff and c.only_ticket is None}
    async with runtime.db.read_session() as session:
        auth = auth_service_for(runtime, session)
        profiles = CustomerService(session, auth.users)
        roles: dict[uuid.UUID, str] = {}  # the active ones, with their role
        for chunk in _chunks(list({c.principal.user_id for c in standing})):
            roles.update(await auth.users.active_roles(list(chunk)))
        live_api_tokens: set[str] = set()
        for chunk in _chunks(list(set(api_tokens.values()))):
            live_api_tokens |= await auth.api_tokens_still_valid(list(chunk), now)
        open_sign_ins: set[uuid.UUID] = set()
        for chunk in _chunks(list(set(signed_in.values()))):
            open_sign_ins |= await auth.sign_ins_still_open(list(chunk))
        reach: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]] = {}
        for chunk in _chunks(list({c.principal.user_id for c in customers})):
            reach.update(await profiles.reach_of(list(chunk)))
    for connection in standing:
        principal = connection.principal
        if roles.get(principal.user_id) != principal.role.value:
            verdict.lapsed[connection] = "The account is no longer active, or its role has changed."
        elif connection in api_tokens and api_tokens[connection] not in live_api_tokens:
            verdict.lapsed[connection] = "The API token has been revoked or has expired."
        elif connection in signed_in and signed_in[connection] not in open_sign_ins:
            # A token minted without a sign-in (a script's) names none and is never here.
            verdict.lapsed[connection] = "The session has ended; sign in again."
        elif connection in customers:
            if principal.user_id not in reach:
                verdict.lapsed[connection] = "This sign-in no longer has a customer profile."
                continue
            customer_id, organisation_id = reach[principal.user_id]
            # What the customer sees now (the rule of TicketService.visibility).
            viewer = Viewer(principal.user_id, is_staff=False, customer_id=customer_id,
                            organisation_id=organisation_id)
            if viewer != connection.viewer:
                verdict.viewers[connection] = viewer
    return verdict


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]

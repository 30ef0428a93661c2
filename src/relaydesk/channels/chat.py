"""Live chat: a visitor on a merchant's site talks to support through the widget.

A conversation is a ticket with channel ``chat``. The visitor gets a *chat token* that
opens that one conversation and nothing else, whatever else the customer record holds:
anyone can type any email into a widget, so the token must not reveal the history of
the customer they claim to be. A host site that has signed its user in can vouch for
them with an identity token (HS256, signed with the workspace's chat secret); such
visitors are marked verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import jwt
import orjson
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import AgentService
from relaydesk.core.errors import NotFound, Unauthenticated, ValidationFailed
from relaydesk.core.principal import Principal, Role
from relaydesk.core.sanitize import text_to_html
from relaydesk.core.schemas import Email
from relaydesk.customers.schemas import CustomerIn
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import UserService
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.lifecycle import Channel, Status
from relaydesk.tickets.models import Message, Ticket
from relaydesk.tickets.schemas import MessageIn, TicketIn, TicketPatch
from relaydesk.tickets.service import TicketService

CHAT_TOKEN_TTL = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ChatGrant:
    workspace_id: uuid.UUID
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    user_id: uuid.UUID

    @property
    def principal(self) -> Principal:
        return Principal(self.user_id, self.workspace_id, Role.CUSTOMER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_chat_token(grant: ChatGrant, secret: str, now: datetime) -> str:
    body = _b64(orjson.dumps({"w": str(grant.workspace_id), "t": str(grant.ticket_id), "c": str(grant.customer_id),
                              "u": str(grant.user_id), "exp": int((now + CHAT_TOKEN_TTL).timestamp())}))
    tag = _b64(hmac.new(f"chat:{secret}".encode(), body.encode(), hashlib.sha256).digest())
    return f"rdc_{body}.{tag}"


def read_chat_token(token: str, secret: str, now: datetime) -> ChatGrant:
    try:
        body, tag = token.removeprefix("rdc_").split(".", 1)
        expected = _b64(hmac.new(f"chat:{secret}".encode(), body.encode(), hashlib.sha256).digest())
        if not token.startswith("rdc_") or not hmac.compare_digest(tag, expected):
            raise ValueError
        claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if claims["exp"] <= now.timestamp():
            raise Unauthenticated("This chat has expired; start a new one.")
        return ChatGrant(uuid.UUID(claims["w"]), uuid.UUID(claims["t"]), uuid.UUID(claims["c"]), uuid.UUID(claims["u"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise Unauthenticated("The chat token is invalid.") from None


class _IdentityClaims(BaseModel):
    """What an identity token must say about the visitor; its other claims (exp...) pass."""

    email: Email
    name: str | None = None

    model_config = ConfigDict(str_strip_whitespace=True)  # a blank name falls back to another


@dataclass(frozen=True, slots=True)
class Visitor:
    name: str
    email: str
    verified: bool


class ChatService:
    def __init__(self, session: AsyncSession, tickets: TicketService, users: UserService) -> None:
        self.session = session
        self.tickets = tickets
        self.users = users
        self.customers = CustomerService(session, users)
        self.agents = AgentService(session, users)
        self.workspaces = WorkspaceService(session)

    async def workspace(self, slug: str) -> Workspace:
        workspace = await self.workspaces.find(slug)
        if workspace is None:
            raise NotFound("No such workspace.")
        return workspace

    async def agents_online(self, workspace: Workspace) -> bool:
        return await self.agents.anyone_online(workspace.id)

    async def visitor(self, workspace: Workspace, *, name: str | None, email: str | None,
                      identity_token: str | None) -> Visitor:
        if identity_token:
            secret = (await self.workspaces.settings(workspace.id)).chat_identity_secret
            if not secret:
                raise ValidationFailed("This workspace does not accept identity tokens yet.", field="identity_token")
            try:
                claims = jwt.decode(identity_token, secret, algorithms=["HS256"], options={"require": ["exp", "email"]})
            except jwt.PyJWTError as exc:
                raise ValidationFailed(f"The identity token is not valid: {exc}.", field="identity_token") from None
            # Signed by the host site, but still its input: a bad email must not fail later, half-made.
            try:
                vouched = _IdentityClaims.model_validate(claims)
            except PydanticValidationError as exc:
                first = exc.errors()[0]
                raise ValidationFailed(f"The identity token's {first['loc'][0]} claim is not valid: {first['msg']}.",
                                       field="identity_token") from None
            return Visitor(vouched.name or name or vouched.email, vouched.email, verified=True)
        if not email:
            raise ValidationFailed("Tell us your email so we can reply if you leave.", field="email")
        if not name:
            raise ValidationFailed("Tell us your name.", field="name")
        return Visitor(name, email, verified=False)

    async def start(self, workspace: Workspace, visitor: Visitor, subject: str | None, message: str,
                    now: datetime) -> tuple[ChatGrant, Ticket]:
        # A chat acts as a customer, and a team member's account is not one: their live
        # socket would be closed for its role every few seconds. (Asked after the start
        # limits, so the answer cannot be used to list a team's addresses at will.)
        account = await self.users.find_by_email(workspace.id, visitor.email)
        if account is not None and account.role != Role.CUSTOMER.value:
            raise ValidationFailed("This is the address of a member of the support team, who cannot chat as a "
                                   "visitor: use a customer's address to try the widget.",
                                   field="identity_token" if visitor.verified else "email")
        customer = await self.customers.contact(workspace.id, CustomerIn(name=visitor.name[:200],
                                                                         email=visitor.email), now)
        principal = await self.customers.principal_for(customer, now)
        first_line = message.strip().splitlines()[0] if message.strip() else "Chat"
        try:
            ticket = await self.tickets.create(principal, TicketIn(
                subject=(subject or first_line)[:120] or "Chat", description=text_to_html(message)),
                now, channel=Channel.CHAT)
        except ValidationFailed as exc:  # the visitor wrote a message, not a ticket's description
            raise ValidationFailed(exc.detail, field="message" if exc.field == "description" else exc.field) from None
        # Tags are staff's to set; Relaydesk itself marks whom it could not verify.
        ticket = await self.tickets.update(Principal.system(workspace.id), str(ticket.id), TicketPatch(
            tags=["chat"] if visitor.verified else ["chat", "unverified"]), now)
        assert principal.user_id is not None
        return ChatGrant(workspace.id, ticket.id, customer.id, principal.user_id), ticket

    async def continuing(self, grant: ChatGrant) -> tuple[ChatGrant, str | None]:
        """Where the visitor's next line goes. A closed conversation moves on to a follow-up
        once; a line sent later with the older token (another tab, a retry) joins that
        follow-up instead of opening one more. When the line will open a follow-up, also
        the visitor's email: that is a new conversation, limited like starting one."""
        ticket = await self.tickets.get(grant.principal, grant.ticket_id, for_update=True)
        while ticket.status == Status.CLOSED.value:
            later = await self.tickets.follow_up_on_channel(grant.workspace_id, grant.customer_id, ticket.id,
                                                            Channel.CHAT)
            if later is None:
                return replace(grant, ticket_id=ticket.id), (await self.customers.for_user(grant.principal)).email
            # Locked before its own follow-up is looked for, as a line sent with its token locks it.
            ticket = await self.tickets.get(grant.principal, later.id, for_update=True)
        return replace(grant, ticket_id=ticket.id), None

    async def say(self, grant: ChatGrant, body: str, now: datetime) -> tuple[Message, ChatGrant]:
        """The message, and the grant to use from now on: writing into a closed conversation
        opens a follow-up ticket, and the chat moves there."""
        # A chat is plain text: "<my office>" is what the visitor typed, not markup to drop.
        posted = await self.tickets.post_message(grant.principal, grant.ticket_id, MessageIn(body=text_to_html(body)),
                                                 now, channel=Channel.CHAT)
        if posted.follow_up_created:
            grant = ChatGrant(grant.workspace_id, posted.message.ticket_id, grant.customer_id, grant.user_id)
        return posted.message, grant

    async def transcript(self, grant: ChatGrant, limit: int = 200) -> list[Message]:
        # The latest of a long chat: what the visitor came back for is at its end.
        rows, _ = await self.tickets.messages(grant.principal, str(grant.ticket_id), after=None, limit=limit,
                                              latest=True)
        # What was said, by whom: no internal notes, no workflow lines ("Status changed from ...").
        return [m for m in rows if not m.internal and m.author_kind != "system"]

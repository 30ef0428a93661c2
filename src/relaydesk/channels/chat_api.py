"""The chat widget's API: public, called from any site, each conversation behind its chat token.

Browsers call it cross-origin, so these routes (and only these) answer CORS: any origin,
no cookies. The widget itself is ``GET /widget.js``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import AliasChoices, Field
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.chat import ChatGrant, ChatService, issue_chat_token, read_chat_token
from relaydesk.core.errors import NotFound
from relaydesk.core.http import now
from relaydesk.core.schemas import Email, Input, Output
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import AdminPrincipal
from relaydesk.identity.service import UserService
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.schemas import ticket_reference
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

router = APIRouter()
CHAT_PREFIX = "/api/v1/chat/"


class ChatStatusOut(Output):
    workspace_name: str
    agents_online: bool


class ChatStartIn(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: Email | None = None
    identity_token: str | None = Field(default=None, max_length=4000,
                                       description="A JWT (HS256) from the host site vouching for the visitor.")
    message: str = Field(min_length=1, max_length=10_000)

    model_config = {"json_schema_extra": {"examples": [
        {"name": "Lan Nguyen", "email": "lan@example.com", "message": "Hi, where is my order 5521?"}]}}


class ChatMessageIn(Input):
    # "message" as when the chat was started is taken too: one name for what a visitor says.
    body: str = Field(min_length=1, max_length=10_000, validation_alias=AliasChoices("body", "message"))

    model_config = {"json_schema_extra": {"examples": [{"body": "It was sent to my old address."}]}}


class ChatStartedOut(Output):
    ticket_id: uuid.UUID
    number: str
    token: str = Field(description="Send as X-Chat-Token, and as chat_token to /api/v1/ws.")
    agents_online: bool


class ChatLineOut(Output):
    id: uuid.UUID
    author_kind: str
    body_text: str
    body_html: str
    created_at: datetime


class ChatSaidOut(ChatLineOut):
    ticket_id: uuid.UUID
    token: str = Field(description="Keep using this one (it changes when a closed chat continues as a new ticket).")


def _chat(request: Request, session: AsyncSession) -> ChatService:
    runtime = request.app.state.runtime
    return ChatService(session, ticket_service(runtime, session), UserService(session, runtime.hasher))


def _grant(request: Request, token: str, workspace_id: uuid.UUID) -> ChatGrant:
    runtime = request.app.state.runtime
    grant = read_chat_token(token, runtime.settings.resolved_secret_key(), now(request))
    if grant.workspace_id != workspace_id:
        raise NotFound("No such conversation.")
    return grant


async def _limit_conversations(runtime: Runtime, workspace_id: uuid.UUID, email: str) -> None:
    """Each new conversation acknowledges to the email given, so they are limited per email."""
    await runtime.limits.hit(f"chat-start:{workspace_id}:email:{email.lower()}",
                             limit=runtime.settings.chat_starts_per_email, seconds=3600,
                             message="Too many conversations for this email; try again later.")


ChatToken = Annotated[str, Header(alias="X-Chat-Token", max_length=2000)]


@router.get("/widget.js", tags=["chat"], summary="The embeddable chat widget", response_class=Response)
async def widget() -> Response:
    script = resources.files("relaydesk.channels").joinpath("static/widget.js").read_text()
    return Response(script, media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})


@router.get("/api/v1/chat/{workspace}/status", response_model=ChatStatusOut, tags=["chat"],
            summary="Whether anyone is there to chat (public)")
async def chat_status(workspace: str, request: Request, session: SessionDep) -> dict:
    chat = _chat(request, session)
    ws = await chat.workspace(workspace)
    return {"workspace_name": ws.name, "agents_online": await chat.agents_online(ws)}


@router.post("/api/v1/chat/{workspace}/conversations", response_model=ChatStartedOut,
             status_code=status.HTTP_201_CREATED, tags=["chat"], summary="Start a conversation (public)")
async def start_chat(workspace: str, data: ChatStartIn, request: Request, session: SessionDep) -> dict:
    chat = _chat(request, session)
    ws = await chat.workspace(workspace)
    visitor = await chat.visitor(ws, name=data.name, email=data.email, identity_token=data.identity_token)
    runtime = request.app.state.runtime
    address = request.client.host if request.client else "unknown"
    await runtime.limits.hit(f"chat-start:{ws.id}:ip:{address}", limit=runtime.settings.chat_starts_per_ip,
                             seconds=600, message="Too many conversations from here; try again later.")
    await _limit_conversations(runtime, ws.id, visitor.email)
    grant, ticket = await chat.start(ws, visitor, None, data.message, now(request))
    secret = request.app.state.runtime.settings.resolved_secret_key()
    return {"ticket_id": ticket.id, "number": ticket_reference(ticket.number),
            "token": issue_chat_token(grant, secret, now(request)), "agents_online": await chat.agents_online(ws)}


@router.get("/api/v1/chat/{workspace}/conversations/{ticket_id}/messages", response_model=list[ChatLineOut],
            tags=["chat"], summary="The conversation so far (public messages only)")
async def chat_transcript(workspace: str, ticket_id: uuid.UUID, token: ChatToken, request: Request,
                          session: SessionDep):  # noqa: ANN201
    chat = _chat(request, session)
    grant = _grant(request, token, (await chat.workspace(workspace)).id)
    if grant.ticket_id != ticket_id:
        raise NotFound("No such conversation.")
    return await chat.transcript(grant)


@router.post("/api/v1/chat/{workspace}/conversations/{ticket_id}/messages", response_model=ChatSaidOut,
             status_code=status.HTTP_201_CREATED, tags=["chat"], summary="Say something in the conversation")
async def chat_say(workspace: str, ticket_id: uuid.UUID, data: ChatMessageIn, token: ChatToken, request: Request,
                   session: SessionDep) -> dict:
    chat = _chat(request, session)
    grant = _grant(request, token, (await chat.workspace(workspace)).id)
    if grant.ticket_id != ticket_id:
        raise NotFound("No such conversation.")
    runtime = request.app.state.runtime
    grant, opening_for = await chat.continuing(grant)
    await runtime.limits.hit(f"chat-say:{grant.ticket_id}", limit=runtime.settings.chat_lines_per_minute,
                             seconds=60, message="You are sending messages too quickly; wait a moment.")
    if opening_for is not None:
        await _limit_conversations(runtime, grant.workspace_id, opening_for)
    message, grant = await chat.say(grant, data.body, now(request))
    secret = request.app.state.runtime.settings.resolved_secret_key()
    return {"id": message.id, "author_kind": message.author_kind, "body_text": message.body_text,
            "body_html": message.body_html, "created_at": message.created_at, "ticket_id": grant.ticket_id,
            "token": issue_chat_token(grant, secret, now(request))}


class ChatSecretOut(Output):
    secret: str = Field(description="Sign identity tokens (HS256 JWT with email, name, exp) with this.")


@router.post("/api/v1/chat-identity-secret", response_model=ChatSecretOut, tags=["chat"],
             summary="Make a new secret for identity tokens (the old one stops working)")
async def rotate_chat_secret(principal: AdminPrincipal, session: SessionDep) -> dict:
    return {"secret": await WorkspaceService(session).rotate_chat_secret(principal.workspace_id)}


class ChatCors:
    """CORS for the chat routes only: the widget runs on the merchant's site."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or not scope["path"].startswith(CHAT_PREFIX):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-allow-headers", b"content-type, x-chat-token"),
                (b"access-control-max-age", b"600")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*")]
            await send(message)

        await self.app(scope, receive, send_with_cors)

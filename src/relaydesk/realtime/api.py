"""``GET /api/v1/ws``: one socket per browser tab, many subscriptions per socket.

The protocol (JSON text frames) is documented in docs/realtime.md. In short: authenticate
(query ``token``, the ``relaydesk_access`` cookie, or a first ``auth`` frame), subscribe
to channels, optionally resume from the last event id seen, then receive ``event``
frames; send ``typing``, ``presence`` and ``activity`` frames; answer ``ping`` with
``pong``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from relaydesk.agents.schemas import Availability
from relaydesk.agents.service import AgentService, TeamService
from relaydesk.channels.chat import read_chat_token
from relaydesk.core.errors import AppError, NotFound
from relaydesk.core.jsonable import jsonable
from relaydesk.core.principal import Principal
from relaydesk.core.realtime import LiveEvent
from relaydesk.identity.service import UserService
from relaydesk.identity.wiring import auth_service_for
from relaydesk.realtime.audience import DASHBOARD, Viewer
from relaydesk.realtime.credentials import Credential
from relaydesk.realtime.sockets import CLOSE_POLICY, CLOSE_UNAUTHENTICATED, Connection, SocketRegistry
from relaydesk.tickets.service import event_scope
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

router = APIRouter(prefix="/api/v1")

MAX_FRAME_CHARS = 16_384
MAX_EVENT_ID_DIGITS = 18  # any such number fits the database's 64-bit integer
FIRST_FRAME = "The first frame must be {\"type\": \"auth\", \"token\": ...}."


class ProtocolError(Exception):
    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.field = code, detail, field


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    registry: SocketRegistry = websocket.app.state.sockets
    await websocket.accept()
    token = websocket.query_params.get("token")
    chat_token = websocket.query_params.get("chat_token")
    only_ticket = None
    try:
        if chat_token:
            # A chat visitor: one conversation, nothing else of the customer's.
            grant = read_chat_token(chat_token, runtime.settings.resolved_secret_key(), runtime.clock.now())
            principal, only_ticket = grant.principal, grant.ticket_id
            viewer = Viewer(grant.user_id, is_staff=False, customer_id=grant.customer_id)
            credential = Credential(chat_token, chat=True)
        else:
            if not token and (token := websocket.cookies.get("relaydesk_access")):
                _refuse_foreign_origin(websocket, runtime.settings.public_url, runtime.settings.app_url)
            if not token:
                token = await _first_frame_token(websocket, runtime.settings.ws_auth_timeout_seconds)
            principal, viewer = await _authenticate(runtime, token)
            credential = Credential.of(token)
    except (ProtocolError, AppError, TimeoutError, WebSocketDisconnect) as exc:
        detail = getattr(exc, "detail", None) or "Authenticate with a valid access token."
        try:
            await websocket.send_text(orjson.dumps({"type": "error", "code": "unauthenticated",
                                                    "detail": str(detail)}).decode())
            await websocket.close(CLOSE_UNAUTHENTICATED)
        except Exception:
            pass
        return

    if registry.sockets_of(principal) >= runtime.settings.ws_sockets_per_person:
        try:
            await websocket.send_text(orjson.dumps({
                "type": "error", "code": "too_many_sockets",
                "detail": f"At most {runtime.settings.ws_sockets_per_person} live connections per person: "
                          "close another tab or device first."}).decode())
            await websocket.close(CLOSE_POLICY)
        except Exception:
            pass
        return
    connection = Connection(websocket, principal, viewer, credential=credential,
                            buffer=runtime.settings.ws_buffer_frames, buffer_bytes=runtime.settings.ws_buffer_bytes)
    connection.only_ticket = only_ticket
    pump = asyncio.create_task(connection.pump())
    reading: asyncio.Task[None] | None = None
    registry.add(connection)
    try:
        if principal.is_staff:
            await registry.staff_joined(principal)
        # The socket starts where hello tells the client it stands: a replay after a Redis
        # outage must bring what came since, not the workspace's whole history.
        connection.last_event_id = await registry.latest_event_id(principal.workspace_id)
        connection.send({"type": "hello", "user_id": str(principal.user_id), "role": principal.role.value,
                         "workspace_id": str(principal.workspace_id), "last_event_id": connection.last_event_id})
        if registry.hub_down:  # as the sockets already open were told when it went
            connection.send({"type": "live", "state": "degraded"})
        session = _Session(runtime, registry, connection)
        resume_from = websocket.query_params.get("last_event_id")
        # Live events heard from the first subscription on wait until the missed ones are out.
        connection.replaying = bool(resume_from)
        for channel in filter(None, (websocket.query_params.get("subscribe") or "").split(",")):
            await session.handle({"type": "subscribe", "channel": channel.strip()})
        if resume_from:
            await session.handle({"type": "resume", "last_event_id": resume_from})
        if connection.replaying:  # the resume was refused (a bad id): nothing to wait for
            connection.finish_replay([])
        # Over when the client leaves or the sender has closed the socket (too slow, idle,
        # signed out): a client that stopped reading may never send another frame either.
        reading = asyncio.create_task(_read_frames(websocket, connection, session))
        await asyncio.wait((reading, pump), return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    except (WebSocketDisconnect, RuntimeError):  # the peer left, or we closed it (slow, idle)
        pass
    finally:
        if reading is not None:
            reading.cancel()
        registry.remove(connection)
        connection.drop(1000)
        await registry.stop_typing_everywhere(connection)
        await pump
        if principal.is_staff and not registry.connections_of(principal.workspace_id, principal.user_id):
            await registry.staff_left(principal)


async def _read_frames(websocket: WebSocket, connection: Connection, session: _Session) -> None:
    while not connection.closed:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        connection.last_heard = time.monotonic()
        if message.get("text") is None:
            session.reject(ProtocolError("invalid_frame", "Frames are JSON text, not binary."))
            continue
        await session.handle_raw(message["text"])


def _refuse_foreign_origin(websocket: WebSocket, public_url: str, app_url: str | None) -> None:
    """A browser sends the cookie whichever site opened the socket, so a cookie is only
    taken from pages of this deployment, its API's or its web app's (tokens in the URL or
    a frame are not ambient)."""
    origin = websocket.headers.get("origin")
    if origin is not None and _origin(origin) not in {_origin(u) for u in (public_url, app_url) if u}:
        raise ProtocolError("unauthenticated", "The sign-in cookie is only accepted from this deployment's own "
                                               "pages; elsewhere, send a token.")


def _origin(url: str) -> str:
    parts = urlsplit(url.strip().lower())
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}" + ("" if port in (None, default_port) else f":{port}")


async def _first_frame_token(websocket: WebSocket, timeout: float) -> str:
    message = await asyncio.wait_for(websocket.receive(), timeout=timeout)
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        frame = orjson.loads(message.get("text") or "")
    except orjson.JSONDecodeError:
        raise ProtocolError("unauthenticated", FIRST_FRAME) from None
    if not isinstance(frame, dict) or frame.get("type") != "auth" or not isinstance(frame.get("token"), str):
        raise ProtocolError("unauthenticated", FIRST_FRAME)
    return frame["token"]


async def _authenticate(runtime: Runtime, token: str) -> tuple[Principal, Viewer]:
    async with runtime.db.read_session() as session:
        principal = await auth_service_for(runtime, session).authenticate(token, runtime.clock.now())
        if principal.user_id is None:
            raise ProtocolError("unauthenticated", "Sockets belong to a person.")
        if principal.is_staff:
            return principal, Viewer(principal.user_id, is_staff=True)
        vis = await ticket_service(runtime, session).visibility(principal)
        return principal, Viewer(principal.user_id, is_staff=False, customer_id=vis.customer_id,
                                 organisation_id=vis.organisation_id)


class _Session:
    """What one socket asks of the server, frame by frame."""

    def __init__(self, runtime: Runtime, registry: SocketRegistry, connection: Connection) -> None:
        self.runtime = runtime
        self.registry = registry
        self.connection = connection
        self.principal = connection.principal
        self._name: str | None = None  # read at the first typing signal, then kept

    async def handle_raw(self, raw: str) -> None:
        if len(raw) > MAX_FRAME_CHARS:
            self.reject(ProtocolError("frame_too_large", f"Frames are limited to {MAX_FRAME_CHARS} characters."))
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.reject(ProtocolError("invalid_frame", "Frames are JSON objects with a \"type\"."))
            return
        if not isinstance(frame, dict):
            self.reject(ProtocolError("invalid_frame", "Frames are JSON objects with a \"type\".", "type"))
            return
        await self.handle(frame)

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind not in ("pong", "ping"):
            await self.registry.person_active(self.principal)
        try:
            match kind:
                case "pong" | "activity":
                    pass
                case "ping":
                    self.connection.send({"type": "pong"})
                case "subscribe":
                    channel = await self._resolve(frame.get("channel"))
                    self.registry.subscribe(self.connection, channel)
                    self.connection.send({"type": "subscribed", "channel": channel,
                                          "requested": frame.get("channel")})
                case "unsubscribe":
                    channel = self._held(frame.get("channel")) or await self._resolve(frame.get("channel"))
                    ticket_id = _uuid(channel.removeprefix("ticket:")) if channel.startswith("ticket:") else None
                    if ticket_id is not None:  # no longer watching, so no longer typing there either
                        self.registry.stop_watching(self.connection, ticket_id)
                    else:
                        self.registry.unsubscribe(self.connection, channel)
                        self.connection.send({"type": "unsubscribed", "channel": channel})
                case "resume":
                    after = _non_negative_int(frame.get("last_event_id"), "last_event_id")
                    await self.registry.resume(self.connection, after)
                case "typing":
                    await self._typing(frame)
                case "presence":
                    await self._presence(frame)
                case _:
                    raise ProtocolError("unknown_type", "Unknown frame type.", "type")
        except ProtocolError as exc:
            self.reject(exc)
        except AppError as exc:
            self.reject(ProtocolError(exc.code, exc.detail, exc.field))

    def reject(self, exc: ProtocolError) -> None:
        frame = {"type": "error", "code": exc.code, "detail": exc.detail}
        if exc.field:
            frame["field"] = exc.field
        self.connection.send(frame)

    async def _resolve(self, requested: object) -> str:
        """The canonical channel name for what the client asked, if they may have it."""
        if not isinstance(requested, str) or not requested:
            raise ProtocolError("invalid_channel", "Name a channel.", "channel")
        kind, _, ref = requested.partition(":")
        if kind == "ticket" and ref:
            return f"ticket:{await self._ticket(ref)}"
        if requested == "queue:me":
            self._require_staff()
            return f"queue:user:{self.principal.user_id}"
        queue, _, queue_ref = ref.partition(":")
        queue_id = _uuid(queue_ref) if kind == "queue" else None
        if queue_id is not None and queue == "user":
            return f"queue:user:{await self._agent_queue(queue_id)}"
        if queue_id is not None and queue == "team":
            self._require_staff()
            async with self.runtime.db.read_session() as session:
                agents = AgentService(session, UserService(session, self.runtime.hasher))
                if not await TeamService(session, agents).exists(self.principal.workspace_id, queue_id):
                    raise ProtocolError("not_found", "No such team.", "channel")
            return f"queue:team:{queue_id}"
        if requested == DASHBOARD:
            self._require_staff()
            return DASHBOARD
        raise ProtocolError("invalid_channel", "Channels are ticket:<id>, queue:me, queue:user:<id>, "
                                               "queue:team:<id> and dashboard.", "channel")

    def _held(self, requested: object) -> str | None:
        """What to let go of without asking whether it may be had: a channel the socket
        holds, and any ticket (letting go of one not held does nothing, and a deleted
        ticket could no longer be found)."""
        if not isinstance(requested, str):
            return None
        if requested == "queue:me":
            requested = f"queue:user:{self.principal.user_id}"
        kind, _, ref = requested.partition(":")
        if kind == "ticket" and ref:
            ticket_id = self._subscribed_ticket(ref) or _uuid(ref)
            return requested if ticket_id is None else f"ticket:{ticket_id}"
        return requested if requested in self.connection.subscriptions else None

    def _require_staff(self) -> None:
        if not self.principal.is_staff:
            raise ProtocolError("forbidden", "Only support staff may watch queues and the dashboard.", "channel")

    async def _agent_queue(self, agent_id: uuid.UUID) -> uuid.UUID:
        """An agent watches their own queue; supervisors and admins anyone's in the workspace."""
        self._require_staff()
        if agent_id == self.principal.user_id:
            return agent_id
        if not self.principal.can_manage_team:
            raise ProtocolError("forbidden", "Only supervisors and admins may watch another agent's queue.", "channel")
        async with self.runtime.db.read_session() as session:
            try:
                await AgentService(session, UserService(session, self.runtime.hasher)).get(self.principal, agent_id)
            except NotFound:
                raise ProtocolError("not_found", "No such agent.", "channel") from None
        return agent_id

    async def _ticket(self, ref: str) -> uuid.UUID:
        # One answer for a ticket that does not exist and one this socket may not see: a chat
        # visitor must not learn which numbers are the customer's whose email they typed.
        not_found = ProtocolError("not_found", "No such ticket.", "channel")
        async with self.runtime.db.read_session() as session:
            try:
                ticket = await ticket_service(self.runtime, session).get(self.principal, ref)
            except NotFound:
                raise not_found from None
            if self.connection.only_ticket is not None and ticket.id != self.connection.only_ticket:
                raise not_found
            self.connection.tickets[ticket.id] = event_scope(ticket)
            return ticket.id

    async def _typing(self, frame: dict[str, Any]) -> None:
        state = frame.get("state")
        if state not in ("started", "stopped"):
            raise ProtocolError("invalid_value", "state is \"started\" or \"stopped\".", "state")
        ticket_id = self._subscribed_ticket(str(frame.get("ticket_id") or ""))
        if ticket_id is None:
            raise ProtocolError("not_subscribed", "Subscribe to the ticket before typing on it.", "ticket_id")
        await self.registry.typing(self.connection, ticket_id, LiveEvent(
            None, self.principal.workspace_id, "typing", jsonable({
                "ticket_id": ticket_id, "state": state, "user_id": self.principal.user_id,
                "author_kind": self.principal.actor_kind, "name": await self._display_name(),
                # An agent drafting an internal note is not something the customer hears about.
                "internal": bool(frame.get("internal")) and self.principal.is_staff,
                **self.connection.tickets[ticket_id],
            })))

    async def _display_name(self) -> str:
        """Who is typing, as people are shown to each other elsewhere: an agent by the name
        their replies are emailed under, a customer by their own."""
        if self._name is None:
            async with self.runtime.db.read_session() as session:
                users = await UserService(session, self.runtime.hasher).get_many(
                    self.principal.workspace_id, {self.principal.user_id})
            user = users.get(self.principal.user_id)
            self._name = user.name if user is not None else ""
        return self._name

    def _subscribed_ticket(self, ref: str) -> uuid.UUID | None:
        """A ticket this socket watches, by id or by number (T-000123), as everywhere else."""
        ticket_id = _uuid(ref)
        if ticket_id is None:
            digits = ref.upper().removeprefix("T-")
            number = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 12 else None
            ticket_id = next((t for t, scope in self.connection.tickets.items() if scope.get("number") == number
                              and number is not None), None)
        return ticket_id if ticket_id in self.connection.tickets else None

    async def _presence(self, frame: dict[str, Any]) -> None:
        if not self.principal.is_staff:
            raise ProtocolError("forbidden", "Only agents have a presence.", "status")
        try:
            status = Availability(frame.get("status"))
        except ValueError:
            raise ProtocolError("invalid_value", "status is online, away or offline.", "status") from None
        await self.registry.choose_presence(self.principal, status)
        self.connection.send({"type": "presence", "status": status.value})


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _non_negative_int(value: object, field: str) -> int:
    if isinstance(value, str):
        value = _digits(value, MAX_EVENT_ID_DIGITS)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**MAX_EVENT_ID_DIGITS:
        raise ProtocolError("invalid_value", f"{field} is a non-negative integer below 10^{MAX_EVENT_ID_DIGITS}.",
                            field)
    return value


def _digits(text: str, most: int) -> int | None:
    """The number written, in at most ``most`` ASCII digits (str.isdigit also takes "²",
    which int() refuses)."""
    if text.isascii() and text.isdigit() and len(text) <= most:
        return int(text)
    return None

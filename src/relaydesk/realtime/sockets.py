"""This process's live sockets: what each subscribed to, and getting events to them.

Every socket has a bounded outgoing buffer drained by its own sender task, so a slow
or dead client fills only its own buffer; when that overflows the socket is closed
(code 1013) and the client reconnects with its last event id to catch up from the
outbox. Nothing a socket does can hold up the dispatcher or another socket.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import func, select
from starlette.websockets import WebSocket, WebSocketState

from relaydesk.agents.schemas import AgentPatch, Availability
from relaydesk.agents.service import AgentService
from relaydesk.core.outbox import OutboxEvent
from relaydesk.core.principal import Principal
from relaydesk.core.realtime import LiveEvent
from relaydesk.identity.service import UserService
from relaydesk.realtime.audience import PERSONAL_EVENT, Viewer, channels_of, view

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.realtime")

CLOSE_TOO_SLOW = 1013  # "try again later": reconnect and resume from the last event id
CLOSE_IDLE = 4408
CLOSE_UNAUTHENTICATED = 4401
RECENT_IDS = 1024  # per socket: enough to span a replay and the live events held during it


class Connection:
    def __init__(self, websocket: WebSocket, principal: Principal, viewer: Viewer, *, buffer: int) -> None:
        self.websocket = websocket
        self.principal = principal
        self.viewer = viewer
        self.subscriptions: set[str] = set()
        # Tickets this socket may see, with who they concern (for typing signals).
        self.tickets: dict[uuid.UUID, dict[str, Any]] = {}
        self.only_ticket: uuid.UUID | None = None  # a chat visitor's socket sees one conversation
        self.outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffer)
        self._recent: OrderedDict[int, None] = OrderedDict()  # ids sent lately, for de-duplication
        self.last_event_id = 0
        self.replaying = False
        self._held: list[LiveEvent] = []
        self.last_heard = time.monotonic()  # any frame from the client, heartbeat replies included
        self.last_active = time.monotonic()  # something the person did
        self.presence_managed = False  # the agent set their presence through this socket
        self.auto_away = False
        self.closed = False
        self.close_code: int | None = None
        self.last_typing: dict[uuid.UUID, tuple[str, float]] = {}

    def send(self, message: dict[str, Any]) -> None:
        """Queue a frame; a full buffer means the client cannot keep up, so let it go."""
        if self.closed:
            return
        try:
            self.outgoing.put_nowait(orjson.dumps(message))
        except asyncio.QueueFull:
            self.drop(CLOSE_TOO_SLOW)

    def drop(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        # Make room for the sender's stop signal whatever the buffer holds.
        while not self.outgoing.empty():
            self.outgoing.get_nowait()
        self.outgoing.put_nowait(None)

    def receive(self, event: LiveEvent) -> None:
        if self.replaying:
            self._held.append(event)
            return
        self._offer(event)

    def _offer(self, event: LiveEvent) -> None:
        if event.id is not None:
            if event.id in self._recent:
                return
            self.last_event_id = max(self.last_event_id, event.id)
        if self.only_ticket is not None and str(event.payload.get("ticket_id")) != str(self.only_ticket):
            return  # a chat visitor hears of their conversation only, not even their own notifications
        seen = view(event.type, event.payload, self.viewer, self.subscriptions)
        if seen is None:
            return
        if event.id is not None:  # only what was sent needs remembering: a replay may bring it again
            self._recent[event.id] = None
            if len(self._recent) > RECENT_IDS:
                self._recent.popitem(last=False)
        channels, data = seen
        self.send({"type": "event", "id": event.id, "event": event.type, "channels": channels, "data": data})

    def finish_replay(self, replayed: Sequence[LiveEvent]) -> None:
        """Missed events first, then whatever arrived live meanwhile."""
        held, self._held = self._held, []
        self.replaying = False
        for event in [*replayed, *held]:
            self._offer(event)

    async def pump(self) -> None:
        """The sender task: one slow client only ever waits on its own socket."""
        try:
            while True:
                frame = await self.outgoing.get()
                if frame is None:
                    break
                await self.websocket.send_text(frame.decode())
        except Exception:  # the peer went away mid-send
            self.closed = True
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(self.close_code or 1000)
            except Exception:
                pass


class SocketRegistry:
    """Listens to the realtime hub and hands each event to this process's sockets.

    Sockets are indexed by the channels they subscribed to and by their person, so an
    event costs as much as it has listeners, not as many sockets as the workspace has."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.by_workspace: dict[uuid.UUID, set[Connection]] = {}
        self.by_channel: dict[tuple[uuid.UUID, str], set[Connection]] = {}
        self.by_person: dict[tuple[uuid.UUID, uuid.UUID | None], set[Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def count(self) -> int:
        return sum(len(c) for c in self.by_workspace.values())

    def add(self, connection: Connection) -> None:
        ws = connection.principal.workspace_id
        self.by_workspace.setdefault(ws, set()).add(connection)
        self.by_person.setdefault((ws, connection.principal.user_id), set()).add(connection)

    def remove(self, connection: Connection) -> None:
        ws = connection.principal.workspace_id
        for channel in tuple(connection.subscriptions):
            self.unsubscribe(connection, channel)
        for index, key in ((self.by_workspace, ws), (self.by_person, (ws, connection.principal.user_id))):
            group = index.get(key)  # type: ignore[call-overload]
            if group is not None:
                group.discard(connection)
                if not group:
                    del index[key]  # type: ignore[arg-type]

    def subscribe(self, connection: Connection, channel: str) -> None:
        connection.subscriptions.add(channel)
        self.by_channel.setdefault((connection.principal.workspace_id, channel), set()).add(connection)

    def unsubscribe(self, connection: Connection, channel: str) -> None:
        connection.subscriptions.discard(channel)
        key = (connection.principal.workspace_id, channel)
        group = self.by_channel.get(key)
        if group is not None:
            group.discard(connection)
            if not group:
                del self.by_channel[key]

    def connections_of(self, workspace_id: uuid.UUID, user_id: uuid.UUID | None) -> list[Connection]:
        return list(self.by_person.get((workspace_id, user_id), ()))

    def listeners(self, event: LiveEvent) -> set[Connection]:
        ws = event.workspace_id
        if event.type == PERSONAL_EVENT:
            user = event.payload.get("user_id")
            return set(self.by_person.get((ws, uuid.UUID(str(user)) if user else None), ()))
        found: set[Connection] = set()
        for channel in channels_of(event.type, event.payload):
            found |= self.by_channel.get((ws, channel), set())
        return found

    # -- the hub's listener protocol ---------------------------------------------------
    async def deliver(self, events: Sequence[LiveEvent]) -> None:
        for event in events:
            for connection in self.listeners(event):
                connection.receive(event)

    async def hub_state_changed(self, up: bool) -> None:
        """Tell every socket; once the hub is back, replay what the outage swallowed."""
        for group in self.by_workspace.values():
            for connection in tuple(group):
                connection.send({"type": "live", "state": "up" if up else "degraded"})
                if up:
                    self._spawn(self.replay(connection, connection.last_event_id))

    # -- catching up from the outbox ----------------------------------------------------
    async def latest_event_id(self, workspace_id: uuid.UUID) -> int:
        async with self.runtime.db.read_session() as session:
            return await session.scalar(select(func.max(OutboxEvent.id)).where(
                OutboxEvent.workspace_id == workspace_id)) or 0

    async def replay(self, connection: Connection, after_id: int) -> None:
        limit = self.runtime.settings.ws_replay_limit
        connection.replaying = True
        try:
            async with self.runtime.db.read_session() as session:
                rows = list(await session.execute(
                    select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.payload)
                    .where(OutboxEvent.workspace_id == connection.principal.workspace_id, OutboxEvent.id > after_id)
                    .order_by(OutboxEvent.id).limit(limit + 1)))
        except Exception:
            connection.finish_replay([])
            raise
        ws = connection.principal.workspace_id
        if len(rows) > limit:
            # Too far behind to replay event by event: the client reloads through the API.
            connection.last_event_id = await self.latest_event_id(ws)
            connection.send({"type": "resync_required", "last_event_id": connection.last_event_id})
            connection.finish_replay([])
            return
        connection.finish_replay([LiveEvent(r.id, ws, r.type, r.payload) for r in rows])
        connection.send({"type": "replayed", "count": len(rows), "last_event_id": connection.last_event_id})

    # -- presence --------------------------------------------------------------------------
    async def set_availability(self, principal: Principal, availability: Availability) -> None:
        runtime = self.runtime
        async with runtime.transaction() as session:
            agents = AgentService(session, UserService(session, runtime.hasher))
            assert principal.user_id is not None
            await agents.update(principal, principal.user_id, AgentPatch(availability=availability),
                                runtime.clock.now())

    async def sweep_idle(self, now: float) -> None:
        """Close silent sockets; show agents as away after a quiet spell (back when they act)."""
        s = self.runtime.settings
        for group in tuple(self.by_workspace.values()):
            for connection in tuple(group):
                if now - connection.last_heard > s.ws_idle_timeout_seconds:
                    connection.drop(CLOSE_IDLE)
                elif connection.presence_managed and not connection.auto_away and \
                        now - connection.last_active > s.agent_away_after_seconds:
                    connection.auto_away = True
                    await self.set_availability(connection.principal, Availability.AWAY)

    def ping_all(self) -> None:
        for group in tuple(self.by_workspace.values()):
            for connection in tuple(group):
                connection.send({"type": "ping"})

    async def _housekeeping(self) -> None:
        heartbeat = self.runtime.settings.ws_heartbeat_seconds
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(min(heartbeat, 5))
            now = time.monotonic()
            if now - last_ping >= heartbeat:
                self.ping_all()
                last_ping = now
            try:
                await self.sweep_idle(now)
            except Exception as exc:  # the database away for a moment: try again next round
                log.warning("realtime_sweep_failed", error=str(exc))

    def start(self) -> None:
        self._spawn(self._housekeeping())

    async def stop(self) -> None:
        for group in self.by_workspace.values():
            for connection in group:
                connection.drop(1001)
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("realtime_task_failed", error=str(t.exception()))

        task.add_done_callback(done)

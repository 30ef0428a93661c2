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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import ColumnElement, Row, and_, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketState

from relaydesk.agents.schemas import AgentPatch, Availability
from relaydesk.agents.service import AgentService
from relaydesk.core.outbox import OutboxEvent
from relaydesk.core.principal import Principal
from relaydesk.core.realtime import LiveEvent
from relaydesk.identity.service import UserService
from relaydesk.realtime.audience import PERSONAL_EVENTS, TICKET_DELETED, Viewer, channels_of, customer_owns, view
from relaydesk.realtime.credentials import Credential, recheck
from relaydesk.realtime.presence import Person, shared_presence
from relaydesk.tickets.tasks import ticket_service

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.realtime")

CLOSE_TOO_SLOW = 1013  # "try again later": reconnect and resume from the last event id
CLOSE_IDLE = 4408
CLOSE_UNAUTHENTICATED = 4401
CLOSE_POLICY = 1008  # too many sockets for one person
AVAILABILITY_CHANGED = "agent.availability_changed"
CLOSE_GRACE_SECONDS = 1.0  # a dropped socket's last word, and then its close, get this long each
RECENT_IDS = 1024  # per socket: enough to span a replay and the live events held during it
# Typing: at most one signal per person, ticket and kind (a reply, a note) this often, so
# nobody's flood (started, stopped, started...) can fill the buffers of the people
# watching; and a repeat of the same state only this often, as keystrokes repeat "started".
TYPING_INTERVAL_SECONDS = 1.0
TYPING_REPEAT_SECONDS = 2.0
SHARE_ACTIVITY_SECONDS = 5.0  # an agent's activity reaches the other servers this often at most
# How often presence without an open socket is looked for (and the grace after a start):
# longer than a server's claims take to lapse (``presence.HOLD_SECONDS``).
PRESENCE_RECONCILE_SECONDS = 45.0
# PostgreSQL: how much earlier than the client's last event one that committed after it may
# have been made (events carry the time of their change; ids are taken as the change commits).
COMMIT_ORDER_LOOK_BACK_SECONDS = 5.0


@dataclass
class Presence:
    """An agent's presence as their sockets on this server see it: one person, however
    many tabs, and active when any of them is."""

    principal: Principal
    chosen: Availability  # what they last set through a socket
    last_active: float  # something they did, in any tab
    auto_away: bool = False  # shown away because they went quiet, not because they chose it
    shared_at: float = 0.0  # when this server last told the others they acted


_TypingKey = tuple[Person, uuid.UUID, bool]  # who, on which ticket, drafting a note or a reply


def _stopped(started: LiveEvent) -> LiveEvent:
    """The "stopped" that ends this typing signal (for the same audience: a reply or a note)."""
    return replace(started, payload={**started.payload, "state": "stopped"})


def _drafting_note(signal: LiveEvent) -> bool:
    return bool(signal.payload.get("internal"))


@dataclass
class _Typing:
    state: str  # what the watchers heard last
    sent_at: float
    held: LiveEvent | None = None  # a change that came too soon, sent when the interval ends


class Connection:
    def __init__(self, websocket: WebSocket, principal: Principal, viewer: Viewer, *, credential: Credential,
                 buffer: int, buffer_bytes: int = 2 * 1024 * 1024) -> None:
        self.websocket = websocket
        self.principal = principal
        self.viewer = viewer
        self.credential = credential  # checked again by the sweep
        self.subscriptions: set[str] = set()
        # Tickets this socket may see, with who they concern (for typing signals).
        self.tickets: dict[uuid.UUID, dict[str, Any]] = {}
        self.only_ticket: uuid.UUID | None = None  # a chat visitor's socket sees one conversation
        self.outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffer)
        # Frames are counted in bytes as well: one message's frame may carry 200 KB (its
        # HTML and its text), and a thousand of them for a client that stopped reading
        # would hold 200 MB of the server's memory.
        self.buffer_bytes = buffer_bytes
        self.queued_bytes = 0
        self._recent: OrderedDict[int, None] = OrderedDict()  # ids sent lately, for de-duplication
        self.last_event_id = 0
        self.replaying = False
        self._held: list[LiveEvent] = []
        self.typing_on: dict[uuid.UUID, LiveEvent] = {}  # tickets where this socket is typing, and what
        self.last_heard = time.monotonic()  # any frame from the client, heartbeat replies included
        self.closed = False
        self.close_code: int | None = None
        self._dropped = asyncio.Event()  # the sender's cue to close the socket

    def send(self, message: dict[str, Any]) -> None:
        """Queue a frame; a full buffer means the client cannot keep up, so let it go."""
        if self.closed:
            return
        frame = orjson.dumps(message)
        if self.queued_bytes + len(frame) > self.buffer_bytes and self.queued_bytes:
            self.drop(CLOSE_TOO_SLOW)
            return
        try:
            self.outgoing.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop(CLOSE_TOO_SLOW)
            return
        self.queued_bytes += len(frame)

    def drop(self, code: int, last_word: dict[str, Any] | None = None) -> None:
        """Close the socket, after ``last_word`` (why) but nothing else still queued."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        # Make room for the sender's stop signal whatever the buffer holds.
        while not self.outgoing.empty():
            self.outgoing.get_nowait()
        self.queued_bytes = 0
        if last_word is not None:
            self.outgoing.put_nowait(orjson.dumps(last_word))
        self.outgoing.put_nowait(None)
        self._dropped.set()

    def receive(self, event: LiveEvent) -> None:
        if self.replaying:
            self._held.append(event)
            return
        self._offer(event)

    def _offer(self, event: LiveEvent) -> bool:
        """Send the event if this socket may see it and has not had it yet; whether it was sent."""
        if event.id is not None:
            if event.id in self._recent:
                return False
            self.last_event_id = max(self.last_event_id, event.id)
        if self.only_ticket is not None and str(event.payload.get("ticket_id")) != str(self.only_ticket):
            return False  # a chat visitor hears of their conversation only, not even their own notifications
        seen = view(event.type, event.payload, self.viewer, self.subscriptions)
        if seen is None:
            return False
        if event.id is not None:  # only what was sent needs remembering: a replay may bring it again
            self._recent[event.id] = None
            if len(self._recent) > RECENT_IDS:
                self._recent.popitem(last=False)
        channels, data = seen
        self.send({"type": "event", "id": event.id, "event": event.type, "channels": channels, "data": data})
        return True

    def finish_replay(self, replayed: Sequence[LiveEvent]) -> int:
        """Missed events first, then whatever arrived live meanwhile; how many missed ones were sent."""
        held, self._held = self._held, []
        self.replaying = False
        sent = sum(self._offer(event) for event in replayed)
        for event in held:
            self._offer(event)
        return sent

    async def pump(self) -> None:
        """The sender task: one slow client only ever waits on its own socket, and once the
        socket is dropped, for CLOSE_GRACE_SECONDS at most: a client that stopped reading
        would otherwise hold its sender, and the socket, open for ever."""
        sending = asyncio.create_task(self._send_queued())
        try:
            await self._dropped.wait()
            try:
                await asyncio.wait_for(sending, CLOSE_GRACE_SECONDS)
            except TimeoutError:
                pass  # its last word will not get through: close all the same
            if self.websocket.application_state == WebSocketState.CONNECTED:
                try:
                    await asyncio.wait_for(self.websocket.close(self.close_code or 1000), CLOSE_GRACE_SECONDS)
                except Exception:
                    pass
        finally:
            sending.cancel()

    async def _send_queued(self) -> None:
        try:
            while (frame := await self.outgoing.get()) is not None:
                self.queued_bytes = max(0, self.queued_bytes - len(frame))
                await self.websocket.send_text(frame.decode())
        except Exception:  # the peer went away mid-send
            self.closed = True
            self._dropped.set()


class SocketRegistry:
    """Listens to the realtime hub and hands each event to this process's sockets.

    Sockets are indexed by the channels they subscribed to and by their person, so an
    event costs as much as it has listeners, not as many sockets as the workspace has."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.by_workspace: dict[uuid.UUID, set[Connection]] = {}
        self.by_channel: dict[tuple[uuid.UUID, str], set[Connection]] = {}
        self.by_person: dict[Person, set[Connection]] = {}
        self.presence: dict[Person, Presence] = {}  # agents who set their presence through a socket
        self.shared = shared_presence(runtime.settings.redis_url, f"{runtime.settings.realtime_channel}:presence")
        self._typing: dict[_TypingKey, _Typing] = {}  # per person, ticket and kind
        self._hub_down_since: datetime | None = None  # when the hub was lost, while it is
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def count(self) -> int:
        return sum(len(c) for c in self.by_workspace.values())

    @property
    def hub_down(self) -> bool:
        return self._hub_down_since is not None

    def sockets_of(self, principal: Principal) -> int:
        return len(self.by_person.get((principal.workspace_id, principal.user_id), ()))

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

    def change_viewer(self, connection: Connection, viewer: Viewer) -> None:
        """A customer's reach changed (they left or joined a sharing organisation): drop the
        tickets they may no longer watch, and say so."""
        connection.viewer = viewer
        for ticket_id, scope in tuple(connection.tickets.items()):
            if not customer_owns(scope, viewer):
                self.stop_watching(connection, ticket_id)

    def stop_watching(self, connection: Connection, ticket_id: uuid.UUID) -> None:
        """The ticket is gone from the socket's sight (deleted, or no longer the customer's): say so."""
        connection.tickets.pop(ticket_id, None)
        self.unsubscribe(connection, f"ticket:{ticket_id}")
        self._spawn(self.stop_typing(connection, ticket_id))
        connection.send({"type": "unsubscribed", "channel": f"ticket:{ticket_id}"})

    def listeners(self, event: LiveEvent) -> set[Connection]:
        ws = event.workspace_id
        if event.type in PERSONAL_EVENTS:
            user = event.payload.get("user_id")
            return set(self.by_person.get((ws, uuid.UUID(str(user)) if user else None), ()))
        found: set[Connection] = set()
        for channel in channels_of(event.type, event.payload):
            found |= self.by_channel.get((ws, channel), set())
        return found

    # -- the hub's listener protocol ---------------------------------------------------
    async def deliver(self, events: Sequence[LiveEvent]) -> None:
        for event in events:
            if event.type == AVAILABILITY_CHANGED:
                await self._someone_else_chose(event)
            for connection in self.listeners(event):
                connection.receive(event)
                if event.type == TICKET_DELETED and f"ticket:{event.payload['ticket_id']}" in connection.subscriptions:
                    self.stop_watching(connection, uuid.UUID(str(event.payload["ticket_id"])))

    async def hub_state_changed(self, up: bool) -> None:
        """Tell every socket; once the hub is back, replay what the outage swallowed."""
        down_since = self._hub_down_since
        self._hub_down_since = None if up else down_since or self.runtime.clock.now()
        for group in self.by_workspace.values():
            for connection in tuple(group):
                connection.send({"type": "live", "state": "up" if up else "degraded"})
                if up:
                    self._spawn(self.replay(connection, connection.last_event_id, down_since))

    # -- catching up from the outbox ----------------------------------------------------
    async def latest_event_id(self, workspace_id: uuid.UUID) -> int:
        async with self.runtime.db.read_session() as session:
            return await session.scalar(select(func.max(OutboxEvent.id)).where(
                OutboxEvent.workspace_id == workspace_id)) or 0

    async def resume(self, connection: Connection, after_id: int) -> None:
        """A client's resume from the id it names: what it missed, unless the id is one this
        workspace never reached (a restored database, another deployment), which, kept,
        would make every later resume come back empty."""
        # Live events from now on wait for the missed ones (and go after a resync notice).
        connection.replaying = True
        try:
            latest = await self.latest_event_id(connection.principal.workspace_id)
        except Exception:
            connection.finish_replay([])
            raise
        if after_id > latest:
            connection.send({"type": "resync_required", "last_event_id": latest})
            connection.finish_replay([])
            return
        await self.replay(connection, after_id)

    async def replay(self, connection: Connection, after_id: int, missing_since: datetime | None = None) -> None:
        """Send what the socket missed after ``after_id`` (an id the server knows: its own
        or one ``resume`` checked); ``missing_since``: when it stopped hearing events live (a
        hub outage), so events older than that are not looked back on."""
        limit = self.runtime.settings.ws_replay_limit
        # The client has everything up to after_id: what it should keep never goes back.
        connection.last_event_id = max(connection.last_event_id, after_id)
        connection.replaying = True
        ws = connection.principal.workspace_id
        try:
            async with self.runtime.db.read_session() as session:
                events = select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.payload).where(
                    OutboxEvent.workspace_id == ws)
                rows = list(await session.execute(
                    events.where(OutboxEvent.id > after_id).order_by(OutboxEvent.id).limit(limit + 1)))
                too_far_behind = len(rows) > limit
                if not too_far_behind:
                    if not self.runtime.db.is_sqlite:
                        # Sent again in case they committed late, not missed for sure, so they
                        # do not count toward the limit (a busy workspace would otherwise make
                        # every resume a resync); at most that many, the ones nearest the
                        # client's last event, the likeliest to have been late.
                        late = await self._committed_late(session, ws, after_id, missing_since)
                        rows[:0] = reversed(list(await session.execute(
                            events.where(late).order_by(OutboxEvent.id.desc()).limit(limit))))
                    rows = await self._without_deleted_messages(session, ws, rows)
        except Exception:
            connection.finish_replay([])
            raise
        if too_far_behind:
            # Too far behind to replay event by event: the client reloads through the API.
            connection.last_event_id = await self.latest_event_id(ws)
            connection.send({"type": "resync_required", "last_event_id": connection.last_event_id})
            connection.finish_replay([])
            return
        sent = connection.finish_replay([LiveEvent(r.id, ws, r.type, r.payload) for r in rows])
        connection.send({"type": "replayed", "count": sent, "last_event_id": connection.last_event_id})

    async def _without_deleted_messages(self, session: AsyncSession, workspace_id: uuid.UUID,
                                        rows: list[Row[Any]]) -> list[Row[Any]]:
        """A message deleted since it was posted is not shown again, body and all."""
        posted = {uuid.UUID(str(r.payload["message_id"])) for r in rows if r.type == "message.posted"}
        shown = await ticket_service(self.runtime, session).messages_still_shown(workspace_id, list(posted))
        return [r for r in rows if r.type != "message.posted" or uuid.UUID(str(r.payload["message_id"])) in shown]

    @staticmethod
    async def _committed_late(session: AsyncSession, workspace_id: uuid.UUID, after_id: int,
                              missing_since: datetime | None) -> ColumnElement[bool]:
        """On PostgreSQL ids come from a sequence but transactions commit in their own order,
        so an event with a lower id than the client's may have committed after it: those
        made shortly before the client's event are sent again (the socket and the client
        drop the ones they already have)."""
        anchor = await session.scalar(
            select(OutboxEvent.created_at).where(OutboxEvent.workspace_id == workspace_id, OutboxEvent.id <= after_id)
            .order_by(OutboxEvent.id.desc()).limit(1))
        if anchor is None:
            return false()
        # Anything older that committed late did so while the socket still heard events live.
        since = max(anchor, missing_since or anchor) - timedelta(seconds=COMMIT_ORDER_LOOK_BACK_SECONDS)
        return and_(OutboxEvent.id < after_id, OutboxEvent.created_at >= since)

    # -- typing --------------------------------------------------------------------------
    async def typing(self, connection: Connection, ticket_id: uuid.UUID, signal: LiveEvent) -> None:
        """Typing a reply and typing a note are told apart (the customer hears only of the
        reply): switching from one to the other stops the first, or the customer would see
        support typing a reply that nobody is writing any more."""
        person = (signal.workspace_id, connection.principal.user_id)
        was = connection.typing_on.pop(ticket_id, None)
        if was is not None and _drafting_note(was) != _drafting_note(signal):
            await self.relay_typing(person, ticket_id, _stopped(was))
        if signal.payload["state"] == "started":
            connection.typing_on[ticket_id] = signal
        await self.relay_typing(person, ticket_id, signal)

    async def stop_typing(self, connection: Connection, ticket_id: uuid.UUID) -> None:
        """The socket stopped watching the ticket (or closed) mid-sentence: its watchers
        would otherwise show the person typing for ever."""
        started = connection.typing_on.pop(ticket_id, None)
        if started is not None:
            await self.relay_typing((started.workspace_id, connection.principal.user_id), ticket_id, _stopped(started))

    async def stop_typing_everywhere(self, connection: Connection) -> None:
        for ticket_id in tuple(connection.typing_on):
            await self.stop_typing(connection, ticket_id)

    async def relay_typing(self, person: Person, ticket_id: uuid.UUID, signal: LiveEvent) -> None:
        """Pass a typing signal on, throttled per person, ticket and kind (TYPING_INTERVAL_SECONDS).

        What comes too soon is not lost but held: the latest change goes out when the
        interval ends, so the watchers never keep showing someone typing who stopped. Each
        kind has its own: a reply's "stopped" is never replaced by a note's "started"."""
        now = time.monotonic()
        state = signal.payload["state"]
        key = (person, ticket_id, _drafting_note(signal))
        last = self._typing.get(key)
        if last is not None and now - last.sent_at < TYPING_INTERVAL_SECONDS:
            pending = last.held is not None
            last.held = signal if state != last.state else None
            if last.held is not None and not pending:
                self._spawn(self._send_held(key, last.sent_at + TYPING_INTERVAL_SECONDS - now))
            return
        if last is not None and state == last.state and now - last.sent_at < TYPING_REPEAT_SECONDS:
            return
        self._typing[key] = _Typing(state, now)
        await self.runtime.hub.publish([signal])

    async def _send_held(self, key: _TypingKey, delay: float) -> None:
        await asyncio.sleep(delay)
        last = self._typing.get(key)
        if last is None or last.held is None:
            return  # withdrawn meanwhile: the watchers already hear the state it went back to
        signal, last.held = last.held, None
        last.state, last.sent_at = signal.payload["state"], time.monotonic()
        await self.runtime.hub.publish([signal])

    # -- presence --------------------------------------------------------------------------
    async def set_availability(self, principal: Principal, availability: Availability) -> None:
        runtime = self.runtime
        async with runtime.transaction() as session:
            agents = AgentService(session, UserService(session, runtime.hasher))
            assert principal.user_id is not None
            await agents.update(principal, principal.user_id, AgentPatch(availability=availability),
                                runtime.clock.now(), by_socket=True)

    async def choose_presence(self, principal: Principal, status: Availability) -> None:
        person = (principal.workspace_id, principal.user_id)
        now = time.monotonic()
        self.presence[person] = Presence(principal, status, now, shared_at=now)
        await self.shared.chose(person, status.value)
        await self.shared.acted(person, time.time())
        await self.set_availability(principal, status)

    async def _someone_else_chose(self, event: LiveEvent) -> None:
        """An agent's availability changed, and not as their sockets here last set it (a
        supervisor through the API, say): that is their choice now. Idleness and activity
        no longer move them between away and online, as Zendesk keeps an admin's setting
        until the agent changes it."""
        person = (event.workspace_id, uuid.UUID(str(event.payload["agent_id"])))
        presence = self.presence.get(person)
        if presence is None:
            return
        shown = Availability.AWAY if presence.auto_away else presence.chosen
        after = Availability(event.payload["after"])
        if after is not shown:
            presence.chosen, presence.auto_away = after, False
            await self.shared.chose(person, after.value)

    async def person_active(self, principal: Principal) -> None:
        """Something the person did, in any of their tabs: back online if only quiet made them away."""
        person = (principal.workspace_id, principal.user_id)
        presence = self.presence.get(person)
        if presence is None:
            return
        now = presence.last_active = time.monotonic()
        if now - presence.shared_at >= SHARE_ACTIVITY_SECONDS:
            presence.shared_at = now
            await self.shared.acted(person, time.time())
        if presence.auto_away:
            presence.auto_away = False
            await self.set_availability(principal, Availability.ONLINE)

    async def staff_joined(self, principal: Principal) -> None:
        await self.shared.hold([(principal.workspace_id, principal.user_id)])

    async def staff_left(self, principal: Principal) -> None:
        """Their last socket here closed: an agent present through a socket is no longer
        at their desk, unless a tab of theirs is open on another server."""
        person = (principal.workspace_id, principal.user_id)
        presence = self.presence.pop(person, None)
        last, chosen_anywhere = await self.shared.release(person)
        chosen = presence.chosen.value if presence is not None else chosen_anywhere
        if last and chosen is not None and chosen != Availability.OFFLINE.value:
            await self.set_availability(principal, Availability.OFFLINE)

    async def _follow_quiet(self, now: float) -> None:
        """Away after a quiet spell (unless they are busy in a tab on another server), and
        online again when the other server sees them act."""
        quiet_for = self.runtime.settings.agent_away_after_seconds
        for person, presence in tuple(self.presence.items()):
            if presence.chosen is not Availability.ONLINE or now - presence.last_active <= quiet_for:
                continue  # chosen otherwise, or active here (``person_active`` keeps them online)
            acted = await self.shared.last_acted(person)
            busy_elsewhere = acted is not None and time.time() - acted <= quiet_for
            if busy_elsewhere and presence.auto_away:
                presence.auto_away = False
                await self.set_availability(presence.principal, Availability.ONLINE)
            elif not busy_elsewhere and not presence.auto_away:
                presence.auto_away = True
                await self.set_availability(presence.principal, Availability.AWAY)

    # -- housekeeping ----------------------------------------------------------------------
    async def sweep(self, now: float) -> None:
        """Close silent sockets and those whose sign-in no longer holds; show agents as away
        after a quiet spell (back when they act)."""
        s = self.runtime.settings
        for group in tuple(self.by_workspace.values()):
            for connection in tuple(group):
                if now - connection.last_heard > s.ws_idle_timeout_seconds:
                    connection.drop(CLOSE_IDLE)
        self._forget_typing(now)
        await self._recheck_credentials()
        # This server's claims on its agents lapse unless renewed (so a dead server's do).
        await self.shared.hold([person for person, group in self.by_person.items()
                                if next(iter(group)).principal.is_staff])
        await self._follow_quiet(now)

    async def _recheck_credentials(self) -> None:
        open_ = [c for group in self.by_workspace.values() for c in group if not c.closed]
        verdict = await recheck(self.runtime, open_)
        for connection, reason in verdict.lapsed.items():
            connection.drop(CLOSE_UNAUTHENTICATED, {"type": "error", "code": "unauthenticated", "detail": reason})
        for connection, viewer in verdict.viewers.items():
            self.change_viewer(connection, viewer)

    def _forget_typing(self, now: float) -> None:
        for key, last in tuple(self._typing.items()):
            if last.held is None and now - last.sent_at >= TYPING_REPEAT_SECONDS:
                del self._typing[key]

    def ping_all(self) -> None:
        for group in tuple(self.by_workspace.values()):
            for connection in tuple(group):
                connection.send({"type": "ping"})

    async def end_presence_without_sockets(self) -> int:
        """Agents shown online or away through a socket while no socket of theirs is open
        on any server (the one that held it crashed or was killed, so nobody saw them
        leave) are taken offline: routing would keep giving them work, and the chat would
        promise visitors an answer. Returns how many."""
        runtime = self.runtime
        async with runtime.db.read_session() as session:
            present = await AgentService(session, UserService(session, runtime.hasher)).present_by_socket()
        gone = [person for person in present if person not in self.by_person]
        held = await self.shared.held_anywhere(gone)
        gone = [person for person in gone if person not in held]
        for workspace_id, user_id in gone:
            assert user_id is not None
            async with runtime.transaction() as session:
                await AgentService(session, UserService(session, runtime.hasher)).update(
                    Principal.system(workspace_id), user_id, AgentPatch(availability=Availability.OFFLINE),
                    runtime.clock.now(), by_socket=True)
        if gone:
            log.info("presence_ended_without_sockets", agents=len(gone))
        return len(gone)

    async def _housekeeping(self) -> None:
        heartbeat = self.runtime.settings.ws_heartbeat_seconds
        last_ping = last_reconciled = time.monotonic()  # a grace after start: clients reconnect first
        while True:
            await asyncio.sleep(min(heartbeat, 5))
            now = time.monotonic()
            if now - last_ping >= heartbeat:
                self.ping_all()
                last_ping = now
            try:
                await self.sweep(now)
                if now - last_reconciled >= PRESENCE_RECONCILE_SECONDS:
                    last_reconciled = now
                    await self.end_presence_without_sockets()
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
        await self.shared.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("realtime_task_failed", error=str(t.exception()))

        task.add_done_callback(done)

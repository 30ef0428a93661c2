"""The realtime hub: how committed events reach every server process holding sockets.

The dispatcher publishes each batch of outbox events after it has committed them;
ephemeral signals (typing) are published straight from the socket that produced them.
Every server process listens and hands what arrives to its own socket registry.

Two adapters, picked in ``runtime.py``: in-process (embedded mode) and Redis pub/sub
(scaled mode). Pub/sub is fire-and-forget, so losing Redis loses live events; the
listeners are told when the hub goes down and comes back, and the socket registry then
replays what each socket missed from the outbox, which is the real record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

log = structlog.get_logger("relaydesk.realtime")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    # The outbox id; None for ephemeral signals (typing) that are never stored.
    id: int | None
    workspace_id: uuid.UUID
    type: str
    payload: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps({"id": self.id, "ws": str(self.workspace_id), "type": self.type, "payload": self.payload})

    @classmethod
    def decode(cls, raw: bytes | str) -> LiveEvent:
        data = orjson.loads(raw)
        return cls(data["id"], uuid.UUID(data["ws"]), data["type"], data["payload"])


class HubListener(Protocol):
    async def deliver(self, events: Sequence[LiveEvent]) -> None: ...

    async def hub_state_changed(self, up: bool) -> None: ...


class Hub(Protocol):
    up: bool | None  # None until the hub has first reached its broker, or failed to

    def listen(self, listener: HubListener) -> None: ...

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        """Never raises: a hub that cannot publish logs it; the outbox keeps the record."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessHub:
    """Embedded mode: the publisher and every socket live in this process."""

    up = True

    def __init__(self) -> None:
        self.listeners: list[HubListener] = []

    def listen(self, listener: HubListener) -> None:
        self.listeners.append(listener)

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        for listener in self.listeners:
            try:
                await listener.deliver(events)
            except Exception:  # one broken listener must not stop the dispatcher
                log.exception("realtime_listener_failed")

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class RedisHub:
    """Scaled mode: events cross processes on one Redis pub/sub channel.

    Publishing never holds up the request that committed the events: they go to a queue
    a task of its own sends from. A Redis that refuses connections shows at once; one
    that hangs (stopped, partitioned) would not, so the listening connection pings every
    ``HEALTH_SECONDS`` and counts the hub down when no answer comes. Either way the
    listeners hear "down", and "up" once Redis answers again, and replay what they missed.
    While Redis stays away the hub tries again after 1 s, then twice as long each time,
    up to 15 s."""

    HEALTH_SECONDS = 3.0
    SEND_TIMEOUT_SECONDS = 2.0
    QUEUED_MAX = 10_000  # batches waiting to be sent; beyond that they are dropped (the outbox has them)

    def __init__(self, url: str, channel: str, *, retry_seconds: float = 1.0,
                 retry_max_seconds: float = 15.0) -> None:
        self.url = url
        # Pub/sub channels are shared by all of a Redis server's databases: a staging copy on
        # redis://…/1 beside production on /0 would hear production's events. The database
        # number is part of the channel's name.
        self.channel = f"{channel}:db{_database_number(url)}"
        # A Redis away for hours must not write a log line a second; but while it is away
        # sockets say "degraded", so the wait stays well under the worker's 30 s.
        self.retry_seconds, self.retry_max_seconds = retry_seconds, retry_max_seconds
        self.listeners: list[HubListener] = []
        # Unknown until the first attempt: a server started while Redis is away must count
        # that first failure as "down", or its sockets would never be told.
        self.up: bool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None
        self._outgoing: asyncio.Queue[Sequence[LiveEvent]] = asyncio.Queue(self.QUEUED_MAX)

    def listen(self, listener: HubListener) -> None:
        self.listeners.append(listener)

    async def start(self) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._send(), name="realtime-hub-send"))
            if self.listeners:
                self._tasks.append(asyncio.create_task(self._receive(), name="realtime-hub"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        if not events or self._client is None:
            return
        try:
            self._outgoing.put_nowait(events)
        except asyncio.QueueFull:  # Redis has been hanging for a while: the outbox still has them
            log.warning("realtime_publish_dropped", events=len(events))

    async def _send(self) -> None:
        while True:
            events = list(await self._outgoing.get())
            while not self._outgoing.empty() and len(events) < 500:
                events.extend(self._outgoing.get_nowait())
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for event in events:
                        pipe.publish(self.channel, event.encode())
                    await asyncio.wait_for(pipe.execute(), self.SEND_TIMEOUT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the outbox still has them for replay
                log.warning("realtime_publish_failed", error=str(exc) or type(exc).__name__, events=len(events))
                await self._set_state(False)  # told now; "up" again once the listening side hears Redis

    async def _receive(self) -> None:
        pause = self.retry_seconds
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await pubsub.ping()
                pinged_at, answered = time.monotonic(), False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "pong":
                        answered = True
                        pause = self.retry_seconds  # the next outage starts with a short wait again
                        await self._set_state(True)
                    elif message is not None and message["type"] == "message":
                        await self._fan_out([LiveEvent.decode(message["data"])])
                    if time.monotonic() - pinged_at >= self.HEALTH_SECONDS:
                        if not answered:
                            raise TimeoutError(f"Redis did not answer a ping within {self.HEALTH_SECONDS:g} s")
                        await pubsub.ping()
                        pinged_at, answered = time.monotonic(), False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime_hub_down", error=str(exc) or type(exc).__name__, retry_in=pause)
                await self._set_state(False)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.retry_max_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), self.SEND_TIMEOUT_SECONDS)

    async def _fan_out(self, events: Sequence[LiveEvent]) -> None:
        for listener in self.listeners:
            try:
                await listener.deliver(events)
            except Exception:
                log.exception("realtime_listener_failed")

    async def _set_state(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        log.info("realtime_hub_state", up=up)
        for listener in self.listeners:
            try:
                await listener.hub_state_changed(up)
            except Exception:
                log.exception("realtime_listener_failed")


def _database_number(url: str) -> int:
    from redis.connection import parse_url

    return int(parse_url(url).get("db", 0))

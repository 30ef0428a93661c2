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
    up: bool

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
    """Scaled mode: events cross processes on one Redis pub/sub channel."""

    def __init__(self, url: str, channel: str, *, retry_seconds: float = 1.0) -> None:
        self.url = url
        self.channel = channel
        self.retry_seconds = retry_seconds
        self.listeners: list[HubListener] = []
        self.up = False
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None

    def listen(self, listener: HubListener) -> None:
        self.listeners.append(listener)

    async def start(self) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        if self.listeners and self._task is None:
            self._task = asyncio.create_task(self._receive(), name="realtime-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        if not events or self._client is None:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(self.channel, event.encode())
                await pipe.execute()
        except Exception as exc:  # Redis away: the outbox still has them for replay
            log.warning("realtime_publish_failed", error=str(exc), events=len(events))

    async def _receive(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._set_state(True)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message["type"] != "message":
                        continue
                    await self._fan_out([LiveEvent.decode(message["data"])])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime_hub_down", error=str(exc), retry_in=self.retry_seconds)
                await self._set_state(False)
                await asyncio.sleep(self.retry_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

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


"""What the server processes know together about an agent's presence.

One server sees only the sockets it holds. In the scaled mode an agent's tabs may sit on
different servers, and each server alone would take the agent offline when its own last
socket of theirs closed, or away when they went quiet there while working in a tab on
another. So, on Redis, each server says which agents it holds sockets of (refreshed every
housekeeping round, so a server that died stops counting after ``HOLD_SECONDS``) and when
it last saw them act; the decisions read that.

In one process there is nobody to ask: ``LocalPresence`` says so, and the server's own
view decides.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, Protocol

import structlog

log = structlog.get_logger("relaydesk.realtime")

Person = tuple[uuid.UUID, uuid.UUID | None]  # workspace, user
HOLD_SECONDS = 30.0  # a server's claim on an agent lasts this long unless refreshed
ACTIVE_KEPT_SECONDS = 24 * 3600


class SharedPresence(Protocol):
    async def hold(self, people: list[Person]) -> None:
        """This server holds sockets of these agents (and will say so again soon)."""

    async def chose(self, person: Person, status: str) -> None:
        """They set their presence through a socket here."""

    async def release(self, person: Person) -> tuple[bool, str | None]:
        """This server's last socket of theirs closed: whether no other server holds one
        either, and the presence they last chose through a socket on any server."""

    async def held_anywhere(self, people: list[Person]) -> set[Person]:
        """Which of these some server holds sockets of (as far as anybody knows)."""

    async def acted(self, person: Person, at: float) -> None:
        """They did something here at ``at`` (wall clock)."""

    async def last_acted(self, person: Person) -> float | None:
        """When they last did something on any server, if anybody knows."""

    async def close(self) -> None: ...


class LocalPresence:
    async def hold(self, people: list[Person]) -> None:
        return None

    async def chose(self, person: Person, status: str) -> None:
        return None

    async def release(self, person: Person) -> tuple[bool, str | None]:
        return True, None

    async def held_anywhere(self, people: list[Person]) -> set[Person]:
        return set()

    async def acted(self, person: Person, at: float) -> None:
        return None

    async def last_acted(self, person: Person) -> float | None:
        return None

    async def close(self) -> None:
        return None


class RedisPresence:
    """Per agent, a hash of server id → until when its claim holds, and their last act.
    Redis being away answers as ``LocalPresence`` would: this server's view decides."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.server_id = secrets.token_hex(8)
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        return self._client

    def _key(self, kind: str, person: Person) -> str:
        return f"{self.prefix}:{kind}:{person[0]}:{person[1]}"

    async def hold(self, people: list[Person]) -> None:
        if not people:
            return
        until = time.time() + HOLD_SECONDS
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for person in people:
                    key = self._key("held", person)
                    pipe.hset(key, self.server_id, until)
                    pipe.expire(key, int(HOLD_SECONDS * 2))
                await pipe.execute()
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))

    async def chose(self, person: Person, status: str) -> None:
        try:
            await self._redis().set(self._key("chosen", person), status, ex=ACTIVE_KEPT_SECONDS)
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))

    async def release(self, person: Person) -> tuple[bool, str | None]:
        held, chosen = self._key("held", person), self._key("chosen", person)
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.hdel(held, self.server_id)
                pipe.hvals(held)
                pipe.get(chosen)
                _, claims, status = await pipe.execute()
            now = time.time()
            last = not any(float(until) > now for until in claims)
            if last:
                await self._redis().delete(chosen)
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))
            return True, None
        return last, status.decode() if status is not None else None

    async def held_anywhere(self, people: list[Person]) -> set[Person]:
        if not people:
            return set()
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for person in people:
                    pipe.hvals(self._key("held", person))
                claims = await pipe.execute()
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))
            return set(people)  # not knowing, nobody is taken offline
        now = time.time()
        return {person for person, held in zip(people, claims) if any(float(until) > now for until in held)}

    async def acted(self, person: Person, at: float) -> None:
        try:
            await self._redis().set(self._key("acted", person), at, ex=ACTIVE_KEPT_SECONDS)
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))

    async def last_acted(self, person: Person) -> float | None:
        try:
            value = await self._redis().get(self._key("acted", person))
        except Exception as exc:
            log.warning("presence_not_shared", error=str(exc))
            return None
        return float(value) if value is not None else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def shared_presence(redis_url: str | None, prefix: str) -> SharedPresence:
    return RedisPresence(redis_url, prefix) if redis_url else LocalPresence()

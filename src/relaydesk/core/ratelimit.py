"""Fixed-window rate limits for what the public can do without signing in (the chat).

A window of ``seconds`` allows ``limit`` hits per key; the next one is refused with 429
and the seconds until the window ends. In one process the counts live in memory; in the
scaled mode in Redis (``SET NX EX`` + ``INCR``), so every server counts together. Redis being
away lets the request through: a limit exists to stop abuse, not to take the chat down
with it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import structlog

from relaydesk.core.errors import TooManyAttempts

log = structlog.get_logger("relaydesk.ratelimit")
KEPT = 100_000  # in-memory windows before old ones are swept


class RateLimiter:
    def __init__(self, redis_url: str | None = None, prefix: str = "relaydesk:limit") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._windows: dict[str, tuple[float, int]] = {}  # key: (window end, hits)
        self._client: Any = None

    async def hit(self, key: str, *, limit: int, seconds: int, message: str) -> None:
        """Counts one hit; raises ``TooManyAttempts`` once ``key`` has had ``limit`` this window."""
        hits, wait = await (self._hit_redis(key, seconds) if self.redis_url else self._hit_here(key, seconds))
        if hits > limit:
            raise TooManyAttempts(message, code="rate_limited", extra={"retry_after": max(1, math.ceil(wait))})

    async def _hit_here(self, key: str, seconds: int) -> tuple[int, float]:
        now = time.monotonic()
        ends, hits = self._windows.get(key, (0.0, 0))
        if ends <= now:
            if len(self._windows) >= KEPT:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            ends, hits = now + seconds, 0
        self._windows[key] = (ends, hits + 1)
        return hits + 1, ends - now

    async def _hit_redis(self, key: str, seconds: int) -> tuple[int, float]:
        try:
            if self._client is None:
                import redis.asyncio as redis

                self._client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
            name = f"{self.prefix}:{key}"
            async with self._client.pipeline(transaction=True) as pipe:
                # The window starts with its first hit (SET NX EX works on every Redis;
                # EXPIRE NX needs 7, and a Redis 6 would have failed every hit open).
                pipe.set(name, 0, ex=seconds, nx=True)
                pipe.incr(name)
                pipe.ttl(name)
                _, hits, ttl = await pipe.execute()
            return int(hits), float(ttl if ttl and ttl > 0 else seconds)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=str(exc))
            return 0, 0.0

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

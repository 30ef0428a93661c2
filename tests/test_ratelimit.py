"""Limits on what the public can do: per process in one process, shared on Redis."""

from __future__ import annotations

import secrets

import pytest

from relaydesk.core.errors import TooManyAttempts
from relaydesk.core.ratelimit import RateLimiter


async def test_a_window_allows_its_limit_then_says_how_long_to_wait() -> None:
    limits = RateLimiter()
    for _ in range(3):
        await limits.hit("k", limit=3, seconds=60, message="slow down")
    with pytest.raises(TooManyAttempts) as refused:
        await limits.hit("k", limit=3, seconds=60, message="slow down")
    assert refused.value.code == "rate_limited" and 55 <= refused.value.extra["retry_after"] <= 60
    await limits.hit("another key", limit=3, seconds=60, message="slow down")


async def test_servers_sharing_redis_count_together(redis_url: str) -> None:
    prefix = f"relaydesk-test:{secrets.token_hex(4)}:limits"
    first, second = RateLimiter(redis_url, prefix), RateLimiter(redis_url, prefix)
    try:
        await first.hit("chat", limit=2, seconds=30, message="slow down")
        await second.hit("chat", limit=2, seconds=30, message="slow down")
        with pytest.raises(TooManyAttempts) as refused:
            await first.hit("chat", limit=2, seconds=30, message="slow down")
        assert 0 < refused.value.extra["retry_after"] <= 30
    finally:
        await first.close()
        await second.close()


async def test_redis_away_lets_the_public_through() -> None:
    limits = RateLimiter("redis://127.0.0.1:1/0")
    for _ in range(5):
        await limits.hit("chat", limit=1, seconds=30, message="slow down")
    await limits.close()

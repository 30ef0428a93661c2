"""Time is injected: domain code asks a Clock, tests freeze and move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to, or by ``tick`` on every reading (so that
    rows written one after another still get distinct, ordered times)."""

    def __init__(self, at: datetime | None = None, tick: timedelta = timedelta(0)) -> None:
        self._now = at or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._tick = tick

    def now(self) -> datetime:
        current = self._now
        self._now += self._tick
        return current

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, at: datetime) -> None:
        self._now = at

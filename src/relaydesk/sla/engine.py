"""SLA clocks: pure state and decisions, no I/O, no system clock.

A clock measures *business time* (per a calendar, see ``relaydesk.sla.calendar``)
against a target.  Its state is a small frozen value (``SlaClock``) that every function
takes and returns anew; ``to_dict`` / ``from_dict`` put it in a JSON column and back
without losing a microsecond.

Model
-----
* A clock is *running* (consuming business time), *paused* (consumption frozen) or
  *met* (stopped for good).  ``consumed`` is the business time used up to
  ``consumed_at``; while running, the consumption at ``t`` is
  ``consumed + calendar.business_time_between(consumed_at, t)``.
* Thresholds are fractions of the target: warning (default 0.75), critical (0.90) and
  breach (always 1.0).  A level is *crossed* at the earliest instant the consumption
  reaches ``fraction * target`` -- for a 4 h clock started at 09:00 on a 24/7 calendar,
  warning at 12:00, critical at 12:36, breach at 13:00.
* ``advance`` announces every crossed level not yet announced, once, in order, with the
  instant it was crossed; ``fired`` remembers the highest level announced.
  ``next_check_at`` is the instant of the next level still to announce, which is when a
  monitor should call ``advance`` again.
* ``pause`` / ``resume`` / ``meet`` / ``retarget`` may happen between two ``advance``
  calls.  So that nothing crossed before them is lost or mis-timed, each of them records
  the clock's previous state in ``trail`` (the running/paused segments since the last
  ``advance``); ``advance`` reads the exact crossing instants off it and clears it.
* Breach is final: ``breached_at`` is set by whichever function first sees the target
  reached (the exact instant, not the instant it was noticed) and is never cleared.
  ``meet`` after a breach records ``met_at`` but the status stays ``BREACHED``;
  ``retarget`` after a breach changes the target but not the breach.
* ``retarget`` keeps the consumed time.  Levels the new target puts behind the current
  consumption count as crossed at the retarget instant (they fire on the next
  ``advance``); raising the target does not re-announce a level already announced.
* Every ``now`` earlier than the clock's last update (``consumed_at``) is treated as
  ``consumed_at``: a clock never runs backwards.  ``advance`` with such a ``now`` does
  nothing.

Calendars are duck-typed (anything with ``add_business_time`` and
``business_time_between``); ``BusinessCalendar.always_open()`` gives 24/7 clocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "Calendar",
    "Checkpoint",
    "ClockKind",
    "ClockStatus",
    "ClockView",
    "SlaClock",
    "ThresholdCrossed",
    "Thresholds",
    "advance",
    "due_at",
    "earliest",
    "format_duration",
    "meet",
    "next_check_at",
    "parse_duration",
    "pause",
    "resume",
    "retarget",
    "start",
    "status",
    "view",
]

_ZERO = timedelta(0)


class Calendar(Protocol):
    def add_business_time(self, start: datetime, duration: timedelta) -> datetime: ...

    def business_time_between(self, start: datetime, end: datetime) -> timedelta: ...


class ClockKind(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class ClockStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    BREACHED = "breached"
    MET = "met"
    PAUSED = "paused"


# The levels that can be announced, in order.
_RANK = {ClockStatus.OK: 0, ClockStatus.WARNING: 1, ClockStatus.CRITICAL: 2, ClockStatus.BREACHED: 3}


@dataclass(frozen=True)
class Thresholds:
    """Warning and critical as fractions of the target; breach is always 1.0."""

    warning: float = 0.75
    critical: float = 0.90

    def __post_init__(self) -> None:
        for name in ("warning", "critical"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} threshold must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 < self.warning < self.critical < 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 < warning < critical < 1, got {self.warning} and {self.critical}"
            )

    def levels(self) -> tuple[tuple[ClockStatus, float], ...]:
        return ((ClockStatus.WARNING, self.warning), (ClockStatus.CRITICAL, self.critical), (ClockStatus.BREACHED, 1.0))


# -- value helpers --------------------------------------------------------------------


def _utc(value: Any, name: str) -> datetime:
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value  # already what the slow path returns (astimezone(UTC) would return it as is)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{name}: not an ISO datetime: {value!r}") from exc
        if value.tzinfo is UTC:
            return value
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def _opt_utc(value: Any, name: str) -> datetime | None:
    return None if value is None else _utc(value, name)


_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)(?:\.(?P<fraction>\d{1,6}))?S)?)?$"
)


def format_duration(value: timedelta) -> str:
    """ISO 8601 duration, exact to the microsecond: ``PT4H``, ``P1DT2H0M0.5S``, ``PT0S``."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, micro = divmod(abs(micros), 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    out = f"{sign}P{days}D" if days else f"{sign}P"
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if seconds or micro or not (days or hours or minutes):
        time_part += f"{seconds}.{micro:06d}S" if micro else f"{seconds}S"
    return out + ("T" + time_part if time_part else "")


# Targets repeat from clock to clock (a handful per policy), so their text is cached.
_format_target = lru_cache(maxsize=1024)(format_duration)


def parse_duration(value: Any) -> timedelta:
    """Inverse of ``format_duration`` (days, hours, minutes, seconds; no years/months)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return _parse_duration_text(value)
    raise ValueError(f"not an ISO 8601 duration of days/hours/minutes/seconds: {value!r}")


@lru_cache(maxsize=4096)
def _parse_duration_text(value: str) -> timedelta:
    # Cached: every stored clock repeats its target, and a monitor pass parses thousands.
    match = _DURATION.match(value.strip())
    if match is None or value.strip() in ("P", "-P") or value.strip().endswith("T"):
        raise ValueError(f"not an ISO 8601 duration of days/hours/minutes/seconds: {value!r}")
    parts = match.groupdict()
    result = timedelta(
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=int(parts["seconds"] or 0),
        microseconds=int((parts["fraction"] or "").ljust(6, "0") or 0),
    )
    return -result if parts["sign"] else result


def _duration(value: Any, name: str) -> timedelta:
    if value.__class__ is not timedelta:
        value = parse_duration(value)
    if value < _ZERO:
        raise ValueError(f"{name} must not be negative")
    return value


# -- the clock --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A clock's state at the start of an earlier segment (kept until the next ``advance``).

    The segment runs from ``at`` to the next checkpoint (or the clock's ``consumed_at``);
    ``running`` says whether it consumed business time.
    """

    at: datetime
    consumed: timedelta
    target: timedelta
    running: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, "checkpoint.at"))
        object.__setattr__(self, "consumed", _duration(self.consumed, "checkpoint.consumed"))
        object.__setattr__(self, "target", _duration(self.target, "checkpoint.target"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "consumed": format_duration(self.consumed),
            "target": format_duration(self.target),
            "running": self.running,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        try:
            return cls(data["at"], data["consumed"], data["target"], bool(data["running"]))
        except KeyError as exc:
            raise ValueError(f"checkpoint data lacks {exc.args[0]!r}") from exc


@dataclass(frozen=True)
class SlaClock:
    """One SLA clock.  Build it with ``start``; change it only through this module."""

    kind: ClockKind
    target: timedelta
    started_at: datetime
    consumed: timedelta
    consumed_at: datetime
    paused: bool = False
    met_at: datetime | None = None
    breached_at: datetime | None = None
    fired: ClockStatus = ClockStatus.OK
    trail: tuple[Checkpoint, ...] = ()

    def __post_init__(self) -> None:
        self.__dict__.update(_clock_fields(**self.__dict__))  # frozen: set in place, as dataclasses do

    @property
    def running(self) -> bool:
        return not self.paused and self.met_at is None

    @property
    def stopped(self) -> bool:
        return self.met_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO 8601 datetimes (UTC) and durations, enum values as strings."""
        return {
            "kind": self.kind.value,
            "target": _format_target(self.target),
            "started_at": self.started_at.isoformat(),
            "consumed": format_duration(self.consumed),
            "consumed_at": self.consumed_at.isoformat(),
            "paused": self.paused,
            "met_at": None if self.met_at is None else self.met_at.isoformat(),
            "breached_at": None if self.breached_at is None else self.breached_at.isoformat(),
            "fired": self.fired.value,
            "trail": [c.to_dict() for c in self.trail],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaClock:
        try:
            fields = dict(
                kind=ClockKind(data["kind"]),
                target=data["target"],
                started_at=data["started_at"],
                consumed=data["consumed"],
                consumed_at=data["consumed_at"],
                paused=bool(data.get("paused", False)),
                met_at=data.get("met_at"),
                breached_at=data.get("breached_at"),
                fired=ClockStatus(data.get("fired", ClockStatus.OK.value)),
                trail=tuple(Checkpoint.from_dict(c) for c in data.get("trail", ())),
            )
        except KeyError as exc:
            raise ValueError(f"clock data lacks {exc.args[0]!r}") from exc
        # What the constructor would do, without going through it: a monitor pass reads
        # every due clock, and the generated __init__ plus __post_init__ cost twice this.
        clock = object.__new__(cls)
        clock.__dict__.update(_clock_fields(**fields))
        return clock


def _clock_fields(*, kind: Any, target: Any, started_at: Any, consumed: Any, consumed_at: Any, paused: bool,
                  met_at: Any, breached_at: Any, fired: Any, trail: Any) -> dict[str, Any]:
    """A clock's fields checked and normalised (UTC datetimes, timedeltas, enum members,
    a tuple of checkpoints); ``ValueError`` / ``TypeError`` for anything invalid."""
    if kind.__class__ is not ClockKind:
        kind = ClockKind(kind)
    target = _duration(target, "target")
    consumed = _duration(consumed, "consumed")
    started_at = _utc(started_at, "started_at")
    consumed_at = _utc(consumed_at, "consumed_at")
    met_at = _opt_utc(met_at, "met_at")
    breached_at = _opt_utc(breached_at, "breached_at")
    if fired.__class__ is not ClockStatus:
        fired = ClockStatus(fired)
    if fired not in _RANK:
        raise ValueError(f"fired must be one of ok/warning/critical/breached, got {fired!r}")
    if trail.__class__ is not tuple or trail:
        trail = tuple(c if isinstance(c, Checkpoint) else Checkpoint.from_dict(c) for c in trail)
    if met_at is not None and paused:
        raise ValueError("a met clock cannot be paused")
    return {"kind": kind, "target": target, "started_at": started_at, "consumed": consumed,
            "consumed_at": consumed_at, "paused": paused, "met_at": met_at, "breached_at": breached_at,
            "fired": fired, "trail": trail}


@dataclass(frozen=True)
class ThresholdCrossed:
    """A level the clock crossed, with the exact instant it crossed it."""

    kind: ClockKind
    level: ClockStatus
    at: datetime


@dataclass(frozen=True)
class ClockView:
    """A read-only picture of a clock at some instant, for APIs and dashboards.

    ``remaining`` is business time left (``target - consumed``; negative when overdue,
    ``None`` once met).  ``percent_used`` is ``100 * consumed / target`` (may exceed 100).
    """

    kind: ClockKind
    due_at: datetime | None
    remaining: timedelta | None
    percent_used: float
    status: ClockStatus
    breached_at: datetime | None
    met_at: datetime | None


# -- internals ----------------------------------------------------------------------------


def _evolve(clock: SlaClock, **changes: Any) -> SlaClock:
    """``dataclasses.replace`` for values this module has already normalised (UTC datetimes,
    non-negative timedeltas, enum members, a tuple of checkpoints): the same result without
    running ``__post_init__`` again, which a monitor pass would otherwise do thousands of
    times.  Anything that did not come out of this module goes through ``_utc`` first."""
    new = object.__new__(SlaClock)
    new.__dict__.update(clock.__dict__, **changes)
    return new


def _anchor(clock: SlaClock) -> Checkpoint:
    anchor = object.__new__(Checkpoint)  # the clock's own fields are validated already
    anchor.__dict__.update(at=clock.consumed_at, consumed=clock.consumed, target=clock.target,
                           running=not clock.paused and clock.met_at is None)
    return anchor


def _consumed_by(clock: SlaClock, now: datetime, calendar: Calendar) -> timedelta:
    if clock.running and now > clock.consumed_at:
        return clock.consumed + calendar.business_time_between(clock.consumed_at, now)
    return clock.consumed


def _settle(clock: SlaClock, now: datetime, calendar: Calendar, *, keep_same_instant: bool = False) -> SlaClock:
    """Bring ``consumed`` up to ``now`` and push the finished segment onto the trail."""
    consumed = _consumed_by(clock, now, calendar)
    trail = clock.trail
    if now > clock.consumed_at or keep_same_instant:
        trail = trail + (_anchor(clock),)
    return _evolve(clock, consumed=consumed, consumed_at=now, trail=trail)


@lru_cache(maxsize=1024)
def _amount(target: timedelta, fraction: float) -> timedelta:
    # Cached: a handful of targets and fractions, asked for several times per clock and check.
    return target if fraction == 1.0 else target * fraction


def _first_reach(clock: SlaClock, fraction: float, until: datetime | None, calendar: Calendar,
                 anchors: tuple[Checkpoint, ...] | None = None) -> datetime | None:
    """Earliest instant (since the last ``advance``) the consumption reached ``fraction``
    of the target then in force; ``None`` if not by ``until`` (``None`` = ever).

    ``anchors`` is ``(*clock.trail, _anchor(clock))``, for callers that ask several times."""
    if anchors is None:
        anchors = (*clock.trail, _anchor(clock))
    last = len(anchors) - 1
    for i, anchor in enumerate(anchors):
        if i == last and clock.stopped:
            break  # nothing is consumed or crossed after the clock was met
        amount = _amount(anchor.target, fraction)
        if anchor.consumed >= amount:
            moment: datetime | None = anchor.at
        elif not anchor.running:
            continue
        elif i < last and anchors[i + 1].consumed < amount:
            continue
        else:
            moment = _reach(calendar, anchor.at, amount - anchor.consumed)
        if moment is None or until is not None and moment > until:
            return None
        return moment
    return None


def _reach(calendar: Calendar, start: datetime, amount: timedelta) -> datetime | None:
    """``start`` plus ``amount`` of business time; ``None`` when the calendar cannot say
    (further off than it searches): such a clock has no due time and never crosses a
    level, rather than failing every ticket event and monitor pass that touches it."""
    try:
        return calendar.add_business_time(start, amount)
    except ValueError:
        return None


def _note_breach(clock: SlaClock, now: datetime, calendar: Calendar) -> SlaClock:
    if clock.breached_at is not None:
        return clock
    moment = _first_reach(clock, 1.0, now, calendar)
    return clock if moment is None else _evolve(clock, breached_at=_utc(moment, "breached_at"))


def _clamp(clock: SlaClock, now: datetime) -> datetime:
    now = _utc(now, "now")
    return max(now, clock.consumed_at)


# -- the API --------------------------------------------------------------------------------


def start(kind: ClockKind | str, target: timedelta, now: datetime) -> SlaClock:
    """A running clock with nothing consumed, started at ``now``.

    The calendar decides later what counts: a clock started outside business hours
    consumes nothing until the next opening.  A zero target is breached at once.
    """
    now = _utc(now, "now")
    return SlaClock(kind=ClockKind(kind), target=target, started_at=now, consumed=_ZERO, consumed_at=now)


def due_at(clock: SlaClock, calendar: Calendar) -> datetime | None:
    """When the consumption reaches the target, if the clock keeps running.

    ``None`` while paused, once met, or when the calendar cannot reach the target.
    Already at/over the target: the breach instant.
    """
    if not clock.running:
        return None
    if clock.consumed < clock.target:
        return _reach(calendar, clock.consumed_at, clock.target - clock.consumed)
    return clock.breached_at if clock.breached_at is not None else clock.consumed_at


def pause(clock: SlaClock, now: datetime, calendar: Calendar) -> SlaClock:
    """Freeze the consumption at ``now``.  No-op on a paused or met clock."""
    if not clock.running:
        return clock
    now = _clamp(clock, now)
    return _note_breach(_evolve(_settle(clock, now, calendar), paused=True), now, calendar)


def resume(clock: SlaClock, now: datetime, calendar: Calendar) -> SlaClock:
    """Start consuming again from ``now``.  No-op unless paused (a met clock stays met)."""
    if not clock.paused or clock.stopped:
        return clock
    now = _clamp(clock, now)
    return _evolve(_settle(clock, now, calendar), paused=False)


def meet(clock: SlaClock, now: datetime, calendar: Calendar) -> SlaClock:
    """Stop the clock for good at ``now`` (running or paused).  No-op if already met.

    If the target had been reached by ``now`` the clock is (and stays) breached, with
    ``breached_at`` the exact instant; ``met_at`` is recorded either way.
    """
    if clock.stopped:
        return clock
    now = _clamp(clock, now)
    settled = _settle(clock, now, calendar)
    return _note_breach(_evolve(settled, paused=False, met_at=now), now, calendar)


def retarget(clock: SlaClock, target: timedelta, now: datetime, calendar: Calendar) -> SlaClock:
    """Replace the target from ``now`` on, keeping the consumed time.

    Lowering it below the consumption breaches the clock at ``now`` (and warning/critical
    likewise count as crossed at ``now``), announced by the next ``advance``.  A breached
    clock stays breached.  No-op on a met clock.
    """
    target = _duration(target, "target")
    if clock.stopped:
        return clock
    now = _clamp(clock, now)
    settled = _settle(clock, now, calendar, keep_same_instant=target != clock.target)
    return _note_breach(_evolve(settled, target=target), now, calendar)


def advance(
    clock: SlaClock, now: datetime, calendar: Calendar, thresholds: Thresholds = Thresholds()
) -> tuple[SlaClock, list[ThresholdCrossed]]:
    """Announce every level crossed by ``now`` and not announced before.

    Events come in order (warning, critical, breached), each with the instant it was
    crossed; several at once if time jumped past them.  Each level is announced once per
    clock.  A ``now`` at or before the last update announces nothing new.
    """
    now = _utc(now, "now")
    if now < clock.consumed_at:
        return clock, []
    events: list[ThresholdCrossed] = []
    anchors = (*clock.trail, _anchor(clock))
    unreached = False
    for level, fraction in thresholds.levels():
        if _RANK[level] <= _RANK[clock.fired]:
            continue
        if level is ClockStatus.BREACHED and clock.breached_at is not None:
            moment: datetime | None = clock.breached_at
        elif unreached:
            # A lower level not reached by ``now`` means no higher one is: at every
            # checkpoint a higher level needs at least as much consumption as a lower one.
            continue
        else:
            moment = _first_reach(clock, fraction, now, calendar, anchors)
        if moment is not None:
            events.append(ThresholdCrossed(clock.kind, level, moment))
        else:
            unreached = True
    breached_at = clock.breached_at
    if breached_at is None:
        breached_at = next((e.at for e in events if e.level is ClockStatus.BREACHED), None)
    consumed = _consumed_by(clock, now, calendar)
    moved = now if not clock.stopped else clock.consumed_at
    updated = _evolve(
        clock,
        consumed=consumed,
        consumed_at=moved,
        trail=(),
        fired=events[-1].level if events else clock.fired,
        breached_at=None if breached_at is None else _utc(breached_at, "breached_at"),
    )
    return updated, events


def next_check_at(clock: SlaClock, calendar: Calendar, thresholds: Thresholds = Thresholds()) -> datetime | None:
    """The instant of the next level not yet announced: call ``advance`` then.

    ``None`` when nothing more can be announced without a state change (paused, met,
    breach announced).  May be in the past when a pause/meet/retarget left a crossing
    unannounced -- ``advance`` at once in that case.
    """
    for level, fraction in thresholds.levels():
        if _RANK[level] <= _RANK[clock.fired]:
            continue
        if level is ClockStatus.BREACHED and clock.breached_at is not None:
            return clock.breached_at
        moment = _first_reach(clock, fraction, None, calendar)
        if moment is not None:
            return moment
    return None


def status(clock: SlaClock, now: datetime, calendar: Calendar, thresholds: Thresholds = Thresholds()) -> ClockStatus:
    """The clock's status at ``now`` (computed, whether announced yet or not).

    BREACHED (final) > MET > PAUSED > CRITICAL / WARNING / OK by the current consumption.
    """
    now = _utc(now, "now")
    if _breached_by(clock, now, calendar) is not None:
        return ClockStatus.BREACHED
    if clock.stopped:
        return ClockStatus.MET
    if clock.paused:
        return ClockStatus.PAUSED
    consumed = _consumed_by(clock, now, calendar)
    for level, fraction in reversed(thresholds.levels()):
        if consumed >= _amount(clock.target, fraction):
            return level
    return ClockStatus.OK


def _breached_by(clock: SlaClock, now: datetime, calendar: Calendar) -> datetime | None:
    if clock.breached_at is not None and clock.breached_at <= now:
        return clock.breached_at
    if clock.breached_at is not None:
        return None
    return _first_reach(clock, 1.0, now, calendar)


def view(clock: SlaClock, now: datetime, calendar: Calendar, thresholds: Thresholds = Thresholds()) -> ClockView:
    """Due time, remaining business time, percentage used and status at ``now``."""
    now = _utc(now, "now")
    consumed = _consumed_by(clock, now, calendar)
    if clock.target > _ZERO:
        percent = 100.0 * (consumed / clock.target)
    else:
        percent = 100.0
    return ClockView(
        kind=clock.kind,
        due_at=due_at(clock, calendar),
        remaining=None if clock.stopped else clock.target - consumed,
        percent_used=percent,
        status=status(clock, now, calendar, thresholds),
        breached_at=_breached_by(clock, now, calendar),
        met_at=clock.met_at,
    )


def earliest(datetimes: Iterable[datetime | None]) -> datetime | None:
    """The earliest of the given instants, ignoring ``None``; ``None`` if there are none.

    For a tracker: ``earliest(next_check_at(c, cal, thr) for c in clocks)``.
    """
    best: datetime | None = None
    for value in datetimes:
        if value is not None and (best is None or value < best):
            best = value
    return best

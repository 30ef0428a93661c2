"""Business calendars: when a workspace is "open", measured in real (UTC) time.

Pure standard library; every datetime in and out is timezone-aware, and every result
is in UTC.  Nothing here reads the system clock.

How local opening hours become real time
-----------------------------------------
Opening hours are local wall-clock times in the calendar's IANA time zone.  Each
interval ``(start, end)`` of a local date is the span of *real* time from the moment
the local clock reaches ``start`` to the moment it reaches ``end`` (``end`` =
``time(0, 0)`` means midnight at the end of that date).  So on a daylight-saving
change day an interval keeps its wall-clock ends and its real length changes:
``00:00-06:00`` in Europe/Berlin is 5 real hours on the last Sunday of March and
7 real hours on the last Sunday of October.

Every local boundary is resolved by one rule, "the first instant at which the local
clock shows that time or a later one":

* an ambiguous (repeated) local time resolves to its *first* occurrence (``fold=0``):
  Berlin 2024-10-27 02:30 -> 00:30 UTC (still summer time);
* a non-existent (skipped) local time resolves to the instant of the jump:
  Berlin 2024-03-31 02:30 -> 01:00 UTC (the moment 02:00 CET became 03:00 CEST).

The rule is monotonic, so intervals never turn inside out; an interval lying wholly
inside a skipped hour is empty on that day, and the second pass through a repeated
hour is open only if an interval spans it (``02:00-02:30`` on a fall-back day is the
first 02:00-02:30 only).  Intervals are half-open: open at ``start``, closed at
``end``.  ``is_open``, ``next_opening``, ``add_business_time`` and
``business_time_between`` all use the same intervals, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["BusinessCalendar", "MAX_SEARCH_DAYS"]

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MIDNIGHT = time(0, 0)
_ONE_US = timedelta(microseconds=1)

#: How far past their starting point ``next_opening`` / ``add_business_time`` look before
#: giving up with ``ValueError``: about three years. A bound on the walk itself, not only
#: on a closure: a calendar open one minute a week would otherwise walk for millennia
#: (seconds of CPU, then past the last representable date) to add a year of business time.
MAX_SEARCH_DAYS = 3 * 366

_Interval = tuple[datetime, datetime]
_Span = tuple[timedelta, timedelta]  # offsets from local midnight; end may be 24 h


def _utc(value: datetime, name: str = "datetime") -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def _zone(key: str) -> ZoneInfo:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"unknown time zone: {key!r}")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"unknown time zone: {key!r}") from exc


@lru_cache(maxsize=8192)
def _resolve(local: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which ``zone``'s wall clock shows ``local`` or later.

    ``local`` is naive.  Ambiguous -> first occurrence; non-existent -> the jump.
    """
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        # Unambiguous (equal) or repeated (fold=0 is the earlier instant).
        return first
    # Skipped: fold=1 applies the later offset (an instant before the jump), fold=0 the
    # earlier one (an instant after it).  Find the jump by bisection in microseconds;
    # the wall clock is monotonic across that short window.
    lo, hi = 0, (first - second) // _ONE_US
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probe = second + timedelta(microseconds=mid)
        if probe.astimezone(zone).replace(tzinfo=None) >= local:
            hi = mid
        else:
            lo = mid
    return second + timedelta(microseconds=hi)


def _parse_time(value: Any, *, is_end: bool) -> time:
    if isinstance(value, str):
        text = value.strip()
        if is_end and text in ("24:00", "24:00:00"):
            return _MIDNIGHT
        try:
            value = time.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"invalid time of day: {value!r}") from exc
    if not isinstance(value, time):
        raise ValueError(f"opening hours must be datetime.time values, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError(f"opening hours are local wall-clock times; drop the tzinfo from {value!r}")
    return value.replace(fold=0)


def _offset(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _span_text(start: time, end: time) -> str:
    """An interval as it is written (``09:00-17:00``, ``22:00-24:00``), seconds only if given."""
    def text(t: time) -> str:
        return t.isoformat("minutes" if not (t.second or t.microsecond) else "auto")
    return f"{text(start)}-{'24:00' if end == _MIDNIGHT else text(end)}"


def _normalise_hours(
    weekly_hours: Mapping[int, Sequence[tuple[time, time]]],
) -> tuple[Mapping[int, tuple[tuple[time, time], ...]], tuple[tuple[_Span, ...], ...]]:
    if not isinstance(weekly_hours, Mapping):
        raise ValueError("weekly_hours must be a mapping of weekday (0=Monday) to intervals")
    hours: dict[int, tuple[tuple[time, time], ...]] = {}
    spans: list[tuple[_Span, ...]] = [()] * 7
    for raw_day, intervals in weekly_hours.items():
        try:
            day = int(raw_day)  # JSON object keys arrive as strings
        except (TypeError, ValueError) as exc:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {raw_day!r}") from exc
        if isinstance(raw_day, (bool, float)) or not 0 <= day <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {raw_day!r}")
        if day in hours:
            raise ValueError(f"weekday {day} given twice")
        if isinstance(intervals, (str, bytes)) or not isinstance(intervals, Iterable):
            raise ValueError(f"weekday {day}: expected a sequence of (start, end) pairs")
        parsed: list[tuple[time, time, timedelta, timedelta]] = []
        for pair in intervals:
            try:
                raw_start, raw_end = pair
            except (TypeError, ValueError) as exc:
                raise ValueError(f"weekday {day}: expected a (start, end) pair, got {pair!r}") from exc
            start = _parse_time(raw_start, is_end=False)
            end = _parse_time(raw_end, is_end=True)
            lo = _offset(start)
            hi = _DAY if end == _MIDNIGHT else _offset(end)
            if not lo < hi:
                raise ValueError(f"weekday {day}: interval {_span_text(start, end)} must start before it ends")
            parsed.append((start, end, lo, hi))
        parsed.sort(key=lambda item: item[2])
        for before, after in pairwise(parsed):
            if after[2] < before[3]:
                raise ValueError(
                    f"weekday {day}: intervals {_span_text(before[0], before[1])} and "
                    f"{_span_text(after[0], after[1])} overlap"
                )
        if not parsed:
            continue
        hours[day] = tuple((s, e) for s, e, _, _ in parsed)
        # Touching intervals (09-12, 12-17) are merged for the arithmetic.
        merged: list[list[timedelta]] = []
        for _, _, lo, hi in parsed:
            if merged and merged[-1][1] == lo:
                merged[-1][1] = hi
            else:
                merged.append([lo, hi])
        spans[day] = tuple((lo, hi) for lo, hi in merged)
    ordered = {day: hours[day] for day in sorted(hours)}
    return MappingProxyType(ordered), tuple(spans)


def _normalise_holidays(holidays: Iterable[date]) -> frozenset[date]:
    if isinstance(holidays, (str, bytes)) or not isinstance(holidays, Iterable):
        raise ValueError("holidays must be a collection of dates")
    out: set[date] = set()
    for item in holidays:
        if isinstance(item, str):
            try:
                item = date.fromisoformat(item.strip())
            except ValueError as exc:
                raise ValueError(f"invalid holiday date: {item!r}") from exc
        if isinstance(item, datetime) or not isinstance(item, date):
            raise ValueError(f"holidays must be local dates (datetime.date), got {item!r}")
        out.add(item)
    return frozenset(out)


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly local opening hours plus holidays, in one IANA time zone.

    ``weekly_hours`` maps weekday (0=Monday .. 6=Sunday) to the opening intervals of that
    day in local wall-clock time.  An ``end`` of ``time(0, 0)`` means midnight at the end
    of the day, so ``(time(0), time(0))`` is the whole day.  Intervals of one day must not
    overlap (touching is fine).  Holidays are local dates with no opening hours; an
    interval that ends at midnight belongs to the date it starts on.

    The constructor validates and normalises (``ValueError`` on an unknown zone, a bad
    weekday, an empty or inverted interval or overlapping intervals); strings such as
    ``"09:00"`` / ``"24:00"`` and ISO dates are accepted too, so a calendar can be rebuilt
    from JSON (see ``to_dict`` / ``from_dict``).
    """

    timezone: str
    weekly_hours: Mapping[int, Sequence[tuple[time, time]]]
    holidays: frozenset[date] = frozenset()

    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _spans: tuple[tuple[_Span, ...], ...] = field(init=False, repr=False, compare=False)
    _always: bool = field(init=False, repr=False, compare=False)
    _any_hours: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = _zone(self.timezone)
        hours, spans = _normalise_hours(self.weekly_hours)
        holidays = _normalise_holidays(self.holidays)
        object.__setattr__(self, "weekly_hours", hours)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(self, "_any_hours", any(spans))
        whole_day = ((_ZERO, _DAY),)
        object.__setattr__(self, "_always", not holidays and all(day == whole_day for day in spans))

    def __hash__(self) -> int:
        return hash((self.timezone, tuple(self.weekly_hours.items()), self.holidays))

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """24/7 in UTC, no holidays: business time is plain elapsed time."""
        return cls("UTC", {day: ((_MIDNIGHT, _MIDNIGHT),) for day in range(7)})

    @classmethod
    def standard(
        cls,
        timezone: str,
        start: time = time(9),
        end: time = time(17),
        days: Iterable[int] = range(5),
        holidays: Iterable[date] = (),
    ) -> BusinessCalendar:
        """The same ``start``-``end`` hours on each of ``days`` (default Mon-Fri 09-17)."""
        return cls(timezone, {day: ((start, end),) for day in days}, frozenset(holidays))

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: ``{"timezone", "weekly_hours": {"0": [["09:00", "17:00"]]}, "holidays"}``."""
        return {
            "timezone": self.timezone,
            "weekly_hours": {
                str(day): [[s.isoformat(), "24:00" if e == _MIDNIGHT else e.isoformat()] for s, e in intervals]
                for day, intervals in self.weekly_hours.items()
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        try:
            return cls(data["timezone"], data["weekly_hours"], data.get("holidays", ()))
        except KeyError as exc:
            raise ValueError(f"calendar data lacks {exc.args[0]!r}") from exc

    # -- queries ------------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` lies inside an opening interval (open at start, closed at end)."""
        at = _utc(at, "at")
        if self._always:
            return True
        local_day = self._local_date(at)
        for day in (local_day - _DAY, local_day, local_day + _DAY):
            for begin, end in self._day_intervals(day):
                if begin <= at < end:
                    return True
        return False

    def next_opening(self, at: datetime) -> datetime:
        """The earliest instant ``>= at`` at which the calendar is open.

        ``at`` itself when it is open.  ``ValueError`` when the calendar has no opening
        hours, or none within ``MAX_SEARCH_DAYS`` days (e.g. an endless holiday run).
        """
        at = _utc(at, "at")
        if self._always:
            return at
        if not self._any_hours:
            raise ValueError("the calendar has no opening hours")
        for begin, _ in self._open_intervals(at):
            return begin
        raise AssertionError("unreachable: _open_intervals is unbounded")  # pragma: no cover

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of open time has elapsed after ``start``.

        Counting begins at ``start`` if the calendar is open then, otherwise at the next
        opening.  The result is the *earliest* such instant, so it can be a closing time
        (Mon-Fri 09-17: Friday 16:00 + 1 h is Friday 17:00, not Monday 09:00).

        * ``duration == 0`` returns ``start`` unchanged (in UTC), open or not: no open time
          has to elapse.  This keeps ``add(add(a, d1), d2) == add(a, d1 + d2)`` for all
          ``d1, d2 >= 0``.
        * ``duration < 0`` -> ``ValueError``.
        * ``duration > 0`` on a calendar with no opening hours, or ending more than
          ``MAX_SEARCH_DAYS`` days after ``start`` -> ``ValueError``.
        """
        start = _utc(start, "start")
        if not isinstance(duration, timedelta):
            raise TypeError("duration must be a timedelta")
        if duration < _ZERO:
            raise ValueError("duration must not be negative")
        if duration == _ZERO:
            return start
        if self._always:
            return self._checked(lambda: start + duration)
        if not self._any_hours:
            raise ValueError("the calendar has no opening hours")
        remaining = duration
        for begin, end in self._open_intervals(start):
            available = end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _open_intervals is unbounded")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time within ``[start, end)``; ``timedelta(0)`` when ``end <= start``."""
        start = _utc(start, "start")
        end = _utc(end, "end")
        if end <= start:
            return _ZERO
        if self._always:
            return end - start
        total = _ZERO
        if not self._any_hours:
            return total
        for begin, stop in self._open_intervals(start, until=end):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total

    def longest_closure(self) -> int:
        """The most consecutive local dates without opening hours (an interval lost in a
        daylight-saving jump aside); ``next_opening`` and ``add_business_time`` give up
        on a closure of ``MAX_SEARCH_DAYS`` or more.  ``ValueError`` when the calendar
        has no opening hours at all."""
        if self._always:
            return 0
        open_weekdays = sorted(day for day, spans in enumerate(self._spans) if spans)
        if not open_weekdays:
            raise ValueError("the calendar has no opening hours")
        # Without holidays: the widest gap between open weekdays, round the week.
        longest = max((later - earlier - 1) % 7
                      for earlier, later in zip(open_weekdays, open_weekdays[1:] + open_weekdays[:1]))

        def closed(day: date) -> bool:
            return day.weekday() not in open_weekdays or day in self.holidays

        reached = date.min
        for holiday in sorted(self.holidays):
            if holiday <= reached:
                continue  # inside the closure measured last
            first = last = holiday
            while first > date.min and closed(first - _DAY):
                first -= _DAY
            while last < date.max and closed(last + _DAY):
                last += _DAY
            longest = max(longest, (last - first).days + 1)
            reached = last
        return longest

    # -- internals ----------------------------------------------------------------------

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def _day_intervals(self, day: date) -> tuple[_Interval, ...]:
        """The (UTC) opening intervals of one local date, in order, empty ones dropped."""
        if day in self.holidays:
            return ()
        spans = self._spans[day.weekday()]
        if not spans:
            return ()
        midnight = datetime.combine(day, _MIDNIGHT)
        out: list[_Interval] = []
        for lo, hi in spans:
            begin = _resolve(midnight + lo, self._zone)
            end = _resolve(midnight + hi, self._zone)
            if begin < end:
                out.append((begin, end))
        return tuple(out)

    def _open_intervals(self, at: datetime, until: datetime | None = None) -> Iterator[_Interval]:
        """Open intervals that end after ``at``, in order, the first clipped to start at ``at``.

        Without ``until`` the walk raises ``ValueError`` once it is ``MAX_SEARCH_DAYS``
        days past ``at``; with ``until`` it stops after the local date of ``until`` (plus a
        day of slack) instead.
        """
        first_day = self._local_date(at) - _DAY  # the previous day may run past midnight
        last_day = None if until is None else self._local_date(until) + _DAY
        day = first_day
        found = False
        try:
            while last_day is None or day <= last_day:
                for begin, end in self._day_intervals(day):
                    if end > at:
                        found = True
                        yield (max(begin, at), end)
                if last_day is None and (day - first_day).days > MAX_SEARCH_DAYS:
                    raise ValueError(
                        f"no opening hours within {MAX_SEARCH_DAYS} days after {first_day.isoformat()}" if not found
                        else f"not reached within {MAX_SEARCH_DAYS} days after {first_day.isoformat()}"
                    )
                day += _DAY
        except OverflowError as exc:
            raise ValueError("date out of the supported range") from exc

    @staticmethod
    def _checked(compute: Any) -> datetime:
        try:
            return compute()
        except OverflowError as exc:
            raise ValueError("date out of the supported range") from exc


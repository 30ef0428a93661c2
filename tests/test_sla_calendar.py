"""BusinessCalendar: opening hours in real time, across weekends, holidays and DST.

Every expected instant below is UTC and was worked out by hand; the comment next to it
shows the local wall-clock reading.  Berlin is UTC+1 (CET) in winter and UTC+2 (CEST) in
summer; New York is UTC-5 (EST) / UTC-4 (EDT).  2024 changes: Berlin 31 Mar 02:00->03:00
and 27 Oct 03:00->02:00; New York 10 Mar 02:00->03:00 and 3 Nov 02:00->01:00.
"""

from __future__ import annotations

import time as walltime
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from relaydesk.sla.calendar import MAX_SEARCH_DAYS, BusinessCalendar

H = timedelta(hours=1)
US = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(tz: str, *intervals: tuple[time, time]) -> BusinessCalendar:
    return BusinessCalendar(tz, {day: intervals for day in range(7)})


BERLIN = BusinessCalendar.standard("Europe/Berlin")  # Mon-Fri 09-17 local
NEW_YORK = BusinessCalendar.standard("America/New_York")
NIGHT_BERLIN = daily("Europe/Berlin", (time(0), time(6)))
NIGHT_NY = daily("America/New_York", (time(0), time(6)))


# -- 24/7 ---------------------------------------------------------------------------------


def test_always_open_is_plain_elapsed_time() -> None:
    cal = BusinessCalendar.always_open()
    a = utc(2024, 3, 31, 0, 30)
    assert cal.is_open(a)
    assert cal.next_opening(a) == a
    assert cal.add_business_time(a, timedelta(days=40, microseconds=7)) == a + timedelta(days=40, microseconds=7)
    assert cal.business_time_between(a, a + 5 * H) == 5 * H
    assert cal.business_time_between(a + H, a) == timedelta(0)


def test_whole_day_hours_in_a_dst_zone_are_also_continuous() -> None:
    cal = daily("Europe/Berlin", (time(0), time(0)))
    # Across the spring-forward night: 22:00Z..04:00Z is 6 real hours, all open.
    assert cal.business_time_between(utc(2024, 3, 30, 22), utc(2024, 3, 31, 4)) == 6 * H
    assert cal.add_business_time(utc(2024, 10, 26, 21), 10 * H) == utc(2024, 10, 27, 7)
    assert cal == BusinessCalendar("Europe/Berlin", {d: [("00:00", "24:00")] for d in range(7)})


def test_non_utc_input_comes_back_in_utc() -> None:
    cal = BusinessCalendar.always_open()
    berlin_noon = datetime(2024, 1, 15, 12, tzinfo=timezone(timedelta(hours=1)))
    out = cal.add_business_time(berlin_noon, H)
    assert out == utc(2024, 1, 15, 12) and out.tzinfo is UTC


# -- a standard Mon-Fri 09-17 calendar (winter, Berlin = UTC+1) ------------------------------
# 2024-01-15 is a Monday; 09:00 CET = 08:00Z, 17:00 CET = 16:00Z.


def test_is_open_is_half_open() -> None:
    assert BERLIN.is_open(utc(2024, 1, 15, 8))  # Mon 09:00
    assert not BERLIN.is_open(utc(2024, 1, 15, 8) - US)  # Mon 08:59:59.999999
    assert BERLIN.is_open(utc(2024, 1, 15, 16) - US)  # Mon 16:59:59.999999
    assert not BERLIN.is_open(utc(2024, 1, 15, 16))  # Mon 17:00
    assert not BERLIN.is_open(utc(2024, 1, 20, 12))  # Saturday


def test_add_within_a_day_and_to_the_closing_instant() -> None:
    assert BERLIN.add_business_time(utc(2024, 1, 15, 10), 3 * H) == utc(2024, 1, 15, 13)  # 11:00 -> 14:00
    # Exactly the rest of the day ends AT closing time, not at the next opening.
    assert BERLIN.add_business_time(utc(2024, 1, 15, 8), 8 * H) == utc(2024, 1, 15, 16)  # 09:00 -> 17:00


def test_add_overnight() -> None:
    # Mon 16:00 + 2 h: 1 h Monday, 1 h from Tue 09:00 -> Tue 10:00 = 09:00Z
    assert BERLIN.add_business_time(utc(2024, 1, 15, 15), 2 * H) == utc(2024, 1, 16, 9)


def test_add_across_a_weekend() -> None:
    # Fri 2024-01-19 15:00 + 4 h: 2 h Friday, 2 h from Mon 09:00 -> Mon 11:00 = 10:00Z
    assert BERLIN.add_business_time(utc(2024, 1, 19, 14), 4 * H) == utc(2024, 1, 22, 10)
    # Fri 16:00 -> Mon 10:00 (local) is 2 business hours.
    assert BERLIN.business_time_between(utc(2024, 1, 19, 15), utc(2024, 1, 22, 9)) == 2 * H
    # A whole week holds 40 hours.
    assert BERLIN.business_time_between(utc(2024, 1, 15), utc(2024, 1, 22)) == 40 * H


def test_start_outside_hours_counts_from_the_next_opening() -> None:
    # Saturday noon + 1 h -> Mon 10:00 local = 09:00Z
    assert BERLIN.add_business_time(utc(2024, 1, 20, 12), H) == utc(2024, 1, 22, 9)
    # Mon 06:00 local + 30 min -> Mon 09:30 local = 08:30Z
    assert BERLIN.add_business_time(utc(2024, 1, 15, 5), timedelta(minutes=30)) == utc(2024, 1, 15, 8, 30)
    # Mon 17:00 (closing) + 1 h -> Tue 10:00 local
    assert BERLIN.add_business_time(utc(2024, 1, 15, 16), H) == utc(2024, 1, 16, 9)
    assert BERLIN.business_time_between(utc(2024, 1, 20), utc(2024, 1, 22)) == timedelta(0)


def test_zero_duration_returns_start_even_when_closed() -> None:
    saturday = utc(2024, 1, 20, 12)
    assert BERLIN.add_business_time(saturday, timedelta(0)) == saturday
    assert BERLIN.add_business_time(utc(2024, 1, 15, 9), timedelta(0)) == utc(2024, 1, 15, 9)
    assert BERLIN.business_time_between(saturday, saturday) == timedelta(0)


def test_negative_duration_and_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError):
        BERLIN.add_business_time(utc(2024, 1, 15, 9), -US)
    with pytest.raises(ValueError):
        BERLIN.is_open(datetime(2024, 1, 15, 9))
    with pytest.raises(ValueError):
        BERLIN.business_time_between(datetime(2024, 1, 15, 9), utc(2024, 1, 15, 10))


def test_next_opening() -> None:
    assert BERLIN.next_opening(utc(2024, 1, 20, 12)) == utc(2024, 1, 22, 8)  # Sat -> Mon 09:00
    assert BERLIN.next_opening(utc(2024, 1, 15, 10)) == utc(2024, 1, 15, 10)  # open: itself
    assert BERLIN.next_opening(utc(2024, 1, 15, 16)) == utc(2024, 1, 16, 8)  # at closing -> next day


def test_several_intervals_a_day_and_touching_intervals() -> None:
    split = BusinessCalendar("Europe/Berlin", {0: [(time(9), time(12)), (time(13), time(17))]})
    # Mon 11:00 local + 2 h: 1 h to 12:00, lunch, 13:00 + 1 h -> 14:00 local = 13:00Z
    assert split.add_business_time(utc(2024, 1, 15, 10), 2 * H) == utc(2024, 1, 15, 13)
    assert not split.is_open(utc(2024, 1, 15, 11, 30))
    touching = BusinessCalendar("Europe/Berlin", {0: [(time(12), time(17)), (time(9), time(12))]})
    assert touching.business_time_between(utc(2024, 1, 15), utc(2024, 1, 16)) == 8 * H
    assert touching.is_open(utc(2024, 1, 15, 11))  # 12:00 local, the seam


def test_interval_ending_at_midnight_and_overnight_shifts() -> None:
    # Fri 18:00-24:00 and Sat 00:00-02:00: one continuous 8-hour shift.
    cal = BusinessCalendar("Europe/Berlin", {4: [(time(18), time(0))], 5: [(time(0), time(2))]})
    start = utc(2024, 1, 19, 17)  # Fri 18:00 local
    assert cal.add_business_time(start, 8 * H) == utc(2024, 1, 20, 1)  # Sat 02:00 local
    assert cal.is_open(utc(2024, 1, 19, 23))  # Sat 00:00 local
    assert cal.add_business_time(start, 9 * H) == utc(2024, 1, 26, 18)  # next Fri 19:00 local


# -- holidays -------------------------------------------------------------------------------


def test_single_holiday_is_skipped() -> None:
    cal = BusinessCalendar.standard("Europe/Berlin", holidays=[date(2024, 1, 17)])  # a Wednesday
    # Tue 16:00 + 2 h: 1 h Tuesday, Wednesday off, Thu 10:00 local = 09:00Z
    assert cal.add_business_time(utc(2024, 1, 16, 15), 2 * H) == utc(2024, 1, 18, 9)
    assert not cal.is_open(utc(2024, 1, 17, 10))
    assert cal.business_time_between(utc(2024, 1, 15), utc(2024, 1, 22)) == 32 * H
    assert cal.next_opening(utc(2024, 1, 17, 10)) == utc(2024, 1, 18, 8)


def test_a_run_of_holidays() -> None:
    # Mon 23 Dec 2024 .. Wed 1 Jan 2025 all off; next business day Thu 2 Jan.
    run = [date(2024, 12, 23) + timedelta(days=i) for i in range(10)]
    cal = BusinessCalendar.standard("Europe/Berlin", holidays=run)
    # Fri 20 Dec 16:00 + 2 h: 1 h Friday, then Thu 2 Jan 09:00 + 1 h = 10:00 local = 09:00Z
    assert cal.add_business_time(utc(2024, 12, 20, 15), 2 * H) == utc(2025, 1, 2, 9)
    assert cal.next_opening(utc(2024, 12, 20, 16)) == utc(2025, 1, 2, 8)
    assert cal.business_time_between(utc(2024, 12, 20), utc(2025, 1, 3)) == 16 * H


def test_long_holiday_stretches_are_fast_and_bounded() -> None:
    two_years = frozenset(date(2024, 1, 1) + timedelta(days=i) for i in range(2 * 365))
    cal = BusinessCalendar.standard("Europe/Berlin", holidays=two_years)
    began = walltime.perf_counter()
    # First day after the stretch: Wed 31 Dec 2025, 09:00 CET = 08:00Z
    assert cal.next_opening(utc(2024, 1, 1)) == utc(2025, 12, 31, 8)
    assert cal.add_business_time(utc(2024, 1, 1), H) == utc(2025, 12, 31, 9)
    assert cal.business_time_between(utc(2024, 1, 1), utc(2026, 1, 1)) == 8 * H
    assert walltime.perf_counter() - began < 1.0

    forever = frozenset(date(2024, 1, 1) + timedelta(days=i) for i in range(MAX_SEARCH_DAYS + 30))
    closed = BusinessCalendar.standard("Europe/Berlin", holidays=forever)
    with pytest.raises(ValueError, match="no opening hours within"):
        closed.next_opening(utc(2024, 1, 1))
    with pytest.raises(ValueError):
        closed.add_business_time(utc(2024, 1, 1), H)
    # A bounded question still has an answer.
    assert closed.business_time_between(utc(2024, 1, 1), utc(2027, 1, 31)) == timedelta(0)


def test_adding_more_than_a_sparse_calendar_opens_in_the_horizon_gives_up_quickly() -> None:
    minute_a_week = BusinessCalendar("UTC", {6: [(time(0), time(0, 1))]})
    began = walltime.perf_counter()
    with pytest.raises(ValueError, match=f"not reached within {MAX_SEARCH_DAYS} days"):
        minute_a_week.add_business_time(utc(2024, 1, 1), timedelta(days=365))
    assert walltime.perf_counter() - began < 1.0
    assert minute_a_week.add_business_time(utc(2024, 1, 1), 2 * timedelta(minutes=1)) == utc(2024, 1, 14, 0, 1)


def test_calendar_without_hours() -> None:
    cal = BusinessCalendar("UTC", {})
    a = utc(2024, 1, 1)
    assert not cal.is_open(a)
    assert cal.business_time_between(a, a + 1000 * H) == timedelta(0)
    assert cal.add_business_time(a, timedelta(0)) == a
    with pytest.raises(ValueError):
        cal.add_business_time(a, US)
    with pytest.raises(ValueError):
        cal.next_opening(a)


# -- daylight saving: a 00:00-06:00 calendar shows 5- and 7-hour days --------------------------


def test_berlin_spring_forward_day_is_five_hours() -> None:
    # Sun 31 Mar: 00:00 CET = 30 Mar 23:00Z; 06:00 CEST = 04:00Z
    assert NIGHT_BERLIN.business_time_between(utc(2024, 3, 30, 12), utc(2024, 3, 31, 12)) == 5 * H
    assert NIGHT_BERLIN.next_opening(utc(2024, 3, 30, 12)) == utc(2024, 3, 30, 23)
    assert NIGHT_BERLIN.add_business_time(utc(2024, 3, 30, 23), 5 * H) == utc(2024, 3, 31, 4)
    assert NIGHT_BERLIN.is_open(utc(2024, 3, 31, 1, 30))  # 03:30 CEST
    assert not NIGHT_BERLIN.is_open(utc(2024, 3, 31, 4))  # 06:00 CEST
    # One more hour: Mon 1 Apr 00:00 CEST = 31 Mar 22:00Z, + 1 h
    assert NIGHT_BERLIN.add_business_time(utc(2024, 3, 30, 23), 6 * H) == utc(2024, 3, 31, 23)
    # The day before is the ordinary 6 hours (29 Mar 23:00Z .. 30 Mar 05:00Z).
    assert NIGHT_BERLIN.business_time_between(utc(2024, 3, 29, 12), utc(2024, 3, 30, 12)) == 6 * H


def test_berlin_fall_back_day_is_seven_hours() -> None:
    # Sun 27 Oct: 00:00 CEST = 26 Oct 22:00Z; 06:00 CET = 05:00Z
    assert NIGHT_BERLIN.business_time_between(utc(2024, 10, 26, 12), utc(2024, 10, 27, 12)) == 7 * H
    assert NIGHT_BERLIN.add_business_time(utc(2024, 10, 26, 22), 7 * H) == utc(2024, 10, 27, 5)
    # 8 h: the 8th hour starts Mon 28 Oct 00:00 CET = 27 Oct 23:00Z
    assert NIGHT_BERLIN.add_business_time(utc(2024, 10, 26, 22), 8 * H) == utc(2024, 10, 28, 0)
    assert NIGHT_BERLIN.is_open(utc(2024, 10, 27, 1, 30))  # second 02:30 (CET)
    assert NIGHT_BERLIN.is_open(utc(2024, 10, 27, 0, 30))  # first 02:30 (CEST)


def test_new_york_spring_forward_day_is_five_hours() -> None:
    # Sun 10 Mar: 00:00 EST = 05:00Z; 06:00 EDT = 10:00Z
    assert NIGHT_NY.business_time_between(utc(2024, 3, 9, 18), utc(2024, 3, 10, 18)) == 5 * H
    assert NIGHT_NY.next_opening(utc(2024, 3, 9, 18)) == utc(2024, 3, 10, 5)
    assert NIGHT_NY.add_business_time(utc(2024, 3, 10, 5), 5 * H) == utc(2024, 3, 10, 10)
    # The 6th hour: Mon 11 Mar 00:00 EDT = 04:00Z, + 1 h
    assert NIGHT_NY.add_business_time(utc(2024, 3, 10, 5), 6 * H) == utc(2024, 3, 11, 5)


def test_new_york_fall_back_day_is_seven_hours() -> None:
    # Sun 3 Nov: 00:00 EDT = 04:00Z; 06:00 EST = 11:00Z
    assert NIGHT_NY.business_time_between(utc(2024, 11, 2, 18), utc(2024, 11, 3, 18)) == 7 * H
    assert NIGHT_NY.add_business_time(utc(2024, 11, 3, 4), 7 * H) == utc(2024, 11, 3, 11)
    assert NIGHT_NY.is_open(utc(2024, 11, 3, 6, 30))  # second 01:30 (EST)
    assert not NIGHT_NY.is_open(utc(2024, 11, 3, 11))


def test_office_hours_across_dst_weekends() -> None:
    # Berlin: Fri 29 Mar 16:00 CET (15:00Z) + 2 h -> Mon 1 Apr 10:00 CEST = 08:00Z
    assert BERLIN.add_business_time(utc(2024, 3, 29, 15), 2 * H) == utc(2024, 4, 1, 8)
    # Berlin: Fri 25 Oct 16:00 CEST (14:00Z) + 2 h -> Mon 28 Oct 10:00 CET = 09:00Z
    assert BERLIN.add_business_time(utc(2024, 10, 25, 14), 2 * H) == utc(2024, 10, 28, 9)
    # New York: Fri 8 Mar 16:00 EST (21:00Z) + 2 h -> Mon 11 Mar 10:00 EDT = 14:00Z
    assert NEW_YORK.add_business_time(utc(2024, 3, 8, 21), 2 * H) == utc(2024, 3, 11, 14)
    # New York: Fri 1 Nov 16:00 EDT (20:00Z) + 2 h -> Mon 4 Nov 10:00 EST = 15:00Z
    assert NEW_YORK.add_business_time(utc(2024, 11, 1, 20), 2 * H) == utc(2024, 11, 4, 15)
    # Office days themselves stay 8 real hours on either side of a change.
    assert NEW_YORK.business_time_between(utc(2024, 3, 4), utc(2024, 3, 18)) == 80 * H


# -- boundaries that fall into a skipped or repeated hour ---------------------------------------


def test_nonexistent_opening_time_opens_at_the_jump() -> None:
    cal = daily("Europe/Berlin", (time(2, 30), time(5)))
    # 31 Mar 02:30 does not exist: open at the jump (02:00 CET -> 03:00 CEST = 01:00Z),
    # close 05:00 CEST = 03:00Z: 2 h.
    assert cal.next_opening(utc(2024, 3, 31, 0)) == utc(2024, 3, 31, 1)
    assert cal.business_time_between(utc(2024, 3, 30, 12), utc(2024, 3, 31, 12)) == 2 * H
    # An ordinary day: 02:30 CET = 01:30Z .. 05:00 CET = 04:00Z: 2.5 h.
    assert cal.business_time_between(utc(2024, 3, 29, 12), utc(2024, 3, 30, 12)) == timedelta(hours=2.5)


def test_nonexistent_closing_time_closes_at_the_jump() -> None:
    cal = daily("Europe/Berlin", (time(0), time(2, 30)))
    # 00:00 CET = 30 Mar 23:00Z .. jump 01:00Z: 2 h
    assert cal.business_time_between(utc(2024, 3, 30, 12), utc(2024, 3, 31, 12)) == 2 * H
    assert cal.add_business_time(utc(2024, 3, 30, 23), 2 * H) == utc(2024, 3, 31, 1)


def test_interval_wholly_inside_the_skipped_hour_is_empty_that_day() -> None:
    cal = daily("Europe/Berlin", (time(2), time(3)))
    assert cal.business_time_between(utc(2024, 3, 30, 12), utc(2024, 3, 31, 12)) == timedelta(0)
    # On the fall-back day 02:00 (first, CEST) = 00:00Z .. 03:00 CET = 02:00Z: both passes, 2 h.
    assert cal.business_time_between(utc(2024, 10, 26, 12), utc(2024, 10, 27, 12)) == 2 * H


def test_ambiguous_boundaries_use_the_first_occurrence() -> None:
    opening = daily("Europe/Berlin", (time(2, 30), time(5)))
    # 27 Oct: first 02:30 (CEST) = 00:30Z .. 05:00 CET = 04:00Z: 3.5 h
    assert opening.next_opening(utc(2024, 10, 26, 12)) == utc(2024, 10, 27, 0, 30)
    assert opening.business_time_between(utc(2024, 10, 26, 12), utc(2024, 10, 27, 12)) == timedelta(hours=3.5)
    closing = daily("Europe/Berlin", (time(0), time(2, 30)))
    # 00:00 CEST = 26 Oct 22:00Z .. first 02:30 = 00:30Z: 2.5 h; the second 02:15 is closed.
    assert closing.business_time_between(utc(2024, 10, 26, 12), utc(2024, 10, 27, 12)) == timedelta(hours=2.5)
    assert not closing.is_open(utc(2024, 10, 27, 1, 15))
    ny = daily("America/New_York", (time(1), time(2)))
    # 3 Nov: first 01:00 (EDT) = 05:00Z .. 02:00 EST = 07:00Z: 2 h
    assert ny.business_time_between(utc(2024, 11, 2, 18), utc(2024, 11, 3, 18)) == 2 * H


def test_midnight_that_does_not_exist() -> None:
    # America/Santiago, 8 Sep 2024: 00:00 (-04) jumps to 01:00 (-03) at 04:00Z.
    cal = BusinessCalendar("America/Santiago", {5: [(time(18), time(0))], 6: [(time(0), time(6))]})
    # Sat 18:00 -04 = 22:00Z .. Sun 00:00 (the jump) = 04:00Z .. Sun 06:00 -03 = 09:00Z
    assert cal.business_time_between(utc(2024, 9, 7), utc(2024, 9, 9)) == 11 * H
    assert cal.add_business_time(utc(2024, 9, 7, 22), 6 * H) == utc(2024, 9, 8, 4)
    assert cal.add_business_time(utc(2024, 9, 7, 22), 11 * H) == utc(2024, 9, 8, 9)


def test_half_hour_dst_shift() -> None:
    # Australia/Lord_Howe, 6 Oct 2024: 02:00 (+10:30) -> 02:30 (+11) at 5 Oct 15:30Z.
    cal = daily("Australia/Lord_Howe", (time(0), time(6)))
    # 00:00 +10:30 = 5 Oct 13:30Z .. 06:00 +11 = 5 Oct 19:00Z: 5.5 h
    assert cal.business_time_between(utc(2024, 10, 5, 6), utc(2024, 10, 6, 6)) == timedelta(hours=5.5)


# -- construction and validation --------------------------------------------------------------


def test_validation() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar.standard("Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        BusinessCalendar.standard("")
    with pytest.raises(ValueError, match="overlap"):
        BusinessCalendar("UTC", {0: [(time(9), time(13)), (time(12), time(17))]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {0: [(time(17), time(9))]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {0: [(time(9), time(9))]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {7: [(time(9), time(17))]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {0: [(time(9, tzinfo=UTC), time(17))]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {0: [(time(9), time(17))]}, frozenset({datetime(2024, 1, 1)}))


def test_equality_hashing_and_dict_round_trip() -> None:
    a = BusinessCalendar.standard("Europe/Berlin", holidays=[date(2024, 12, 25)])
    b = BusinessCalendar(
        "Europe/Berlin",
        {d: [("09:00", "17:00")] for d in range(5)} | {5: []},
        frozenset({"2024-12-25"}),  # type: ignore[arg-type]
    )
    assert a == b and hash(a) == hash(b)
    assert BusinessCalendar.from_dict(a.to_dict()) == a
    night = daily("Europe/Berlin", (time(22), time(0)))
    assert night.to_dict()["weekly_hours"]["0"] == [["22:00:00", "24:00"]]
    assert BusinessCalendar.from_dict(night.to_dict()) == night


# -- properties -------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
]
# Times of day on a 30-minute grid, plus one odd one, so boundaries hit DST changes.
GRID = sorted({timedelta(minutes=30 * i) for i in range(49)} | {timedelta(hours=2, minutes=17)})


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    tz = draw(st.sampled_from(ZONES))
    hours: dict[int, list[tuple[time, time]]] = {}
    for day in range(7):
        cuts = sorted(draw(st.sets(st.sampled_from(GRID), max_size=4)))
        if len(cuts) % 2:
            cuts = cuts[:-1]
        pairs = []
        for lo, hi in zip(cuts[::2], cuts[1::2]):
            end = time(0) if hi == timedelta(days=1) else (datetime.min + hi).time()
            pairs.append(((datetime.min + lo).time(), end))
        if pairs:
            hours[day] = pairs
    if not hours:
        hours[draw(st.integers(0, 6))] = [(time(1), time(4))]
    holidays = draw(st.frozensets(st.dates(date(2024, 1, 1), date(2025, 12, 31)), max_size=20))
    return BusinessCalendar(tz, hours, holidays)


FIXED = [BERLIN, NEW_YORK, NIGHT_BERLIN, NIGHT_NY, BusinessCalendar.always_open()]
any_calendar = st.one_of(st.sampled_from(FIXED), calendars())
instants = st.datetimes(datetime(2024, 1, 1), datetime(2025, 12, 31), timezones=st.just(UTC))
durations = st.timedeltas(timedelta(0), timedelta(hours=120))
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def added(cal: BusinessCalendar, a: datetime, d: timedelta) -> datetime | None:
    """``a + d`` in business time, or ``None`` when the calendar rightly gives up: it does
    not open for ``d`` in the days it searches."""
    try:
        return cal.add_business_time(a, d)
    except ValueError:
        assert cal.business_time_between(a, a + timedelta(days=MAX_SEARCH_DAYS - 1)) < d
        return None


@PROPS
@given(any_calendar, instants, durations, durations)
def test_adding_is_associative(cal: BusinessCalendar, a: datetime, d1: timedelta, d2: timedelta) -> None:
    whole, first = added(cal, a, d1 + d2), added(cal, a, d1)
    rest = None if first is None else added(cal, first, d2)
    assume(whole is not None and rest is not None)
    assert whole == rest


@PROPS
@given(any_calendar, instants, durations)
def test_between_inverts_add(cal: BusinessCalendar, a: datetime, d: timedelta) -> None:
    result = added(cal, a, d)
    assume(result is not None)
    assert result >= a
    assert result.tzinfo is UTC
    assert cal.business_time_between(a, result) == d
    if d > timedelta(0):
        assert cal.is_open(result - US)
        # ... and it is the earliest such instant.
        assert cal.business_time_between(a, result - US) == d - US


@PROPS
@given(any_calendar, instants, st.timedeltas(timedelta(0), timedelta(days=10)), st.timedeltas(timedelta(0), timedelta(days=10)))
def test_between_is_additive(cal: BusinessCalendar, a: datetime, x: timedelta, y: timedelta) -> None:
    b, c = a + x, a + x + y
    assert cal.business_time_between(a, c) == cal.business_time_between(a, b) + cal.business_time_between(b, c)
    assert timedelta(0) <= cal.business_time_between(a, c) <= c - a


@PROPS
@given(any_calendar, instants)
def test_is_open_and_next_opening_agree_with_the_arithmetic(cal: BusinessCalendar, a: datetime) -> None:
    assert cal.is_open(a) == (cal.business_time_between(a, a + US) == US)
    opening = cal.next_opening(a)
    assert opening >= a
    assert cal.is_open(opening)
    assert cal.business_time_between(a, opening) == timedelta(0)
    assert (opening == a) == cal.is_open(a)
    assert cal.add_business_time(a, US) == opening + US

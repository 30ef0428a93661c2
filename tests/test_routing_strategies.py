"""The pure routing core: eligibility filters, the four strategies, explanations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from relaydesk.routing.strategies import (
    COMPONENTS,
    Candidate,
    Decision,
    Excluded,
    Requirement,
    Scored,
    Shift,
    Strategy,
    decide,
    eligibility,
    in_shift,
)

NOW = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)  # a Wednesday; Berlin is UTC+2, Tokyo UTC+9


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, 5, hour, minute, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def agent(agent_id: str, **kw: object) -> Candidate:
    fields: dict[str, object] = {
        "load": 0, "max_concurrent": 5, "availability": "online", "skills": {}, "languages": ["en"],
    }
    fields.update(kw)
    return Candidate(agent_id=agent_id, **fields)  # type: ignore[arg-type]


# A team of five, all eligible for a billing+refunds ticket in English at NOW.
TEAM = [
    agent("ana", load=1, max_concurrent=4, skills={"billing": 5, "refunds": 3}, languages=["en-GB"],
          last_assigned_at=at(10), csat=0.9, avg_first_response_seconds=1800),
    agent("ben", load=0, max_concurrent=2, skills={"billing": 2, "refunds": 2}, languages=["en"],
          last_assigned_at=at(9)),
    agent("cai", load=3, max_concurrent=5, skills={"billing": 5, "refunds": 5, "sales": 1}, languages=["EN-us", "de"],
          csat=0.6, avg_first_response_seconds=7200),
    agent("dev", load=2, max_concurrent=4, skills={"billing": 4, "refunds": 4}, languages=["fr", "en"],
          last_assigned_at=at(11), csat=0.8, avg_first_response_seconds=20000),
    agent("eve", load=1, max_concurrent=3, skills={"billing": 3, "refunds": 5}, languages=["en"],
          last_assigned_at=at(8), csat=0.5, avg_first_response_seconds=3600),
]
NEED = Requirement(skills=("billing", "refunds"), language="en")


def order(decision: Decision) -> list[str]:
    return [s.agent_id for s in decision.scored]


def scores(decision: Decision) -> dict[str, float]:
    return {s.agent_id: s.score for s in decision.scored}


# ----------------------------------------------------------------------------- strategies


def test_team_is_fully_eligible() -> None:
    assert [eligibility(c, NEED, NOW) for c in TEAM] == [[]] * 5


def test_round_robin_picks_never_assigned_then_least_recent() -> None:
    d = decide(Strategy.ROUND_ROBIN, TEAM, NEED, NOW)
    # cai was never assigned; then eve 08:00, ben 09:00, ana 10:00, dev 11:00.
    assert d.winner == "cai"
    assert order(d) == ["cai", "eve", "ben", "ana", "dev"]
    assert all(s.score == 0.0 for s in d.scored)  # round robin ranks, it does not score
    assert d.scored[0].parts == {"never_assigned": 1.0, "load": 3.0, "cap": 5.0}
    assert d.scored[1].parts == {"never_assigned": 0.0, "idle_seconds": 14400.0, "load": 1.0, "cap": 3.0}
    assert d.reason == "round_robin: agent cai is next in turn (never assigned), first of 5"
    assert d.excluded == []


def test_round_robin_reason_names_the_last_assignment() -> None:
    d = decide(Strategy.ROUND_ROBIN, [c for c in TEAM if c.agent_id != "cai"], NEED, NOW)
    assert d.winner == "eve"
    assert d.reason == "round_robin: agent eve is next in turn (last assigned 2024-06-05T08:00:00+00:00), first of 4"


def test_least_loaded_lowest_ratio() -> None:
    d = decide(Strategy.LEAST_LOADED, TEAM, NEED, NOW)
    # ratios: ben 0/2 = 0, ana 1/4 = .25, eve 1/3 = .3333, dev 2/4 = .5, cai 3/5 = .6
    assert d.winner == "ben"
    assert order(d) == ["ben", "ana", "eve", "dev", "cai"]
    assert scores(d) == {"ben": 1.0, "ana": 0.75, "eve": 0.6667, "dev": 0.5, "cai": 0.4}
    assert d.scored[2].parts == {"capacity": 0.6667, "load_ratio": 0.3333, "load": 1.0, "cap": 3.0}
    assert d.reason == "least_loaded: agent ben has the lowest load (0/2), best of 5"


def test_skill_weighted_scores_by_hand() -> None:
    d = decide(Strategy.SKILL_WEIGHTED, TEAM, NEED, NOW)
    # score = 0.6 (1 - load/cap) + 0.4 min_level/5
    # ben: .6 x 1    + .4 x 2/5 = .60 + .16 = .76
    # ana: .6 x 3/4  + .4 x 3/5 = .45 + .24 = .69
    # cai: .6 x 2/5  + .4 x 5/5 = .24 + .40 = .64   } exact tie: cai never assigned wins
    # eve: .6 x 2/3  + .4 x 3/5 = .40 + .24 = .64   } (in floats eve would be .6400000000000001)
    # dev: .6 x 1/2  + .4 x 4/5 = .30 + .32 = .62
    assert d.winner == "ben"
    assert order(d) == ["ben", "ana", "cai", "eve", "dev"]
    assert scores(d) == {"ben": 0.76, "ana": 0.69, "cai": 0.64, "eve": 0.64, "dev": 0.62}
    assert d.scored[0].parts == {"capacity": 0.6, "skill": 0.16, "skill_level": 2.0, "load": 0.0, "cap": 2.0}
    assert d.scored[1].parts["skill_level"] == 3.0  # ana: min(billing 5, refunds 3)
    assert d.reason == "skill_weighted: agent ben scored 0.76, best of 5"


def test_skill_weighted_is_the_default_value() -> None:
    assert decide("skill_weighted", TEAM, NEED, NOW) == decide(Strategy.SKILL_WEIGHTED, TEAM, NEED, NOW)


def test_performance_weighted_scores_by_hand() -> None:
    d = decide(Strategy.PERFORMANCE_WEIGHTED, TEAM, NEED, NOW)
    # .4 skill/5 + .3 (1 - load/cap) + .2 csat + .1 (1 - min(frt / 14400, 1)); unknown -> .5
    # ana: .24 + .225 + .18 + .1 x .875 = .7325
    # cai: .40 + .12  + .12 + .1 x .5   = .69
    # dev: .32 + .15  + .16 + .1 x 0    = .63    (20000 s is over the 4 h target)
    # eve: .24 + .20  + .10 + .1 x .75  = .615
    # ben: .16 + .30  + .10 + .05       = .61    (no CSAT, no response data)
    assert d.winner == "ana"
    assert order(d) == ["ana", "cai", "dev", "eve", "ben"]
    assert scores(d) == {"ana": 0.7325, "cai": 0.69, "dev": 0.63, "eve": 0.615, "ben": 0.61}
    ana = d.scored[0].parts
    assert (ana["skill"], ana["capacity"], ana["csat"], ana["response"]) == (0.24, 0.225, 0.18, 0.0875)
    assert (ana["csat_rate"], ana["avg_first_response_seconds"], ana["response_target_seconds"]) == (0.9, 1800.0, 14400.0)
    ben = d.scored[-1].parts
    assert (ben["csat_part"], ben["response_part"]) == (0.5, 0.5)
    assert "csat_rate" not in ben and "avg_first_response_seconds" not in ben
    assert d.reason == "performance_weighted: agent ana scored 0.7325, best of 5"


def test_performance_weighted_response_target_parameter() -> None:
    # With a 2 h target cai's 7200 s earns nothing: .40 + .12 + .12 + 0 = .64;
    # ana: .24 + .225 + .18 + .1 x .75 = .72; dev: .63; eve: .24+.2+.1+.05 = .59; ben .61
    d = decide(Strategy.PERFORMANCE_WEIGHTED, TEAM, NEED, NOW, response_target_seconds=7200)
    assert scores(d) == {"ana": 0.72, "cai": 0.64, "dev": 0.63, "ben": 0.61, "eve": 0.59}
    assert order(d) == ["ana", "cai", "dev", "ben", "eve"]


@pytest.mark.parametrize("strategy", [s for s in Strategy if COMPONENTS[s]])
def test_score_is_the_sum_of_its_weighted_parts(strategy: Strategy) -> None:
    for s in decide(strategy, TEAM, NEED, NOW).scored:
        assert sum(s.parts[name] for name in COMPONENTS[strategy]) == pytest.approx(s.score, abs=1e-3)


def test_no_required_skills_counts_everyone_as_level_5() -> None:
    d = decide(Strategy.SKILL_WEIGHTED, [agent("a", load=1, max_concurrent=2), agent("b", load=2, max_concurrent=5)],
               Requirement(), NOW)
    # a: .6 x .5 + .4 = .70 ; b: .6 x .6 + .4 = .76
    assert scores(d) == {"b": 0.76, "a": 0.7}
    assert all(s.parts["skill_level"] == 5.0 for s in d.scored)


# ----------------------------------------------------------------------------- ties


def test_round_robin_tie_by_id() -> None:
    d = decide(Strategy.ROUND_ROBIN, [agent("zed"), agent("amy"), agent("kim")], Requirement(), NOW)
    assert order(d) == ["amy", "kim", "zed"]
    assert d.reason.endswith("; tied with kim on last assignment, broken by agent id order")
    same = [agent("b", last_assigned_at=at(9)), agent("a", last_assigned_at=at(9)), agent("c", last_assigned_at=at(8))]
    assert order(decide(Strategy.ROUND_ROBIN, same, Requirement(), NOW)) == ["c", "a", "b"]


def test_round_robin_compares_instants_across_offsets() -> None:
    from zoneinfo import ZoneInfo

    berlin_0930 = datetime(2024, 6, 5, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 07:30 UTC
    d = decide(Strategy.ROUND_ROBIN, [agent("a", last_assigned_at=at(8)), agent("b", last_assigned_at=berlin_0930)],
               Requirement(), NOW)
    assert d.winner == "b"


def test_least_loaded_ties_absolute_load_then_recency_then_id() -> None:
    team = [
        agent("a", load=2, max_concurrent=4),  # 1/2
        agent("b", load=1, max_concurrent=2, last_assigned_at=at(11)),  # 1/2 with less absolute load
        agent("c", load=1, max_concurrent=2, last_assigned_at=at(7)),  # same, assigned less recently
        agent("d", load=1, max_concurrent=2, last_assigned_at=at(7)),  # same again: id order
    ]
    d = decide(Strategy.LEAST_LOADED, team, Requirement(), NOW)
    assert order(d) == ["c", "d", "b", "a"]
    assert d.reason == ("least_loaded: agent c has the lowest load (1/2), best of 4; "
                        "tied with d on load ratio, broken by agent id order")
    d2 = decide(Strategy.LEAST_LOADED, team[:2], Requirement(), NOW)
    assert d2.reason.endswith("tied with a on load ratio, broken by lower absolute load")


@pytest.mark.parametrize("strategy", [Strategy.SKILL_WEIGHTED, Strategy.PERFORMANCE_WEIGHTED])
def test_weighted_ties_by_recency_then_id(strategy: Strategy) -> None:
    team = [agent("b", load=1, last_assigned_at=at(8)), agent("a", load=1, last_assigned_at=at(10)),
            agent("c", load=1, last_assigned_at=at(8))]
    d = decide(strategy, team, Requirement(), NOW)
    assert order(d) == ["b", "c", "a"]
    assert d.reason.endswith("; tied with c on score, broken by agent id order")


def test_exact_tie_is_not_broken_by_float_noise() -> None:
    # .6 x (1 - 1/2) + .4 x 5/5 == .6 x (1 - 1/10) + .4 x 2/5 == .7 exactly, though in
    # floats the second comes out as 0.7000000000000001.  Recency decides.
    x = agent("x", load=1, max_concurrent=2, skills={"t": 5}, last_assigned_at=at(8))
    y = agent("y", load=1, max_concurrent=10, skills={"t": 2}, last_assigned_at=at(11))
    d = decide(Strategy.SKILL_WEIGHTED, [y, x], Requirement(skills=["t"]), NOW)
    assert d.winner == "x"
    assert scores(d) == {"x": 0.7, "y": 0.7}
    assert d.reason == "skill_weighted: agent x scored 0.7, best of 2; tied with y on score, broken by least recent assignment"


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize(("availability", "reason"), [("away", "away"), ("offline", "offline"),
                                                      ("busy", "not online ('busy')")])
def test_availability_filter(availability: str, reason: str) -> None:
    assert eligibility(agent("a", availability=availability), Requirement(), NOW) == [reason]
    assert eligibility(agent("a", availability="online"), Requirement(), NOW) == []


@pytest.mark.parametrize(("load", "cap", "reasons"), [
    (4, 5, []), (5, 5, ["at cap (5/5)"]), (6, 5, ["over cap (6/5)"]), (0, 0, ["cap is 0"]), (2, 0, ["cap is 0"]),
])
def test_cap_filter(load: int, cap: int, reasons: list[str]) -> None:
    assert eligibility(agent("a", load=load, max_concurrent=cap), Requirement(), NOW) == reasons


def test_skill_filter_lists_every_missing_skill_once() -> None:
    c = agent("a", skills={"billing": 1})
    assert eligibility(c, Requirement(skills=["billing"]), NOW) == []
    assert eligibility(c, Requirement(skills=["refunds", "billing", "vat", "refunds"]), NOW) == [
        "missing skill 'refunds'", "missing skill 'vat'"]
    assert eligibility(c, Requirement(skills=["Billing"]), NOW) == ["missing skill 'Billing'"]  # names are exact


@pytest.mark.parametrize(("spoken", "wanted", "ok"), [
    (["en"], "en-GB", True), (["en-GB"], "en", True), (["en-US"], "en-GB", True), (["EN"], "en-gb", True),
    (["en_GB"], "en", True), (["de", "fr"], "fr-CA", True), (["de"], None, True), ([], None, True), ([], "", True),
    (["de"], "en", False), (["vi-VN"], "vie", False), ([], "en", False),
])
def test_language_filter(spoken: list[str], wanted: str | None, ok: bool) -> None:
    reasons = eligibility(agent("a", languages=spoken), Requirement(language=wanted), NOW)
    assert reasons == ([] if ok else [f"does not speak {wanted.split('-')[0].lower()!r}"])  # type: ignore[union-attr]


def test_language_reason_names_primary_subtag() -> None:
    assert eligibility(agent("a", languages=["en"]), Requirement(language="vi"), NOW) == ["does not speak 'vi'"]
    assert eligibility(agent("a", languages=["de"]), Requirement(language="en-GB"), NOW) == ["does not speak 'en'"]


def test_all_reasons_are_reported_in_check_order() -> None:
    c = agent("a", availability="away", load=5, max_concurrent=5, timezone="Europe/Berlin",
              shifts=[Shift(0, time(9), time(17))], languages=["de"])
    assert eligibility(c, Requirement(skills=["billing"], language="vi"), NOW) == [
        "away", "at cap (5/5)", "off shift (Europe/Berlin Wed 14:00)", "missing skill 'billing'", "does not speak 'vi'"]


# ----------------------------------------------------------------------------- shifts


WEEKDAYS_9_TO_5 = [Shift(d, time(9), time(17)) for d in range(5)]


def on(tz: str, shifts: list[Shift], now: datetime) -> bool:
    return in_shift(agent("a", timezone=tz, shifts=shifts), now)


def test_no_schedule_means_always_in_shift() -> None:
    assert in_shift(agent("a"), NOW)
    assert in_shift(agent("a", timezone="No/Such_Zone"), NOW)  # the zone is never needed


def test_day_shift_boundaries_in_agent_zone() -> None:
    # Berlin is UTC+2 in June: 09:00-17:00 local is 07:00-15:00 UTC.
    assert not on("Europe/Berlin", WEEKDAYS_9_TO_5, at(6, 59))
    assert on("Europe/Berlin", WEEKDAYS_9_TO_5, at(7, 0))  # start is inclusive
    assert on("Europe/Berlin", WEEKDAYS_9_TO_5, utc(2024, 6, 5, 14, 59, 59))
    assert not on("Europe/Berlin", WEEKDAYS_9_TO_5, at(15, 0))  # end is exclusive
    assert not on("Europe/Berlin", WEEKDAYS_9_TO_5, utc(2024, 6, 8, 10))  # Saturday
    assert on("UTC", WEEKDAYS_9_TO_5, at(16, 30)) and not on("Europe/Berlin", WEEKDAYS_9_TO_5, at(16, 30))


def test_agent_zone_decides_the_weekday() -> None:
    # Tuesday 23:30 UTC is Wednesday 08:30 in Tokyo.
    now = utc(2024, 6, 4, 23, 30)
    assert on("Asia/Tokyo", [Shift(2, time(8), time(17))], now)
    assert not on("Asia/Tokyo", [Shift(1, time(8), time(17))], now)
    assert not on("UTC", [Shift(2, time(8), time(17))], now)
    c = agent("a", timezone="Asia/Tokyo", shifts=[Shift(1, time(8), time(17))])
    assert eligibility(c, Requirement(), now) == ["off shift (Asia/Tokyo Wed 08:30)"]
    # Los Angeles is UTC-7: 03:00 UTC Wednesday is 20:00 Tuesday.
    assert on("America/Los_Angeles", [Shift(1, time(18), time(22))], utc(2024, 6, 5, 3))


def test_overnight_shift_runs_into_next_day() -> None:
    night = [Shift(2, time(22), time(6))]  # Wednesday night
    assert not on("UTC", night, at(21, 59))
    assert on("UTC", night, at(22, 0))
    assert on("UTC", night, utc(2024, 6, 6, 0, 0))  # Thursday midnight
    assert on("UTC", night, utc(2024, 6, 6, 5, 59))
    assert not on("UTC", night, utc(2024, 6, 6, 6, 0))
    assert not on("UTC", night, at(3, 0))  # Wednesday early morning belongs to Tuesday's shift
    assert not on("UTC", night, utc(2024, 6, 6, 22, 30))  # no Thursday shift


def test_sunday_overnight_wraps_to_monday() -> None:
    sunday_night = [Shift(6, time(22), time(6))]
    assert on("UTC", sunday_night, utc(2024, 6, 2, 22))
    assert on("UTC", sunday_night, utc(2024, 6, 3, 5, 59))  # Monday morning
    assert not on("UTC", sunday_night, utc(2024, 6, 3, 6))
    assert not on("UTC", sunday_night, utc(2024, 6, 3, 22))  # Monday night is not Sunday's


def test_midnight_end_and_full_day_shifts() -> None:
    evening = [Shift(2, time(18), time(0))]  # Wednesday 18:00 until midnight
    assert not on("UTC", evening, at(17, 59))
    assert on("UTC", evening, at(18))
    assert on("UTC", evening, utc(2024, 6, 5, 23, 59, 59))
    assert not on("UTC", evening, utc(2024, 6, 6, 0, 0))
    all_day = [Shift(2, time(0), time(0))]
    assert on("UTC", all_day, at(0)) and on("UTC", all_day, utc(2024, 6, 5, 23, 59))
    assert not on("UTC", all_day, utc(2024, 6, 4, 23, 59)) and not on("UTC", all_day, utc(2024, 6, 6))
    nine_to_nine = [Shift(2, time(9), time(9))]  # 24 hours from Wednesday 09:00
    assert on("UTC", nine_to_nine, utc(2024, 6, 6, 8, 59)) and not on("UTC", nine_to_nine, utc(2024, 6, 6, 9))


def test_dst_spring_forward_day_keeps_local_hours() -> None:
    # Europe/Berlin: Sunday 2024-03-31 02:00 CET -> 03:00 CEST (01:00 UTC).
    sunday = [Shift(6, time(9), time(17))]
    assert not on("Europe/Berlin", sunday, utc(2024, 3, 31, 6, 59))  # 08:59 CEST
    assert on("Europe/Berlin", sunday, utc(2024, 3, 31, 7, 0))  # 09:00 CEST
    assert not on("Europe/Berlin", sunday, utc(2024, 3, 31, 15, 0))  # 17:00 CEST
    # The week before (CET, UTC+1) the same shift is 08:00-16:00 UTC.
    assert not on("Europe/Berlin", sunday, utc(2024, 3, 24, 7, 30))
    assert on("Europe/Berlin", sunday, utc(2024, 3, 24, 15, 30))
    # Saturday-night shift 22:00-06:00 across the change: 21:00 UTC to 04:00 UTC (7 real hours).
    night = [Shift(5, time(22), time(6))]
    assert not on("Europe/Berlin", night, utc(2024, 3, 30, 20, 59))
    assert on("Europe/Berlin", night, utc(2024, 3, 30, 21, 0))
    assert on("Europe/Berlin", night, utc(2024, 3, 31, 0, 59))  # 01:59 CET
    assert on("Europe/Berlin", night, utc(2024, 3, 31, 1, 0))  # 03:00 CEST
    assert on("Europe/Berlin", night, utc(2024, 3, 31, 3, 59))  # 05:59 CEST
    assert not on("Europe/Berlin", night, utc(2024, 3, 31, 4, 0))  # 06:00 CEST
    # A shift inside the skipped hour never happens.
    gap = [Shift(6, time(2), time(3))]
    assert not any(on("Europe/Berlin", gap, utc(2024, 3, 31, 0) + timedelta(minutes=m)) for m in range(0, 180, 5))


def test_dst_fall_back_day_keeps_local_hours() -> None:
    # Europe/Berlin: Sunday 2024-10-27 03:00 CEST -> 02:00 CET (01:00 UTC).
    sunday = [Shift(6, time(9), time(17))]
    assert not on("Europe/Berlin", sunday, utc(2024, 10, 27, 7, 30))  # 08:30 CET
    assert on("Europe/Berlin", sunday, utc(2024, 10, 27, 8, 0))  # 09:00 CET
    assert on("Europe/Berlin", sunday, utc(2024, 10, 27, 15, 59))
    # The repeated hour 02:00-03:00 is in shift both times (two real hours).
    repeated = [Shift(6, time(2), time(3))]
    assert on("Europe/Berlin", repeated, utc(2024, 10, 27, 0, 30))  # 02:30 CEST
    assert on("Europe/Berlin", repeated, utc(2024, 10, 27, 1, 30))  # 02:30 CET
    assert not on("Europe/Berlin", repeated, utc(2024, 10, 27, 2, 0))  # 03:00 CET


def test_dst_new_york() -> None:
    # Clocks went forward on Sunday 2024-03-10: 09:00 is 14:00 UTC on Friday the 8th (EST)
    # and 13:00 UTC on Monday the 11th (EDT).
    assert not on("America/New_York", WEEKDAYS_9_TO_5, utc(2024, 3, 8, 13, 30))
    assert on("America/New_York", WEEKDAYS_9_TO_5, utc(2024, 3, 8, 14, 0))
    assert not on("America/New_York", WEEKDAYS_9_TO_5, utc(2024, 3, 11, 12, 59))
    assert on("America/New_York", WEEKDAYS_9_TO_5, utc(2024, 3, 11, 13, 0))
    assert not on("America/New_York", WEEKDAYS_9_TO_5, utc(2024, 3, 11, 21, 0))  # 17:00 EDT


def test_unknown_time_zone_excludes_with_reason() -> None:
    c = agent("a", timezone="Mars/Olympus_Mons", shifts=[Shift(2, time(0), time(0))])
    with pytest.raises(ValueError, match="unknown time zone"):
        in_shift(c, NOW)
    assert eligibility(c, Requirement(), NOW) == ["unknown time zone 'Mars/Olympus_Mons'"]


def test_off_shift_agent_is_excluded_from_decision() -> None:
    night_owl = agent("owl", timezone="Europe/Berlin", shifts=[Shift(2, time(22), time(6))])
    d = decide(Strategy.LEAST_LOADED, [night_owl, agent("day", load=4)], Requirement(), NOW)
    assert d.winner == "day"
    assert d.excluded == [Excluded("owl", ["off shift (Europe/Berlin Wed 14:00)"])]


# ----------------------------------------------------------------------------- nobody


def test_no_candidate_reason_counts_exclusions() -> None:
    team = [agent("a", load=5), agent("b", load=3, max_concurrent=3), agent("c", availability="away")]
    d = decide(Strategy.SKILL_WEIGHTED, team, Requirement(), NOW)
    assert d.winner is None and d.scored == []
    assert d.reason == "no candidate: 2 at cap, 1 away"
    assert d.excluded == [Excluded("a", ["at cap (5/5)"]), Excluded("b", ["at cap (3/3)"]), Excluded("c", ["away"])]


def test_no_candidate_reason_counts_every_reason() -> None:
    team = [
        agent("a", availability="offline", skills={"billing": 2}),
        agent("b", max_concurrent=0, languages=["de"], skills={"billing": 2}),
        agent("c", languages=["de"]),
        agent("d", availability="away", timezone="UTC", shifts=[Shift(0, time(9), time(17))]),
    ]
    d = decide(Strategy.ROUND_ROBIN, team, Requirement(skills=["billing"], language="en"), NOW)
    assert d.winner is None
    assert d.reason == ("no candidate: 2 missing skill 'billing', 2 does not speak 'en', "
                        "1 away, 1 offline, 1 cap is 0, 1 off shift")


def test_the_agent_who_handed_the_ticket_back_is_excluded_with_that_reason() -> None:
    team = [agent("a"), agent("b", load=5)]
    d = decide(Strategy.SKILL_WEIGHTED, team, Requirement(), NOW, handed_back_by="a")
    assert d.winner is None and d.reason == "no candidate: 1 handed it back, 1 at cap"
    assert d.excluded == [Excluded("a", ["handed it back"]), Excluded("b", ["at cap (5/5)"])]


def test_empty_team() -> None:
    d = decide(Strategy.LEAST_LOADED, [], Requirement(), NOW)
    assert (d.winner, d.scored, d.excluded, d.reason) == (None, [], [], "no candidate: nobody to consider")


# ----------------------------------------------------------------------------- records


def test_decision_to_dict_round_trips_through_json() -> None:
    team = [*TEAM, agent("zoe", availability="away"), agent("yan", load=9, max_concurrent=3)]
    for strategy in Strategy:
        d = decide(strategy, team, NEED, NOW)
        data = d.to_dict()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert Decision.from_dict(json.loads(json.dumps(data))) == d
        assert data["strategy"] == strategy.value
        assert data["excluded"] == [
            {"agent_id": "yan", "reasons": ["over cap (9/3)", "missing skill 'billing'", "missing skill 'refunds'"]},
            {"agent_id": "zoe", "reasons": ["away", "missing skill 'billing'", "missing skill 'refunds'"]}]


def test_to_dict_shape() -> None:
    d = Decision(Strategy.ROUND_ROBIN, "a", [Scored("a", 0.0, {"load": 1.0})], [Excluded("b", ["away"])], "why")
    assert d.to_dict() == {"strategy": "round_robin", "winner": "a", "reason": "why",
                           "scored": [{"agent_id": "a", "score": 0.0, "parts": {"load": 1.0}}],
                           "excluded": [{"agent_id": "b", "reasons": ["away"]}]}


def test_deterministic_and_order_independent() -> None:
    extra = [agent("zoe", availability="away"), agent("yan", load=9, max_concurrent=3)]
    for strategy in Strategy:
        first = decide(strategy, TEAM + extra, NEED, NOW)
        assert decide(strategy, TEAM + extra, NEED, NOW) == first
        assert decide(strategy, list(reversed(TEAM + extra)), NEED, NOW) == first


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(Strategy.ROUND_ROBIN, TEAM, NEED, datetime(2024, 6, 5, 12))
    with pytest.raises(ValueError, match="timezone-aware"):
        in_shift(agent("a", shifts=WEEKDAYS_9_TO_5), datetime(2024, 6, 5, 12))
    with pytest.raises(ValueError, match="duplicate"):
        decide(Strategy.ROUND_ROBIN, [agent("a"), agent("a")], Requirement(), NOW)
    with pytest.raises(ValueError):
        decide("fastest", TEAM, NEED, NOW)
    with pytest.raises(ValueError, match="response_target_seconds"):
        decide(Strategy.PERFORMANCE_WEIGHTED, TEAM, NEED, NOW, response_target_seconds=0)
    for bad in ({"load": -1}, {"max_concurrent": -1}, {"skills": {"x": 0}}, {"skills": {"x": 6}},
                {"csat": 1.5}, {"csat": float("nan")}, {"avg_first_response_seconds": -1},
                {"last_assigned_at": datetime(2024, 1, 1)}):
        with pytest.raises(ValueError):
            agent("a", **bad)
    with pytest.raises(ValueError):
        agent("")
    with pytest.raises(ValueError):
        Shift(7, time(9), time(17))
    with pytest.raises(TypeError):
        Requirement(skills="billing")
    with pytest.raises(TypeError):
        agent("a", languages="en")
    with pytest.raises(TypeError):
        agent("a", shifts=[(0, time(9), time(17))])


# ----------------------------------------------------------------------------- properties

IDS = ["a", "b", "c", "d", "e", "f"]
SKILLS = ["billing", "tech", "sales"]
LANGS = ["en", "en-GB", "EN-us", "de", "fr-CA", "vi"]
ZONES = ["UTC", "Europe/Berlin", "Asia/Tokyo", "America/New_York", "Australia/Lord_Howe"]
HOURS = [time(h, m) for h in (0, 6, 9, 17, 22) for m in (0, 30)]
TIMES = [utc(2024, 6, 5, h) for h in (1, 2, 3)]

shift_st = st.builds(Shift, weekday=st.integers(0, 6), start=st.sampled_from(HOURS) | st.times(),
                     end=st.sampled_from(HOURS) | st.times())


def candidate_st(ids: list[str]) -> st.SearchStrategy[Candidate]:
    return st.builds(
        Candidate,
        agent_id=st.sampled_from(ids),
        load=st.integers(0, 7),
        max_concurrent=st.integers(0, 5),
        availability=st.sampled_from(["online", "online", "online", "away", "offline"]),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3),
        languages=st.lists(st.sampled_from(LANGS), max_size=3),
        timezone=st.sampled_from(ZONES),
        shifts=st.lists(shift_st, max_size=3) | st.just(()),
        last_assigned_at=st.none() | st.sampled_from(TIMES),
        csat=st.none() | st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1),
        avg_first_response_seconds=st.none() | st.sampled_from([0.0, 3600.0]) | st.floats(0, 50_000),
    )


def friendly_st(ids: list[str]) -> st.SearchStrategy[Candidate]:
    """Candidates that usually pass every filter, so that decisions have several to rank."""
    return st.builds(
        Candidate,
        agent_id=st.sampled_from(ids),
        load=st.integers(0, 4),
        max_concurrent=st.integers(1, 5),
        availability=st.just("online"),
        skills=st.fixed_dictionaries({name: st.integers(1, 5) for name in SKILLS}),
        languages=st.lists(st.sampled_from(LANGS), min_size=4, max_size=6),
        timezone=st.sampled_from(ZONES),
        shifts=st.just(()) | st.just([Shift(d, time(0), time(0)) for d in range(7)]),
        last_assigned_at=st.none() | st.sampled_from(TIMES),
        csat=st.none() | st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1),
        avg_first_response_seconds=st.none() | st.sampled_from([0.0, 3600.0]) | st.floats(0, 50_000),
    )


team_st = st.lists(friendly_st(IDS) | candidate_st(IDS), unique_by=lambda c: c.agent_id, max_size=6)
requirement_st = st.builds(Requirement, skills=st.lists(st.sampled_from(SKILLS), max_size=2),
                           language=st.none() | st.sampled_from(LANGS))
now_st = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(strategy=st.sampled_from(Strategy), team=team_st, req=requirement_st, now=now_st)
def test_property_decision_is_consistent(strategy: Strategy, team: list[Candidate], req: Requirement,
                                         now: datetime) -> None:
    d = decide(strategy, team, req, now)
    by_id = {c.agent_id: c for c in team}
    eligible = {c.agent_id for c in team if not eligibility(c, req, now)}
    assert {s.agent_id for s in d.scored} == eligible
    assert {e.agent_id for e in d.excluded} == set(by_id) - eligible
    assert all(e.reasons == eligibility(by_id[e.agent_id], req, now) for e in d.excluded)
    if d.winner is None:
        assert not eligible and d.reason.startswith("no candidate")
        return
    winner = by_id[d.winner]
    assert eligibility(winner, req, now) == []
    assert winner.availability == "online" and winner.load < winner.max_concurrent
    assert d.scored[0].agent_id == d.winner
    assert d.scored[0].score == max(s.score for s in d.scored)
    assert [s.score for s in d.scored] == sorted((s.score for s in d.scored), reverse=True)
    assert json.loads(json.dumps(d.to_dict(), allow_nan=False)) == d.to_dict()
    assert Decision.from_dict(d.to_dict()) == d


@settings(max_examples=200, deadline=None)
@given(strategy=st.sampled_from(Strategy), team=team_st, req=requirement_st, now=now_st,
       extra=candidate_st(["intruder"]), data=st.data())
def test_property_ineligible_candidate_changes_nothing(strategy: Strategy, team: list[Candidate], req: Requirement,
                                                       now: datetime, extra: Candidate, data: st.DataObject) -> None:
    assume(eligibility(extra, req, now))
    before = decide(strategy, team, req, now)
    position = data.draw(st.integers(0, len(team)))
    after = decide(strategy, team[:position] + [extra] + team[position:], req, now)
    assert (after.strategy, after.winner, after.scored) == (before.strategy, before.winner, before.scored)
    if before.winner is not None:
        assert after.reason == before.reason
    else:  # "no candidate" counts the exclusions, so it now counts the intruder too
        assert after.reason.startswith("no candidate: ") and after.reason != before.reason
    assert [e.agent_id for e in after.excluded] == sorted([e.agent_id for e in before.excluded] + ["intruder"])


@settings(max_examples=200, deadline=None)
@given(strategy=st.sampled_from(Strategy), team=team_st, req=requirement_st, now=now_st, seed=st.randoms())
def test_property_order_of_candidates_does_not_matter(strategy: Strategy, team: list[Candidate], req: Requirement,
                                                      now: datetime, seed: object) -> None:
    shuffled = list(team)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert decide(strategy, shuffled, req, now) == decide(strategy, team, req, now)


@settings(max_examples=200, deadline=None)
@given(team=st.lists(candidate_st(IDS).map(lambda c: Candidate(
    c.agent_id, c.load, max(c.max_concurrent, 1), "online", {}, [], last_assigned_at=c.last_assigned_at,
    csat=c.csat, avg_first_response_seconds=c.avg_first_response_seconds)), unique_by=lambda c: c.agent_id,
    min_size=1, max_size=6), now=now_st)
def test_property_never_over_cap_and_least_loaded_is_minimal(team: list[Candidate], now: datetime) -> None:
    for strategy in Strategy:
        d = decide(strategy, team, Requirement(), now)
        under = [c for c in team if c.load < c.max_concurrent]
        assert (d.winner is None) == (not under)
        if d.winner is not None:
            assert d.winner in {c.agent_id for c in under}
    d = decide(Strategy.LEAST_LOADED, team, Requirement(), now)
    if d.winner is not None:
        w = next(c for c in team if c.agent_id == d.winner)
        assert all(w.load * c.max_concurrent <= c.load * w.max_concurrent
                   for c in team if c.load < c.max_concurrent)


def _reference_in_shift(shift: Shift, local: datetime) -> bool:
    """Independent reading of a shift: same-day, or split across two days."""
    t, day = local.time().replace(tzinfo=None), local.weekday()
    if shift.end > shift.start:
        return day == shift.weekday and shift.start <= t < shift.end
    return (day == shift.weekday and t >= shift.start) or (day == (shift.weekday + 1) % 7 and t < shift.end)


@settings(max_examples=300, deadline=None)
@given(shift=shift_st, zone=st.sampled_from(ZONES), now=now_st)
def test_property_shift_matches_reference(shift: Shift, zone: str, now: datetime) -> None:
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(zone))
    assert in_shift(agent("a", timezone=zone, shifts=[shift]), now) == _reference_in_shift(shift, local)

"""Choosing an agent for a ticket: pure data and decisions, no I/O.

The caller gathers the agents of the chosen team as :class:`Candidate` values (their
load is their open work: ASSIGNED, IN_PROGRESS and ESCALATED tickets), states what the
ticket needs as a :class:`Requirement`, and passes the current time.  :func:`decide`
returns a :class:`Decision` that explains itself: every agent appears either in
``scored`` (eligible, with the parts of its score) or in ``excluded`` (with every
reason), and ``reason`` says why the winner won or why nobody was chosen.

Eligibility (:func:`eligibility`), checked in this order, every failing check reported:

* (:func:`decide` only) not the agent named by ``handed_back_by`` (``"handed it back"``);
* availability is ``"online"`` (otherwise the reason is ``"away"``, ``"offline"`` or
  ``"not online ('busy')"``);
* a positive cap (``"cap is 0"``) and room under it: ``load < max_concurrent``
  (``"at cap (5/5)"``, ``"over cap (6/5)"``);
* in shift (:func:`in_shift`; ``"off shift (Europe/Berlin Sun 22:10)"``, or
  ``"unknown time zone 'Mars/Base'"`` when the agent's zone cannot be resolved);
* every required skill, by exact name, at any level (``"missing skill 'billing'"``);
* the ticket's language, comparing primary subtags case-insensitively, so ``"en-GB"``
  and ``"EN"`` match ``"en"`` (``"does not speak 'vi'"``).  No language: everyone matches.

Strategies and their order, best first (every comparison is exact: scores are
computed as fractions, so equal inputs tie exactly and float noise never breaks a tie;
``score`` and ``parts`` are rounded to 4 decimals for display only):

* ``round_robin``: least recently assigned first (never assigned before anyone
  assigned), then agent id.  Round robin ranks and does not score: every score is 0.
* ``least_loaded``: lowest load/cap, then lowest absolute load, then least recently
  assigned, then agent id.  Score: ``capacity`` = 1 - load/cap.
* ``skill_weighted`` (the default): score = 0.6 x (1 - load/cap) + 0.4 x skill_level/5;
  then least recently assigned, then agent id.
* ``performance_weighted``: score = 0.4 x skill_level/5 + 0.3 x (1 - load/cap)
  + 0.2 x csat_part + 0.1 x response_part, where csat_part is the CSAT rate (0..1) or
  0.5 when unknown, and response_part = 1 - min(avg_first_response / target, 1) or 0.5
  when unknown; then least recently assigned, then agent id.

``skill_level`` is the agent's lowest level over the required skills; a ticket that
requires no skill counts every agent as level 5, so only the other parts decide.

Shifts are weekly and in the agent's own wall-clock time: a shift covers
``[start, end)`` on its weekday (0 = Monday), and one whose end is not after its start
(22:00-06:00, or 18:00-00:00 for "until midnight") runs into the next day; start ==
end is a 24-hour shift.  Because the comparison is by local wall clock, shifts keep
their local hours across daylight-saving changes (a 22:00-06:00 shift lasts 7 real
hours on the spring-forward night and 9 on the fall-back night).  An agent with no
shifts is always in shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    SKILL_WEIGHTED = "skill_weighted"
    PERFORMANCE_WEIGHTED = "performance_weighted"


DEFAULT_STRATEGY = Strategy.SKILL_WEIGHTED
DEFAULT_RESPONSE_TARGET_SECONDS = 4 * 3600
MAX_SKILL_LEVEL = 5

# The weighted parts of each strategy's score; ``score`` is their sum (before rounding).
COMPONENTS: dict[Strategy, tuple[str, ...]] = {
    Strategy.ROUND_ROBIN: (),
    Strategy.LEAST_LOADED: ("capacity",),
    Strategy.SKILL_WEIGHTED: ("capacity", "skill"),
    Strategy.PERFORMANCE_WEIGHTED: ("skill", "capacity", "csat", "response"),
}

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_HALF = Fraction(1, 2)
_NEVER = datetime.min.replace(tzinfo=UTC)


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Shift:
    """A weekly shift in the agent's local wall-clock time; see the module notes."""

    weekday: int  # 0 = Monday ... 6 = Sunday
    start: time
    end: time  # time(0) = midnight; end <= start runs into the next day

    def __post_init__(self) -> None:
        if not _is_int(self.weekday) or not 0 <= self.weekday <= 6:
            raise ValueError(f"shift weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"shift {name} must be a local wall-clock time without tzinfo")

    @property
    def length(self) -> timedelta:
        delta = _since_midnight(self.end) - _since_midnight(self.start)
        return delta if delta > timedelta(0) else delta + _DAY

    def covers(self, local: datetime) -> bool:
        """Whether the naive-or-aware local wall-clock ``local`` falls in this shift."""
        position = timedelta(days=local.weekday()) + _since_midnight(local.time())
        offset = (position - timedelta(days=self.weekday) - _since_midnight(self.start)) % _WEEK
        return offset < self.length


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    load: int  # open work: ASSIGNED + IN_PROGRESS + ESCALATED tickets
    max_concurrent: int
    availability: str  # "online" | "away" | "offline"
    skills: Mapping[str, int]  # skill name -> level 1..5
    languages: Sequence[str]
    timezone: str = "UTC"
    shifts: Sequence[Shift] = ()
    last_assigned_at: datetime | None = None
    csat: float | None = None  # 0..1, e.g. the share of positive ratings
    avg_first_response_seconds: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not self.agent_id:
            raise ValueError("agent_id must be a non-empty string")
        if not _is_int(self.load) or self.load < 0:
            raise ValueError(f"{self.agent_id}: load must be a non-negative int, not {self.load!r}")
        if not _is_int(self.max_concurrent) or self.max_concurrent < 0:
            raise ValueError(f"{self.agent_id}: max_concurrent must be a non-negative int, not {self.max_concurrent!r}")
        for skill, level in self.skills.items():
            if not _is_int(level) or not 1 <= level <= MAX_SKILL_LEVEL:
                raise ValueError(f"{self.agent_id}: skill {skill!r} level must be 1..5, not {level!r}")
        if isinstance(self.languages, str):
            raise TypeError(f"{self.agent_id}: languages must be a sequence of tags, not one string")
        if not all(isinstance(shift, Shift) for shift in self.shifts):
            raise TypeError(f"{self.agent_id}: shifts must be Shift values")
        if self.last_assigned_at is not None:
            _require_aware(self.last_assigned_at, f"{self.agent_id}: last_assigned_at")
        if self.csat is not None and not (math.isfinite(self.csat) and 0 <= self.csat <= 1):
            raise ValueError(f"{self.agent_id}: csat must be between 0 and 1, not {self.csat!r}")
        seconds = self.avg_first_response_seconds
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"{self.agent_id}: avg_first_response_seconds must be >= 0, not {seconds!r}")


@dataclass(frozen=True)
class Requirement:
    skills: Sequence[str] = ()
    language: str | None = None  # BCP 47 tag such as "en-GB"; None = any

    def __post_init__(self) -> None:
        if isinstance(self.skills, str):
            raise TypeError("requirement skills must be a sequence of names, not one string")

    @property
    def required_skills(self) -> tuple[str, ...]:
        """The required skills in the given order, each once."""
        return tuple(dict.fromkeys(self.skills))

    @property
    def primary_language(self) -> str | None:
        return _primary_subtag(self.language) if self.language is not None else None


def _primary_subtag(tag: str) -> str | None:
    primary = tag.strip().replace("_", "-").split("-", 1)[0].casefold()
    return primary or None


@dataclass(frozen=True)
class Scored:
    agent_id: str
    score: float  # rounded to 4 decimals for display
    parts: dict[str, float]  # weighted components (see COMPONENTS) plus raw inputs

    def to_dict(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "score": self.score, "parts": dict(self.parts)}


@dataclass(frozen=True)
class Excluded:
    agent_id: str
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Decision:
    strategy: Strategy
    winner: str | None
    scored: list[Scored] = field(default_factory=list)  # eligible agents, best first
    excluded: list[Excluded] = field(default_factory=list)  # by agent id
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "winner": self.winner,
            "reason": self.reason,
            "scored": [s.to_dict() for s in self.scored],
            "excluded": [e.to_dict() for e in self.excluded],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            strategy=Strategy(data["strategy"]),
            winner=data["winner"],
            reason=data["reason"],
            scored=[
                Scored(s["agent_id"], float(s["score"]), {k: float(v) for k, v in s["parts"].items()})
                for s in data["scored"]
            ],
            excluded=[Excluded(e["agent_id"], list(e["reasons"])) for e in data["excluded"]],
        )


# --------------------------------------------------------------------------- eligibility


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def in_shift(candidate: Candidate, now: datetime) -> bool:
    """Whether ``now`` falls in one of the agent's weekly shifts, read in the agent's
    own time zone.  No shifts: always in shift.  An unknown zone raises ValueError."""
    _require_aware(now, "now")
    if not candidate.shifts:
        return True
    local = now.astimezone(_zone(candidate.timezone))
    return any(shift.covers(local) for shift in candidate.shifts)


def _checks(candidate: Candidate, requirement: Requirement, now: datetime) -> list[tuple[tuple[int, int], str, str]]:
    """Every failed check as (order, category, reason); the category groups reasons
    when counting why nobody was chosen."""
    _require_aware(now, "now")
    failed: list[tuple[tuple[int, int], str, str]] = []
    availability = candidate.availability
    if availability != "online":
        if availability in ("away", "offline"):
            failed.append(((0, 0), availability, availability))
        else:
            failed.append(((0, 1), "not online", f"not online ({availability!r})"))
    cap, load = candidate.max_concurrent, candidate.load
    if cap <= 0:
        failed.append(((1, 0), "cap is 0", "cap is 0"))
    elif load == cap:
        failed.append(((1, 1), "at cap", f"at cap ({load}/{cap})"))
    elif load > cap:
        failed.append(((1, 2), "over cap", f"over cap ({load}/{cap})"))
    try:
        on_shift = in_shift(candidate, now)
    except ValueError:
        failed.append(((2, 1), "unknown time zone", f"unknown time zone {candidate.timezone!r}"))
    else:
        if not on_shift:
            local = now.astimezone(_zone(candidate.timezone))
            stamp = f"{candidate.timezone} {_WEEKDAYS[local.weekday()]} {local:%H:%M}"
            failed.append(((2, 0), "off shift", f"off shift ({stamp})"))
    for index, skill in enumerate(requirement.required_skills):
        if skill not in candidate.skills:
            text = f"missing skill {skill!r}"
            failed.append(((3, index), text, text))
    wanted = requirement.primary_language
    if wanted is not None:
        spoken = {_primary_subtag(tag) for tag in candidate.languages if isinstance(tag, str)}
        if wanted not in spoken:
            text = f"does not speak {wanted!r}"
            failed.append(((4, 0), text, text))
    return failed


def eligibility(candidate: Candidate, requirement: Requirement, now: datetime) -> list[str]:
    """Every reason to exclude the candidate, in check order; [] means eligible."""
    return [reason for _, _, reason in _checks(candidate, requirement, now)]


# --------------------------------------------------------------------------- scoring


def _skill_level(candidate: Candidate, requirement: Requirement) -> int:
    required = requirement.required_skills
    if not required:
        return MAX_SKILL_LEVEL
    return min(candidate.skills[skill] for skill in required)


def _recency(candidate: Candidate) -> tuple[int, datetime]:
    """Sorts never-assigned agents first, then the least recently assigned."""
    if candidate.last_assigned_at is None:
        return (0, _NEVER)
    return (1, candidate.last_assigned_at.astimezone(UTC))


_TIE_LABELS: dict[Strategy, tuple[str, ...]] = {
    Strategy.ROUND_ROBIN: ("last assignment", "agent id order"),
    Strategy.LEAST_LOADED: ("load ratio", "lower absolute load", "least recent assignment", "agent id order"),
    Strategy.SKILL_WEIGHTED: ("score", "least recent assignment", "agent id order"),
    Strategy.PERFORMANCE_WEIGHTED: ("score", "least recent assignment", "agent id order"),
}


@dataclass(frozen=True)
class _Ranked:
    candidate: Candidate
    key: tuple[Any, ...]
    score: Fraction
    parts: dict[str, float]


def _rank(
    strategy: Strategy, candidate: Candidate, requirement: Requirement, now: datetime, target: Fraction
) -> _Ranked:
    load, cap = candidate.load, candidate.max_concurrent
    ratio = Fraction(load, cap)
    free = 1 - ratio
    recency = _recency(candidate)
    parts: dict[str, Fraction | float] = {}
    if strategy is Strategy.ROUND_ROBIN:
        score = Fraction(0)
        key: tuple[Any, ...] = (recency, candidate.agent_id)
        parts["never_assigned"] = 1.0 if candidate.last_assigned_at is None else 0.0
        if candidate.last_assigned_at is not None:
            parts["idle_seconds"] = (now - candidate.last_assigned_at).total_seconds()
    elif strategy is Strategy.LEAST_LOADED:
        score = free
        parts["capacity"] = free
        parts["load_ratio"] = ratio
        key = (ratio, load, recency, candidate.agent_id)
    else:
        level = _skill_level(candidate, requirement)
        skill = Fraction(level, MAX_SKILL_LEVEL)
        if strategy is Strategy.SKILL_WEIGHTED:
            parts["capacity"] = Fraction(6, 10) * free
            parts["skill"] = Fraction(4, 10) * skill
        else:
            csat = _HALF if candidate.csat is None else Fraction(candidate.csat)
            if candidate.avg_first_response_seconds is None:
                response = _HALF
            else:
                response = 1 - min(Fraction(candidate.avg_first_response_seconds) / target, Fraction(1))
            parts["skill"] = Fraction(4, 10) * skill
            parts["capacity"] = Fraction(3, 10) * free
            parts["csat"] = Fraction(2, 10) * csat
            parts["response"] = Fraction(1, 10) * response
            parts["csat_part"] = csat
            parts["response_part"] = response
            if candidate.csat is not None:
                parts["csat_rate"] = candidate.csat
            if candidate.avg_first_response_seconds is not None:
                parts["avg_first_response_seconds"] = candidate.avg_first_response_seconds
            parts["response_target_seconds"] = target
        score = sum((parts[name] for name in COMPONENTS[strategy]), Fraction(0))
        parts["skill_level"] = level
        key = (-score, recency, candidate.agent_id)
    parts["load"] = load
    parts["cap"] = cap
    shown = {name: round(float(value), 4) for name, value in parts.items()}
    return _Ranked(candidate, key, score, shown)


def _num(value: float) -> str:
    return repr(round(float(value), 4))


def _win_reason(strategy: Strategy, ranked: list[_Ranked]) -> str:
    best = ranked[0]
    agent = best.candidate
    of = f"of {len(ranked)}"
    if strategy is Strategy.ROUND_ROBIN:
        if agent.last_assigned_at is None:
            when = "never assigned"
        else:
            when = f"last assigned {agent.last_assigned_at.astimezone(UTC).isoformat()}"
        text = f"round_robin: agent {agent.agent_id} is next in turn ({when}), first {of}"
    elif strategy is Strategy.LEAST_LOADED:
        text = (
            f"least_loaded: agent {agent.agent_id} has the lowest load "
            f"({agent.load}/{agent.max_concurrent}), best {of}"
        )
    else:
        text = f"{strategy.value}: agent {agent.agent_id} scored {_num(best.score)}, best {of}"
    if len(ranked) > 1:
        runner = ranked[1]
        decided_by = next(i for i, (a, b) in enumerate(zip(best.key, runner.key, strict=True)) if a != b)
        if decided_by > 0:
            labels = _TIE_LABELS[strategy]
            text += f"; tied with {runner.candidate.agent_id} on {labels[0]}, broken by {labels[decided_by]}"
    return text


def _none_reason(excluded: list[tuple[str, list[tuple[tuple[int, int], str, str]]]]) -> str:
    if not excluded:
        return "no candidate: nobody to consider"
    counts: dict[str, int] = {}
    order: dict[str, tuple[int, int]] = {}
    for _, failed in excluded:
        for rank, category, _reason in failed:
            counts[category] = counts.get(category, 0) + 1
            order[category] = min(order.get(category, rank), rank)
    categories = sorted(counts, key=lambda c: (-counts[c], order[c], c))
    summary = ", ".join(f"{counts[c]} {c}" for c in categories)
    return f"no candidate: {summary}"


def decide(
    strategy: Strategy | str,
    candidates: Sequence[Candidate],
    requirement: Requirement,
    now: datetime,
    *,
    response_target_seconds: float = DEFAULT_RESPONSE_TARGET_SECONDS,
    handed_back_by: str | None = None,
) -> Decision:
    """Pick the best eligible candidate under ``strategy``, explaining the choice.

    The result does not depend on the order of ``candidates``; agent ids must be
    unique.  Ineligible agents never influence who wins or how the others score.
    ``handed_back_by``: the agent who gave the ticket back, excluded as ``"handed it back"``."""
    strategy = Strategy(strategy)
    _require_aware(now, "now")
    if not (math.isfinite(response_target_seconds) and response_target_seconds > 0):
        raise ValueError(f"response_target_seconds must be positive, not {response_target_seconds!r}")
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.agent_id in seen:
            raise ValueError(f"duplicate candidate {candidate.agent_id!r}")
        seen.add(candidate.agent_id)
    target = Fraction(response_target_seconds)

    ranked: list[_Ranked] = []
    excluded: list[tuple[str, list[tuple[tuple[int, int], str, str]]]] = []
    for candidate in candidates:
        failed = _checks(candidate, requirement, now)
        if candidate.agent_id == handed_back_by:
            failed.insert(0, ((-1, 0), "handed it back", "handed it back"))
        if failed:
            excluded.append((candidate.agent_id, failed))
        else:
            ranked.append(_rank(strategy, candidate, requirement, now, target))
    ranked.sort(key=lambda r: r.key)
    excluded.sort(key=lambda item: item[0])

    return Decision(
        strategy=strategy,
        winner=ranked[0].candidate.agent_id if ranked else None,
        scored=[Scored(r.candidate.agent_id, round(float(r.score), 4), r.parts) for r in ranked],
        excluded=[Excluded(agent_id, [reason for _, _, reason in failed]) for agent_id, failed in excluded],
        reason=_win_reason(strategy, ranked) if ranked else _none_reason(excluded),
    )

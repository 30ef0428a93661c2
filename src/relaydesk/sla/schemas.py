from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, field_validator

from relaydesk.core.schemas import Input, Output, TimeZone
from relaydesk.customers.schemas import Tier

Name = Annotated[str, StringConstraints(min_length=1, max_length=120)]
Seconds = Annotated[int, Field(ge=60, le=365 * 24 * 3600)]


def _end_of_day(value: Any) -> Any:
    """``24:00`` (what the API shows for the end of the day) is read as midnight; only an
    end may be 24:00, a start of 24:00 would be the next day's 00:00."""
    if value == "24:00":
        return time(0, 0)
    return value


def _whole_minute(value: time) -> time:
    """Opening hours are whole minutes, as written on a shop door: seconds would be lost
    in storage, so they are refused rather than silently dropped."""
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("give hours and minutes only, as HH:MM")
    return value


Opening = Annotated[time, AfterValidator(_whole_minute)]
Closing = Annotated[time, BeforeValidator(_end_of_day), AfterValidator(_whole_minute)]


class Interval(Input):
    start: Opening
    end: Closing = Field(description="00:00 or 24:00 means midnight at the end of the day.")


class IntervalOut(Output):
    start: str
    end: str


class CalendarIn(Input):
    name: Name
    timezone: TimeZone = Field(description="IANA time zone, e.g. Europe/Berlin.")
    weekly_hours: dict[Literal["0", "1", "2", "3", "4", "5", "6"], list[Interval]] = Field(
        description="Weekday (0 = Monday) to opening intervals in local time.")
    holidays: list[date] = Field(default_factory=list, max_length=400)

    model_config = {"json_schema_extra": {"examples": [{
        "name": "Berlin office", "timezone": "Europe/Berlin",
        "weekly_hours": {str(d): [{"start": "09:00", "end": "17:00"}] for d in range(5)},
        "holidays": ["2026-12-25", "2026-12-26"],
    }]}}


class CalendarPatch(Input):
    name: Name | None = None
    timezone: TimeZone | None = None
    weekly_hours: dict[Literal["0", "1", "2", "3", "4", "5", "6"], list[Interval]] | None = None
    holidays: list[date] | None = Field(default=None, max_length=400)

    model_config = {"json_schema_extra": {"examples": [{"holidays": ["2026-12-24", "2026-12-25"]}]}}


class CalendarOut(Output):
    id: uuid.UUID
    name: str
    timezone: str
    # Shown as it is given, so what one GET returns can be sent back unchanged.
    weekly_hours: dict[str, list[IntervalOut]]
    holidays: list[str]
    created_at: datetime

    @field_validator("weekly_hours", mode="before")
    @classmethod
    def _as_intervals(cls, stored: Any) -> Any:
        return {day: [{"start": start, "end": end} for start, end in spans] for day, spans in stored.items()} \
            if isinstance(stored, dict) else stored


class Targets(Input):
    first_response: Seconds
    next_response: Seconds
    resolution: Seconds


class PolicyConditions(Input):
    category_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    customer_tiers: list[Tier] = Field(default_factory=list)


class PolicyIn(Input):
    name: Name
    is_default: bool = False
    conditions: PolicyConditions = Field(default_factory=PolicyConditions)
    targets: dict[Literal["LOW", "MEDIUM", "HIGH", "URGENT"], Targets] | None = Field(
        default=None, description="Seconds per priority; missing priorities take the built-in defaults.")
    warning_at: float = Field(default=0.75, gt=0, lt=1)
    critical_at: float = Field(default=0.90, gt=0, lt=1)
    calendar_id: uuid.UUID | None = Field(default=None, description="Business hours; null means 24/7.")

    model_config = {"json_schema_extra": {"examples": [{
        "name": "VIP", "conditions": {"customer_tiers": ["vip"]},
        "targets": {"URGENT": {"first_response": 1800, "next_response": 3600, "resolution": 14400}},
        "warning_at": 0.75, "critical_at": 0.9,
    }]}}


class PolicyPatch(Input):
    name: Name | None = None
    is_default: bool | None = None
    conditions: PolicyConditions | None = None
    targets: dict[Literal["LOW", "MEDIUM", "HIGH", "URGENT"], Targets] | None = None
    warning_at: float | None = Field(default=None, gt=0, lt=1)
    critical_at: float | None = Field(default=None, gt=0, lt=1)
    calendar_id: uuid.UUID | None = None

    model_config = {"json_schema_extra": {"examples": [{"critical_at": 0.85}]}}


class PolicyOut(Output):
    id: uuid.UUID
    name: str
    is_default: bool
    conditions: dict[str, Any]
    targets: dict[str, Any]
    warning_at: float
    critical_at: float
    calendar_id: uuid.UUID | None
    created_at: datetime


class ClockOut(Output):
    kind: str
    state: str
    due_at: datetime | None
    remaining_seconds: float | None = Field(description="Business seconds left; negative once overdue.")
    percent_used: float
    target_seconds: float
    paused: bool
    breached_at: datetime | None
    met_at: datetime | None


class SlaOut(Output):
    ticket_id: uuid.UUID
    policy: str
    priority: str
    state: str
    breached: bool
    escalation_level: int
    business_hours: str
    clocks: list[ClockOut]


class EscalationKind(StrEnum):
    MANUAL = "manual"
    CUSTOMER_REQUEST = "customer_request"
    HIGH_IMPACT = "high_impact"
    INCIDENT = "incident"


class CategoryPolicyIn(Input):
    policy_id: uuid.UUID | None = Field(description="The SLA policy for the category's tickets when no policy's "
                                                    "conditions match them more closely; null: none of its own.")

    model_config = {"json_schema_extra": {"examples": [{"policy_id": "01a245d0-eba7-7fa5-95a1-ab97033a9333"}]}}


class EscalationIn(Input):
    kind: EscalationKind = EscalationKind.MANUAL
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]

    model_config = {"json_schema_extra": {"examples": [
        {"kind": "incident", "reason": "Checkout is down for every customer"}]}}


class EscalationOut(Output):
    id: uuid.UUID
    ticket_id: uuid.UUID
    level: int
    kind: str
    reason: str
    raised_by: uuid.UUID | None
    created_at: datetime

from __future__ import annotations

import uuid
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from relaydesk.core.schemas import Email, Input, Language, Name, Output, Password, TimeZone

SkillName = Annotated[str, StringConstraints(min_length=1, max_length=60)]
StaffRole = Literal["agent", "supervisor", "admin"]



class Availability(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class ShiftIn(Input):
    weekday: int = Field(ge=0, le=6, description="0 = Monday … 6 = Sunday.")
    start: time
    end: time = Field(description="May be before start for a shift that runs past midnight; 00:00 means midnight.")


class ShiftOut(Output):
    weekday: int
    start: time
    end: time


class SkillIn(Input):
    skill: SkillName
    level: int = Field(ge=1, le=5)


class SkillOut(Output):
    skill: str
    level: int


class AgentIn(Input):
    name: Name
    email: Email
    password: Password
    role: StaffRole = "agent"
    skills: list[SkillIn] = Field(default_factory=list, max_length=50)
    languages: list[Language] = Field(default_factory=lambda: ["en"], max_length=20)
    max_concurrent: int = Field(default=5, ge=0, le=500)
    availability: Availability = Availability.OFFLINE
    is_senior: bool = False
    timezone: TimeZone | None = Field(
        default=None, description="Their own time zone; null: the workspace's (its settings), else UTC.")
    team_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    shifts: list[ShiftIn] = Field(default_factory=list, max_length=50,
                                  description="Weekly working hours in the agent's time zone; none = always.")

    model_config = {"json_schema_extra": {"examples": [{
        "name": "Sam Support", "email": "sam@acme.example.com", "password": "a long passphrase",
        "role": "agent", "skills": [{"skill": "billing", "level": 4}], "languages": ["en", "vi"],
        "max_concurrent": 6, "availability": "online",
    }]}}


class AgentPatch(Input):
    name: Name | None = None
    role: StaffRole | None = None
    is_active: bool | None = None
    skills: list[SkillIn] | None = Field(default=None, max_length=50)
    languages: list[Language] | None = Field(default=None, max_length=20)
    max_concurrent: int | None = Field(default=None, ge=0, le=500)
    availability: Availability | None = None
    is_senior: bool | None = None
    timezone: TimeZone | None = Field(default=None, description="null: the workspace's time zone from now on.")
    team_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)
    shifts: list[ShiftIn] | None = Field(default=None, max_length=50)

    model_config = {"json_schema_extra": {"examples": [{"availability": "away"}, {"skills": [{"skill": "refunds", "level": 3}], "max_concurrent": 8}]}}


class AgentOut(Output):
    id: uuid.UUID
    name: str
    email: str
    role: str
    is_active: bool
    max_concurrent: int
    availability: Availability
    is_senior: bool
    languages: list[str]
    timezone: str | None = Field(description="null: none of their own; times are written in the workspace's.")
    skills: list[SkillOut]
    team_ids: list[uuid.UUID]
    shifts: list[ShiftOut]
    last_assigned_at: datetime | None
    created_at: datetime


class TeamIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    lead_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] = Field(default_factory=list, max_length=500)

    model_config = {"json_schema_extra": {"examples": [{"name": "Billing & Accounts", "description": "Invoices, refunds, account changes"}]}}


class TeamPatch(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    lead_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)

    model_config = {"json_schema_extra": {"examples": [{"lead_id": "01a21043-07a2-7c62-b8f9-2e944366261c"}]}}


class TeamOut(Output):
    id: uuid.UUID
    name: str
    description: str
    lead_id: uuid.UUID | None
    member_ids: list[uuid.UUID]
    created_at: datetime

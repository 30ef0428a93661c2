"""Base classes for request and response bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

T = TypeVar("T")


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _without_controls(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, list):
        return [_CONTROL.sub("", v) if isinstance(v, str) else v for v in value]
    return value


class Input(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped. Control
    characters other than tab and line breaks are dropped from text: nobody types them,
    PostgreSQL refuses NUL in text, and a stray bell or escape only garbles what agents read."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _without_controls(value)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# A language tag (en, vi, pt-BR), kept in lower case so "VI" and "vi" are one language.
Language = Annotated[str, StringConstraints(min_length=2, max_length=16, pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})?$",
                                            to_lower=True)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=200)]
Email = EmailStr


def _known_timezone(value: str) -> str:
    if value != "UTC" and value not in _TIMEZONES:
        raise ValueError("not a known IANA time zone, e.g. Europe/Berlin")
    return value


_TIMEZONES = frozenset(available_timezones())
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_known_timezone)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is past the last moment there is
        raise ValueError("is out of range") from None


# A moment someone gives us: with its time zone (a bare 2026-01-31T09:00 could be any of
# 26 hours), and one that exists in UTC, where it is compared and stored.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]

"""Base classes for request and response bodies."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

T = TypeVar("T")


class Input(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=200)]
Email = EmailStr


def _known_timezone(value: str) -> str:
    if value != "UTC" and value not in _TIMEZONES:
        raise ValueError("not a known IANA time zone, e.g. Europe/Berlin")
    return value


_TIMEZONES = frozenset(available_timezones())
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_known_timezone)]

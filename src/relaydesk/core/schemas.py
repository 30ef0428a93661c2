"""Base classes for request and response bodies."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
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
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

T = TypeVar("T")


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _without_controls(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, list):
        return [_CONTROL.sub("", v) if isinstance(v, str) else v for v in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogates(value: Any, at: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    """Where in free-form JSON a string (or a key) holds a lone UTF-16 surrogate."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = _SURROGATE.sub("\ufffd", key) if isinstance(key, str) else key
            if shown != key:
                yield (*at, shown, "[key]")  # as pydantic names a typed key's
            yield from _lone_surrogates(item, (*at, shown))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _lone_surrogates(item, (*at, index))


# How deep free-form JSON (customer metadata, a preview's context) may nest. Real data
# nests a few levels; orjson, which writes JSON columns, stops at 255, and every walk over
# the value (and the renderer's) recurses once per level.
MAX_JSON_DEPTH = 32


def _too_deep(value: Any, at: tuple[str | int, ...] = (), depth: int = 1) -> tuple[str | int, ...] | None:
    """Where free-form JSON first nests past ``MAX_JSON_DEPTH`` (the field's own value is
    level 1), if it does; it looks no deeper than that."""
    if isinstance(value, dict):
        items: Iterator[tuple[str | int, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    if depth > MAX_JSON_DEPTH:
        return at
    for key, item in items:
        found = _too_deep(item, (*at, key), depth + 1)
        if found is not None:
            return found
    return None


class Input(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped. Control
    characters other than tab and line breaks are dropped from text: nobody types them,
    PostgreSQL refuses NUL in text, and a stray bell or escape only garbles what agents read."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _without_controls(value)

    @field_validator("*", mode="after")
    @classmethod
    def _text_in_free_form_json(cls, value: Any) -> Any:
        """Free-form JSON nested past ``MAX_JSON_DEPTH`` is refused where it goes too deep.
        JSON's "\\ud800" escape parses to a lone surrogate, which no UTF-8 text holds:
        a typed string refuses it already (string_unicode), but free-form JSON (customer
        metadata, a preview's context) would carry it on to fail in the database or the
        renderer. Refused where it is (``metadata.k``), as a typed string would be."""
        if not isinstance(value, (dict, list)):
            return value
        too_deep = _too_deep(value)
        if too_deep is not None:
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(type=PydanticCustomError(
                "json_too_deep", "Input nests deeper than {limit} levels", {"limit": MAX_JSON_DEPTH}),
                loc=too_deep, input="")])
        found = [InitErrorDetails(type=PydanticCustomError(
            "string_unicode", "Input should be valid text: it holds a lone UTF-16 surrogate"), loc=at, input="")
            for at in _lone_surrogates(value, ())]
        if found:
            raise ValidationError.from_exception_data(cls.__name__, found)
        return value


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


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY_OR_MOMENT = ("Give a date (2026-12-05, the whole day in UTC) or a date and time with its time zone "
                  "(2026-12-05T09:00:00Z).")


def _day_or_moment(*, end_of_day: bool) -> Callable[[Any, ValidatorFunctionWrapHandler], datetime]:
    """A range's bound: a moment, or a date, which people mean as the whole day."""
    def validate(value: Any, moment: ValidatorFunctionWrapHandler) -> datetime:
        if isinstance(value, str) and _DATE_ONLY.fullmatch(value):
            try:
                start = datetime.combine(date.fromisoformat(value), time(), UTC)
                # Ranges end before their upper bound, so the day ends where the next begins.
                return start + timedelta(days=1) if end_of_day else start
            except (ValueError, OverflowError):  # 2026-02-30; the day after 9999-12-31
                raise PydanticCustomError("date_or_moment", _DAY_OR_MOMENT) from None
        try:
            return moment(value)
        except ValidationError as exc:
            if any(e["type"] == "value_error" for e in exc.errors()):  # a moment past the last one in UTC
                raise
            raise PydanticCustomError("date_or_moment", _DAY_OR_MOMENT) from None
    return validate


# The bounds of a date filter (``created_from``, ``created_to``): a moment with its time
# zone, or a date: from its start (midnight UTC), to its end (the next midnight, excluded).
RangeStart = Annotated[Moment, WrapValidator(_day_or_moment(end_of_day=False))]
RangeEnd = Annotated[Moment, WrapValidator(_day_or_moment(end_of_day=True))]

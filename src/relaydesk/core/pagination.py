"""Opaque keyset cursors: the last row's sort value and id, base64-encoded JSON."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from relaydesk.core.errors import ValidationFailed


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except Exception as exc:  # any decoding failure is the caller's bad cursor
        raise ValidationFailed("The cursor is not one this server gave out.", field="cursor") from exc
    if not isinstance(values, list) or len(values) != length:
        raise ValidationFailed("The cursor is not one this server gave out.", field="cursor")
    return values


def encode_keyset(value: Any, row_id: Any, *, sort: str | None = None) -> str:
    """A cursor for lists ordered by (a timestamp, id). ``sort`` names the order of a
    list that has several: the position in one order means nothing in another."""
    values = [value.isoformat() if hasattr(value, "isoformat") else value, str(row_id)]
    return encode_cursor(values if sort is None else [*values, sort])


def decode_keyset(cursor: str, *, value: Literal["datetime", "int"] = "datetime",
                  nullable: bool = False, sort: str | None = None) -> tuple[Any, uuid.UUID]:
    """The (sort value, id) a cursor holds; the value a timestamp or a whole number, and
    ``None`` only where the sort's column may be empty. ``sort``: the order asked for,
    which must be the one the cursor was made in."""
    if sort is None:
        given, row_id = decode_cursor(cursor, 2)
    else:
        given, row_id, made_in = decode_cursor(cursor, 3)
        if made_in != sort:
            raise ValidationFailed("This cursor belongs to another sort order; start again without it.",
                                   field="cursor")
    try:
        if given is None and nullable:
            sort_value = None
        elif value == "int":
            if given.__class__ is not int:
                raise TypeError("not a whole number")
            sort_value = given
        else:
            when = datetime.fromisoformat(given)
            sort_value = when if when.tzinfo else when.replace(tzinfo=UTC)
        return sort_value, uuid.UUID(row_id)
    except (TypeError, ValueError, AttributeError) as exc:  # AttributeError: an id that is not a string
        raise ValidationFailed("The cursor is not one this server gave out.", field="cursor") from exc

"""Small helpers shared by every router."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Query, Request

from relaydesk.core.errors import ValidationFailed

Limit = Annotated[int, Query(ge=1, le=200, description="Page size (1–200).")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` from the previous page.")]


def now(request: Request) -> datetime:
    return request.app.state.runtime.clock.now()


def uuid_cursor(cursor: str | None) -> uuid.UUID | None:
    """Cursors over id-ordered lists are the last id itself."""
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise ValidationFailed("The cursor is not one this server gave out.", field="cursor") from None

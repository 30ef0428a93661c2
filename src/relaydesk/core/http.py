"""Small helpers shared by every router."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk.core.errors import ValidationFailed

# Files people sent, served back as they are. Opened on their own (a link followed, an
# HTML or PDF file), they run no script and load nothing as the app: the policy binds the
# file's own page, so an image still shows in an <img> on the app's.
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}

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


class AnswerHead:
    """HEAD is answered wherever GET is: the GET's status and headers (its length too),
    without the body. Uptime checks and load balancers probe with HEAD, and FastAPI's
    routes, unlike Starlette's, take only the methods they are declared with."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})

        await self.app({**scope, "method": "GET"}, receive, without_body)

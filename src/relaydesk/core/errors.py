"""Typed domain errors carrying their HTTP status and a stable code.

One handler (``core.problems``) turns them into RFC 9457 problem+json.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """``keep_changes``: the failure is itself a fact to record (a failed sign-in, a
    revoked token family), so the unit of work commits before answering with the error."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self, detail: str, *, field: str | None = None, code: str | None = None,
        extra: dict[str, Any] | None = None, keep_changes: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.keep_changes = keep_changes
        if code:
            self.code = code
        self.field = field
        self.extra = extra or {}


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Unauthenticated(AppError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Not allowed"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Status change not allowed"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_failed", "Invalid input"


class TooManyAttempts(AppError):
    status, code, title = 429, "too_many_attempts", "Too many attempts"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"

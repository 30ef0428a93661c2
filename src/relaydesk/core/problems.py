"""RFC 9457 problem+json for every error the API can answer with."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from relaydesk.core.db import unreachable
from relaydesk.core.errors import AppError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://relaydesk.dev/problems/"
log = structlog.get_logger("relaydesk.errors")


class ProblemResponse(Response):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int, code: str, title: str, detail: str, *, errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method the path takes. Starlette's 405 names only the methods of the first
    route with the path, and GET and POST /mailboxes are two routes."""
    routes = request.app.router.routes
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]
    if "GET" in allowed and "HEAD" not in allowed:  # answered for every GET (core.http.AnswerHead)
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return ", ".join(allowed)


def _invalid(errors: list[dict[str, str]]) -> ProblemResponse:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem(422, "validation_failed", "Invalid input", f"Check these fields: {fields}.", errors=errors)


class RefuseNul:
    """A NUL in the URL is answered before any route reads it: in a query parameter a 422
    naming it, in the path a 404 (no workspace, ticket or template can be called that).

    PostgreSQL can neither store nor compare a NUL in text, so the lookup fails there as
    a 500. Bodies drop the character instead (``Input``): there it is stray text someone
    saves, while here dropping it would change what is looked up (``email=a%00b@x.com``
    would find ab@x.com)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _nul_refused(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_refused(scope: Scope) -> ProblemResponse | None:
    if "\x00" in scope["path"]:
        return problem(404, "not_found", "Not found", "Not Found")
    if b"%00" not in scope["query_string"]:
        return None
    names = sorted({name for name, value in Request(scope).query_params.multi_items() if "\x00" in value})
    return _invalid([{"field": name, "message": "must not contain a NUL character"} for name in names]) \
        if names else None


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> ProblemResponse:
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        # Clients and proxies read the wait from the header; the body says it too.
        wait = exc.extra.get("retry_after")
        return problem(exc.status, exc.code, exc.title, exc.detail, errors=errors, extra=exc.extra,
                       headers={"Retry-After": str(wait)} if wait is not None else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> ProblemResponse:
        raw = exc.errors()
        if any(e.get("type") == "json_invalid" for e in raw):
            return problem(400, "malformed_json", "Malformed JSON",
                           "The request body is not valid JSON.", errors=[{"field": "body", "message": "invalid JSON"}])
        return _invalid([{"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
                         for e in raw])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # The parser gives up on JSON nested about a thousand deep, and FastAPI turns
            # that into a bare 400: it is a body we cannot read, like any other.
            return problem(400, "malformed_json", "Malformed JSON", "The request body nests too deeply to read.",
                           errors=[{"field": "body", "message": "nested too deeply"}])
        code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem(exc.status_code, code, title, detail, headers=headers)

    @app.exception_handler(OperationalError)
    async def _database(_request: Request, exc: OperationalError) -> ProblemResponse:
        if "locked" in str(exc.orig):  # another process held SQLite's write lock past the busy timeout
            log.warning("database_busy", error=str(exc.orig))
            return problem(503, "database_busy", "Busy", "The database is busy with another process's write; "
                           "nothing was changed. Try again in a moment.", headers={"Retry-After": "1"})
        return _unavailable_or_internal_error(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> ProblemResponse:
        return _unavailable_or_internal_error(exc)


def _unavailable_or_internal_error(exc: Exception) -> ProblemResponse:
    """A database that is down or restarting is not a bug: said as such, with when to
    retry, and logged in a line rather than a traceback per request."""
    if unreachable(exc):
        first_line = (str(exc).splitlines() or [""])[0]  # not the statement and its parameters
        log.warning("database_unavailable", error=f"{type(exc).__name__}: {first_line[:300]}")
        return problem(503, "database_unavailable", "Database unavailable",
                       "The database cannot be reached right now. Try again in a moment.", headers={"Retry-After": "5"})
    return _internal_error(exc)


def _internal_error(exc: Exception) -> ProblemResponse:
    log.exception("unhandled_error", error=type(exc).__name__)
    return problem(500, "internal_error", "Internal error", "Something went wrong on our side; it has been logged.")

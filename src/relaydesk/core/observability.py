"""Structured JSON logs with a request id, Prometheus metrics, and a body-size guard.

All three are plain ASGI middleware: cheap on the hot path and blind to the domains.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_plus

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


_TOKEN_IN_QUERY = re.compile(r"((?:access_)?token=)[^&\s\"']+")
_QUERY = re.compile(r"\?([^\s\"'#]+)")


class _RedactTokens(logging.Filter):
    """uvicorn logs each WebSocket handshake with its query string, and browsers pass
    the access token there (they cannot set headers on a WebSocket): keep it out of the
    logs, where anyone reading them could sign in with it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message or "token=" in message:
            redacted = _TOKEN_IN_QUERY.sub(r"\1[redacted]", _QUERY.sub(_redact_query, message))
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


def _redact_query(query: re.Match[str]) -> str:
    # The app reads parameter names decoded (`tok%65n=` is `token=` to it), so the log must
    # judge them decoded too, or an escaped name would carry the token past the filter.
    pairs = []
    for pair in query.group(1).split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and unquote_plus(name).lower().endswith("token"):  # token, chat_token
            pair = f"{name}=[redacted]"
        pairs.append(pair)
    return "?" + "&".join(pairs)


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    for server_log in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(server_log)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o, default=str).decode())
        if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # What the libraries log through the standard library (uvicorn, Taskiq's failed jobs
    # with their tracebacks, SQLAlchemy) comes out as the same JSON lines, so that one log
    # shipper reads them all. Libraries speak from WARNING up (aiosmtpd would log every
    # SMTP session at INFO); uvicorn's own logger is set to the configured level by uvicorn.
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_STDLIB_HANDLER)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _STDLIB_HANDLER] + [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


_STDLIB_HANDLER = "relaydesk"


class Metrics:
    """The process's Prometheus registry; one per app so tests stay independent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "relaydesk_http_requests_total", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "relaydesk_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.tickets_created = Counter(
            "relaydesk_tickets_created_total", "Tickets created, by channel, by this process",
            ["channel"], registry=self.registry,
        )
        self.jobs = Counter(
            "relaydesk_jobs_total", "Background jobs this process ran, by job and outcome (done, refused, failed)",
            ["job", "outcome"], registry=self.registry,
        )
        self.job_duration = Histogram(
            "relaydesk_job_duration_seconds", "How long background jobs took, retries included, by job",
            ["job"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def observe_job(self, job: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(job, outcome).inc()
        self.job_duration.labels(job).observe(seconds)

    def count_events(self, events: Sequence[Any]) -> None:
        """Outbox events this process has just committed: every ticket, whatever made it
        (the API, the chat, an email, a text), counts where it was created."""
        for event in events:
            if event.type == "ticket.created":
                self.tickets_created.labels(event.payload.get("channel") or "unknown").inc()


class RequestContextMiddleware:
    """Gives every request an id (honouring a sane incoming X-Request-ID), logs it, and
    measures it by route template so metrics do not explode with ids."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("relaydesk.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if route not in ("/healthz", "/metrics"):
                self.log.info("request", method=method, route=route, status=status,
                              duration_ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
    return None


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit before they are read into memory.

    Uploads get their own, larger limit; both answer 413 problem+json."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int, upload_path: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_path = upload_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Multipart framing adds a little; allow it so a file of exactly the cap fits.
        limit = self.upload_max_bytes + 64 * 1024 if scope["path"] == self.upload_path else self.max_bytes
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        too_large = False

        async def guarded_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, guarded_receive, send)
        except _BodyTooLarge:
            await _too_large(send, limit)
        except Exception:
            if too_large:
                await _too_large(send, limit)
            else:
                raise


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps({
        "type": "https://relaydesk.dev/problems/payload-too-large",
        "title": "Payload too large",
        "status": 413,
        "detail": f"The request body is larger than the {limit} bytes this endpoint accepts.",
        "code": "payload_too_large",
        "errors": [{"field": "body", "message": f"at most {limit} bytes"}],
    })
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

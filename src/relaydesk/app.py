"""The ASGI application: routers, middleware, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk import __version__
from relaydesk import migrate as migrations
from relaydesk.agents.api import router as agents_router
from relaydesk.channels.api import router as channels_router
from relaydesk.channels.chat_api import ChatCors
from relaydesk.channels.chat_api import router as chat_router
from relaydesk.channels.messaging_api import router as messaging_router
from relaydesk.config import Settings
from relaydesk.core.heap import settle_after_start
from relaydesk.core.http import AnswerHead
from relaydesk.core.observability import BodySizeLimitMiddleware, RequestContextMiddleware, configure_logging
from relaydesk.core.problems import RefuseNul, install_problem_handlers, problem
from relaydesk.customers.api import router as customers_router
from relaydesk.identity.api import router as identity_router
from relaydesk.notifications.api import router as notifications_router
from relaydesk.realtime.api import router as realtime_router
from relaydesk.realtime.sockets import SocketRegistry
from relaydesk.routing.api import router as routing_router
from relaydesk.runtime import Runtime, build_runtime
from relaydesk.sla.api import router as sla_router
from relaydesk.tickets.api import router as tickets_router
from relaydesk.wiring import background, install_jobs

API_DESCRIPTION = """
Relaydesk's REST API. Sign in with `POST /api/v1/auth/login` and send the access token as
`Authorization: Bearer <token>` (or create a personal API token under `/api/v1/me/api-tokens`).
Every error is `application/problem+json` (RFC 9457) with a stable `code`, and for invalid
input an `errors` list naming each offending field.
"""
DOCS_ASSETS = "/api/v1/docs/assets"


class _Relaydesk(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Around Starlette's outermost ServerErrorMiddleware, which answers an unhandled
        # error with the 500 handler: inside it, that answer went out without X-Request-ID
        # and its traceback was logged without the request id.
        return RequestContextMiddleware(AnswerHead(super().build_middleware_stack()),
                                        metrics=self.state.runtime.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        answered = False

        async def watched(message: Message) -> None:
            nonlocal answered
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True

        try:
            await super().__call__(scope, receive, watched)
        except Exception:
            # Starlette re-raises an error its 500 handler has already answered and logged,
            # for the server to log once more; uvicorn then also closes the keep-alive
            # connection, so the client's next request on it failed with a reset. An error
            # before the whole answer was sent still goes up, so the server closes the
            # connection rather than leave a half-sent response hanging.
            if not answered:
                raise


def create_app(runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or build_runtime()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Embedded: jobs run in this process, so it also keeps the schedule. Scaled:
        # workers run jobs and `relaydesk scheduler` keeps the schedule; every server
        # still delivers the events its own requests commit.
        sockets.start()
        async with background(runtime, dispatcher=True, scheduler=not runtime.scaled, smtp=not runtime.scaled,
                              runs_jobs=not runtime.scaled):
            settle_after_start()
            yield
        await sockets.stop()
        await runtime.close()

    app = _Relaydesk(
        title="Relaydesk", version=__version__, description=API_DESCRIPTION, lifespan=lifespan,
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.runtime = runtime
    sockets = SocketRegistry(runtime)
    runtime.hub.listen(sockets)
    app.state.sockets = sockets
    install_jobs(runtime)
    app.state.db = runtime.db
    install_problem_handlers(app)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, _exc: IntegrityError) -> Response:
        # The services check uniqueness first; this answers the race where two requests
        # pass that check at once.
        return problem(409, "conflict", "Conflict", "This change clashes with data saved meanwhile; retry it.")

    for router in (identity_router, agents_router, customers_router, tickets_router, routing_router, sla_router,
                   notifications_router, realtime_router, channels_router, chat_router, messaging_router):
        app.include_router(router)

    # Swagger UI from the copy fastapi-offline ships, not from a CDN: a server offline or
    # behind a firewall would otherwise show a blank page.
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(resources.files("fastapi_offline") / "static")),
              name="docs-assets")

    @app.get("/api/v1/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json", title="Relaydesk API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Once the schema is at this code's revision it stays there while we run (migrations
    # only move it forward), so after one good answer a probe is a plain SELECT 1 again.
    schema_current = False

    @app.get("/readyz", tags=["operations"], summary="The database answers and its schema is up to date")
    async def readyz() -> Response:
        nonlocal schema_current
        try:
            if schema_current:
                async with runtime.db.read_engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            else:
                revision = await migrations.current_revision(runtime.db)
        except Exception as exc:  # any failure means not ready
            return problem(503, "not_ready", "Not ready", f"The database is unreachable: {type(exc).__name__}.")
        if not schema_current:
            if migrations.schema_behind(revision):
                needed = migrations.head_revision()
                return problem(503, "schema_behind", "Not ready",
                               f"The database schema is at revision {revision or 'none (an empty database)'}, "
                               f"the code needs {needed}: run `relaydesk migrate`.",
                               extra={"schema_revision": revision, "required_revision": needed})
            schema_current = True
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    settings = runtime.settings
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       upload_max_bytes=settings.max_upload_bytes, upload_path="/api/v1/uploads")
    app.add_middleware(RefuseNul)  # inside ChatCors: the chat widget's browser must be able to read the 422
    app.add_middleware(ChatCors)
    return app


def app_from_environment() -> FastAPI:
    """What `relaydesk serve` runs, once per server process."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(build_runtime(settings))

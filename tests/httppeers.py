"""A tiny HTTP server on loopback that records what is posted to it: the far end of
webhooks and SMS providers in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.delay = 0.0  # seconds before each answer: a slow target

    async def endpoint(self, request: Request) -> Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            return Response(status_code=503)
        self.requests.append((dict(request.headers), await request.body()))
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[int]:
    """``app`` behind a real uvicorn on a free loopback port (yielded), for the test's duration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """(the recorder, the URL to post to)"""
    hooks = Receiver()
    async with served(Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])) as port:
        yield hooks, f"http://127.0.0.1:{port}/hook"

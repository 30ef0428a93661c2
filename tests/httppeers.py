"""A tiny HTTP server on loopback that records what is posted to it: the far end of
webhooks and SMS providers in tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0

    async def endpoint(self, request: Request) -> Response:
        if self.fail_next:
            self.fail_next -= 1
            return Response(status_code=503)
        self.requests.append((dict(request.headers), await request.body()))
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """(the recorder, the URL to post to)"""
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield hooks, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await task

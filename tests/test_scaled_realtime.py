"""Live updates across server processes in the scaled mode: two `relaydesk serve` on one
PostgreSQL and a Redis of the test's own (so the test can take it away and bring it back)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from conftest import _create_pg_database, _drop_pg_database, service_unavailable
from test_quickstart import free_port
from test_scaled import _stop

BIN = Path(sys.prefix) / "bin" / "relaydesk"
PASSWORD = "correct horse battery staple"


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with __import__("socket").create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
async def two_servers(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[list[str], PrivateRedis]]:
    """Two servers on one Redis; parametrised indirectly with False, they start while it is away."""
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed")
    redis = PrivateRedis(free_port())
    if getattr(request, "param", True):
        redis.start()
    pg_url = await _create_pg_database()
    env = {**os.environ, "RELAYDESK_DATABASE_URL": pg_url, "RELAYDESK_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
           "RELAYDESK_DATA_DIR": str(tmp_path), "RELAYDESK_LOG_LEVEL": "WARNING",
           "RELAYDESK_PASSWORD_HASH_TIME_COST": "1", "RELAYDESK_PASSWORD_HASH_MEMORY_KIB": "1024",
           "RELAYDESK_SECRET_KEY": secrets.token_hex(16), "RELAYDESK_OUTBOX_POLL_SECONDS": "0.5"}
    subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
    procs, bases = [], []
    for i in range(2):
        port = free_port()
        log = (tmp_path / f"serve{i}.log").open("w")
        procs.append(subprocess.Popen([str(BIN), "serve"], env={**env, "RELAYDESK_PORT": str(port)}, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        bases.append(f"127.0.0.1:{port}")
    try:
        for i, base in enumerate(bases):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("server did not start: " + (tmp_path / f"serve{i}.log").read_text())
                await asyncio.sleep(0.2)
        yield bases, redis
    finally:
        _stop(procs)
        redis.stop()
        await _drop_pg_database(pg_url)


async def next_frame(sock, want: str, timeout: float = 15.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        frame = orjson.loads(await asyncio.wait_for(sock.recv(), max(deadline - time.monotonic(), 0.01)))
        if frame["type"] == want or (want == "message" and frame.get("event") == "message.posted"):
            return frame


async def desk(api: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str], dict]:  # noqa: ANN001
    """A workspace with one customer's ticket: the admin's token, their headers, the ticket."""
    email = f"a@{name.lower()}.example.com"
    r = await api.post("/api/v1/workspaces", json={"name": name, "admin_name": "A", "admin_password": PASSWORD,
                                                   "admin_email": email})
    slug = r.json()["workspace"]["slug"]
    login = await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, "workspace": slug})
    token = login.json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    customer = (await api.post("/api/v1/customers", headers=admin,
                               json={"name": "C", "email": "c@customers.example.com"})).json()
    ticket = (await api.post("/api/v1/tickets", headers=admin, json={
        "subject": "Where is my order?", "description": "Ordered last week.", "requester_id": customer["id"]})).json()
    return token, admin, ticket


async def test_a_reply_through_one_server_reaches_a_socket_on_the_other_and_survives_redis_going_away(two_servers):
    (first, second), redis = two_servers
    async with httpx.AsyncClient(base_url=f"http://{first}", timeout=30) as api:
        token, admin, ticket = await desk(api, "Twin")

        async with connect(f"ws://{second}/api/v1/ws?token={token}&subscribe=ticket:{ticket['id']}") as sock:
            await next_frame(sock, "subscribed")
            r = await api.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin,
                               json={"body": "Posted on the first server"})
            assert r.status_code == 201
            event = await next_frame(sock, "message")
            assert event["data"]["body_text"] == "Posted on the first server"

            redis.stop()
            assert (await next_frame(sock, "live"))["state"] == "degraded"
            r = await api.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin,
                               json={"body": "Posted while Redis was away"})
            assert r.status_code == 201, "the API keeps working without Redis"
            # A socket opened meanwhile is told as well: a dashboard must not look live then.
            async with connect(f"ws://{second}/api/v1/ws?token={token}") as late:
                assert (await next_frame(late, "hello"))["type"] == "hello"
                assert (await next_frame(late, "live"))["state"] == "degraded"

            redis.start()
            assert (await next_frame(sock, "live", timeout=30))["state"] == "up"
            missed = await next_frame(sock, "message", timeout=30)
            assert missed["data"]["body_text"] == "Posted while Redis was away"
            assert missed["id"] > event["id"]


@pytest.mark.parametrize("two_servers", [False], ids=["redis_away_at_start"], indirect=True)
async def test_a_server_started_while_redis_is_away_tells_its_sockets_so(two_servers):
    (first, second), redis = two_servers
    async with httpx.AsyncClient(base_url=f"http://{first}", timeout=30) as api:
        token, admin, ticket = await desk(api, "Cold")
        await asyncio.sleep(1.5)  # the server has tried Redis at least once since it started
        async with connect(f"ws://{second}/api/v1/ws?token={token}&subscribe=ticket:{ticket['id']}") as sock:
            assert (await next_frame(sock, "hello"))["type"] == "hello"
            assert (await next_frame(sock, "live", timeout=5))["state"] == "degraded"
            r = await api.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin,
                               json={"body": "Posted before Redis ever answered"})
            assert r.status_code == 201

            redis.start()
            assert (await next_frame(sock, "live", timeout=30))["state"] == "up"
            missed = await next_frame(sock, "message", timeout=30)
            assert missed["data"]["body_text"] == "Posted before Redis ever answered"


async def test_an_agent_with_tabs_on_two_servers_stays_online_until_the_last_one_closes(two_servers):
    """Each server sees only its own sockets; closing the tab on one server must not take
    an agent offline who still works in a tab on the other."""
    (first, second), _redis = two_servers
    async with httpx.AsyncClient(base_url=f"http://{first}", timeout=30) as api:
        r = await api.post("/api/v1/workspaces", json={"name": "Tabs", "admin_name": "A", "admin_password": PASSWORD,
                                                       "admin_email": "a@tabs.example.com"})
        slug = r.json()["workspace"]["slug"]
        login = await api.post("/api/v1/auth/login", json={"email": "a@tabs.example.com", "password": PASSWORD,
                                                           "workspace": slug})
        token, me = login.json()["access_token"], login.json()["user"]["id"]
        admin = {"Authorization": f"Bearer {token}"}

        async def availability() -> str:
            return (await api.get(f"/api/v1/agents/{me}", headers=admin)).json()["availability"]

        async with connect(f"ws://{second}/api/v1/ws?token={token}") as on_second:
            await next_frame(on_second, "hello")
            async with connect(f"ws://{first}/api/v1/ws?token={token}") as on_first:
                await next_frame(on_first, "hello")
                await on_first.send(orjson.dumps({"type": "presence", "status": "online"}).decode())
                await next_frame(on_first, "presence")
                assert await availability() == "online"
            await asyncio.sleep(1)  # the first server has seen its socket close
            assert await availability() == "online"
        deadline = time.monotonic() + 10
        while await availability() != "offline":
            assert time.monotonic() < deadline, "the last tab closed and the agent is still shown online"
            await asyncio.sleep(0.2)


async def test_a_hanging_redis_neither_slows_the_api_nor_loses_live_events(two_servers):
    """Redis stopped but not gone (a partition, a stuck failover) refuses nothing, so it
    is noticed by a ping that gets no answer: the API stays fast, sockets are told, and
    what they missed is replayed once Redis answers again."""
    (first, second), redis = two_servers
    async with httpx.AsyncClient(base_url=f"http://{first}", timeout=30) as api:
        token, admin, ticket = await desk(api, "Hang")

        async with connect(f"ws://{second}/api/v1/ws?token={token}&subscribe=ticket:{ticket['id']}") as sock:
            await next_frame(sock, "subscribed")
            assert redis.process is not None
            redis.process.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                r = await api.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin,
                                   json={"body": "Posted while Redis hung"})
                assert r.status_code == 201 and time.monotonic() - started < 1.5
                assert (await next_frame(sock, "live", timeout=20))["state"] == "degraded"
            finally:
                redis.process.send_signal(signal.SIGCONT)
            assert (await next_frame(sock, "live", timeout=30))["state"] == "up"
            missed = await next_frame(sock, "message", timeout=30)
            assert missed["data"]["body_text"] == "Posted while Redis hung"


async def test_the_hub_waits_longer_between_tries_while_redis_stays_away(capsys):
    """A server whose Redis is away says so in a line per try; the tries (and lines)
    thin out the longer it stays away, and start quick again after Redis has answered."""
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed")
    from relaydesk.core.realtime import RedisHub

    class States:
        def __init__(self) -> None:
            self.heard: list[bool] = []

        async def deliver(self, events) -> None:  # noqa: ANN001
            pass

        async def hub_state_changed(self, up: bool) -> None:
            self.heard.append(up)

    def pauses() -> list[float]:
        lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        return [line["retry_in"] for line in lines if line.get("event") == "realtime_hub_down"]

    async def until(predicate) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    redis = PrivateRedis(free_port())
    hub, states = RedisHub(f"redis://127.0.0.1:{redis.port}/0", "relaydesk-test:backoff",
                           retry_seconds=0.1, retry_max_seconds=0.4), States()
    hub.listen(states)
    capsys.readouterr()
    await hub.start()
    try:
        await asyncio.sleep(1.6)
        away = pauses()
        assert away[:5] == [0.1, 0.2, 0.4, 0.4, 0.4], away

        redis.start()
        await until(lambda: states.heard[-1:] == [True])
        redis.stop()
        await until(lambda: states.heard[-1:] == [False])
        assert pauses()[0] == 0.1
    finally:
        await hub.stop()
        redis.stop()

"""The scaled mode for real: a server and two worker processes sharing PostgreSQL and
Redis. Tickets created through the API are each assigned exactly once, never past an
agent's cap, and capacity freed through one process is used by the others."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from conftest import _create_pg_database, _drop_pg_database, service_unavailable
from test_quickstart import free_port

REDIS_URL = os.environ.get("RELAYDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.prefix) / "bin" / "relaydesk"
PASSWORD = "correct horse battery staple"


def _scaled_env(data_dir, pg_url: str, redis_url: str, queue: str, port: int) -> dict[str, str]:  # noqa: ANN001
    """The environment of a scaled-mode process: its own database, job queue and data dir,
    cheap password hashing and a quick outbox poll."""
    return {**os.environ, "RELAYDESK_DATABASE_URL": pg_url, "RELAYDESK_REDIS_URL": redis_url,
            "RELAYDESK_JOB_QUEUE": queue, "RELAYDESK_DATA_DIR": str(data_dir), "RELAYDESK_PORT": str(port),
            "RELAYDESK_LOG_LEVEL": "WARNING", "RELAYDESK_PASSWORD_HASH_TIME_COST": "1",
            "RELAYDESK_PASSWORD_HASH_MEMORY_KIB": "1024", "RELAYDESK_SECRET_KEY": secrets.token_hex(16),
            "RELAYDESK_OUTBOX_POLL_SECONDS": "0.5"}


@pytest.fixture
async def scaled(tmp_path):
    try:
        r = aioredis.from_url(REDIS_URL)
        await r.ping()
    except (OSError, aioredis.RedisError) as exc:
        service_unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    pg_url = await _create_pg_database()
    queue = f"relaydesk-test:{secrets.token_hex(4)}"
    port = free_port()
    env = _scaled_env(tmp_path, pg_url, REDIS_URL, queue, port)
    subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
    procs = []
    metrics_ports = [free_port(), free_port()]
    for name, args in (("serve", ["serve"]), ("worker1", ["worker", "--metrics-port", str(metrics_ports[0])]),
                       ("worker2", ["worker", "--metrics-port", str(metrics_ports[1])])):
        log = (tmp_path / f"{name}.log").open("w")
        procs.append(subprocess.Popen([str(BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.3)
        else:
            pytest.fail("server did not start: " + (tmp_path / "serve.log").read_text())
        yield base, procs, tmp_path, metrics_ports
    finally:
        _stop(procs)
        await r.delete(queue)
        await r.aclose()
        await _drop_pg_database(pg_url)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, and SIGKILL what has not ended 15 s later."""
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError("timed out waiting")


async def test_two_workers_assign_each_ticket_exactly_once(scaled):
    base, procs, tmp_path, metrics_ports = scaled
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.post("/api/v1/workspaces", json={"name": "Scaled", "admin_name": "A",
                                                     "admin_email": "a@scaled.example.com",
                                                     "admin_password": PASSWORD})
        slug = r.json()["workspace"]["slug"]

        async def token(email):
            r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, "workspace": slug})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        admin = await token("a@scaled.example.com")
        team = (await c.post("/api/v1/teams", json={"name": "Desk"}, headers=admin)).json()
        agents = []
        for i in range(3):
            r = await c.post("/api/v1/agents", headers=admin, json={
                "name": f"Agent {i}", "email": f"agent{i}@scaled.example.com", "password": PASSWORD,
                "max_concurrent": 4, "availability": "online", "team_ids": [team["id"]]})
            agents.append(r.json()["id"])
        await c.post("/api/v1/categories", json={"name": "General", "team_id": team["id"]}, headers=admin)
        customers = []
        for i in range(4):
            r = await c.post("/api/v1/customers", headers=admin, json={
                "name": f"C{i}", "email": f"c{i}@customers.example.com"})
            customers.append(r.json()["id"])

        async def create(i):
            r = await c.post("/api/v1/tickets", headers=admin, json={
                "subject": f"Question {i}", "description": "Where can I find my order history?",
                "requester_id": customers[i % 4], "category_id": None})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        ids = await asyncio.gather(*(create(i) for i in range(24)))

        async def routed():
            states = []
            for tid in ids:
                r = await c.get(f"/api/v1/tickets/{tid}/routing", headers=admin)
                if r.status_code != 200:
                    return None
                states.append(r.json()["state"])
            return states

        states = await wait_for(routed)
        assert sorted(states) == ["assigned"] * 12 + ["queued"] * 12

        async def owners():
            return {tid: (await c.get(f"/api/v1/tickets/{tid}", headers=admin)).json()["assignee_id"] for tid in ids}

        owned = await owners()
        loads = {a: list(owned.values()).count(a) for a in agents}
        assert loads == {a: 4 for a in agents}
        for tid in ids:
            trail = (await c.get(f"/api/v1/tickets/{tid}/audit", headers=admin)).json()
            assert len([a for a in trail if a["field"] == "assignee_id"]) <= 1

        # Resolving frees capacity; the queued tickets move to whoever has room, once each.
        mine = [tid for tid, a in owned.items() if a == agents[0]]
        for tid in mine[:2]:
            r = await c.post(f"/api/v1/tickets/{tid}/status", json={"status": "RESOLVED"}, headers=admin)
            assert r.status_code == 200

        async def two_more():
            now_owned = await owners()
            return [t for t in ids if owned[t] is None and now_owned[t] == agents[0]] if sum(
                1 for t in ids if owned[t] is None and now_owned[t]) == 2 else None

        taken = await wait_for(two_more)
        assert len(taken) == 2
    for p in procs:
        assert p.poll() is None, "a process died"
    worker_logs = (tmp_path / "worker1.log").read_text() + (tmp_path / "worker2.log").read_text()
    assert "Traceback" not in worker_logs, worker_logs[-3000:]
    # Each worker serves its own metrics: the routing it did shows there, not on the API's /metrics.
    done = 0.0
    for port in metrics_ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        done += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith('relaydesk_jobs_total{') and 'outcome="done"' in line)
        assert "relaydesk_job_duration_seconds_bucket" in text
    assert done > 0


async def test_a_server_started_while_redis_is_down_serves_and_queues_jobs_once_it_is_back(tmp_path):
    """As a running server rides out a Redis outage, so does one (re)started during it: it
    serves, says so in one line, and the ticket's jobs queue up once Redis answers."""
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server is not installed: this test starts one of its own")
    pg_url = await _create_pg_database()
    redis_port, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    queue = f"relaydesk-test:{secrets.token_hex(4)}"
    env = _scaled_env(tmp_path, pg_url, redis_url, queue, port)
    log = tmp_path / "serve.log"
    started: list[subprocess.Popen] = []
    try:
        subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
        with log.open("w") as out:
            server = subprocess.Popen([str(BIN), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        started.append(server)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            async def ready() -> bool:
                assert server.poll() is None, log.read_text()
                try:
                    return (await c.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(ready)
            r = await c.post("/api/v1/workspaces", json={"name": "Outage", "admin_name": "A",
                                                         "admin_email": "a@outage.example.com",
                                                         "admin_password": PASSWORD})
            assert r.status_code == 201, r.text
            r = await c.post("/api/v1/auth/login", json={"email": "a@outage.example.com", "password": PASSWORD,
                                                         "workspace": r.json()["workspace"]["slug"]})
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await c.post("/api/v1/customers", headers=admin, json={"name": "C", "email": "c@outage.example.com"})
            assert r.status_code == 201, r.text
            r = await c.post("/api/v1/tickets", headers=admin, json={
                "subject": "Made during the outage", "description": "Where is my order?", "requester_id": r.json()["id"]})
            assert r.status_code == 201, r.text
            said = log.read_text()
            assert said.count("job_queue_unreachable_at_start") == 1 and "Traceback" not in said, said

            started.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                             "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True))
            back = aioredis.from_url(redis_url)
            try:
                async def queued() -> bool:
                    try:
                        return await back.xlen(queue) > 0 and bool(await back.xinfo_groups(queue))
                    except aioredis.RedisError:
                        return False

                await wait_for(queued)
            finally:
                await back.aclose()
    finally:
        _stop(started)
        await _drop_pg_database(pg_url)

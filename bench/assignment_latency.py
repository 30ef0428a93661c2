"""How long a new ticket waits to be assigned, with tickets arriving at a steady rate.

Two modes, each against real processes:

* **embedded**: one ``relaydesk serve`` on SQLite (jobs run in-process);
* **scaled**: ``relaydesk serve`` + 2 x ``relaydesk worker`` on a scratch PostgreSQL
  database ``rd_bench_<random>`` and Redis, with a unique job queue (stream) name.

Setup goes through the public API: a workspace, a team, ``--agents`` online agents in the
team (``max_concurrent`` 500, the API's maximum; 8 x 500 is more than the tickets sent),
a category "General" owned by the team, and a few customers.

Then the admin creates tickets open-loop: send *i* is scheduled at ``start + i / rate``
whatever happened to the earlier ones, for ``--seconds`` seconds.  Nothing else talks to
the server during that phase.  Afterwards every ticket's ``GET /api/v1/tickets/{id}/routing``
is polled until it is routed (404 until then) and the assignment latency is

    decided_at (server clock, the same machine) - the moment the create response arrived.

``decided_at`` is the ``now`` of the routing job, taken when the job starts its
transaction; the commit follows a few milliseconds later, so the figure is a slight
under-estimate of when a reader could first see the assignee.

Usage::

    .venv/bin/python bench/assignment_latency.py [--rate 50] [--seconds 30] [--agents 8]
        [--skip-sqlite] [--skip-postgres] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from harness import (
    CLEANUP,
    RELAYDESK,
    CpuMeter,
    ScratchDatabase,
    ScratchDir,
    Server,
    base_env,
    percentile,
    postgres_version,
    run_cli,
    wait_idle,
)

ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SUBJECTS = ["Where is my parcel? (order {n})", "Charged twice for order {n}", "Can't sign in on my phone",
            "Return label please for {n}", "Question about the rain jacket", "App crashes when I open orders"]
DESCRIPTIONS = ["Hi, tracking for order {n} hasn't moved for five days. Can you check?",
                "My card shows two charges for order {n}; please refund one.",
                "The password reset email never arrives, I've checked spam.",
                "The boots from order {n} are too small; I'd like to return them.",
                "Is the rain jacket fully waterproof or only water resistant?",
                "The app closes as soon as I tap 'My orders'."]


class Workers:
    """``relaydesk worker`` subprocesses, stopped by pid."""

    def __init__(self, env: dict[str, str], log: Path, count: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for _ in range(count):
            with log.open("ab") as out:
                proc = subprocess.Popen([RELAYDESK, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
            self.procs.append(proc)
            CLEANUP.add(f"stopped worker pid {proc.pid}", lambda p=proc: _stop(p))

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def _delete_redis_keys(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


async def setup_workspace(base_url: str, agents: int) -> tuple[str, list[str]]:
    """Workspace, team, agents, category and customers through the API; returns (token, customer ids)."""
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        password = secrets.token_urlsafe(16)
        email = f"admin.{tag}@example.com"
        r = await client.post("/api/v1/workspaces", json={
            "name": f"Assign Bench {tag}", "admin_name": "Bench Admin", "admin_email": email,
            "admin_password": password})
        r.raise_for_status()
        slug = r.json()["workspace"]["slug"]
        r = await client.post("/api/v1/auth/login", json={"email": email, "password": password, "workspace": slug})
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        client.headers.update(auth)
        r = await client.post("/api/v1/teams", json={"name": "Front Line"})
        r.raise_for_status()
        team = r.json()["id"]
        for i in range(agents):
            r = await client.post("/api/v1/agents", json={
                "name": f"Agent {i}", "email": f"agent{i}.{tag}@example.com", "password": secrets.token_urlsafe(16),
                "max_concurrent": 500, "availability": "online", "team_ids": [team]})
            r.raise_for_status()
        r = await client.post("/api/v1/categories", json={"name": "General", "team_id": team})
        if r.status_code == 409:  # the workspace may come with a "General" category already
            print(f"  category General: {r.status_code} {r.text[:200]}")
        else:
            r.raise_for_status()
        customers = []
        for i in range(8):
            r = await client.post("/api/v1/customers", json={"name": f"Customer {i}",
                                                             "email": f"customer{i}.{tag}@example.com"})
            r.raise_for_status()
            customers.append(r.json()["id"])
    return auth["Authorization"].removeprefix("Bearer "), customers


async def open_loop(base_url: str, token: str, customers: list[str], rate: float, seconds: float,
                    server_pid: int) -> dict[str, Any]:
    """Send creations at fixed times; returns per-ticket (id, response arrival epoch) and create latencies."""
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    created: list[tuple[str, float]] = []
    latencies: list[float] = []
    lateness: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=120) as client:
        async def send(i: int) -> None:
            sent = time.perf_counter()
            try:
                r = await client.post("/api/v1/tickets", json={
                    "subject": SUBJECTS[i % len(SUBJECTS)].format(n=f"A-{20000 + i}"),
                    "description": DESCRIPTIONS[i % len(DESCRIPTIONS)].format(n=f"A-{20000 + i}"),
                    "requester_id": customers[i % len(customers)]})
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            arrived = time.time()
            if r.status_code != 201:
                errors.append(f"{r.status_code}: {r.text[:200]}")
                return
            latencies.append((time.perf_counter() - sent) * 1000)
            created.append((r.json()["id"], arrived))

        tasks = []
        with CpuMeter(server_pid) as meter:
            start = time.perf_counter()
            for i in range(total):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness.append(max(0.0, -delay) * 1000)
                tasks.append(asyncio.create_task(send(i)))
            send_wall = time.perf_counter() - start
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - start
    latencies.sort()
    return {
        "scheduled": total, "created": len(created), "errors": len(errors), "error_samples": errors[:5],
        "send_phase_s": round(send_wall, 2), "all_responses_s": round(wall, 2),
        "achieved_per_s": round(len(created) / wall, 1) if wall else 0.0,
        "create_p50_ms": round(percentile(latencies, 50), 1), "create_p95_ms": round(percentile(latencies, 95), 1),
        "create_p99_ms": round(percentile(latencies, 99), 1),
        "create_max_ms": round(latencies[-1], 1) if latencies else None,
        "max_send_lateness_ms": round(max(lateness), 1) if lateness else 0.0,
        "server_cpu_s": round(meter.result["server_cpu_s"], 2), "machine_busy_pct": round(meter.result["machine_busy_pct"]),
        "_created": created,
    }


async def collect(base_url: str, token: str, created: list[tuple[str, float]], timeout: float) -> dict[str, Any]:
    """Poll each ticket's routing until it is decided; latency = decided_at - create response arrival."""
    pending = list(created)
    latencies: list[float] = []
    states: dict[str, int] = {}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=60) as client:
        while pending and time.monotonic() - started < timeout:
            still: list[tuple[str, float]] = []
            for ticket_id, arrived in pending:
                r = await client.get(f"/api/v1/tickets/{ticket_id}/routing")
                if r.status_code == 404:
                    still.append((ticket_id, arrived))
                    continue
                r.raise_for_status()
                body = r.json()
                if body["state"] == "queued":
                    still.append((ticket_id, arrived))
                    continue
                states[body["state"]] = states.get(body["state"], 0) + 1
                if body["state"] == "assigned":
                    decided = datetime.fromisoformat(body["decided_at"]).timestamp()
                    latencies.append((decided - arrived) * 1000)
            pending = still
            if pending:
                await asyncio.sleep(0.5)
    latencies.sort()
    return {
        "assigned": len(latencies), "states": states, "not_routed_in_time": len(pending),
        "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1), "max_ms": round(latencies[-1], 1) if latencies else None,
        "min_ms": round(latencies[0], 1) if latencies else None,
        "under_1s_pct": round(100 * sum(1 for x in latencies if x < 1000) / len(latencies), 1) if latencies else 0,
    }


async def run_mode(name: str, args: argparse.Namespace, database_url: str | None, redis_queue: str | None,
                   scratch: ScratchDir) -> dict[str, Any]:
    env = base_env(scratch.path / "data", database_url, secrets.token_urlsafe(32))
    if redis_queue:
        env["RELAYDESK_REDIS_URL"] = REDIS_URL
        env["RELAYDESK_JOB_QUEUE"] = redis_queue
    log = scratch.path / "relaydesk.log"
    print(f"\n== {name} ==  (logs in {scratch.path})", flush=True)
    run_cli(["migrate"], env, log)
    server = Server(env, scratch.path / "server.log")
    workers = None
    try:
        await server.start()
        if redis_queue:
            workers = Workers(env, scratch.path / "workers.log", 2)
        await wait_idle(server.pid)
        token, customers = await setup_workspace(server.base_url, args.agents)
        await asyncio.sleep(2)  # let the setup's own background work finish
        print(f"  creating {int(args.rate * args.seconds)} tickets at {args.rate}/s ...", flush=True)
        load = await open_loop(server.base_url, token, customers, args.rate, args.seconds, server.pid)
        created = load.pop("_created")
        print(f"  created {load['created']} in {load['all_responses_s']} s ({load['achieved_per_s']}/s), "
              f"create p50 {load['create_p50_ms']} ms p95 {load['create_p95_ms']} ms, errors {load['errors']}",
              flush=True)
        assign = await collect(server.base_url, token, created, args.collect_timeout)
        print(f"  assigned {assign['assigned']} {assign['states']}: p50 {assign['p50_ms']} ms, "
              f"p95 {assign['p95_ms']} ms, p99 {assign['p99_ms']} ms, max {assign['max_ms']} ms", flush=True)
    finally:
        if workers:
            workers.stop()
        server.stop()
        if redis_queue:
            print(f"  deleted {_delete_redis_keys(redis_queue)} Redis key(s) {redis_queue}*", flush=True)
    return {"mode": name, "rate": args.rate, "seconds": args.seconds, "agents": args.agents, **load,
            "assignment": assign}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="ticket creations per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--collect-timeout", type=float, default=180.0,
                        help="how long to wait for the routing of the last tickets")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    CLEANUP.install_signal_handlers(lambda done: print("cleaned up: " + "; ".join(done), file=sys.stderr))
    results = []
    try:
        if not args.skip_sqlite:
            scratch = ScratchDir("rd_bench_assign_", keep=args.keep)
            results.append(await run_mode("embedded (SQLite, 1 serve)", args, None, None, scratch))
            scratch.remove()
        if not args.skip_postgres:
            version = await postgres_version(ADMIN_URL)
            if version is None:
                print(f"PostgreSQL not reachable at {ADMIN_URL}; scaled mode skipped", file=sys.stderr)
            else:
                db = ScratchDatabase(ADMIN_URL)
                await db.create()
                scratch = ScratchDir("rd_bench_assign_pg_", keep=args.keep)
                queue = f"rd_bench_jobs_{secrets.token_hex(5)}"
                CLEANUP.add(f"deleted Redis keys {queue}*", lambda: _delete_redis_keys(queue))
                try:
                    results.append(await run_mode(f"scaled (PostgreSQL {version.split()[0]} + Redis, serve + "
                                                  f"2 workers)", args, db.url, queue, scratch))
                finally:
                    await db.drop()
                    scratch.remove()
    finally:
        CLEANUP.run_all()
    print("\n| mode | created / scheduled | achieved /s | create p50 / p95 ms | assigned | assign p50 ms "
          "| p95 ms | p99 ms | max ms |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        a = r["assignment"]
        print(f"| {r['mode']} | {r['created']} / {r['scheduled']} | {r['achieved_per_s']} | "
              f"{r['create_p50_ms']} / {r['create_p95_ms']} | {a['assigned']} | {a['p50_ms']} | {a['p95_ms']} | "
              f"{a['p99_ms']} | {a['max_ms']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""WebSocket fan-out: how fast a reply reaches the live sockets watching it, and what a socket costs.

One ``relaydesk serve`` (embedded mode: SQLite, in-process jobs and hub) in a temporary data
dir. Setup goes through the public API:

* a workspace, its admin and a team;
* ``max(--agents, sockets / 450)`` agents in the team (``max_concurrent`` 500, online);
* ``--sockets`` customers, each with a password and one ticket (opened by the admin on the
  customer's behalf, assigned to one of the agents in turn, in the team);
* a sign-in for every customer and agent (Argon2 at time cost 1, 1 MiB, for the setup's sake).

Then client processes (``--client-procs``; by default one per 2,500 sockets) open

* one socket per customer, subscribed to ``ticket:<their ticket>``;
* one socket for each of the first ``--agents`` agents, subscribed to
  ``queue:team:<team>,queue:me`` (so each of them hears every reply).

Memory per socket = (the server's VmRSS with all sockets open - VmRSS before the first socket)
/ sockets, measured twice: right after opening, and once the heartbeat has sent every socket
one ping (a socket's permessage-deflate compressor touches its memory with its first frame).
``--customers K`` makes only K customers and tickets, socket *i* belonging to customer
*i* mod K (like several tabs each): the memory figure without the long setup. ``--rate 0``
stops there.

Replies: each ticket's agent posts ``POST /api/v1/tickets/{id}/messages`` open-loop, send *i*
at ``start + i / --rate`` for ``--seconds`` seconds, each to a random ticket, with a unique
token in the body. Latency = the moment the subscriber read the ``message.posted`` event
carrying the token - the moment the POST's 201 response arrived (same machine clock,
``time.time()`` in every process). It can be negative when the event beats the response;
nothing is clamped. A reply whose event did not arrive within 5 s of its response counts as
lost; the table says how many of those came later (up to ``--grace`` seconds after the last
response) and how many never did. The percentiles cover every event that arrived.

Usage::

    .venv/bin/python bench/ws_fanout.py [--sockets 1000] [--agents 10] [--rate 200[,10...]] [--seconds 20[,30...]]
        [--customers K] [--client-procs N] [--no-deflate] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    CLEANUP,
    LightHttp,
    ScratchDir,
    Server,
    background_load,
    base_env,
    percentile,
    process_cpu_seconds,
    run_cli,
    wait_idle,
)

TOKEN = re.compile(r"rdfan-(\d{6})-([0-9a-f]{6})")
LOST_AFTER_S = 5.0
IN_FLIGHT = 64  # reply requests in flight at most
REPLIES = [
    "Thanks for your patience. I've checked with the warehouse and your parcel leaves today.",
    "Sorry about the double charge; I've refunded it and you'll see it in 3 to 5 business days.",
    "Could you send me a photo of the label on the box? Then I can open a claim with the courier.",
    "I've reset the two-factor setting on your account. Please try signing in again.",
    "A replacement is on its way; the tracking link will follow by email.",
]


# -- the server and its setup --------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_fd_limit(needed: int) -> int:
    """Soft limit up to the hard one (children, the server included, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        print(f"warning: the open-file limit is {soft}, {needed} may be needed", file=sys.stderr)
    return soft


async def in_parallel(count: int, concurrency: int, fn: Any, label: str) -> list[Any]:
    """fn(i) for i in range(count), ``concurrency`` at a time, with a progress line now and then."""
    results: list[Any] = [None] * count
    nxt = 0
    done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal nxt, done
        while nxt < count:
            i = nxt
            nxt += 1
            results[i] = await fn(i)
            done += 1
            if done % 2000 == 0:
                print(f"    {label}: {done:,}/{count:,} ({time.perf_counter() - started:.0f} s)", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(f"  {label}: {count:,} in {time.perf_counter() - started:.1f} s", flush=True)
    return results


def _ok(r: httpx.Response, expect: int = 201) -> dict[str, Any]:
    if r.status_code != expect:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()


async def setup(base_url: str, sockets: int, agents: int, concurrency: int) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    password = secrets.token_urlsafe(16)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as c:
        admin_email = f"admin.{tag}@example.com"
        ws = _ok(await c.post("/api/v1/workspaces", json={
            "name": f"Fan-out Bench {tag}", "admin_name": "Bench Admin", "admin_email": admin_email,
            "admin_password": password}))
        slug = ws["workspace"]["slug"]

        async def login(email: str) -> str:
            return _ok(await c.post("/api/v1/auth/login", json={"email": email, "password": password,
                                                                 "workspace": slug}), 200)["access_token"]

        admin = {"Authorization": f"Bearer {await login(admin_email)}"}
        team = _ok(await c.post("/api/v1/teams", headers=admin, json={"name": "Front Line"}))["id"]
        owners = max(agents, math.ceil(sockets / 450))
        agent_emails = [f"agent{i}.{tag}@example.com" for i in range(owners)]
        agent_ids = []
        for i, email in enumerate(agent_emails):
            agent_ids.append(_ok(await c.post("/api/v1/agents", headers=admin, json={
                "name": f"Agent {i}", "email": email, "password": password, "role": "agent",
                "max_concurrent": 500, "availability": "online", "team_ids": [team]}))["id"])
        customer_emails = [f"customer{i}.{tag}@example.com" for i in range(sockets)]

        async def customer(i: int) -> str:
            return _ok(await c.post("/api/v1/customers", headers=admin, json={
                "name": f"Customer {i}", "email": customer_emails[i], "password": password}))["id"]

        customer_ids = await in_parallel(sockets, concurrency, customer, "customers")

        async def ticket(i: int) -> str:
            return _ok(await c.post("/api/v1/tickets", headers=admin, json={
                "subject": f"Order A-{100000 + i} has not arrived", "requester_id": customer_ids[i],
                "description": f"Hi, tracking for order A-{100000 + i} hasn't moved for five days. Can you check?",
                "team_id": team, "assignee_id": agent_ids[i % owners]}))["id"]

        ticket_ids = await in_parallel(sockets, concurrency, ticket, "tickets")
        customer_tokens = await in_parallel(sockets, concurrency, lambda i: login(customer_emails[i]),
                                            "customer sign-ins")
        agent_tokens = [await login(e) for e in agent_emails]
    return {"slug": slug, "team": team, "owners": owners, "agent_ids": agent_ids, "agent_tokens": agent_tokens,
            "ticket_ids": ticket_ids, "customer_tokens": customer_tokens}


# -- the client processes --------------------------------------------------------------------------
def client_main(conn: Any, url: str, specs: list[dict[str, Any]], open_concurrency: int, deflate: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(_client(conn, url, specs, open_concurrency, deflate))
    except ImportError:
        asyncio.run(_client(conn, url, specs, open_concurrency, deflate))


async def _client(conn: Any, url: str, specs: list[dict[str, Any]], open_concurrency: int, deflate: bool) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    arrivals: dict[int, dict[str, float]] = {s["key"]: {} for s in specs}  # socket -> token -> time
    frames: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    errors: list[str] = []
    gate = asyncio.Semaphore(open_concurrency)
    opened = 0
    sockets: list[Any] = []
    all_open = asyncio.Event()
    attempted = 0

    def settled() -> None:
        nonlocal attempted
        attempted += 1
        if attempted == len(specs):
            all_open.set()

    async def run(spec: dict[str, Any]) -> None:
        nonlocal opened
        uri = f"{url}?token={spec['token']}&subscribe={spec['subscribe']}"
        want = spec["subscribe"].count(",") + 1
        mine = arrivals[spec["key"]]
        async with gate:
            try:
                ws = await connect(uri, ping_interval=None, open_timeout=300, close_timeout=5,
                                   compression="deflate" if deflate else None, max_queue=None)
                while want:
                    frame = orjson.loads(await ws.recv())
                    if frame["type"] == "subscribed":
                        want -= 1
                    elif frame["type"] == "error":
                        raise RuntimeError(f"subscribe refused: {frame}")
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                settled()
                return
        sockets.append(ws)
        opened += 1
        settled()
        try:
            async for raw in ws:
                arrived = time.time()
                frame = orjson.loads(raw)
                kind = frame.get("type")
                frames[kind] += 1
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "event" and frame.get("event") == "message.posted":
                    found = TOKEN.search(frame["data"].get("body_text") or "")
                    if found and found.group(0) not in mine:
                        mine[found.group(0)] = arrived
        except Exception:  # noqa: BLE001 - counted below
            pass
        finally:
            if not stopping:
                closes[f"closed {ws.close_code}"] += 1

    stopping = False
    started = time.perf_counter()
    tasks = [asyncio.create_task(run(s)) for s in specs]
    await all_open.wait()
    conn.send(("opened", opened, len(specs) - opened, round(time.perf_counter() - started, 1), errors[:5]))
    await loop.run_in_executor(None, conn.recv)  # "stop"
    stopping = True
    conn.send(("results", arrivals, dict(frames), dict(closes)))
    if sockets:
        await asyncio.wait([asyncio.create_task(ws.close()) for ws in sockets], timeout=30)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Clients:
    """Client processes holding the sockets, stopped by pid."""

    def __init__(self, url: str, specs: list[dict[str, Any]], procs: int, open_concurrency: int,
                 deflate: bool) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        for p in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child, url, specs[p::procs], open_concurrency, deflate),
                               daemon=True)
            proc.start()
            CLEANUP.add(f"stopped client pid {proc.pid}", lambda pr=proc: _stop_proc(pr))
            self.pipes.append(parent)
            self.procs.append(proc)

    async def recv_all(self) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in self.pipes))

    def cpu_seconds(self) -> list[float]:
        return [process_cpu_seconds(p.pid) for p in self.procs]

    async def stop(self) -> list[Any]:
        for p in self.pipes:
            p.send("stop")
        results = await self.recv_all()
        for proc in self.procs:
            await asyncio.get_running_loop().run_in_executor(None, proc.join, 40)
            _stop_proc(proc)
        return results


def _stop_proc(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join(10)


# -- the replies ---------------------------------------------------------------------------------------
async def post_replies(base_url: str, setup_: dict[str, Any], rate: float, seconds: float, run_tag: str,
                       ) -> dict[str, Any]:
    tickets = setup_["ticket_ids"]
    owners = setup_["owners"]
    total = int(rate * seconds)
    rng = random.Random(7)
    # At most IN_FLIGHT requests at once, on as many keep-alive connections; beyond that the
    # sends wait here, and the wait counts in their POST latency (open loop).
    client = LightHttp(base_url, IN_FLIGHT)
    sent: dict[str, tuple[float, int]] = {}  # token -> (response arrival, ticket index)
    latencies: list[float] = []
    lateness: list[float] = []
    errors: list[str] = []

    async def send(seq: int) -> None:
        i = rng.randrange(len(tickets))
        token = f"rdfan-{seq:06d}-{run_tag}"
        body = orjson.dumps({"body": f"{REPLIES[seq % len(REPLIES)]} (ref {token})"})
        started = time.perf_counter()
        try:
            status, answer = await client.post_json(
                f"/api/v1/tickets/{tickets[i]}/messages", body,
                {"Authorization": f"Bearer {setup_['agent_tokens'][i % owners]}"})
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        arrived = time.time()
        if status != 201:
            errors.append(f"{status}: {answer[:200].decode(errors='replace')}")
            return
        latencies.append((time.perf_counter() - started) * 1000)
        sent[token] = (arrived, i)

    cpu_before = time.process_time()
    tasks = []
    start = time.perf_counter()
    try:
        for seq in range(total):
            delay = start + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(max(0.0, -delay) * 1000)
            tasks.append(asyncio.create_task(send(seq)))
        send_wall = time.perf_counter() - start
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    finally:
        await client.aclose()
    poster_cpu = time.process_time() - cpu_before
    latencies.sort()
    return {"scheduled": total, "sent": sent, "errors": errors, "send_phase_s": send_wall, "wall_s": wall,
            "post_p50_ms": percentile(latencies, 50), "post_p99_ms": percentile(latencies, 99),
            "max_send_lateness_ms": max(lateness) if lateness else 0.0, "last_response": time.time(),
            "poster_cpu_s": poster_cpu}


def latency_stats(pairs: list[tuple[float, float | None]]) -> dict[str, Any]:
    """``pairs``: (when the reply's response arrived, when this subscriber read its event or None).
    The percentiles cover every event that arrived, the late ones too."""
    lat: list[float] = []
    missing = 0
    for responded, at in pairs:
        if at is None:
            missing += 1
        else:
            lat.append((at - responded) * 1000)
    lat.sort()
    late = sum(1 for v in lat if v > LOST_AFTER_S * 1000)
    return {"expected": len(pairs), "delivered": len(lat) - late, "late": late, "missing": missing,
            "lost": late + missing, "min_ms": lat[0] if lat else None, "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else None}


# -- the run ---------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    total_sockets = args.sockets + args.agents
    procs = args.client_procs or max(1, min(4, math.ceil(total_sockets / 2500)))
    fd_limit = raise_fd_limit(total_sockets + 500)
    idle = await background_load()
    print(f"machine load before: {idle:.0f}% of all cores busy; {os.getloadavg()[0]:.2f} 1-min load average",
          flush=True)
    scratch = ScratchDir("rd_bench_ws_", keep=args.keep)
    env = base_env(scratch.path / "data", None, secrets.token_urlsafe(32))
    env.update({"RELAYDESK_SMTP_LISTEN_PORT": "0", "RELAYDESK_PASSWORD_HASH_TIME_COST": "1",
                "RELAYDESK_PASSWORD_HASH_MEMORY_KIB": "1024"})
    log = scratch.path / "relaydesk.log"
    run_cli(["migrate"], env, log)
    server = Server(env, scratch.path / "server.log")
    clients = None
    try:
        await server.start()
        await wait_idle(server.pid)
        print(f"server pid {server.pid} on {server.base_url}; fd limit {fd_limit}; logs in {scratch.path}",
              flush=True)
        t0 = time.perf_counter()
        s = await setup(server.base_url, args.customers, args.agents, args.setup_concurrency)
        settled = await wait_idle(server.pid, timeout=900)
        setup_s = time.perf_counter() - t0
        print(f"  setup {setup_s:.0f} s (background work drained {settled:.0f} s of it)", flush=True)

        # Socket i belongs to customer i % --customers (several tabs each when there are fewer customers).
        specs = [{"key": i, "kind": "customer", "token": s["customer_tokens"][i % args.customers],
                  "subscribe": f"ticket:{s['ticket_ids'][i % args.customers]}"} for i in range(args.sockets)]
        specs += [{"key": args.sockets + a, "kind": "agent", "token": s["agent_tokens"][a],
                   "subscribe": f"queue:team:{s['team']},queue:me"} for a in range(args.agents)]
        await asyncio.sleep(2)
        rss_before = rss_kib(server.pid)
        url = server.base_url.replace("http://", "ws://") + "/api/v1/ws"
        t0 = time.perf_counter()
        clients = Clients(url, specs, procs, args.open_concurrency, not args.no_deflate)
        opened = await clients.recv_all()
        open_s = time.perf_counter() - t0
        n_open = sum(o[1] for o in opened)
        n_failed = sum(o[2] for o in opened)
        print(f"  opened {n_open:,} sockets ({n_failed} failed) from {procs} client process(es) in {open_s:.1f} s",
              flush=True)
        for o in opened:
            for e in o[4]:
                print(f"    error: {e}", flush=True)
        await wait_idle(server.pid)
        await asyncio.sleep(3)
        rss_open = rss_kib(server.pid)
        per_socket = (rss_open - rss_before) / max(n_open, 1)
        # A socket's compressor (permessage-deflate) touches its memory with the first frame it
        # sends, so measure again once the heartbeat has sent every socket a ping.
        await asyncio.sleep(args.heartbeat_wait)
        await wait_idle(server.pid)
        rss_pinged = rss_kib(server.pid)
        per_socket_pinged = (rss_pinged - rss_before) / max(n_open, 1)
        print(f"  server RSS {rss_before / 1024:.0f} MiB before, {rss_open / 1024:.0f} MiB with the sockets open "
              f"({per_socket:.1f} KiB per socket), {rss_pinged / 1024:.0f} MiB after a heartbeat ping each "
              f"({per_socket_pinged:.1f} KiB per socket)", flush=True)

        phases = []
        for rate, seconds in zip(args.rate, args.seconds, strict=True):
            load_before = os.getloadavg()[0]
            await wait_idle(server.pid)
            cpu0 = process_cpu_seconds(server.pid)
            ccpu0 = clients.cpu_seconds()
            t0 = time.perf_counter()
            run_tag = secrets.token_hex(3)
            print(f"  posting {int(rate * seconds):,} replies at {rate:g}/s ...", flush=True)
            posted = await post_replies(server.base_url, s, rate, seconds, run_tag)
            print(f"    {len(posted['sent']):,} answered in {posted['wall_s']:.1f} s", flush=True)
            # Wait for the stragglers: the last response + --grace s at most.
            await asyncio.sleep(min(args.grace, LOST_AFTER_S + 1))
            busy_s = await wait_idle(server.pid, timeout=max(0.0, args.grace - LOST_AFTER_S - 1))
            phases.append({
                "rate": rate, "seconds": seconds, "posted": posted, "phase_s": time.perf_counter() - t0, "busy_s": busy_s,
                "server_cpu_s": process_cpu_seconds(server.pid) - cpu0,
                "client_cpu_s": [b - a for a, b in zip(ccpu0, clients.cpu_seconds(), strict=True)],
                "rss_after": rss_kib(server.pid), "load": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"})
        results = await clients.stop()
        clients = None
    finally:
        if clients is not None:
            for proc in clients.procs:
                _stop_proc(proc)
        server.stop()
        scratch.remove()

    arrivals: dict[int, dict[str, float]] = {}
    frames: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    for _, got, fr, cl in results:
        for key, tokens in got.items():
            arrivals.setdefault(key, {}).update(tokens)
        frames.update(fr)
        closes.update(cl)
    out = {
        "sockets": args.sockets, "agent_sockets": args.agents, "opened": n_open, "open_failed": n_failed,
        "open_s": round(open_s, 1), "client_procs": procs, "deflate": not args.no_deflate, "setup_s": round(setup_s),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_open_mib": round(rss_open / 1024, 1), "kib_per_socket": round(per_socket, 1),
        "rss_pinged_mib": round(rss_pinged / 1024, 1), "kib_per_socket_pinged": round(per_socket_pinged, 1),
        "customers": args.customers,
        "frames": dict(frames), "closes": dict(closes), "load_before_setup": f"{idle:.0f}% of all cores busy",
        "phases": [],
    }
    watchers: dict[int, list[int]] = {}  # ticket index -> customer sockets on it
    for key in range(args.sockets):
        watchers.setdefault(key % args.customers, []).append(key)
    for ph in phases:
        posted = ph["posted"]
        sent = posted["sent"]
        ok = len(sent)
        out["phases"].append({
            "rate": ph["rate"], "seconds": ph["seconds"], "replies_scheduled": posted["scheduled"], "replies_ok": ok,
            "reply_errors": len(posted["errors"]), "reply_error_samples": posted["errors"][:5],
            "achieved_per_s": round(ok / posted["wall_s"], 1) if posted["wall_s"] else 0.0,
            "answered_in_s": round(posted["wall_s"], 1),
            "post_p50_ms": round(posted["post_p50_ms"], 1), "post_p99_ms": round(posted["post_p99_ms"], 1),
            "max_send_lateness_ms": round(posted["max_send_lateness_ms"]),
            "poster_cpu_ms_per_reply": round(1000 * posted["poster_cpu_s"] / ok, 2) if ok else None,
            "customers": latency_stats([(at, arrivals[key].get(token)) for token, (at, i) in sent.items()
                                        for key in watchers[i]]),
            "agents": latency_stats([(at, arrivals[args.sockets + a].get(token)) for token, (at, _) in sent.items()
                                     for a in range(args.agents)]),
            "rss_after_replies_mib": round(ph["rss_after"] / 1024, 1),
            "server_cpu_s": round(ph["server_cpu_s"], 1), "phase_s": round(ph["phase_s"], 1),
            "server_cpu_ms_per_reply": round(1000 * ph["server_cpu_s"] / ok, 1) if ok else None,
            "busy_after_s": round(ph["busy_s"], 1), "client_cpu_s": [round(c, 1) for c in ph["client_cpu_s"]],
            "load_average": ph["load"],
        })
    return out


def ms(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def print_table(r: dict[str, Any]) -> None:
    print(f"\nsockets {r['sockets']:,} customers + {r['agent_sockets']} agents, opened {r['opened']:,} "
          f"({r['open_failed']} failed) in {r['open_s']} s from {r['client_procs']} client process(es), "
          f"permessage-deflate {'offered' if r['deflate'] else 'off'}; setup {r['setup_s']} s; "
          f"machine before setup: {r['load_before_setup']}")
    print(f"{r['customers']:,} customers with a ticket each; server RSS {r['rss_before_mib']} MiB before the "
          f"sockets, {r['rss_open_mib']} MiB with them open and idle ({r['kib_per_socket']} KiB per socket), "
          f"{r['rss_pinged_mib']} MiB after one heartbeat ping each ({r['kib_per_socket_pinged']} KiB per socket); "
          f"frames {r['frames']}; unexpected closes {r['closes'] or 'none'}")
    for ph in r["phases"]:
        print(f"at {ph['rate']:g}/s for {ph['seconds']:g} s: {ph['replies_ok']:,} of {ph['replies_scheduled']:,} replies answered in "
              f"{ph['answered_in_s']} s, {ph['reply_errors']} errors {ph['reply_error_samples'] or ''}; POST p50 "
              f"{ph['post_p50_ms']} ms, p99 {ph['post_p99_ms']} ms; worst send lateness {ph['max_send_lateness_ms']} ms; "
              f"server CPU {ph['server_cpu_s']} s in {ph['phase_s']} s ({ph['server_cpu_ms_per_reply']} ms per reply), "
              f"still busy {ph['busy_after_s']} s after the grace wait; poster CPU {ph['poster_cpu_ms_per_reply']} ms per "
              f"reply; socket clients' CPU {ph['client_cpu_s']} s; "
              f"load average {ph['load_average']}")
    print("\n| sockets | rate offered /s | subscriber | replies sent | events expected | delivered ≤ 5 s "
          "| lost (arrived after 5 s / never) | min ms | p50 ms | p95 ms | p99 ms | max ms "
          "| RSS before / open / pinged / after replies MiB | KiB per socket (open / pinged) | achieved replies/s |")
    print("|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for ph in r["phases"]:
        for label, s in (("customer (own ticket)", ph["customers"]),
                         (f"{r['agent_sockets']} agents (team queue)", ph["agents"])):
            print(f"| {r['sockets']:,} | {ph['rate']:g} | {label} | {ph['replies_ok']:,} | {s['expected']:,} | "
                  f"{s['delivered']:,} | {s['lost']:,} ({s['late']:,} / {s['missing']:,}) | {ms(s['min_ms'])} | "
                  f"{ms(s['p50_ms'])} | {ms(s['p95_ms'])} | {ms(s['p99_ms'])} | {ms(s['max_ms'])} | "
                  f"{r['rss_before_mib']:.0f} / {r['rss_open_mib']:.0f} / {r['rss_pinged_mib']:.0f} / "
                  f"{ph['rss_after_replies_mib']:.0f} | {r['kib_per_socket']} / {r['kib_per_socket_pinged']} | "
                  f"{ph['achieved_per_s']} |")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=1000, help="customer sockets, one ticket each")
    p.add_argument("--agents", type=int, default=10, help="agent sockets on the team queue")
    p.add_argument("--customers", type=int, default=0,
                   help="customers (one ticket each) the sockets belong to; default one per socket")
    p.add_argument("--heartbeat-wait", type=float, default=27.0,
                   help="seconds to wait after opening for the server's heartbeat ping (every 25 s)")
    p.add_argument("--rate", default="200",
                   help="replies per second; several comma-separated rates run one after the other on the same "
                        "sockets")
    p.add_argument("--seconds", default="20", help="how long each rate is offered (one value, or one per rate)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="how long after the last reply's response to wait for late events")
    p.add_argument("--client-procs", type=int, default=0, help="client processes (default: one per 2,500 sockets)")
    p.add_argument("--open-concurrency", type=int, default=50, help="handshakes in flight per client process")
    p.add_argument("--setup-concurrency", type=int, default=16)
    p.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temporary dir (logs)")
    args = p.parse_args()
    args.rate = [float(r) for r in args.rate.split(",") if float(r) > 0]  # --rate 0: memory only
    args.customers = args.customers or args.sockets
    args.seconds = [float(x) for x in args.seconds.split(",")]
    if len(args.seconds) == 1:
        args.seconds *= len(args.rate)
    if not args.rate:
        args.seconds = []
    if len(args.seconds) != len(args.rate):
        p.error("--seconds takes one value or one per rate")
    CLEANUP.install_signal_handlers(lambda done: print("cleaned up: " + "; ".join(done), file=sys.stderr))
    try:
        result = await run(args)
    finally:
        CLEANUP.run_all()
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        sys.exit(uvloop.run(main()))
    except ImportError:
        sys.exit(asyncio.run(main()))

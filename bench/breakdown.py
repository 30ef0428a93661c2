"""Where a ticket creation's (or a list page's) time goes, measured in one process without
the network: the app is called through httpx's ASGI transport, SQL statements are counted,
the driver's round trip is timed on its own, and pyinstrument (async-aware) profiles a
run, summed by library.

Needs pyinstrument in the venv for the profile part (``.venv/bin/pip install pyinstrument``).

    .venv/bin/python bench/breakdown.py [--postgres] [--requests 500] [--list-tickets 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ScratchDatabase, ScratchDir  # noqa: E402

from relaydesk import migrate  # noqa: E402
from relaydesk.app import create_app  # noqa: E402
from relaydesk.config import Settings  # noqa: E402
from relaydesk.core.observability import configure_logging  # noqa: E402
from relaydesk.runtime import build_runtime  # noqa: E402
from relaydesk.seeding.load import issue_access_token, seed_load  # noqa: E402

BUCKETS = [
    ("argon2", "argon2"), ("SQLAlchemy ORM", "sqlalchemy/orm"), ("SQLAlchemy Core/engine", "sqlalchemy/"),
    ("aiosqlite", "aiosqlite"), ("sqlite3", "sqlite3"), ("asyncpg", "asyncpg"), ("greenlet", "greenlet"),
    ("pydantic", "pydantic"), ("FastAPI", "fastapi"), ("Starlette", "starlette"), ("httpx (client side)", "httpx"),
    ("httpcore (client side)", "httpcore"), ("structlog", "structlog"), ("prometheus_client", "prometheus_client"),
    ("PyJWT", "jwt"), ("nh3", "nh3"), ("relaydesk", "relaydesk/"), ("anyio", "anyio"), ("asyncio", "asyncio"),
    ("json", "json"), ("taskiq", "taskiq"), ("scikit-learn / scipy / numpy", "sklearn"),
    ("scikit-learn / scipy / numpy", "scipy"), ("scikit-learn / scipy / numpy", "numpy"), ("vaderSentiment", "vader"),
]


IDLE = "event loop (mostly waiting; left out of the shares)"


def bucket(path: str) -> str:
    for label, needle in BUCKETS:
        if needle in path:
            return label
    return "other"


def by_library(root: Any) -> tuple[Counter[str], Counter[str]]:
    """Self time of every pyinstrument frame, summed by the library its file belongs to
    (and, for what matches no library, by function)."""
    out: Counter[str] = Counter()
    other: Counter[str] = Counter()
    stack = [root]
    while stack:
        frame = stack.pop()
        path = frame.file_path or ""
        # Synthetic frames (e.g. "[await]", "[self]") take their nearest real ancestor's library.
        parent = frame.parent
        while not path and parent is not None:
            path = parent.file_path or ""
            parent = parent.parent
        label = bucket(path)
        if label == "asyncio":
            label = IDLE  # with async_mode disabled the loop's waiting shows up here
        out[label] += frame.total_self_time
        if label == "other":
            other[f"{frame.function} ({path.rsplit('/', 2)[-2:] and '/'.join(path.rsplit('/', 2)[-2:])})"] += (
                frame.total_self_time)
        stack.extend(frame.children)
    return out, other


def ms(values: list[float]) -> str:
    values = sorted(values)
    return (f"mean {1000 * statistics.fmean(values):.2f} ms, p50 {1000 * values[len(values) // 2]:.2f} ms, "
            f"p95 {1000 * values[int(len(values) * 0.95)]:.2f} ms")


async def timed(client: httpx.AsyncClient, n: int, request, clients: int = 1) -> tuple[list[float], float]:  # noqa: ANN001
    """``n`` requests from ``clients`` concurrent callers (each waits for its answer)."""
    walls = []
    cpu0 = time.process_time()
    numbers = iter(range(n))

    async def caller() -> None:
        for i in numbers:
            t0 = time.perf_counter()
            r = await request(client, i)
            walls.append(time.perf_counter() - t0)
            assert r is None or r.status_code in (200, 201), r.text  # None: not an HTTP call

    await asyncio.gather(*(caller() for _ in range(clients)))
    return walls, (time.process_time() - cpu0) / n


def inclusive_relaydesk(root: Any) -> Counter[str]:
    """Total time of each relaydesk function (with what it calls), counted once per call path."""
    out: Counter[str] = Counter()
    stack = [(root, frozenset())]
    while stack:
        frame, seen = stack.pop()
        path = frame.file_path or ""
        key = None
        if "relaydesk/" in path:
            key = f"{frame.function} ({path.split('relaydesk/', 1)[1]})"
            if key not in seen:
                out[key] += frame.time
        stack.extend((c, seen | {key} if key else seen) for c in frame.children)
    return out


def profile_report(profiler: Any, n: int, title: str, *, functions: int = 0) -> None:
    session = profiler.last_session
    root = session.root_frame()
    libs, other = by_library(root)
    idle = libs.pop(IDLE, 0.0)
    total = sum(libs.values()) or 1.0
    print(f"\n{title}: pyinstrument, {n} requests, {1000 * total / n:.2f} ms sampled per request "
          f"(the profiler itself adds some; {1000 * idle / n:.2f} ms/request in the loop left out)")
    for label, t in libs.most_common(16):
        print(f"  {100 * t / total:5.1f}%  {1000 * t / n:6.3f} ms/request  {label}")
    print("  of which 'other':")
    for label, t in other.most_common(6):
        print(f"      {100 * t / total:5.1f}%  {label}")
    if functions:
        print("  relaydesk functions, including what they call:")
        for label, t in inclusive_relaydesk(root).most_common(functions):
            print(f"      {100 * t / total:5.1f}%  {1000 * t / n:6.3f} ms/ticket  {label}")


def _async_callers() -> list[Any]:
    """The code objects of the frames that led to this statement, outermost first. A
    statement runs in SQLAlchemy's greenlet, whose own stack stops at SQLAlchemy: the
    callers are on the parent greenlet's stack."""
    import greenlet

    frame = greenlet.getcurrent().parent.gr_frame
    codes = []
    while frame is not None:
        codes.append(frame.f_code)
        frame = frame.f_back
    return codes[::-1]


async def run(args: argparse.Namespace) -> None:
    scratch = ScratchDir("rd_breakdown_")
    db = ScratchDatabase(args.postgres_admin_url) if args.postgres else None
    runtime = None
    configure_logging("WARNING", True)
    try:
        if db:
            await db.create()
        settings = Settings(data_dir=scratch.path, database_url=db.url if db else None,
                            secret_key=secrets.token_urlsafe(32), access_token_ttl_seconds=7200,
                            log_level="WARNING")
        runtime = build_runtime(settings)
        await migrate.upgrade(runtime.db)
        backend = "PostgreSQL" if db else "SQLite"
        print(f"== {backend} ==")

        # 1. The driver's round trip, alone.
        n = 2000
        async with runtime.db.write_engine.connect() as conn:
            for _ in range(100):
                await conn.execute(text("SELECT 1"))
            t0 = time.perf_counter()
            for _ in range(n):
                await conn.execute(text("SELECT 1"))
            per = (time.perf_counter() - t0) / n
        print(f"SELECT 1 through SQLAlchemy's async engine: {1e6 * per:.0f} µs per statement")
        if not db:
            raw = sqlite3.connect(scratch.path / "relaydesk.db")
            t0 = time.perf_counter()
            for _ in range(n):
                raw.execute("SELECT 1").fetchall()
            print(f"SELECT 1 through plain sqlite3 (same thread): {1e6 * (time.perf_counter() - t0) / n:.1f} µs")
            raw.close()

        # 1b. The routing domain's pure steps, alone (when the project has them).
        try:
            from relaydesk.routing import classifier as category_model
            from relaydesk.routing import priority as priority_rules
        except ImportError:
            category_model = priority_rules = None
        if category_model is not None:
            model = category_model.CategoryClassifier.shipped()
            subject, description = "Order A-1001 arrived damaged", "The box was crushed and the lamp is cracked."
            model.predict(subject, description)
            t0 = time.process_time()
            for _ in range(200):
                model.predict(subject, description)
            print(f"category classifier predict (one ticket): "
                  f"{1000 * (time.process_time() - t0) / 200:.2f} ms CPU")
            if hasattr(priority_rules, "decide_priority"):
                t0 = time.process_time()
                for _ in range(200):
                    priority_rules.decide_priority(subject, description)
                print(f"priority rules + sentiment (one ticket): {1000 * (time.process_time() - t0) / 200:.2f} ms CPU")

        # 2. Requests through the app, in process (no sockets, no uvicorn, no background loops).
        statements: Counter[str] = Counter()
        texts: Counter[str] = Counter()

        @event.listens_for(runtime.db.write_engine.sync_engine, "before_cursor_execute")
        def _count(_conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001
            statements[statement.split()[0].upper()] += 1
            short = " ".join(statement.split())[:110]
            if args.where:  # which of our functions issued it: the innermost three, outside core/
                frames = [f"{Path(code.co_filename).parent.name}/{Path(code.co_filename).name}:{code.co_name}"
                          for code in _async_callers() if "relaydesk/" in code.co_filename
                          and "relaydesk/core/" not in code.co_filename][-3:]
                short = short[:60] + "  <- " + " < ".join(reversed(frames))
            texts[short] += 1

        if runtime.db.read_engine is not runtime.db.write_engine:
            event.listen(runtime.db.read_engine.sync_engine, "before_cursor_execute", _count)

        app = create_app(runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            password = secrets.token_urlsafe(16)
            r = await client.post("/api/v1/workspaces", json={
                "name": "Breakdown", "admin_name": "Admin", "admin_email": "admin@breakdown.example.com",
                "admin_password": password})
            slug = r.json()["workspace"]["slug"]
            t0 = time.perf_counter()
            r = await client.post("/api/v1/auth/login", json={
                "email": "admin@breakdown.example.com", "password": password, "workspace": slug})
            print(f"one sign-in (argon2 verify with the default cost): {1000 * (time.perf_counter() - t0):.0f} ms "
                  "- only at login, not per request")
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            customer = (await client.post("/api/v1/customers", json={
                "name": "Load Customer", "email": "load.customer@example.com"})).json()["id"]

            async def create(c: httpx.AsyncClient, i: int) -> httpx.Response:
                return await c.post("/api/v1/tickets", json={
                    "subject": f"Order A-{i} arrived damaged", "requester_id": customer, "tags": ["damaged"],
                    "description": f"The box for order A-{i} was crushed and the lamp inside is cracked."})

            async def health(c: httpx.AsyncClient, _i: int) -> httpx.Response:
                return await c.get("/healthz")

            async def me(c: httpx.AsyncClient, _i: int) -> httpx.Response:
                return await c.get("/api/v1/me")

            await timed(client, 50, create)
            statements.clear()
            texts.clear()
            walls, cpu = await timed(client, args.requests, create)
            per_request = {k: v / args.requests for k, v in statements.items()}
            print(f"POST /tickets in process: {ms(walls)}; CPU {1000 * cpu:.2f} ms/request "
                  f"(includes the httpx client's share)")
            print("  SQL statements per creation: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_request.items()))
                  + f"  (total {sum(per_request.values()):.1f})")
            if args.statements:
                for statement, count in texts.most_common():
                    print(f"    {count / args.requests:5.2f} x  {statement}")
            walls, cpu = await timed(client, args.requests, health)
            print(f"GET /healthz in process (middleware + routing + httpx floor): {ms(walls)}; "
                  f"CPU {1000 * cpu:.2f} ms/request")
            walls, cpu = await timed(client, args.requests, me)
            print(f"GET /me in process (bearer auth + 2 reads): {ms(walls)}; CPU {1000 * cpu:.2f} ms/request")

            try:
                from pyinstrument import Profiler
            except ImportError:
                Profiler = None  # noqa: N806
                print("(pyinstrument not installed: no profile)")
            if Profiler:
                profiler = Profiler(interval=0.001, async_mode="enabled")
                profiler.start()
                await timed(client, args.requests, create)
                profiler.stop()
                profile_report(profiler, args.requests, "POST /tickets")
                if args.show_tree:
                    print(profiler.output_text(unicode=False, color=False, show_all=False))

            # 3. The same with the app's background work running (lifespan: dispatcher, jobs,
            # scheduler), as under `relaydesk serve`: every new ticket is routed after commit.
            async with app.router.lifespan_context(app):
                for i in range(args.agents):
                    r = await client.post("/api/v1/agents", json={
                        "name": f"Load Agent {i}", "email": f"agent{i}@breakdown.example.com",
                        "password": secrets.token_urlsafe(16), "role": "agent", "max_concurrent": 500,
                        "availability": "online"})
                    assert r.status_code == 201, r.text
                async def with_background(label: str, unit: str, n: int, request, functions: int) -> None:  # noqa: ANN001
                    """Requests plus all the background work they set off: CPU, statements, profile."""
                    await timed(client, 20, request)
                    await drain(runtime)
                    statements.clear()
                    texts.clear()
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    walls, _ = await timed(client, n, request, args.clients)
                    drained = await drain(runtime)
                    cpu = (time.process_time() - cpu0) / n
                    per = {k: v / n for k, v in statements.items()}
                    print(f"\n{label} with its background work: {ms(walls)}; background went on {drained:.1f} s "
                          f"after the last response; CPU {1000 * cpu:.2f} ms per {unit} in all, "
                          f"{n / (time.perf_counter() - wall0):.0f} {unit}s/s with {args.clients} client(s)")
                    print(f"  SQL statements per {unit} in all: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items()))
                          + f"  (total {sum(per.values()):.1f})")
                    if args.statements:
                        for statement, count in texts.most_common():
                            print(f"    {count / n:5.2f} x  {statement}")
                    if Profiler:
                        # async_mode disabled: sample whatever runs on the loop, background tasks included.
                        profiler = Profiler(interval=0.001, async_mode="disabled")
                        profiler.start()
                        await timed(client, n, request)
                        await drain(runtime)
                        profiler.stop()
                        profile_report(profiler, n, f"{label} + background work", functions=functions)

                await with_background("POST /tickets", "ticket", args.requests, create, 24)

                # 4. Agents' public replies to routed tickets, with their background work
                # (SLA, the customer's email, webhooks, live events): the fan-out benchmark's load.
                if args.replies:
                    page = (await client.get("/api/v1/tickets", params={"limit": 100})).json()["items"]
                    tickets = [t["id"] for t in page if t.get("assignee_id")]

                    async def reply(c: httpx.AsyncClient, i: int) -> httpx.Response:
                        r = await c.post(f"/api/v1/tickets/{tickets[i % len(tickets)]}/messages",
                                         json={"body": f"Reply {i}: we have shipped a replacement."})
                        assert r.status_code == 201, r.text
                        return r

                    await with_background("POST /tickets/{id}/messages (agent reply)", "reply", args.replies,
                                          reply, 30)

                # 5. Inbound emails as the SMTP listener stores them (one transaction per
                # message), then parsed, threaded and turned into tickets or replies by the
                # background jobs: the inbound-email benchmark's load without the SMTP dialogue.
                if args.emails:
                    from inbound_email import make_messages

                    from relaydesk.channels.tasks import inbound_service

                    page = (await client.get("/api/v1/tickets", params={"limit": 100})).json()["items"]
                    requester = (await client.get(f"/api/v1/customers/{customer}")).json()
                    targets = [{"name": requester["name"], "email": requester["email"], "number": t["number"],
                                "subject": t["subject"]} for t in page]
                    # Warm-up, measured run and profiled run each get messages of their own:
                    # a message seen before (same Message-ID) is only recognised as a copy.
                    mails = make_messages(2 * args.emails + 20, 500, targets, f"{slug}@{settings.mail_domain}",
                                          secrets.token_hex(3))
                    sent = iter(mails)
                    workspace_id = uuid.UUID((await client.get("/api/v1/me")).json()["workspace_id"])

                    async def receive(_c: httpx.AsyncClient, _i: int) -> None:
                        mail = next(sent)
                        async with runtime.transaction() as session:
                            inbound_service(runtime, session).receive(
                                workspace_id, mail["raw"], source="smtp", now=runtime.clock.now(),
                                envelope_from=mail["from"])

                    await with_background("an inbound email (stored, then processed)", "email", args.emails,
                                          receive, 30)

            if args.list_tickets:
                await seed_load(settings, "breakdown-list", args.list_tickets, 3)
                token = await issue_access_token(settings, "breakdown-list")
                client.headers["Authorization"] = f"Bearer {token}"
                items = (await client.get("/api/v1/tickets", params={"limit": 200,
                                                                      "status": "IN_PROGRESS"})).json()["items"]
                assignee = Counter(t["assignee_id"] for t in items).most_common(1)[0][0]
                for name, params in (("unfiltered", {"limit": 50}),
                                     ("status+assignee", {"limit": 50, "status": "IN_PROGRESS",
                                                          "assignee_id": assignee})):
                    async def page(c: httpx.AsyncClient, _i: int, params: dict = params) -> httpx.Response:
                        return await c.get("/api/v1/tickets", params=params)

                    await timed(client, 20, page)
                    walls, cpu = await timed(client, args.requests, page)
                    print(f"\nGET /tickets {name} @ {args.list_tickets:,}, in process: {ms(walls)}; "
                          f"CPU {1000 * cpu:.2f} ms/request")
                    if Profiler:
                        profiler = Profiler(interval=0.001, async_mode="enabled")
                        profiler.start()
                        await timed(client, args.requests, page)
                        profiler.stop()
                        profile_report(profiler, args.requests, f"GET /tickets {name}")
    finally:
        if runtime:
            await runtime.close()
        if db:
            await db.drop()
        scratch.remove()


async def drain(runtime: Any, *, quiet_checks: int = 3, timeout: float = 120.0) -> float:
    """Wait until no outbox event is pending and the process stays (nearly) idle for a while."""
    from sqlalchemy import func, select

    from relaydesk.core.outbox import OutboxEvent

    started = time.perf_counter()
    quiet = 0
    while time.perf_counter() - started < timeout and quiet < quiet_checks:
        cpu0 = time.process_time()
        await asyncio.sleep(0.1)
        async with runtime.db.read_session() as session:
            pending = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                           .where(OutboxEvent.dispatched_at.is_(None)))
        idle = time.process_time() - cpu0 < 0.01
        quiet = quiet + 1 if not pending and idle else 0
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--agents", type=int, default=8, help="online agents for the background-routing part")
    p.add_argument("--list-tickets", type=int, default=0, help="also break down list pages at this size")
    p.add_argument("--show-tree", action="store_true", help="print pyinstrument's call tree for creation")
    p.add_argument("--statements", action="store_true", help="list the SQL statements one ticket costs")
    p.add_argument("--replies", type=int, default=0, help="also measure this many agent replies")
    p.add_argument("--emails", type=int, default=0, help="also measure this many inbound emails")
    p.add_argument("--clients", type=int, default=1,
                   help="concurrent callers for the parts with background work (under load its batches grow)")
    p.add_argument("--where", action="store_true", help="with --statements: name the functions that issue each")
    args = p.parse_args()
    from harness import CLEANUP

    CLEANUP.install_signal_handlers(lambda done: print("interrupted; cleaned up: " + "; ".join(done)))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(run(args))
    finally:
        CLEANUP.run_all()


if __name__ == "__main__":
    main()

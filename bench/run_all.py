"""Relaydesk's benchmark (``make bench``).

For the embedded mode (SQLite in a fresh temporary data dir) and for PostgreSQL (a fresh
``rd_bench_<random>`` database, dropped at the end) this starts ``relaydesk serve`` on a free
port and measures through the public API:

* ticket creations per second at 16 concurrent clients (and at 1, for the service time),
  with p50/p95/p99 latency, bounded by a request count and a time limit;
* p50/p95/p99 of the first page of ``GET /api/v1/tickets``, unfiltered, filtered by
  status + assignee, the open work most urgent first (``sort=-priority``) and a search
  (``q=tracking``), with 10,000 and then 100,000 tickets in the workspace (filled with
  ``relaydesk seed-load``).

Server, seed and migration output goes to log files in the temporary data dir; all of it
is removed at the end, also on errors and Ctrl-C (``--keep`` keeps the files).

    .venv/bin/python bench/run_all.py [--quick] [--skip-postgres] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    CLEANUP,
    LoadResult,
    ScratchDatabase,
    ScratchDir,
    Server,
    background_load,
    base_env,
    closed_loop,
    machine_info,
    postgres_version,
    run_cli,
    wait_idle,
)

from relaydesk.config import Settings  # noqa: E402
from relaydesk.seeding.load import issue_access_token  # noqa: E402

# Wide enough for one line per measurement, also when the output goes to a file.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

SUBJECTS = ["Order {n} arrived damaged", "Refund for order {n}", "Can't sign in since this morning",
            "Where is my parcel {n}?", "Invoice {n} needs our VAT number", "Wrong size delivered ({n})"]
DESCRIPTIONS = [
    "Hi, the box for order {n} was crushed and the lamp inside is cracked. Can I get a replacement?",
    "I returned the boots two weeks ago and the refund for {n} still hasn't arrived.",
    "The password reset email never arrives; I checked my spam folder twice.",
    "Tracking for {n} hasn't moved in five days. Could you check with the courier?",
]
PRIORITIES = ["LOW", "MEDIUM", "MEDIUM", "HIGH", "URGENT"]
TAGS = [[], ["shipping"], ["refund", "billing"], ["login"], ["damaged", "vip"]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts and short runs, for a smoke test")
    p.add_argument("--skip-postgres", action="store_true", help="only the embedded (SQLite) mode")
    p.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL")
    p.add_argument("--postgres-admin-url", default=os.environ.get(
        "RELAYDESK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a database to connect to for CREATE/DROP DATABASE")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients creating tickets")
    p.add_argument("--agents", type=int, default=8, help="online agents in the ticket-creation workspace")
    p.add_argument("--create-requests", type=int, help="stop ticket creation after this many requests")
    p.add_argument("--create-seconds", type=float, help="...or after this many seconds")
    p.add_argument("--skip-lists", action="store_true", help="only the HTTP floor and ticket creation")
    p.add_argument("--sizes", help="comma-separated workspace sizes for the list benchmark (default 10000,100000)")
    p.add_argument("--list-requests", type=int, help="measured requests per list query and size")
    p.add_argument("--list-clients", type=int, default=4,
                   help="concurrent clients for the list benchmark (1 client is always measured too)")
    p.add_argument("--messages-per-ticket", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dirs (and their logs)")
    args = p.parse_args(argv)
    quick = args.quick
    args.create_requests = args.create_requests or (600 if quick else 20_000)
    args.create_seconds = args.create_seconds or (4.0 if quick else 20.0)
    args.serial_requests = 100 if quick else 300
    args.list_requests = args.list_requests or (50 if quick else 200)
    args.sizes = [int(s) for s in (args.sizes or ("1000,3000" if quick else "10000,100000")).split(",")]
    if args.sizes != sorted(args.sizes):
        p.error("--sizes must be ascending (the workspace is filled up step by step)")
    return args


# -- one backend ------------------------------------------------------------------------------------
async def bench_backend(label: str, args: argparse.Namespace, database_url: str | None,
                        scratch: ScratchDir) -> dict[str, Any]:
    data_dir = scratch.path / "data"
    secret_key = secrets.token_urlsafe(32)
    env = base_env(data_dir, database_url, secret_key)
    log = scratch.path / "relaydesk.log"
    results: dict[str, Any] = {"backend": label, "create": [], "list": [], "seed": []}

    console.print(f"\n[bold]== {label} ==[/bold]  (logs: {log})")
    run_cli(["migrate"], env, log)
    server = Server(env, scratch.path / "server.log")
    try:
        await server.start()
        settled = await wait_idle(server.pid)  # start-up work (e.g. loading the classifier) first
        console.print(f"server pid {server.pid} on {server.base_url} (busy {settled:.1f} s after start-up)")
        results["create"] = [await bench_floor(server, args)] + await bench_create(server, args)
        if not args.skip_lists:
            results["list"], results["seed"] = await bench_lists(server, args, env, log, data_dir, database_url,
                                                                 secret_key)
    finally:
        server.stop()
    return results


async def bench_floor(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """GET /healthz: no database, no auth; what the HTTP stack alone costs on this machine."""
    async def health(c: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await c.get("/healthz")

    result = await closed_loop("GET /healthz (HTTP floor)", server.base_url, "-", health, clients=args.clients,
                               max_requests=args.create_requests, max_seconds=min(args.create_seconds, 5.0),
                               expect=200, warmup=2 * args.clients, server_pid=server.pid)
    report(result)
    return result.as_dict()


async def bench_create(server: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        password = secrets.token_urlsafe(16)
        email = f"admin.{secrets.token_hex(3)}@bench-create.example.com"
        r = await client.post("/api/v1/workspaces", json={
            "name": f"Bench Create {secrets.token_hex(3)}", "admin_name": "Bench Admin",
            "admin_email": email, "admin_password": password})
        r.raise_for_status()
        slug = r.json()["workspace"]["slug"]
        r = await client.post("/api/v1/auth/login", json={"email": email, "password": password, "workspace": slug})
        r.raise_for_status()
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        # Online agents with room, so the background routing of each new ticket assigns it.
        for i in range(args.agents):
            r = await client.post("/api/v1/agents", headers=auth, json={
                "name": f"Load Agent {i}", "email": f"agent{i}.{secrets.token_hex(3)}@bench-create.example.com",
                "password": secrets.token_urlsafe(16), "role": "agent", "max_concurrent": 500,
                "availability": "online"})
            r.raise_for_status()
        customers = []
        for i in range(args.clients):
            r = await client.post("/api/v1/customers", headers=auth, json={
                "name": f"Load Customer {i}", "email": f"customer{i}.{secrets.token_hex(3)}@example.com"})
            r.raise_for_status()
            customers.append(r.json()["id"])

    async def create(c: httpx.AsyncClient, i: int) -> httpx.Response:
        return await c.post("/api/v1/tickets", json={
            "subject": SUBJECTS[i % len(SUBJECTS)].format(n=f"A-{10000 + i}"),
            "description": DESCRIPTIONS[i % len(DESCRIPTIONS)].format(n=f"A-{10000 + i}"),
            "requester_id": customers[i % len(customers)], "priority": PRIORITIES[i % len(PRIORITIES)],
            "channel": "email" if i % 3 else "phone", "tags": TAGS[i % len(TAGS)],
        })

    out = []
    for clients, max_requests in ((1, args.serial_requests), (args.clients, args.create_requests)):
        result = await closed_loop(
            f"create ticket ({clients} client{'s' if clients > 1 else ''})", server.base_url, token, create,
            clients=clients, max_requests=max_requests, max_seconds=args.create_seconds, expect=201,
            warmup=2 * clients, server_pid=server.pid)
        # Routing, notifications... run in the server after each creation: wait for them.
        result.drain_s = await wait_idle(server.pid)
        report(result)
        out.append(result.as_dict())
    return out


async def bench_lists(server: Server, args: argparse.Namespace, env: dict[str, str], log: Path, data_dir: Path,
                      database_url: str | None, secret_key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    slug = f"bench-list-{secrets.token_hex(3)}"
    settings = Settings(data_dir=data_dir, database_url=database_url, secret_key=secret_key,
                        access_token_ttl_seconds=7200)
    lists, seeds = [], []
    have = 0
    token = None
    for size in args.sizes:
        add = size - have
        seconds = run_cli(["seed-load", "--tickets", str(add), "--workspace", slug,
                           "--messages-per-ticket", str(args.messages_per_ticket)], env, log)
        have = size
        seeds.append({"added": add, "total": size, "seconds": round(seconds, 2), "tickets_per_s": round(add / seconds)})
        console.print(f"seed-load: +{add:,} tickets (now {size:,}) in {seconds:.1f} s "
                      f"({add / seconds:,.0f} tickets/s, including start-up)")
        token = token or await issue_access_token(settings, slug)
        assignee = await busiest_assignee(server.base_url, token)

        async def unfiltered(c: httpx.AsyncClient, _i: int) -> httpx.Response:
            return await c.get("/api/v1/tickets", params={"limit": 50})

        async def filtered(c: httpx.AsyncClient, _i: int, assignee: str = assignee) -> httpx.Response:
            return await c.get("/api/v1/tickets", params={"limit": 50, "status": "IN_PROGRESS",
                                                          "assignee_id": assignee})

        async def queue(c: httpx.AsyncClient, _i: int) -> httpx.Response:
            """A team's open work, most urgent first: a priority rank the index cannot serve."""
            return await c.get("/api/v1/tickets", params={"limit": 50, "status": ["OPEN", "ASSIGNED"],
                                                          "sort": "-priority"})

        async def search(c: httpx.AsyncClient, _i: int) -> httpx.Response:
            """A word in some subjects and threads, over the whole workspace (a scan)."""
            return await c.get("/api/v1/tickets", params={"limit": 50, "q": "tracking"})

        for name, maker in (("list, unfiltered", unfiltered), ("list, status+assignee", filtered),
                            ("list, open by priority", queue), ("list, search 'tracking'", search)):
            async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as c:
                items = len((await maker(c, 0)).json()["items"])
            for clients in sorted({1, args.list_clients}):
                result = await closed_loop(
                    f"{name} @ {size:,}, {clients} client{'s' if clients > 1 else ''}", server.base_url, token,
                    maker, clients=clients, max_requests=args.list_requests, max_seconds=120, expect=200,
                    warmup=20, server_pid=server.pid)
                report(result, note=f"{items} items/page")
                lists.append({**result.as_dict(), "tickets": size, "items_per_page": items})
    return lists, seeds


async def busiest_assignee(base_url: str, token: str) -> str:
    """The agent with the most IN_PROGRESS tickets on the newest page, so the filtered page is full."""
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as c:
        r = await c.get("/api/v1/tickets", params={"limit": 200, "status": "IN_PROGRESS"})
        r.raise_for_status()
        counts = Counter(t["assignee_id"] for t in r.json()["items"] if t["assignee_id"])
    if not counts:
        raise RuntimeError("no IN_PROGRESS ticket with an assignee to filter on")
    return counts.most_common(1)[0][0]


def report(result: LoadResult, note: str = "") -> None:
    d = result.as_dict()
    cpu = d["cpu"]
    cpu_note = ""
    if cpu and result.ok:
        cpu_note = (f"  server CPU {1000 * cpu['server_cpu_s'] / result.ok:.2f} ms/req "
                    f"({100 * cpu['server_cpu_s'] / cpu['wall_s']:.0f}% of a core), client "
                    f"{1000 * cpu['client_cpu_s'] / result.ok:.2f} ms/req, machine {cpu['machine_busy_pct']:.0f}% busy")
    console.print(f"  {d['name']:<40} {d['ok']:>6} ok {d['errors']:>3} err  {d['per_s']:>8.1f}/s  "
                  f"p50 {d['p50_ms']:6.2f}  p95 {d['p95_ms']:6.2f}  p99 {d['p99_ms']:6.2f} ms"
                  f"{'  ' + note if note else ''}{cpu_note}")
    if d.get("drain_s") is not None:
        console.print(f"    background work went on {d['drain_s']:.2f} s after the last response: sustained "
                      f"{d['sustained_per_s']:.1f} tickets/s including it")
    for sample in d["error_samples"][:3]:
        console.print(f"    [red]error:[/red] {sample}")


# -- the whole run --------------------------------------------------------------------------------------
def summary_table(all_results: list[dict[str, Any]]) -> Table:
    table = Table(title="Results (latencies are client-side, in ms)")
    for col in ("backend", "measurement", "requests", "errors", "per s", "sustained/s", "p50", "p95", "p99"):
        table.add_column(col, justify="left" if col in ("backend", "measurement") else "right")
    for res in all_results:
        for row in res["create"] + res["list"]:
            sustained = "" if row.get("sustained_per_s") is None else f"{row['sustained_per_s']:.0f}"
            table.add_row(res["backend"], row["name"], str(row["ok"]), str(row["errors"]), f"{row['per_s']:.0f}",
                          sustained, f"{row['p50_ms']:.2f}", f"{row['p95_ms']:.2f}", f"{row['p99_ms']:.2f}")
        for seed in res["seed"]:
            table.add_row(res["backend"], f"seed-load +{seed['added']:,} (to {seed['total']:,}, {seed['seconds']} s)",
                          "", "", f"{seed['tickets_per_s']:,} t/s", "", "", "", "")
    return table


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    pg_version = None if args.skip_postgres else await postgres_version(args.postgres_admin_url)
    if not args.skip_postgres and pg_version is None:
        console.print(f"[red]PostgreSQL is not reachable at {args.postgres_admin_url}; use --skip-postgres.[/red]")
        return 2
    info = machine_info(pg_version)
    idle_load = await background_load()
    info["load before start"] = f"{idle_load:.0f}% of all cores busy with other work"
    machine = Table(title="Machine", show_header=False)
    for k, v in info.items():
        machine.add_row(k, v)
    console.print(machine)
    if idle_load > 10:
        console.print(f"[yellow]warning: the machine was already {idle_load:.0f}% busy before the benchmark; "
                      "results will be lower than on a quiet machine[/yellow]")
    console.print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")

    all_results = []
    if not args.skip_sqlite:
        scratch = ScratchDir("rd_bench_sqlite_", keep=args.keep)
        try:
            all_results.append(await bench_backend("SQLite (embedded)", args, None, scratch))
        finally:
            scratch.remove()
    if not args.skip_postgres:
        scratch = ScratchDir("rd_bench_pg_", keep=args.keep)
        db = ScratchDatabase(args.postgres_admin_url)
        try:
            await db.create()
            console.print(f"\nscratch database {db.name}")
            all_results.append(await bench_backend("PostgreSQL", args, db.url, scratch))
        finally:
            await db.drop()
            scratch.remove()

    console.print()
    console.print(summary_table(all_results))
    total = time.perf_counter() - started
    console.print(f"total time {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "argv": sys.argv, "seconds": round(total, 1),
                                         "results": all_results}, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def _interrupted(done: list[str]) -> None:
    print("\ninterrupted; cleaned up: " + ("; ".join(done) or "nothing to clean"), file=sys.stderr, flush=True)


if __name__ == "__main__":
    CLEANUP.install_signal_handlers(_interrupted)
    arguments = parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        code = runner(main(arguments))
    finally:
        CLEANUP.run_all()  # normally nothing is left; after an error, whatever the finally blocks missed
    sys.exit(code)

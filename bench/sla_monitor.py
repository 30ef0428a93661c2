"""One pass of the SLA monitor (``SlaService.scan_due``) over a large ``sla_trackers`` table.

For each size (default 100,000 then 1,000,000 tickets) and each back end (SQLite, then a
scratch PostgreSQL database ``rd_bench_<random>``):

1. ``seed_load`` fills the workspace with tickets (1 message per ticket, to keep the fill
   short); the second size adds only the difference.
2. Every ticket without a tracker gets one, written by one bulk Core
   ``INSERT INTO sla_trackers ... SELECT FROM tickets`` per batch of tickets, with
   ``next_check_at`` ten years ahead.  PostgreSQL then gets ``ANALYZE``.
3. 100 trackers of open tickets are made due: their clocks started 6.5 hours ago
   (first response 8 h, resolution 48 h, no policy, always-open calendar), so a pass
   crosses the first-response *warning* threshold, publishes one outbox event each, and
   sets the next check for the *critical* threshold.
4. ``scan_due(now, limit=500)`` runs in one ``runtime.transaction()``; the 100 rows are
   reset before each pass.  Reported: rows the due-rows SELECT returned, SQL statements
   in the pass, and the median/min/max milliseconds over ``--passes`` passes.
5. The plan of the due-rows SELECT (SQLite ``EXPLAIN QUERY PLAN``; PostgreSQL
   ``EXPLAIN (ANALYZE, BUFFERS)`` inside a rolled-back transaction).

Usage::

    .venv/bin/python bench/sla_monitor.py [--sizes 100000,1000000] [--skip-postgres]
        [--skip-sqlite] [--passes 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import harness
from harness import CLEANUP, ScratchDatabase, ScratchDir
from sqlalchemy import bindparam, event, literal, select, text, update

ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WORKSPACE = "slabench"
DUE = 100
LIMIT = 500
TRACKER_BATCH = 100_000  # tickets per INSERT ... SELECT


def _settings(data_dir: Path, database_url: str | None) -> Any:
    """Settings for this run only, whatever RELAYDESK_* the shell has."""
    for key in [k for k in os.environ if k.startswith("RELAYDESK_")] + ["DATABASE_URL", "REDIS_URL"]:
        os.environ.pop(key, None)
    os.environ["RELAYDESK_DATA_DIR"] = str(data_dir)
    os.environ["RELAYDESK_LOG_LEVEL"] = "WARNING"
    os.environ["RELAYDESK_SECRET_KEY"] = "bench-" + "x" * 40
    if database_url:
        os.environ["RELAYDESK_DATABASE_URL"] = database_url
    from relaydesk.config import Settings

    return Settings()


def _clocks(started: datetime) -> dict[str, Any]:
    from relaydesk.sla import engine

    return {"first_response": engine.start("first_response", timedelta(hours=8), started).to_dict(),
            "resolution": engine.start("resolution", timedelta(hours=48), started).to_dict()}


async def _add_trackers(runtime: Any, now: datetime) -> tuple[int, float]:
    """A tracker, due in ten years, for every ticket that has none; returns (rows, seconds)."""
    from relaydesk.sla.models import SlaTracker
    from relaydesk.tickets.models import Ticket

    t = SlaTracker.__table__
    far = now + timedelta(days=3650)
    clocks = _clocks(now - timedelta(hours=1))
    started = time.perf_counter()
    added = 0
    async with runtime.db.write_engine.connect() as conn:
        ids = list((await conn.execute(
            select(Ticket.id).where(~select(t.c.ticket_id).where(t.c.ticket_id == Ticket.id).exists())
            .order_by(Ticket.id))).scalars())
    for i in range(0, len(ids), TRACKER_BATCH):
        lo, hi = ids[i], ids[min(i + TRACKER_BATCH, len(ids)) - 1]
        source = select(
            Ticket.id, Ticket.workspace_id, literal(None, t.c.policy_id.type), literal("Default", t.c.policy_name.type),
            Ticket.priority, literal(clocks, t.c.clocks.type), literal("ok", t.c.state.type),
            literal(False, t.c.breached.type), literal(0, t.c.escalation_level.type),
            literal(None, t.c.next_escalation_at.type), literal(far, t.c.next_check_at.type),
            literal(now, t.c.created_at.type), literal(now, t.c.updated_at.type),
        ).where(Ticket.id >= lo, Ticket.id <= hi,
                ~select(t.c.ticket_id).where(t.c.ticket_id == Ticket.id).exists())
        stmt = t.insert().from_select(
            ["ticket_id", "workspace_id", "policy_id", "policy_name", "priority", "clocks", "state", "breached",
             "escalation_level", "next_escalation_at", "next_check_at", "created_at", "updated_at"], source)
        async with runtime.db.write_engine.begin() as conn:
            added += (await conn.execute(stmt)).rowcount
    if runtime.db.write_engine.dialect.name == "postgresql":
        async with runtime.db.write_engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE sla_trackers"))
            await conn.execute(text("ANALYZE tickets"))
    return added, time.perf_counter() - started


async def _pick_due(runtime: Any) -> list[Any]:
    from relaydesk.tickets.models import Ticket

    async with runtime.db.read_engine.connect() as conn:
        return list((await conn.execute(
            select(Ticket.id).where(Ticket.status.notin_(["RESOLVED", "CLOSED"])).order_by(Ticket.id.desc())
            .limit(DUE))).scalars())


async def _make_due(runtime: Any, ticket_ids: list[Any], now: datetime) -> None:
    from relaydesk.sla.models import SlaTracker

    t = SlaTracker.__table__
    async with runtime.db.write_engine.begin() as conn:
        await conn.execute(update(t).where(t.c.ticket_id.in_(ticket_ids)).values(
            clocks=_clocks(now - timedelta(hours=6, minutes=30)), state="ok", breached=False, escalation_level=0,
            next_escalation_at=None, next_check_at=now - timedelta(seconds=1), updated_at=now))


def _due_select(now: datetime) -> Any:
    from relaydesk.sla.models import SlaTracker

    return (select(SlaTracker).where(SlaTracker.next_check_at <= bindparam("now", now, type_=SlaTracker.next_check_at.type))
            .order_by(SlaTracker.next_check_at).limit(LIMIT).with_for_update(skip_locked=True))


async def _explain(runtime: Any, now: datetime) -> str:
    engine = runtime.db.write_engine
    stmt = _due_select(now)
    compiled = stmt.compile(dialect=engine.dialect)
    sql = str(compiled)
    params = compiled.params
    args = tuple(params[k] for k in compiled.positiontup)
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args)).all()
            return "\n".join(str(r[-1]) for r in rows)
        trans = await conn.begin()
        try:
            rows = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, args)).all()
        finally:
            await trans.rollback()
        return "\n".join(r[0] for r in rows)


async def _passes(runtime: Any, ticket_ids: list[Any], passes: int) -> dict[str, Any]:
    from relaydesk.sla.tasks import sla_service

    counter: dict[str, Any] = {"on": False, "statements": 0, "tracker_selects": 0, "kinds": {}}

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if counter["on"]:
            counter["statements"] += 1
            words = statement.split()
            verb = words[0].upper() if words else "?"
            table = next((w.strip('"') for prev, w in itertools.pairwise(words)
                          if prev.upper() in ("FROM", "INTO", "UPDATE")), "?") if verb != "UPDATE" else words[1]
            key = f"{verb} {table}"
            counter["kinds"][key] = counter["kinds"].get(key, 0) + 1
            if statement.lstrip().upper().startswith("SELECT") and "FROM sla_trackers" in statement:
                counter["tracker_selects"] += 1

    sync_engine = runtime.db.write_engine.sync_engine
    event.listen(sync_engine, "after_cursor_execute", on_execute)
    timings, rows, statements, selects = [], [], [], []
    try:
        for _ in range(passes + 1):  # the first pass warms caches and is not counted
            now = datetime.now(UTC)
            await _make_due(runtime, ticket_ids, now)
            counter.update(statements=0, tracker_selects=0, kinds={}, on=True)
            started = time.perf_counter()
            async with runtime.transaction() as session:
                done = await sla_service(runtime, session).scan_due(now, limit=LIMIT)
            elapsed = (time.perf_counter() - started) * 1000
            counter["on"] = False
            timings.append(elapsed)
            rows.append(done)
            statements.append(counter["statements"])
            selects.append(counter["tracker_selects"])
    finally:
        event.remove(sync_engine, "after_cursor_execute", on_execute)
    timings, rows, statements, selects = timings[1:], rows[1:], statements[1:], selects[1:]
    return {"rows_read": rows[-1], "statements": statements[-1], "tracker_selects": selects[-1],
            "ms_median": round(statistics.median(timings), 1), "ms_min": round(min(timings), 1),
            "ms_max": round(max(timings), 1), "passes": len(timings), "all_ms": [round(x, 1) for x in timings],
            "statement_kinds": dict(sorted(counter["kinds"].items(), key=lambda kv: -kv[1]))}


async def _count_trackers(runtime: Any) -> int:
    async with runtime.db.read_engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM sla_trackers"))).scalar_one())


async def run_backend(name: str, database_url: str | None, sizes: list[int], passes: int,
                      data_dir: Path) -> list[dict[str, Any]]:
    from relaydesk.runtime import build_runtime
    from relaydesk.seeding.load import seed_load

    settings = _settings(data_dir, database_url)
    results = []
    have = 0
    for size in sizes:
        add = size - have
        started = time.perf_counter()
        if add > 0:
            print(f"[{name}] seed_load +{add:,} tickets ...", flush=True)
            await seed_load(settings, WORKSPACE, add, 1, seed=size)
        seed_s = time.perf_counter() - started
        have = max(have, size)
        runtime = build_runtime(settings)
        try:
            now = datetime.now(UTC)
            added, tracker_s = await _add_trackers(runtime, now)
            total = await _count_trackers(runtime)
            print(f"[{name}] {total:,} trackers ({added:,} added in {tracker_s:.1f} s; seed {seed_s:.1f} s)", flush=True)
            ids = await _pick_due(runtime)
            result = await _passes(runtime, ids, passes)
            await _make_due(runtime, ids, datetime.now(UTC))
            plan = await _explain(runtime, datetime.now(UTC))
            due_now = len(ids)
        finally:
            await runtime.close()
        result.update(backend=name, tickets=size, trackers=total, due=due_now, seed_s=round(seed_s, 1),
                      tracker_fill_s=round(tracker_s, 1), plan=plan)
        results.append(result)
        print(f"[{name}] {size:,} tickets: rows read {result['rows_read']}, statements {result['statements']}, "
              f"median {result['ms_median']} ms (min {result['ms_min']}, max {result['ms_max']}; "
              f"{result['all_ms']})", flush=True)
        print(f"[{name}] statements in the last pass: {result['statement_kinds']}", flush=True)
        print(f"[{name}] plan of the due-rows SELECT:\n    " + plan.replace("\n", "\n    "), flush=True)
    return results


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated ticket counts, ascending")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    CLEANUP.install_signal_handlers(lambda done: print("cleaned up: " + "; ".join(done), file=sys.stderr))
    results: list[dict[str, Any]] = []
    try:
        if not args.skip_sqlite:
            scratch = ScratchDir("rd_bench_sla_")
            results += await run_backend("SQLite", None, sizes, args.passes, scratch.path)
            scratch.remove()
        if not args.skip_postgres:
            version = await harness.postgres_version(ADMIN_URL)
            if version is None:
                print(f"PostgreSQL not reachable at {ADMIN_URL}; skipped", file=sys.stderr)
            else:
                db = ScratchDatabase(ADMIN_URL)
                await db.create()
                scratch = ScratchDir("rd_bench_sla_pg_")
                try:
                    results += await run_backend(f"PostgreSQL {version}", db.url, sizes, args.passes, scratch.path)
                finally:
                    await db.drop()
                    scratch.remove()
    finally:
        CLEANUP.run_all()
    print("\n| backend | tickets (= trackers) | due | rows read | statements | median ms | min–max ms |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for r in results:
        print(f"| {r['backend']} | {r['trackers']:,} | {r['due']} | {r['rows_read']} | {r['statements']} | "
              f"{r['ms_median']} | {r['ms_min']}–{r['ms_max']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

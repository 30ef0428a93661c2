"""The ``relaydesk`` command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from relaydesk.config import Settings

app = typer.Typer(help="Relaydesk: the self-hosted helpdesk.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)
console = Console(stderr=True)
T = TypeVar("T")


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        # Named as the operator set it, without the value (it may be a secret). A rule
        # across settings (production without a secret key) has no field and says it all.
        for error in exc.errors():
            field = "_".join(str(part) for part in error["loc"]).upper()
            if field in ("RELAYDESK_DATABASE_URL", "RELAYDESK_REDIS_URL"):
                name = field.removeprefix("RELAYDESK_")  # either spelling is read; the README leads with this
            else:
                name = f"RELAYDESK_{field}"
            message = error["msg"].removeprefix("Value error, ")
            console.print(f"[red]Configuration error:[/red] {name + ': ' if field else ''}{message}.")
        raise typer.Exit(2) from None
    settings.make_data_dir()
    return settings


@contextmanager
def _services_named() -> Iterator[None]:
    """A database or Redis that cannot be reached is said in a line, not a traceback."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from relaydesk.core.db import unreachable

    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        console.print(f"[red]Cannot reach Redis (REDIS_URL):[/red] {exc}")
        raise typer.Exit(1) from None
    except (DBAPIError, OSError, PoolTimeout) as exc:
        detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
        if unreachable(exc):
            console.print(f"[red]Cannot reach the database (DATABASE_URL):[/red] {detail}")
        elif "no such table" in detail or ("relation" in detail and "does not exist" in detail):
            console.print(f"[red]The database has no schema yet (DATABASE_URL):[/red] {detail}. "
                          "Run `relaydesk migrate` first.")
        else:
            console.print(f"[red]Database error (DATABASE_URL):[/red] {detail}")
        raise typer.Exit(1) from None


def _run_command(coro: Coroutine[Any, Any, T]) -> T:
    from relaydesk.seeding.admin import CommandError

    try:
        with _services_named():
            return asyncio.run(coro)
    except CommandError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(exc.exit_code) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default RELAYDESK_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default RELAYDESK_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (scaled mode only: needs REDIS_URL).",
                                         min=1, max=64)] = 1,
) -> None:
    """Serve the API (and, in the embedded mode, everything else) in this process."""
    import uvicorn

    from relaydesk.core.observability import configure_logging
    from relaydesk.realtime.api import MAX_FRAME_CHARS

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    _warn_if_the_database_is_readable_by_others(settings)
    if workers > 1 and not settings.redis_url:
        # Without Redis, live events and queued jobs stay inside the process that made
        # them: a socket on one process would miss what the other commits. And on one
        # SQLite file a second process is slower, not faster (docs/benchmarks.md).
        console.print("[red]--workers needs REDIS_URL:[/red] in the embedded mode one process serves "
                      "everything; to run several, use the scaled mode (see the README).")
        raise typer.Exit(2)
    # log_config None: uvicorn's lines go through ours (core.observability), as JSON.
    options = dict(host=host or settings.host, port=port or settings.port, access_log=False,
                   log_config=None, log_level=settings.log_level.lower(), proxy_headers=True,
                   ws_per_message_deflate=settings.ws_compression,
                   # The app's own heartbeat (ws_heartbeat_seconds) already keeps sockets and
                   # proxies alive and finds the dead ones (ws_idle_timeout_seconds); uvicorn's
                   # protocol pings on top were ~500 more frames a second at 10,000 sockets.
                   ws_ping_interval=None,
                   # The largest frame a client may send, read in whole before the app sees it:
                   # uvicorn's default (16 MiB) let anyone, signed in or not, cost the server
                   # 16 MiB a socket. The app refuses frames over 16,384 characters itself
                   # (politely, by name); up to 4 bytes each in UTF-8.
                   ws_max_size=4 * MAX_FRAME_CHARS + 1024,
                   timeout_keep_alive=settings.http_keep_alive_seconds)
    if workers > 1:
        # Each process builds its own runtime from the environment; they share the
        # database and the Redis hub, and the workers run the jobs.
        uvicorn.run("relaydesk.app:app_from_environment", factory=True, workers=workers, **options)
        return
    from relaydesk.app import app_from_environment

    uvicorn.run(app_from_environment(), **options)


def _warn_if_the_database_is_readable_by_others(settings: Settings) -> None:
    """New SQLite files are made 0600; one made before that (or copied in) may be readable by
    every user on the machine, and it holds every workspace's data. Said, not changed: the
    operator may have a reason (a backup group)."""
    import stat

    import structlog

    from relaydesk.core.db import sqlite_file

    path = sqlite_file(settings.resolved_database_url)
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path is not None else 0
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        structlog.get_logger("relaydesk.cli").warning(
            "database_file_readable_by_others", path=str(path), mode=f"{mode:04o}",
            advice=f"chmod 600 {path}")


def _scaled_runtime():  # noqa: ANN202
    from relaydesk.core.observability import configure_logging
    from relaydesk.runtime import build_runtime

    settings = _settings()
    if not settings.redis_url:
        console.print("[red]Set REDIS_URL:[/red] workers and the scheduler belong to the scaled mode; "
                      "in the embedded mode `relaydesk serve` does their work itself.")
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_json)
    return build_runtime(settings)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs this process runs at once.", min=1, max=1000)] = 50,
    smtp: Annotated[bool, typer.Option(help="Also run the inbound SMTP listener (on one worker).")] = False,
    metrics_port: Annotated[int, typer.Option(
        help="Serve this worker's Prometheus metrics (jobs by outcome and duration, tickets it created) on this "
             "port at RELAYDESK_HOST; 0: not served.", min=0, max=65535)] = 0,
) -> None:
    """Run background jobs from the Redis queue (scaled mode; run as many as you like). SIGTERM lets the
    running jobs finish (up to RELAYDESK_SHUTDOWN_GRACE_SECONDS); a second one stops at once."""
    from relaydesk.core.heap import settle_after_start
    from relaydesk.wiring import background

    runtime = _scaled_runtime()
    finish = asyncio.Event()
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr=runtime.settings.host, registry=runtime.metrics.registry)
        except OSError as exc:
            console.print(f"[red]Cannot serve metrics on {runtime.settings.host}:{metrics_port}: {exc.strerror}[/red]")
            raise typer.Exit(2) from None

    async def _run() -> None:
        try:
            async with background(runtime, dispatcher=True, scheduler=False, smtp=smtp, runs_jobs=True):
                settle_after_start()
                console.print(f"Worker started (concurrency {concurrency}).")
                await runtime.jobs.work(concurrency=concurrency, finish=finish,
                                        grace=runtime.settings.shutdown_grace_seconds)
        finally:
            await runtime.close()

    _run_until_signalled(_run(), first_signal=finish.set)


@app.command()
def scheduler() -> None:
    """Enqueue the periodic jobs (SLA scan, auto-close, queue sweep) on their intervals (scaled mode; one is
    enough, a second does no harm)."""
    from relaydesk.wiring import background

    runtime = _scaled_runtime()

    async def _run() -> None:
        try:
            async with background(runtime, dispatcher=True, scheduler=True):
                console.print("Scheduler started.")
                await asyncio.Event().wait()
        finally:
            await runtime.close()

    _run_until_signalled(_run())


def _run_until_signalled(coro: Coroutine[Any, Any, None], first_signal: Callable[[], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT, then let the coroutine clean up. ``first_signal``: asks the
    coroutine to wind down by itself; a second signal cancels it."""
    import signal

    async def _main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if first_signal is not None and signals == 1:
                first_signal()
            else:
                task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await task
        except asyncio.CancelledError:
            pass

    with _services_named():
        _event_loop_run(_main())


def _event_loop_run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed (``uvicorn[standard]`` brings it, and ``serve`` runs on it
    through uvicorn), so that workers and the scheduler spend as little on their event
    loop and sockets as the server does."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run at every start)."""
    from relaydesk import migrate as migrations
    from relaydesk.core.db import Database

    settings = _settings()

    async def _run() -> None:
        db = Database(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            before = await migrations.current_revision(db)
            await migrations.upgrade(db)
            after = await migrations.current_revision(db)
        finally:
            await db.dispose()
        console.print(f"Database schema at revision {after}" + (" (unchanged)." if before == after else
                                                                  f" (was {before or 'empty'})."))

    _run_command(_run())


@app.command("seed-demo")
def seed_demo(
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when a workspace already exists.")] = False,
) -> None:
    """Create the demo workspace (agents, teams, customers, ~30 tickets) and print its logins."""
    from relaydesk.seeding.demo import print_logins, run_seed_demo

    settings = _settings()
    logins = _run_command(run_seed_demo(settings, if_empty=if_empty, console=console))
    print_logins(logins, settings)


@app.command("create-workspace")
def create_workspace(
    name: Annotated[str, typer.Option(help="The workspace's name.")],
    admin_email: Annotated[str, typer.Option(help="Email of its first admin.")],
    admin_name: Annotated[str, typer.Option(help="Name of its first admin.")] = "Admin",
    admin_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                                envvar="RELAYDESK_ADMIN_PASSWORD",
                                                help="Asked for when not given.")] = "",
) -> None:
    """Create a workspace with its first admin."""
    from relaydesk.seeding.admin import create_workspace_with_admin

    ws = _run_command(create_workspace_with_admin(_settings(), name, admin_name, admin_email, admin_password))
    typer.echo(f"Created workspace '{ws.name}' (slug {ws.slug}, id {ws.id}).")


@app.command("create-user")
def create_user(
    workspace: Annotated[str, typer.Option(help="The workspace's slug or id.")],
    email: Annotated[str, typer.Option(help="The user's email.")],
    name: Annotated[str, typer.Option(help="The user's name.")],
    role: Annotated[str, typer.Option(help="customer, agent, supervisor or admin.")] = "agent",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="RELAYDESK_USER_PASSWORD", help="Asked for when not given.")] = "",
) -> None:
    """Add a user to a workspace (staff get an agent profile, customers a customer profile)."""
    from relaydesk.seeding.admin import create_user as _create_user

    user = _run_command(_create_user(_settings(), workspace, email, name, role, password))
    typer.echo(f"Created {user.role} {user.email} (id {user.id}).")


@app.command()
def retrain(
    workspace: Annotated[str, typer.Option(help="The workspace's slug or id.")],
    force: Annotated[bool, typer.Option(help="Switch to the new model even if it does worse on held-out tickets "
                                             "than the one in use.")] = False,
    revert: Annotated[bool, typer.Option(help="Go back to the shipped model instead of training.")] = False,
) -> None:
    """Retrain a workspace's category model from its own resolved tickets (with progress); a model that does
    worse than the one in use is kept out unless --force. --revert goes back to the shipped model."""
    from rich.progress import Progress

    if revert and force:
        console.print("[red]--revert goes back to the shipped model; --force is for a retrain. Give one.[/red]")
        raise typer.Exit(2)
    from relaydesk.routing.tasks import routing_service
    from relaydesk.runtime import build_runtime
    from relaydesk.tenancy.service import WorkspaceService

    settings = _settings()

    async def _run() -> None:
        runtime = build_runtime(settings)
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("Reading resolved tickets", total=5)
                async with runtime.transaction() as session:
                    ws = await WorkspaceService(session).find(workspace)
                    if ws is None:
                        console.print(f"[red]No workspace '{workspace}'.[/red]")
                        raise typer.Exit(1)
                    service = routing_service(runtime, session)
                    if revert:
                        had = await service.revert_model(ws.id)
                        progress.update(task, completed=5, description="Reverted")
                        typer.echo("Back to the shipped model." if had else
                                   "This workspace already uses the shipped model.")
                        return
                    samples = await service.training_samples(ws.id)
                    progress.update(task, advance=1, description=f"Training on {len(samples)} tickets")
                    try:
                        result = await service.retrain(
                            ws.id, samples, runtime.clock.now(), force=force,
                            progress=lambda done, total: progress.update(task, completed=1 + 3 * done / total))
                    except ValueError as exc:
                        console.print(f"[red]Cannot retrain:[/red] {exc}")
                        raise typer.Exit(1) from None
                    progress.update(task, completed=5, description="Kept the model in use" if result.kept_current
                                    else "Saved")
        finally:
            await runtime.close()
        if result.kept_current:
            typer.echo(f"Not switched: the new model scored {result.accuracy:.1%} on held-out tickets, the one in "
                       f"use {result.current_accuracy:.1%}. Use --force to switch anyway.")
            raise typer.Exit(3)
        typer.echo(f"Retrained on {result.samples} tickets over {len(result.labels)} categories "
                   f"({', '.join(result.labels)}); held-out accuracy {result.accuracy:.1%} (the model it replaces: "
                   f"{result.current_accuracy:.1%}).")

    _run_command(_run())


@app.command("failed-events")
def failed_events(
    retry: Annotated[bool, typer.Option("--retry", help="Try them all again now, with progress.")] = False,
    workspace: Annotated[str | None, typer.Option(help="Only this workspace's (its slug or id).")] = None,
) -> None:
    """Reactions to events that failed every try (routing, SLA, notifications), with their workspace: list
    them or retry."""
    from rich.progress import Progress
    from rich.table import Table
    from sqlalchemy import select

    import uuid

    from relaydesk.core.outbox import FailedConsumption
    from relaydesk.runtime import build_runtime
    from relaydesk.tenancy.models import Workspace
    from relaydesk.tenancy.service import WorkspaceService
    from relaydesk.tickets.models import Ticket
    from relaydesk.tickets.schemas import ticket_reference
    from relaydesk.wiring import install_jobs

    settings = _settings()

    async def _run() -> None:
        runtime = build_runtime(settings)
        try:
            workspace_id = None
            if workspace is not None:
                async with runtime.db.read_session() as session:
                    ws = await WorkspaceService(session).find(workspace)
                if ws is None:
                    console.print(f"[red]No workspace '{workspace}'.[/red]")
                    raise typer.Exit(1)
                workspace_id = ws.id
            install_jobs(runtime)  # the consumers the kept reactions belong to
            if retry:
                with Progress(console=console) as progress:
                    task = progress.add_task("Trying again", total=None)
                    done, failed = await runtime.dispatcher.consumers.retry_failed(
                        everything=True, limit=1_000_000, workspace_id=workspace_id,
                        progress=lambda n, total: progress.update(task, completed=n, total=total))
                typer.echo(f"{done} done, {failed} failed again.")
                return
            async with runtime.db.read_session() as session:
                kept = select(FailedConsumption).order_by(FailedConsumption.failed_at)
                if workspace_id is not None:
                    kept = kept.where(FailedConsumption.workspace_id == workspace_id)
                rows = list(await session.scalars(kept))
                numbers = dict((await session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(
                    {uuid.UUID(r.event["payload"]["ticket_id"]) for r in rows if r.event["payload"].get("ticket_id")}
                )))).all())
                slugs = dict((await session.execute(select(Workspace.id, Workspace.slug).where(
                    Workspace.id.in_({r.workspace_id for r in rows})))).all())
        finally:
            await runtime.close()
        if not rows:
            typer.echo("No failed reactions" + (f" in workspace '{workspace}'." if workspace else "."))
            return
        table = Table("failed at", "workspace", "consumer", "event", "ticket", "tried again", "next try", "error")
        for row in rows:
            ticket_id = row.event["payload"].get("ticket_id")
            number = numbers.get(uuid.UUID(ticket_id)) if ticket_id else None
            # The first line says what went wrong; the log has the rest (SQL, parameters).
            error = row.error.strip().splitlines()[0] if row.error.strip() else ""
            table.add_row(f"{row.failed_at:%Y-%m-%d %H:%M}", slugs.get(row.workspace_id, str(row.workspace_id)),
                          row.consumer, f"{row.event['type']} #{row.event_id}",
                          ticket_reference(number) if number is not None else "", str(row.attempts),
                          f"{row.next_attempt_at:%Y-%m-%d %H:%M}" if row.next_attempt_at else "by hand",
                          error[:160] + ("…" if len(error) > 160 else ""))
        Console(width=max(Console().width, 180)).print(table)

    _run_command(_run())


@app.command("seed-load")
def seed_load(
    tickets: Annotated[int, typer.Option(help="How many tickets to add.", min=1)] = 10_000,
    workspace: Annotated[str | None, typer.Option(help="Slug of the workspace to fill (made if missing).")] = "loadtest",
    messages_per_ticket: Annotated[int, typer.Option(help="Average thread length.", min=1, max=50)] = 3,
    yes: Annotated[bool, typer.Option("--yes", help="Fill an existing workspace seed-load did not make: its own "
                                                    "data gets made-up staff, customers and tickets mixed in.")] = False,
) -> None:
    """Fill a workspace with realistic tickets and threads fast, for benchmarks. An existing workspace is
    filled only if seed-load made it, or with --yes."""
    from relaydesk.seeding.load import run_seed_load

    _run_command(run_seed_load(_settings(), workspace or "loadtest", tickets, messages_per_ticket, console=console,
                               fill_any_workspace=yes))


if __name__ == "__main__":
    app()

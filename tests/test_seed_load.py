"""``relaydesk seed-load`` writes consistent data: counts, numbers, owners and tags."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from relaydesk.config import Settings
from relaydesk.customers.models import Customer
from relaydesk.identity.models import User
from relaydesk.runtime import build_runtime
from relaydesk.seeding.load import run_seed_load
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.models import Message, Ticket, TicketTag

TICKETS = 200
MORE = 40
MESSAGES_PER_TICKET = 3


async def test_seed_load_writes_consistent_tickets(tmp_path) -> None:
    # database_url=None: always the temporary SQLite file, whatever DATABASE_URL says.
    settings = Settings(data_dir=tmp_path, database_url=None, password_hash_time_cost=1,
                        password_hash_memory_kib=1024)
    out = io.StringIO()
    console = Console(file=out, width=120)
    await run_seed_load(settings, "seedtest", TICKETS, MESSAGES_PER_TICKET, console=console)
    assert "Admin login: admin@seedtest.example.com" in out.getvalue()
    # A second run appends to the same workspace.
    await run_seed_load(settings, "seedtest", MORE, MESSAGES_PER_TICKET, console=console)
    total = TICKETS + MORE

    runtime = build_runtime(settings)
    try:
        async with runtime.db.write_session() as session:
            ws = await session.scalar(select(Workspace).where(Workspace.slug == "seedtest"))
            assert ws is not None
            assert await session.scalar(select(func.count()).select_from(Workspace)) == 1

            tickets = list(await session.scalars(select(Ticket).where(Ticket.workspace_id == ws.id)))
            assert len(tickets) == total
            assert sorted(t.number for t in tickets) == list(range(1, total + 1))
            assert ws.ticket_seq == total

            staff = Counter(await session.scalars(select(User.role).where(User.workspace_id == ws.id)))
            assert staff["admin"] == 1 and 15 <= staff["agent"] + staff["supervisor"] <= 25
            customers = await session.scalar(select(func.count()).select_from(Customer)
                                             .where(Customer.workspace_id == ws.id))
            assert customers == TICKETS // 20 + max(5, MORE // 20)

            owned = {"ASSIGNED", "IN_PROGRESS", "WAITING_ON_CUSTOMER", "WAITING_INTERNAL", "ESCALATED"}
            for t in tickets:
                if t.status in owned:
                    assert t.assignee_id is not None, t.number
                if t.status == "OPEN":
                    assert t.assignee_id is None and t.first_response_at is None
                assert (t.resolved_at is not None) == (t.status == "RESOLVED" or (
                    t.status == "CLOSED" and t.first_response_at is not None)), t.number
                assert (t.closed_at is not None) == (t.status == "CLOSED"), t.number
                # RESOLVED tickets wait for auto-close (the workspace default is 48 h).
                if t.status == "RESOLVED":
                    assert t.auto_close_at == t.resolved_at + timedelta(hours=48), t.number
                else:
                    assert t.auto_close_at is None, t.number
                assert t.created_at <= t.updated_at
                for stamp in (t.first_response_at, t.resolved_at, t.closed_at):
                    assert stamp is None or t.created_at <= stamp <= t.updated_at
            assert len({t.status for t in tickets}) >= 4

            tags: dict = defaultdict(set)
            for ticket_id, tag in (await session.execute(
                select(TicketTag.ticket_id, TicketTag.tag).where(TicketTag.workspace_id == ws.id)
            )).all():
                tags[ticket_id].add(tag)
            for t in tickets:
                assert t.tags == sorted(t.tags)
                assert set(t.tags) == tags.get(t.id, set()), t.number
            assert sum(len(t.tags) for t in tickets) > 0

            per_ticket = Counter(await session.scalars(select(Message.ticket_id)
                                                       .where(Message.workspace_id == ws.id)))
            assert set(per_ticket) == {t.id for t in tickets}
            assert all(1 <= n <= MESSAGES_PER_TICKET + 1 for n in per_ticket.values())
            assert abs(sum(per_ticket.values()) / total - MESSAGES_PER_TICKET) < 0.5

            # The next ticket made the normal way gets a fresh number.
            assert await WorkspaceService(session).next_ticket_number(ws.id) == total + 1
            await session.rollback()
    finally:
        await runtime.close()


async def test_seed_load_fills_a_workspace_it_did_not_make_only_when_told(tmp_path) -> None:
    """A merchant's real workspace never gets load-test tickets, staff and customers by a
    slip of --workspace: refused, nothing written, unless --yes."""
    import pytest

    from relaydesk.migrate import upgrade
    from relaydesk.seeding.admin import CommandError, create_workspace_with_admin

    settings = Settings(data_dir=tmp_path, database_url=None, password_hash_time_cost=1,
                        password_hash_memory_kib=1024)
    runtime = build_runtime(settings)
    try:
        await upgrade(runtime.db)
    finally:
        await runtime.close()
    await create_workspace_with_admin(settings, "Acme", "Ada", "admin@acme.example.com", "a long passphrase")
    console = Console(file=io.StringIO(), width=120)

    async def counts() -> tuple[int, int, int]:
        runtime = build_runtime(settings)
        try:
            async with runtime.db.read_session() as session:
                ws = await session.scalar(select(Workspace.id).where(Workspace.slug == "acme"))
                return tuple([await session.scalar(select(func.count()).select_from(model)
                                                   .where(model.workspace_id == ws))
                              for model in (Ticket, User, Customer)])
        finally:
            await runtime.close()

    with pytest.raises(CommandError) as refused:
        await run_seed_load(settings, "acme", 20, 2, console=console)
    assert str(refused.value) == (
        "Workspace 'acme' exists and was not made by seed-load: filling it would mix made-up staff, customers and "
        "tickets into its own. Name a new workspace with --workspace (seed-load makes it), or give --yes to fill "
        "this one anyway.")
    assert await counts() == (0, 1, 0)
    # As the operator sees it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300"})
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "relaydesk"), "seed-load", "--tickets", "5",
                           "--workspace", "acme"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and str(refused.value) in done.stderr, done.stdout + done.stderr
    assert await counts() == (0, 1, 0)
    await run_seed_load(settings, "acme", 20, 2, console=console, fill_any_workspace=True)
    assert (await counts())[0] == 20

"""Nothing lost, nothing twice: events survive a process dying after commit, a
re-delivery has no second effect, and SLA clocks carry on across a restart."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from factories import make_workspace
from relaydesk.core.clock import FrozenClock
from relaydesk.core.outbox import OutboxEvent, ProcessedEvent
from relaydesk.runtime import build_runtime
from relaydesk.wiring import background, install_jobs


async def new_process(runtime, at: datetime):
    """Another process on the same database, as after a restart."""
    rt = build_runtime(runtime.settings, clock=FrozenClock(at, tick=timedelta(milliseconds=1)))
    install_jobs(rt)
    return rt


async def new_ticket_for_a_desk(client):
    """A workspace with one agent on the team its category routes to, and a ticket just
    opened (committed; nothing dispatched yet)."""
    ws = await make_workspace(client)
    team = (await client.post("/api/v1/teams", json={"name": "Desk"}, headers=ws.admin.headers)).json()
    agent = await ws.staff(team_ids=[team["id"]])
    await client.post("/api/v1/categories", json={"name": "General", "team_id": team["id"]}, headers=ws.admin.headers)
    cust = await ws.customer()
    return ws, agent, await ws.ticket(cust, subject="Hello", description="A question about my order")


async def settle_in(rt):
    while await rt.dispatcher.dispatch_pending():
        await rt.jobs.wait_idle()
    await rt.jobs.wait_idle()


async def test_events_committed_before_a_crash_are_delivered_once_after_restart(client, runtime):
    ws, agent, t = await new_ticket_for_a_desk(client)
    # The serving process "dies" here: committed, never dispatched.
    async with runtime.db.read_session() as s:
        created = await s.scalar(select(OutboxEvent).where(
            OutboxEvent.type == "ticket.created", OutboxEvent.payload["ticket_id"].as_string() == t["id"]))
    assert created is not None and created.dispatched_at is None

    rt = await new_process(runtime, runtime.clock.now())
    try:
        await settle_in(rt)
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
        assert got["assignee_id"] == agent.id
        # The process crashed after enqueueing but before marking: the next one hands it out again.
        async with rt.db.write_session() as s:
            await s.execute(update(OutboxEvent).where(OutboxEvent.id == created.id).values(dispatched_at=None))
            await s.commit()
        again = await new_process(runtime, runtime.clock.now())
        try:
            await settle_in(again)
        finally:
            await again.close()
    finally:
        await rt.close()
    trail = (await client.get(f"/api/v1/tickets/{t['id']}/audit", headers=ws.admin.headers)).json()
    assert len([a for a in trail if a["field"] == "assignee_id"]) == 1
    async with runtime.db.read_session() as s:
        handled = await s.scalar(select(func.count()).select_from(ProcessedEvent).where(
            ProcessedEvent.event_id == created.id))
        redelivered = await s.scalar(select(OutboxEvent.dispatched_at).where(OutboxEvent.id == created.id))
    assert handled == 3  # routing, SLA and notifications take ticket.created: each handled it once
    assert redelivered is not None


async def test_sla_clocks_carry_on_across_a_restart(client, runtime, settle):
    ws = await make_workspace(client)
    agent = await ws.staff(availability="away")
    cust = await ws.customer()
    t = await ws.ticket(agent, requester_id=cust.customer_id, subject="Down", description="help",
                        priority="URGENT", assignee_id=agent.id)
    await settle()
    start = datetime.fromisoformat(t["created_at"])
    runtime.clock.set(start + timedelta(minutes=50))  # 83 %: warning
    await runtime.jobs.enqueue("sla.scan_due")
    await settle()

    rt = await new_process(runtime, start + timedelta(minutes=61))  # past the breach, in a new process
    try:
        await rt.jobs.enqueue("sla.scan_due")
        await settle_in(rt)
        await rt.jobs.enqueue("sla.scan_due")
        await settle_in(rt)
    finally:
        await rt.close()
    runtime.clock.set(start + timedelta(minutes=62))
    await ws.relogin(agent)
    kinds = sorted(n["kind"] for n in (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
                   if n["ticket_id"] == t["id"] and (n["kind"].startswith("sla_") or n["kind"] == "escalated"))
    # The new process's pass crossed critical and breach and escalated: one message says so.
    assert kinds == ["escalated", "sla_warning"]
    escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert [e["level"] for e in escalations] == [1]
    clocks = (await client.get(f"/api/v1/tickets/{t['id']}/sla", headers=ws.admin.headers)).json()["clocks"]
    first = next(c for c in clocks if c["kind"] == "first_response")
    assert first["state"] == "breached"
    assert datetime.fromisoformat(first["breached_at"]) == start + timedelta(hours=1)


async def test_a_stopping_server_lets_its_running_jobs_finish(client, runtime):
    """In one process the consume jobs live in memory, and their events are already marked
    dispatched: a server stopping (a deploy's restart) must not cut them off."""
    ws, agent, t = await new_ticket_for_a_desk(client)
    rt = await new_process(runtime, runtime.clock.now())
    try:
        async with background(rt, dispatcher=False, runs_jobs=True):
            assert await rt.dispatcher.dispatch_pending() > 0  # handed to jobs, marked dispatched
        # The server has stopped: what those jobs were doing is done.
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
        assert got["assignee_id"] == agent.id
    finally:
        await rt.close()


async def test_events_handed_to_jobs_that_died_with_their_process_are_handed_out_again(client, runtime):
    """In one process the consume jobs live in memory: an event is marked dispatched only by
    the transaction that consumed it, so a process that dies first leaves it pending."""
    ws, agent, t = await new_ticket_for_a_desk(client)
    dying = await new_process(runtime, runtime.clock.now())
    lost = []

    async def queued_then_lost(name, **kwargs):  # the process dies before its jobs run
        lost.append(name)

    dying.jobs.enqueue = queued_then_lost
    try:
        assert await dying.dispatcher.dispatch_pending() > 0 and "outbox.consume" in lost
    finally:
        await dying.close()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["assignee_id"] is None  # nothing was done...
    async with runtime.db.read_session() as s:
        pending = await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type == "ticket.created", OutboxEvent.payload["ticket_id"].as_string() == t["id"],
            OutboxEvent.dispatched_at.is_(None)))
    assert pending == 1  # ...and nothing is lost
    restarted = await new_process(runtime, runtime.clock.now())
    try:
        await settle_in(restarted)
    finally:
        await restarted.close()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["assignee_id"] == agent.id

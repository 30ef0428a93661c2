"""SLA clocks, the monitor and escalations through the API, with an injected clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from conftest import statements_run
from factories import make_workspace
from relaydesk.core.audit import AuditEntry


async def desk(client, **agent_fields):
    ws = await make_workspace(client)
    team = (await client.post("/api/v1/teams", json={"name": "Support"}, headers=ws.admin.headers)).json()
    lead = await ws.staff("supervisor", team_ids=[team["id"]], availability="away")
    await client.patch(f"/api/v1/teams/{team['id']}", json={"lead_id": lead.id}, headers=ws.admin.headers)
    agent = await ws.staff(team_ids=[team["id"]], **agent_fields)
    senior = await ws.staff(team_ids=[team["id"]], is_senior=True, availability="online")
    cat = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={
        "name": "General", "team_id": team["id"]})).json()
    return ws, team, lead, agent, senior, cat


async def sla(client, ws, ticket_id):
    r = await client.get(f"/api/v1/tickets/{ticket_id}/sla", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return {c["kind"]: c for c in r.json()["clocks"]} | {"_": r.json()}


async def scan(runtime, settle):
    await runtime.jobs.enqueue("sla.scan_due")
    await runtime.jobs.wait_idle()
    await settle()


async def notes_for(client, ws, actor):
    await ws.relogin(actor)
    return (await client.get("/api/v1/notifications", headers=actor.headers)).json()["items"]


async def test_clocks_start_with_the_ticket(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Where is my order", description="It is late",
                        category_id=cat["id"])
    await settle()
    clocks = await sla(client, ws, t["id"])
    assert clocks["_"]["policy"] == "Default" and clocks["_"]["business_hours"] == "24/7"
    first = clocks["first_response"]
    assert first["target_seconds"] == 8 * 3600 and first["state"] == "ok"  # MEDIUM
    created = datetime.fromisoformat(t["created_at"])
    assert datetime.fromisoformat(first["due_at"]) == created + timedelta(hours=8)
    assert clocks["resolution"]["target_seconds"] == 72 * 3600
    assert "next_response" not in clocks
    r = await client.get(f"/api/v1/tickets/{t['id']}/sla", headers=cust.headers)
    assert r.status_code == 403


async def test_thresholds_fire_once_in_order_and_breach_escalates(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    owner = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"]
    assert owner in (agent.id, senior.id)
    owner_actor = agent if owner == agent.id else senior
    for hours, state in ((5.9, "ok"), (6.1, "warning"), (7.3, "critical"), (8.1, "breached")):
        clock.set(datetime.fromisoformat(t["created_at"]) + timedelta(hours=hours))
        await scan(runtime, settle)
        await scan(runtime, settle)  # a second pass announces nothing new
        await ws.relogin()
        assert (await sla(client, ws, t["id"]))["first_response"]["state"] == state
    kinds = [n["kind"] for n in await notes_for(client, ws, owner_actor) if n["ticket_id"] == t["id"]]
    # The breach raised level 1 in the same pass: one notification tells of both.
    assert sorted(k for k in kinds if k.startswith("sla_") or k == "escalated") == [
        "escalated", "sla_critical", "sla_warning"]
    lead_kinds = [n["kind"] for n in await notes_for(client, ws, lead) if n["ticket_id"] == t["id"]]
    assert lead_kinds.count("escalated") == 1 and "sla_breached" not in lead_kinds
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["sla_breached"] is True
    escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert [(e["level"], e["kind"]) for e in escalations] == [(1, "sla_breach")]
    thread = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=ws.admin.headers)).json()["items"]
    assert any("Escalated to level 1" in m["body_text"] and m["internal"] for m in thread)
    await ws.relogin(cust)
    customer_view = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=cust.headers)).json()["items"]
    assert not any("Escalated" in m["body_text"] for m in customer_view)
    # A breach is final: answering now does not un-breach it.
    await ws.relogin(owner_actor)
    await ws.reply(owner_actor, t["id"], "Sorry for the wait!")
    await settle()
    first = (await sla(client, ws, t["id"]))["first_response"]
    assert first["state"] == "breached" and first["met_at"] is not None


async def test_a_breach_after_an_escalation_by_hand_still_escalates(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers,
                          json={"kind": "manual", "reason": "VIP asked twice"})
    assert r.status_code == 201, r.text
    await settle()
    start = datetime.fromisoformat(t["created_at"])
    clock.set(start + timedelta(hours=8, minutes=1))  # first response breached
    await scan(runtime, settle)
    await ws.relogin()
    escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert [(e["level"], e["kind"]) for e in escalations] == [(1, "manual"), (1, "sla_breach")]
    lead_kinds = [n["kind"] for n in await notes_for(client, ws, lead) if n["ticket_id"] == t["id"]]
    assert lead_kinds.count("escalated") == 2
    clock.set(start + timedelta(hours=9, minutes=2))  # and level 2 follows on its timer
    await scan(runtime, settle)
    await ws.relogin()
    escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert [e["level"] for e in escalations] == [1, 1, 2]


async def test_level_two_reassigns_to_a_senior_and_level_three_tells_managers(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    await client.patch(f"/api/v1/agents/{senior.id}", json={"availability": "away"}, headers=ws.admin.headers)
    await settle()
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"] == agent.id
    await client.patch(f"/api/v1/agents/{senior.id}", json={"availability": "online"}, headers=ws.admin.headers)
    await settle()
    start = datetime.fromisoformat(t["created_at"])
    clock.set(start + timedelta(hours=8, minutes=1))
    await scan(runtime, settle)
    clock.set(start + timedelta(hours=9, minutes=2))  # level 2 comes 60 minutes after level 1
    await scan(runtime, settle)
    await ws.relogin()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["assignee_id"] == senior.id
    clock.set(start + timedelta(hours=11, minutes=3))  # level 3 another 120 minutes on
    await scan(runtime, settle)
    await ws.relogin()
    levels = [e["level"] for e in (await client.get(f"/api/v1/tickets/{t['id']}/escalations",
                                                   headers=ws.admin.headers)).json()]
    assert levels == [1, 2, 3]
    admin_notes = [n for n in await notes_for(client, ws, ws.admin) if n["ticket_id"] == t["id"]]
    assert any(n["kind"] == "escalated" and "level 3" in n["title"] for n in admin_notes)


async def test_first_response_met_and_next_response_clock(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    owner = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"]
    responder = agent if owner == agent.id else senior
    clock.advance(timedelta(hours=1))
    await ws.relogin(responder, cust)
    await ws.reply(responder, t["id"], "Happy to help")
    await settle()
    clocks = await sla(client, ws, t["id"])
    assert clocks["first_response"]["state"] == "met" and "next_response" not in clocks
    clock.advance(timedelta(minutes=10))
    await ws.reply(cust, t["id"], "Thanks, one more question")
    await settle()
    clocks = await sla(client, ws, t["id"])
    nxt = clocks["next_response"]
    assert nxt["state"] == "ok" and nxt["target_seconds"] == 16 * 3600
    await ws.reply(responder, t["id"], "Sure")
    await settle()
    assert (await sla(client, ws, t["id"]))["next_response"]["state"] == "met"


async def test_waiting_on_customer_pauses_resolution(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    before = datetime.fromisoformat((await sla(client, ws, t["id"]))["resolution"]["due_at"])
    await ws.move(ws.admin, t["id"], "WAITING_ON_CUSTOMER")
    await settle()
    paused = (await sla(client, ws, t["id"]))["resolution"]
    assert paused["paused"] is True and paused["due_at"] is None and paused["state"] == "paused"
    clock.advance(timedelta(hours=5))
    await ws.relogin(cust)
    await ws.reply(cust, t["id"], "Here are the photos")
    await settle()
    resumed = (await sla(client, ws, t["id"]))["resolution"]
    assert resumed["paused"] is False
    shift = datetime.fromisoformat(resumed["due_at"]) - before
    assert timedelta(hours=5) <= shift < timedelta(hours=5, seconds=5)


async def test_priority_change_recomputes_due_times(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"priority": "URGENT"}, headers=ws.admin.headers)
    assert r.status_code == 200
    await settle()
    clocks = await sla(client, ws, t["id"])
    assert clocks["first_response"]["target_seconds"] == 3600 and clocks["_"]["priority"] == "URGENT"


async def test_business_hours_policy_across_a_weekend(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cal = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Berlin office", "timezone": "Europe/Berlin",
        "weekly_hours": {str(d): [{"start": "09:00", "end": "17:00"}] for d in range(5)},
        "holidays": ["2026-12-28"]})
    assert cal.status_code == 201, cal.text
    pol = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Office hours", "is_default": True, "calendar_id": cal.json()["id"],
        "targets": {"MEDIUM": {"first_response": 4 * 3600, "next_response": 8 * 3600, "resolution": 16 * 3600}}})
    assert pol.status_code == 201, pol.text
    clock.set(datetime(2026, 12, 25, 15, 0, tzinfo=UTC))  # Friday 16:00 in Berlin (a workday here)
    await ws.relogin()
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    clocks = await sla(client, ws, t["id"])
    assert clocks["_"]["policy"] == "Office hours" and clocks["_"]["business_hours"] == "Berlin office"
    # 1 h on Friday, then Monday the 28th is a holiday: 3 h more on Tuesday -> 12:00 Berlin = 11:00 UTC.
    late_by = datetime.fromisoformat(t["created_at"]) - datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # clock ticks
    due = datetime.fromisoformat(clocks["first_response"]["due_at"])
    assert due == datetime(2026, 12, 29, 11, 0, tzinfo=UTC) + late_by



MONDAYS = {"0": [{"start": "09:00", "end": "17:00"}]}
# Monday-only hours with the next 157 Mondays off: closed for over three years in a row.
MONDAYS_OFF = [(datetime(2027, 1, 4) + timedelta(weeks=n)).date().isoformat() for n in range(157)]


async def test_a_calendar_must_leave_opening_hours(client, settle):
    """A calendar that is never open would leave its tickets without SLA clocks (and the
    SLA view answering 500), so it is refused when it is made or changed."""
    ws, team, lead, agent, senior, cat = await desk(client)
    for hours, holidays, field in (({}, [], "weekly_hours"), ({"0": [], "1": []}, [], "weekly_hours"),
                                   (MONDAYS, MONDAYS_OFF, "holidays")):
        r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
            "name": "Never open", "timezone": "UTC", "weekly_hours": hours, "holidays": holidays})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json" and r.json()["errors"][0]["field"] == field
    assert (await client.get("/api/v1/sla-calendars", headers=ws.admin.headers)).json()["items"] == []
    cal = (await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Mondays", "timezone": "UTC", "weekly_hours": MONDAYS, "holidays": MONDAYS_OFF[:100]})).json()
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Mondays only", "is_default": True, "calendar_id": cal["id"]})
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    assert (await sla(client, ws, t["id"]))["_"]["business_hours"] == "Mondays"
    for change, field in (({"weekly_hours": {}}, "weekly_hours"), ({"holidays": MONDAYS_OFF}, "holidays")):
        r = await client.patch(f"/api/v1/sla-calendars/{cal['id']}", headers=ws.admin.headers, json=change)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    await settle()
    stored = (await client.get(f"/api/v1/sla-calendars/{cal['id']}", headers=ws.admin.headers)).json()
    assert stored["weekly_hours"] == {"0": [{"start": "09:00", "end": "17:00"}]} and len(stored["holidays"]) == 100
    assert (await sla(client, ws, t["id"]))["first_response"]["state"] == "ok"


async def test_renaming_to_a_taken_name_and_emptying_are_refused(client):
    ws = await make_workspace(client)
    for path, body in (("/api/v1/sla-policies", {}),
                       ("/api/v1/sla-calendars", {"timezone": "UTC", "weekly_hours": MONDAYS})):
        first = (await client.post(path, headers=ws.admin.headers, json={"name": "First", **body})).json()
        second = (await client.post(path, headers=ws.admin.headers, json={"name": "Second", **body})).json()
        r = await client.patch(f"{path}/{second['id']}", headers=ws.admin.headers, json={"name": "First"})
        assert r.status_code == 409 and r.json()["code"] == "name_taken", r.text
        assert r.json()["errors"][0]["field"] == "name"
        r = await client.patch(f"{path}/{second['id']}", headers=ws.admin.headers, json={"name": None})
        assert r.status_code == 422 and r.json()["errors"][0] == {"field": "name",
                                                                   "message": "This field cannot be emptied."}
        r = await client.patch(f"{path}/{first['id']}", headers=ws.admin.headers, json={"name": "First"})
        assert r.status_code == 200  # keeping its own name is no clash
        names = [x["name"] for x in (await client.get(path, headers=ws.admin.headers)).json()["items"]]
        assert names == ["First", "Second"]


async def test_most_specific_policy_wins(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "Base", "is_default": True})
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "VIP", "conditions": {"customer_tiers": ["vip"]}})
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "General VIP", "conditions": {"customer_tiers": ["vip"], "category_ids": [cat["id"]]}})
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "General", "conditions": {"category_ids": [cat["id"]]}})
    other = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={"name": "Other"})).json()
    vip, normal = await ws.customer(tier="vip"), await ws.customer()
    expectations = [(vip, cat["id"], "General VIP"), (vip, other["id"], "VIP"), (normal, cat["id"], "General"),
                    (normal, other["id"], "Base")]
    made = [(await ws.ticket(c, subject="Hello there", description="hi", category_id=k), want)
            for c, k, want in expectations]
    await settle()
    for t, want in made:
        assert (await sla(client, ws, t["id"]))["_"]["policy"] == want


async def test_a_category_of_its_own_policy_overrides_the_default(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "Base", "is_default": True})
    returns = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "Returns"})).json()
    parent = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={"name": "Returns"})).json()
    child = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={
        "name": "Damaged", "parent_id": parent["id"]})).json()
    r = await client.put(f"/api/v1/categories/{parent['id']}/sla-policy", headers=ws.admin.headers,
                         json={"policy_id": returns["id"]})
    assert r.status_code == 200 and r.json()["sla_policy_id"] == returns["id"], r.text
    customer = await ws.customer()
    tickets = [await ws.ticket(customer, subject="Broken on arrival", description="hi", category_id=k)
               for k in (parent["id"], child["id"], cat["id"])]
    await settle()
    assert [(await sla(client, ws, t["id"]))["_"]["policy"] for t in tickets] == ["Returns", "Returns", "Base"]
    # Only managers, only this workspace's policies, and it can be taken away again.
    r = await client.put(f"/api/v1/categories/{parent['id']}/sla-policy", headers=agent.headers,
                         json={"policy_id": returns["id"]})
    assert r.status_code == 403
    other = await make_workspace(client)
    foreign = (await client.post("/api/v1/sla-policies", headers=other.admin.headers, json={"name": "X"})).json()
    r = await client.put(f"/api/v1/categories/{parent['id']}/sla-policy", headers=ws.admin.headers,
                         json={"policy_id": foreign["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "policy_id"
    r = await client.put(f"/api/v1/categories/{parent['id']}/sla-policy", headers=other.admin.headers,
                         json={"policy_id": foreign["id"]})
    assert r.status_code == 404
    r = await client.put(f"/api/v1/categories/{parent['id']}/sla-policy", headers=ws.admin.headers,
                         json={"policy_id": None})
    assert r.status_code == 200 and r.json()["sla_policy_id"] is None
    assert (await client.get(f"/api/v1/categories/{parent['id']}", headers=ws.admin.headers)).json()[
        "sla_policy_id"] is None


async def test_manual_and_customer_escalations(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=cust.headers,
                          json={"kind": "incident", "reason": "everything is down"})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "kind" and "customer_request" in r.text
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=cust.headers,
                          json={"kind": "customer_request", "reason": "Nobody is answering"})
    assert r.status_code == 201 and r.json()["level"] == 1
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=agent.headers,
                          json={"kind": "customer_request", "reason": "Staff-only remark on this customer"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=agent.headers,
                          json={"kind": "incident", "reason": "Payment outage"})
    assert r.status_code == 201 and r.json()["level"] == 3
    await settle()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["status"] == "ESCALATED"
    mine = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=cust.headers)).json()
    assert [e["kind"] for e in mine] == ["customer_request"]
    admin_notes = [n for n in await notes_for(client, ws, ws.admin) if n["ticket_id"] == t["id"]]
    assert any(n["kind"] == "escalated" for n in admin_notes)
    other = await make_workspace(client)
    assert (await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=other.admin.headers,
                              json={"reason": "x"})).status_code == 404


async def test_monitor_reads_only_due_trackers_and_two_scans_escalate_once(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    slow = [await ws.ticket(cust, subject="slow", description="hi", category_id=cat["id"]) for _ in range(8)]
    urgent = [await ws.ticket(agent, requester_id=cust.customer_id, subject="fast", description="hi",
                              priority="URGENT", category_id=cat["id"]) for _ in range(3)]
    await settle()
    clock.set(datetime.fromisoformat(urgent[-1]["created_at"]) + timedelta(hours=1, minutes=1))
    from relaydesk.sla.tasks import sla_service

    async def one_scan():
        async with runtime.transaction() as session:
            return await sla_service(runtime, session).scan_due(clock.now())

    with statements_run(runtime) as seen:
        results = await asyncio.gather(one_scan(), one_scan())
    rows_read = [sql for sql in seen if sql.lstrip().upper().startswith("SELECT") and "FROM sla_trackers" in sql
                 and "next_check_at <=" in sql]
    # The due trackers of this workspace (and any other test's left due) — never the 8 slow ones.
    assert sum(results) >= 3 and len(rows_read) == 2
    await settle()
    await ws.relogin()
    for t in urgent:
        escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
        assert [e["level"] for e in escalations] == [1]
    for t in slow:
        assert (await sla(client, ws, t["id"]))["first_response"]["state"] == "ok"


async def test_policy_and_calendar_admin(client):
    ws, team, lead, agent, senior, cat = await desk(client)
    r = await client.post("/api/v1/sla-policies", headers=agent.headers, json={"name": "x"})
    assert r.status_code == 403
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers,
                          json={"name": "bad", "warning_at": 0.9, "critical_at": 0.8})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warning_at"
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "x", "timezone": "Mars/Olympus", "weekly_hours": {"0": [{"start": "09:00", "end": "17:00"}]}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "timezone"
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "x", "timezone": "UTC", "weekly_hours": {"0": [{"start": "09:00", "end": "12:00"},
                                                               {"start": "11:00", "end": "17:00"}]}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "weekly_hours"
    # Whole minutes only: seconds would be lost in storage, and hide an overlap.
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "x", "timezone": "UTC", "weekly_hours": {"0": [{"start": "09:00:00", "end": "12:00:30"},
                                                               {"start": "12:00:10", "end": "13:00"}]}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("weekly_hours.0.0.end"), r.text
    # What a GET shows can be sent back as it is, the end of the day included.
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Late", "timezone": "UTC", "weekly_hours": {"4": [{"start": "18:00", "end": "24:00"}]}})
    assert r.status_code == 201, r.text
    shown = r.json()
    assert shown["weekly_hours"] == {"4": [{"start": "18:00", "end": "24:00"}]}
    r = await client.patch(f"/api/v1/sla-calendars/{shown['id']}", headers=ws.admin.headers,
                           json={"weekly_hours": shown["weekly_hours"], "holidays": shown["holidays"]})
    assert r.status_code == 200 and r.json()["weekly_hours"] == shown["weekly_hours"], r.text
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "Base"})
    assert r.status_code == 201 and r.json()["targets"]["URGENT"]["first_response"] == 3600
    r = await client.patch(f"/api/v1/sla-policies/{r.json()['id']}", headers=ws.admin.headers,
                           json={"targets": {"LOW": {"first_response": 7200, "next_response": 7200,
                                                     "resolution": 7200}}})
    assert r.status_code == 200 and r.json()["targets"]["LOW"]["first_response"] == 7200
    other = await make_workspace(client)
    assert (await client.get(f"/api/v1/sla-policies/{r.json()['id']}",
                             headers=other.admin.headers)).status_code == 404


async def counted_pass(runtime, now, limit):
    """One monitor pass of at most ``limit`` trackers: (trackers advanced, SQL statements run)."""
    from relaydesk.sla.tasks import sla_service

    statements = []

    def count(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    engine = runtime.db.write_engine.sync_engine
    event.listen(engine, "after_cursor_execute", count)
    try:
        async with runtime.transaction() as session:
            advanced = await sla_service(runtime, session).scan_due(now, limit=limit)
    finally:
        event.remove(engine, "after_cursor_execute", count)
    return advanced, statements


async def test_a_monitor_pass_runs_as_many_statements_for_3_due_trackers_as_for_9(client, settle, clock, runtime):
    # Two workspaces, each with a default policy on a business-hours calendar open around
    # the clock, so a pass also has policies and calendars to read.
    made = []
    for _ in range(2):
        ws = await make_workspace(client)
        cal = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
            "name": "Always", "timezone": "UTC",
            "weekly_hours": {str(d): [{"start": "00:00", "end": "00:00"}] for d in range(7)}})
        assert cal.status_code == 201, cal.text
        pol = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
            "name": "Base", "is_default": True, "calendar_id": cal.json()["id"]})
        assert pol.status_code == 201, pol.text
        cust = await ws.customer()
        made += [(ws, await ws.ticket(cust, subject=f"Order {i}", description="Where is it?")) for i in range(6)]
    await settle()
    # 6 h 10 min in: every first-response clock (8 h for MEDIUM) is past its warning, not yet critical.
    clock.set(datetime.fromisoformat(made[-1][1]["created_at"]) + timedelta(hours=6, minutes=10))
    few, few_statements = await counted_pass(runtime, clock.now(), limit=3)
    many, many_statements = await counted_pass(runtime, clock.now(), limit=9)
    assert (few, many) == (3, 9)
    # Due rows, their tickets, their policies, their calendars, the trackers written back,
    # the outbox events: one statement each, whether 3 trackers are due or 9.
    assert len(few_statements) == len(many_statements) <= 8, many_statements
    assert (await counted_pass(runtime, clock.now(), limit=9))[0] == 0  # each announced once
    for ws, t in made:
        await ws.relogin()
        clocks = await sla(client, ws, t["id"])
        assert clocks["first_response"]["state"] == "warning" and clocks["_"]["policy"] == "Base"


async def test_a_monitor_pass_that_escalates_adds_at_most_the_ticket_lock_per_ticket(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    tickets = [await ws.ticket(cust, subject=f"Refund {i}", description="Still waiting", category_id=cat["id"])
               for i in range(8)]
    await settle()
    # Past the breach: warning, critical and breach in one pass, the ticket flagged, level 1 raised.
    clock.set(datetime.fromisoformat(tickets[-1]["created_at"]) + timedelta(hours=8, minutes=10))
    few, few_statements = await counted_pass(runtime, clock.now(), limit=2)
    many, many_statements = await counted_pass(runtime, clock.now(), limit=6)
    assert (few, many) == (2, 6)
    # The escalations, their thread notes, audit rows and ticket flags are written in one
    # statement per table however many tickets escalate; only the lock on each breached
    # ticket (TicketService.flag_sla_breached reads it FOR UPDATE) may add one statement
    # per ticket.
    assert len(many_statements) - len(few_statements) <= many - few, many_statements
    await settle()
    await ws.relogin()
    for t in tickets:
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
        assert got["sla_breached"] is True
        escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
        assert [(e["level"], e["kind"]) for e in escalations] == [(1, "sla_breach")]
        assert (await sla(client, ws, t["id"]))["first_response"]["state"] == "breached"


async def test_replies_handled_together_lock_their_trackers_in_one_read(client, settle, clock, runtime):
    """A batch of events about tickets that have trackers reads the trackers (locked) and
    the tickets once for the batch; each clock still moves as it would alone."""
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    made = [await ws.ticket(cust, subject=f"Question {n}", description="Hello", category_id=cat["id"])
            for n in range(3)]
    await settle()
    clock.advance(timedelta(hours=1))
    await ws.relogin(agent, senior, cust)
    for t in made:
        owner = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"]
        await ws.reply(agent if owner == agent.id else senior, t["id"], "Happy to help")
    with statements_run(runtime) as seen:
        await settle()  # the three replies in one batch
    reads = [sql for sql in seen if sql.startswith("SELECT sla_trackers.")]
    for t in made:
        assert (await sla(client, ws, t["id"]))["first_response"]["state"] == "met"
    assert len(reads) == 1, reads


async def test_an_escalation_on_a_ticket_without_a_team_reaches_the_managers(client, settle):
    """No team, so no team lead: the escalation goes up to the supervisors and admins, not
    back to the agent who raised it."""
    ws = await make_workspace(client)
    agent, supervisor = await ws.staff(), await ws.staff("supervisor")
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello")
    await settle()
    r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers, json={"assignee_id": agent.id})
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=agent.headers,
                          json={"kind": "manual", "reason": "The customer threatens to sue"})
    assert r.status_code == 201, r.text
    await settle()
    for manager in (supervisor, ws.admin):
        assert any(n["kind"] == "escalated" and n["ticket_id"] == t["id"] for n in await notes_for(client, ws, manager))
    assert not any(n["kind"] == "escalated" for n in await notes_for(client, ws, agent))


async def test_a_staff_escalations_reason_stays_with_the_staff(client, settle):
    ws = await make_workspace(client)
    agent, cust = await ws.staff(), await ws.customer()
    t = await ws.ticket(cust, subject="Refund", description="Where is my refund?")
    await settle()
    r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers, json={"assignee_id": agent.id})
    assert r.status_code == 200
    assert (await ws.move(agent, t["id"], "IN_PROGRESS")).status_code == 200
    secret = "Finance has sat on this for two weeks; VIP"
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=agent.headers,
                          json={"kind": "manual", "reason": secret})
    assert r.status_code == 201
    await settle()
    seen_by_customer = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=cust.headers)).json()
    assert not any(secret in m["body_text"] for m in seen_by_customer["items"])
    # Escalated is how the desk works it; to the customer it is still in progress.
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).json()["status"] == "IN_PROGRESS"
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()["status"] == "ESCALATED"
    staff_view = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=agent.headers)).json()
    assert any(secret in m["body_text"] and m["internal"] for m in staff_view["items"])
    [raised] = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert raised["reason"] == secret and raised["raised_by"] == agent.id
    audit = (await client.get(f"/api/v1/tickets/{t['id']}/audit", headers=ws.admin.headers)).json()
    rows = audit["items"] if isinstance(audit, dict) else audit
    assert any(a["field"] == "escalation" and a["after"] == "level 1 (manual)" and a["actor_id"] == agent.id
               for a in rows)


async def test_a_queue_sorted_by_sla_shows_what_falls_due_first(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    made = {}
    for name, priority in (("low", "LOW"), ("urgent", "URGENT"), ("medium", "MEDIUM"), ("waiting", "MEDIUM"),
                           ("medium2", "MEDIUM")):
        t = await ws.ticket(cust, subject=f"Question {name}", description="Hello", category_id=cat["id"])
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"priority": priority}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        made[name] = t["id"]
        clock.advance(timedelta(minutes=1))
    await settle()
    # Answered, then waiting on the customer: no clock runs, so it comes after the others.
    await ws.reply(ws.admin, made["waiting"], "Could you send a photo?")
    await ws.move(ws.admin, made["waiting"], "WAITING_ON_CUSTOMER")
    await settle()
    names = {v: k for k, v in made.items()}

    async def walk(sort, limit=2):
        seen, cursor = [], None
        while True:
            params = {"sort": sort, "limit": limit, **({"cursor": cursor} if cursor else {})}
            r = await client.get("/api/v1/tickets", params=params, headers=ws.admin.headers)
            assert r.status_code == 200, r.text
            seen += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return seen

    by_due = await walk("sla_due_at")
    assert [names[t["id"]] for t in by_due] == ["urgent", "medium", "medium2", "low", "waiting"]
    first = (await sla(client, ws, made["urgent"]))["first_response"]
    assert by_due[0]["sla_due_at"] == first["due_at"] and by_due[-1]["sla_due_at"] is None
    assert [names[t["id"]] for t in await walk("sla_due_at", limit=1)] == [names[t["id"]] for t in by_due]
    assert [names[t["id"]] for t in await walk("-sla_due_at")] == ["low", "medium2", "medium", "urgent", "waiting"]
    # Most urgent first, and within a priority the oldest first, across pages.
    by_priority = await walk("-priority")
    assert [names[t["id"]] for t in by_priority] == ["urgent", "medium", "waiting", "medium2", "low"]
    assert [names[t["id"]] for t in await walk("priority", limit=3)] == ["low", "medium", "waiting", "medium2",
                                                                          "urgent"]

    # Answering the urgent ticket stops its first-response clock: what is due next is its resolution.
    await ws.reply(ws.admin, made["urgent"], "On it")
    await settle()
    resolution = (await sla(client, ws, made["urgent"]))["resolution"]
    shown = (await client.get(f"/api/v1/tickets/{made['urgent']}", headers=ws.admin.headers)).json()
    assert shown["sla_due_at"] == resolution["due_at"]

    # Customers neither see nor sort by what staff track.
    await ws.relogin(cust)
    r = await client.get("/api/v1/tickets", params={"sort": "-priority"}, headers=cust.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sort", r.text
    mine = (await client.get(f"/api/v1/tickets/{made['urgent']}", headers=cust.headers)).json()
    assert mine["sla_due_at"] is None
    r = await client.get("/api/v1/tickets", params={"sort": "sla_due_at", "cursor": "WzEsMl0"},
                         headers=ws.admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


async def test_a_customer_can_ask_for_level_one_once(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    owner = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"]
    answers = []
    for _ in range(3):
        answers.append(await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=cust.headers,
                                         json={"kind": "customer_request", "reason": "Nobody is answering"}))
        await settle()
    assert [r.status_code for r in answers] == [201, 409, 409] and answers[0].json()["level"] == 1
    assert answers[1].json()["code"] == "already_escalated" and "already asked" in answers[1].json()["detail"]
    await ws.relogin()
    assert (await sla(client, ws, t["id"]))["_"]["escalation_level"] == 1
    escalations = (await client.get(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers)).json()
    assert [(e["level"], e["kind"]) for e in escalations] == [(1, "customer_request")]
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["assignee_id"] == owner
    lead_kinds = [n["kind"] for n in await notes_for(client, ws, lead) if n["ticket_id"] == t["id"]]
    assert lead_kinds.count("escalated") == 1
    assert not [n for n in await notes_for(client, ws, ws.admin) if n["ticket_id"] == t["id"]]
    # Staff can still take it further.
    await ws.relogin()
    r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers,
                          json={"kind": "manual", "reason": "Customer waited too long"})
    assert r.status_code == 201 and r.json()["level"] == 2


async def test_a_ticket_follows_the_policy_of_its_new_category_and_a_default_made_later(client, settle, clock):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    assert (await sla(client, ws, t["id"]))["_"]["policy"] == "Default"
    billing = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={"name": "Billing"})).json()
    fast = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Billing",
        "targets": {"MEDIUM": {"first_response": 2 * 3600, "next_response": 4 * 3600, "resolution": 9 * 3600}}})).json()
    r = await client.put(f"/api/v1/categories/{billing['id']}/sla-policy", headers=ws.admin.headers,
                         json={"policy_id": fast["id"]})
    assert r.status_code == 200, r.text
    clock.advance(timedelta(minutes=30))
    await ws.relogin()
    r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"category_id": billing["id"]},
                           headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    await settle()
    got = await sla(client, ws, t["id"])
    assert got["_"]["policy"] == "Billing" and got["first_response"]["target_seconds"] == 2 * 3600
    created = datetime.fromisoformat(t["created_at"])
    assert datetime.fromisoformat(got["first_response"]["due_at"]) == created + timedelta(hours=2)
    # A default policy made later applies once the priority changes, back in the old category.
    await client.put(f"/api/v1/categories/{billing['id']}/sla-policy", headers=ws.admin.headers,
                     json={"policy_id": None})
    await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Base", "is_default": True,
        "targets": {"HIGH": {"first_response": 3 * 3600, "next_response": 4 * 3600, "resolution": 9 * 3600}}})
    r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"priority": "HIGH"}, headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    await settle()
    got = await sla(client, ws, t["id"])
    assert got["_"]["policy"] == "Base" and got["first_response"]["target_seconds"] == 3 * 3600
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()[
        "sla_due_at"] is not None


async def levels(client, ws, ticket_id):
    await ws.relogin()
    escalations = (await client.get(f"/api/v1/tickets/{ticket_id}/escalations", headers=ws.admin.headers)).json()
    return [e["level"] for e in escalations]


async def test_level_two_waits_for_a_full_hour_of_open_work_after_a_re_open(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    start = datetime.fromisoformat(t["created_at"])
    clock.set(start + timedelta(hours=8, minutes=1))  # first response breached: level 1
    await scan(runtime, settle)
    clock.set(start + timedelta(hours=8, minutes=2))
    await ws.relogin()
    assert (await ws.move(ws.admin, t["id"], "RESOLVED")).status_code == 200
    await settle()
    reopened = start + timedelta(days=1, hours=8)
    clock.set(reopened)
    await ws.relogin(cust)
    await ws.reply(cust, t["id"], "It broke again")
    await settle()
    await scan(runtime, settle)
    assert await levels(client, ws, t["id"]) == [1]
    clock.set(reopened + timedelta(minutes=59))
    await scan(runtime, settle)
    assert await levels(client, ws, t["id"]) == [1]
    clock.set(reopened + timedelta(minutes=61))
    await scan(runtime, settle)
    assert await levels(client, ws, t["id"]) == [1, 2]


async def test_level_two_does_not_come_while_the_ticket_waits_on_the_customer(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    start = datetime.fromisoformat(t["created_at"])
    clock.set(start + timedelta(hours=8, minutes=1))
    await scan(runtime, settle)
    await ws.relogin()
    await ws.reply(ws.admin, t["id"], "Could you send the order number?")
    assert (await ws.move(ws.admin, t["id"], "WAITING_ON_CUSTOMER")).status_code == 200
    await settle()
    clock.set(start + timedelta(hours=10))
    await scan(runtime, settle)
    assert await levels(client, ws, t["id"]) == [1]


async def test_two_clocks_breached_in_one_pass_make_level_two(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    clock.set(datetime.fromisoformat(t["created_at"]) + timedelta(hours=73))  # first response and resolution
    await scan(runtime, settle)
    assert sorted(await levels(client, ws, t["id"])) == [1, 2]  # raised at the same instant


async def test_a_next_response_breached_twice_makes_level_two(client, settle, clock, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    r = await client.patch("/api/v1/workspace/settings", json={"escalation_l2_after_minutes": 7 * 24 * 60},
                           headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello there", category_id=cat["id"])
    await settle()
    at = datetime.fromisoformat(t["created_at"])
    for round_ in range(2):
        at += timedelta(minutes=10)
        clock.set(at)
        await ws.relogin(cust)
        assert (await ws.reply(ws.admin, t["id"], "Looking into it")).status_code == 201  # meets the clock
        assert (await ws.reply(cust, t["id"], "Any news?")).status_code == 201  # starts next response (16 h)
        await settle()
        at += timedelta(hours=16, minutes=1)
        clock.set(at)
        await scan(runtime, settle)
        assert await levels(client, ws, t["id"]) == [1, 2][:round_ + 1]


async def test_a_target_the_calendar_cannot_reach_is_refused(client):
    ws = await make_workspace(client)
    sparse = (await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "A minute a week", "timezone": "UTC", "weekly_hours": {"6": [{"start": "00:00", "end": "00:01"}]}}))
    assert sparse.status_code == 201, sparse.text
    quick = {"first_response": 3600, "next_response": 3600, "resolution": 2 * 3600}
    targets = {p: quick for p in ("URGENT", "HIGH", "MEDIUM")} | {"LOW": quick | {"resolution": 365 * 86400}}
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Sparse", "calendar_id": sparse.json()["id"], "targets": targets})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "targets.LOW.resolution" and "cannot be reached" in r.json()["detail"]
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Sparse", "calendar_id": sparse.json()["id"], "targets": targets | {"LOW": quick}})
    assert r.status_code == 201, r.text
    policy = r.json()
    r = await client.patch(f"/api/v1/sla-policies/{policy['id']}", headers=ws.admin.headers,
                           json={"targets": {"HIGH": quick | {"first_response": 30 * 86400}}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "targets.HIGH.first_response"
    r = await client.patch(f"/api/v1/sla-calendars/{sparse.json()['id']}", headers=ws.admin.headers,
                           json={"weekly_hours": {"6": [{"start": "00:00", "end": "00:01"}]},
                                 "holidays": ["2027-01-03", "2027-01-10"]})
    assert r.status_code == 200, r.text
    sundays = [(datetime(2026, 1, 11) + timedelta(weeks=w)).date().isoformat() for w in range(150)]
    r = await client.patch(f"/api/v1/sla-calendars/{sparse.json()['id']}", headers=ws.admin.headers,
                           json={"holidays": sundays})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "holidays", r.text
    assert "'Sparse'" in r.json()["detail"]


async def test_retiring_a_policy_moves_its_open_tickets_and_a_used_calendar_stays(client, settle, runtime):
    ws, team, lead, agent, senior, cat = await desk(client)
    hours = (await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Office", "timezone": "UTC", "weekly_hours": MONDAYS})).json()
    base = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Base", "is_default": True})).json()
    quick = {"first_response": 1800, "next_response": 3600, "resolution": 4 * 3600}
    returns = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Returns", "calendar_id": hours["id"], "targets": {"MEDIUM": quick}})).json()
    await client.put(f"/api/v1/categories/{cat['id']}/sla-policy", headers=ws.admin.headers,
                     json={"policy_id": returns["id"]})
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Broken on arrival", description="hi", category_id=cat["id"])
    await settle()
    assert (await sla(client, ws, t["id"]))["_"]["policy"] == "Returns"
    r = await client.delete(f"/api/v1/sla-calendars/{hours['id']}", headers=ws.admin.headers)
    assert r.status_code == 409 and r.json()["code"] == "calendar_in_use" and "Returns" in r.json()["detail"]
    assert (await client.delete(f"/api/v1/sla-policies/{returns['id']}", headers=agent.headers)).status_code == 403
    other = await make_workspace(client)
    assert (await client.delete(f"/api/v1/sla-policies/{returns['id']}",
                                headers=other.admin.headers)).status_code == 404

    assert (await client.delete(f"/api/v1/sla-policies/{returns['id']}", headers=ws.admin.headers)).status_code == 204
    await settle()
    got = await sla(client, ws, t["id"])
    assert got["_"]["policy"] == "Base" and got["_"]["business_hours"] == "24/7"
    assert got["first_response"]["target_seconds"] == 8 * 3600
    assert (await client.get(f"/api/v1/sla-policies/{returns['id']}", headers=ws.admin.headers)).status_code == 404
    assert (await client.get(f"/api/v1/categories/{cat['id']}", headers=ws.admin.headers)).json()[
        "sla_policy_id"] is None
    # The default can go too: the built-in targets apply then.
    assert (await client.delete(f"/api/v1/sla-policies/{base['id']}", headers=ws.admin.headers)).status_code == 204
    assert (await sla(client, ws, t["id"]))["_"]["policy"] == "Default"
    assert (await client.delete(f"/api/v1/sla-calendars/{hours['id']}", headers=ws.admin.headers)).status_code == 204
    assert (await client.get(f"/api/v1/sla-calendars/{hours['id']}", headers=ws.admin.headers)).status_code == 404
    async with runtime.db.read_session() as session:
        trail = {(r.entity_type, r.before) for r in await session.scalars(select(AuditEntry).where(
            AuditEntry.field == "deleted", AuditEntry.actor_id == uuid.UUID(ws.admin.id)))}
    assert trail == {("sla_policy", "Returns"), ("sla_policy", "Base"), ("sla_calendar", "Office")}


async def test_a_renamed_policy_shows_its_new_name_on_running_tickets(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    policy = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Standard", "is_default": True})).json()
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    r = await client.patch(f"/api/v1/sla-policies/{policy['id']}", headers=ws.admin.headers,
                           json={"name": "Standard support"})
    assert r.status_code == 200, r.text
    await settle()
    assert (await sla(client, ws, t["id"]))["_"]["policy"] == "Standard support"


async def test_a_ticket_reads_paused_only_when_no_clock_runs(client, settle):
    ws, team, lead, agent, senior, cat = await desk(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    await ws.move(ws.admin, t["id"], "WAITING_ON_CUSTOMER")  # unanswered: first response still runs
    await settle()
    got = await sla(client, ws, t["id"])
    assert got["resolution"]["state"] == "paused" and got["first_response"]["state"] == "ok"
    assert got["_"]["state"] == "ok"
    await ws.reply(ws.admin, t["id"], "Which order is it?")
    await ws.move(ws.admin, t["id"], "WAITING_ON_CUSTOMER")
    await settle()
    got = await sla(client, ws, t["id"])
    assert got["first_response"]["state"] == "met" and got["_"]["state"] == "paused"


async def test_opening_hours_and_names_are_checked_as_people_write_them(client):
    ws = await make_workspace(client)
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Odd", "timezone": "UTC", "weekly_hours": {"0": [{"start": "24:00", "end": "24:00"}]}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith("start"), r.text
    r = await client.post("/api/v1/sla-calendars", headers=ws.admin.headers, json={
        "name": "Odd", "timezone": "UTC", "weekly_hours": {"0": [{"start": "09:00", "end": "17:00"},
                                                                 {"start": "12:00", "end": "24:00"}]}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "weekly_hours"
    assert "09:00-17:00 and 12:00-24:00 overlap" in r.json()["detail"], r.text
    vip = (await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "VIP"})).json()
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={"name": "vip"})
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    r = await client.patch(f"/api/v1/sla-policies/{vip['id']}", headers=ws.admin.headers, json={"name": "Vip"})
    assert r.status_code == 200 and r.json()["name"] == "Vip"  # its own name in another case


async def test_the_view_agrees_with_its_clocks_before_the_monitor_runs(client, settle, clock):
    """Between a clock's due time and the next scan the view said "ok", not breached, over
    a first-response clock it showed breached at 117.5 %."""
    ws, team, lead, agent, senior, cat = await desk(client)
    t = await ws.ticket(await ws.customer(), subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    clock.advance(timedelta(hours=6))
    await ws.relogin()
    got = await sla(client, ws, t["id"])
    assert (got["first_response"]["state"], got["_"]["state"], got["_"]["breached"]) == ("warning", "warning", False)
    clock.advance(timedelta(hours=3, minutes=24))  # no scan meanwhile
    await ws.relogin()
    got = await sla(client, ws, t["id"])
    assert (got["first_response"]["state"], got["first_response"]["percent_used"]) == ("breached", 117.5)
    assert (got["_"]["state"], got["_"]["breached"]) == ("breached", True)


async def test_resolving_answers_with_the_ticket_as_stored(client, settle):
    """The answer to a move to RESOLVED still carried the due time of the clocks it had
    just stopped; a GET right after showed none."""
    ws, team, lead, agent, senior, cat = await desk(client)
    t = await ws.ticket(await ws.customer(), subject="Question", description="Hello", category_id=cat["id"])
    await settle()
    r = await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)
    assert r.json()["sla_due_at"] is not None
    r = await ws.move(ws.admin, t["id"], "RESOLVED")
    assert r.status_code == 200 and r.json()["sla_due_at"] is None, r.text
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json() == r.json()
    await settle()
    assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()["sla_due_at"] is None


async def test_a_resolution_target_shorter_than_first_response_is_refused(client):
    """Resolving within a minute while the first answer may take two hours was accepted."""
    ws = await make_workspace(client)
    backwards = {"first_response": 7200, "next_response": 3600, "resolution": 60}
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Backwards", "targets": {"HIGH": backwards}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["errors"][0]["field"] == "targets.HIGH.resolution"
    r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers, json={
        "name": "Backwards", "targets": {"HIGH": backwards | {"resolution": 7200}}})
    assert r.status_code == 201, r.text
    r = await client.patch(f"/api/v1/sla-policies/{r.json()['id']}", headers=ws.admin.headers,
                           json={"targets": {"LOW": backwards}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "targets.LOW.resolution", r.text

"""RESOLVED tickets close themselves after the workspace's quiet period."""

from __future__ import annotations

from datetime import timedelta

from factories import make_workspace


async def test_resolved_ticket_closes_after_48_hours_without_a_reply(client, clock, runtime):
    ws = await make_workspace(client)
    agent, cust = await ws.staff(), await ws.customer()
    quiet, answered = await ws.ticket(cust), await ws.ticket(cust)
    for t in (quiet, answered):
        r = await ws.move(agent, t["id"], "RESOLVED")
        assert r.json()["auto_close_at"] is not None
    clock.advance(timedelta(hours=47))
    await runtime.jobs.enqueue("tickets.auto_close")
    await runtime.jobs.wait_idle()
    await ws.relogin(cust, agent)
    assert (await ws.reply(cust, answered["id"], "Actually it is not fixed")).status_code == 201
    assert (await client.get(f"/api/v1/tickets/{quiet['id']}", headers=cust.headers)).json()["status"] == "RESOLVED"
    clock.advance(timedelta(hours=2))
    await runtime.jobs.enqueue("tickets.auto_close")
    await runtime.jobs.wait_idle()
    await ws.relogin(cust, agent)
    closed = (await client.get(f"/api/v1/tickets/{quiet['id']}", headers=ws.admin.headers)).json()
    assert closed["status"] == "CLOSED" and closed["auto_close_at"] is None
    reopened = (await client.get(f"/api/v1/tickets/{answered['id']}", headers=ws.admin.headers)).json()
    assert reopened["status"] == "OPEN" and reopened["auto_close_at"] is None  # nobody owned it
    trail = (await client.get(f"/api/v1/tickets/{quiet['id']}/audit", headers=ws.admin.headers)).json()
    last = [a for a in trail if a["field"] == "status"][-1]
    assert (last["after"], last["actor_kind"], last["actor_id"]) == ("CLOSED", "system", None)
    msgs = (await client.get(f"/api/v1/tickets/{quiet['id']}/messages", headers=ws.admin.headers)).json()["items"]
    assert "no reply from the customer for 49 hours" in msgs[-1]["body_text"]


async def test_quiet_period_is_a_workspace_setting(client, clock, runtime):
    ws = await make_workspace(client)
    r = await client.patch("/api/v1/workspace/settings", json={"auto_close_hours": 4}, headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["auto_close_hours"] == 4
    agent, cust = await ws.staff(), await ws.customer()
    assert (await client.patch("/api/v1/workspace/settings", json={"auto_close_hours": 1},
                               headers=agent.headers)).status_code == 403
    bad = await client.patch("/api/v1/workspace/settings", json={"auto_close_hours": 0}, headers=ws.admin.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "auto_close_hours"
    t = await ws.ticket(cust)
    await ws.move(agent, t["id"], "RESOLVED")
    clock.advance(timedelta(hours=4, minutes=1))
    await runtime.jobs.enqueue("tickets.auto_close")
    await runtime.jobs.wait_idle()
    await ws.relogin()
    got = await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)
    assert got.json()["status"] == "CLOSED"

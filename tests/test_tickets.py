"""The ticket core through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from factories import make_workspace
from relaydesk.core.audit import AuditEntry
from relaydesk.tickets import lifecycle
from relaydesk.tickets.lifecycle import Status as S
from relaydesk.tickets.models import Ticket

# A path of legal moves from OPEN to each status, made by the ticket's agent.
PATH = {
    S.OPEN: [],
    S.ASSIGNED: [S.ASSIGNED],
    S.IN_PROGRESS: [S.IN_PROGRESS],
    S.WAITING_ON_CUSTOMER: [S.IN_PROGRESS, S.WAITING_ON_CUSTOMER],
    S.WAITING_INTERNAL: [S.IN_PROGRESS, S.WAITING_INTERNAL],
    S.ESCALATED: [S.ESCALATED],
    S.RESOLVED: [S.RESOLVED],
    S.CLOSED: [S.RESOLVED, S.CLOSED],
}


async def thread(ws, actor, ticket_id):
    r = await ws.client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def audit(ws, ticket_id):
    r = await ws.client.get(f"/api/v1/tickets/{ticket_id}/audit", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()


class TestCreate:
    async def test_customer_opens_a_ticket(self, client):
        ws = await make_workspace(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Lamp broken", description="It arrived cracked.")
        assert t["number"] == "T-000001"
        assert (t["status"], t["channel"]) == ("OPEN", "web")
        # What staff say of it (priority, tags, who has it) is theirs: null in the customer's view.
        assert (t["priority"], t["tags"], t["assignee_id"], t["team_id"], t["sla_breached"]) == (None,) * 5
        staff_view = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
        assert (staff_view["priority"], staff_view["tags"]) == ("MEDIUM", [])
        r = await client.get("/api/v1/tickets", params={"tag": "fraud-suspect"}, headers=cust.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tag"
        assert t["requester_id"] == cust.customer_id
        assert t["first_response_at"] is None and t["resolved_at"] is None
        msgs = await thread(ws, cust, t["id"])
        assert [m["body_text"] for m in msgs] == ["It arrived cracked."]
        assert msgs[0]["author_kind"] == "customer"
        fields = {a["field"] for a in await audit(ws, t["id"])}
        assert {"created", "status", "priority"} <= fields

    async def test_numbers_count_up_per_workspace(self, client):
        a, b = await make_workspace(client), await make_workspace(client)
        ca, cb = await a.customer(), await b.customer()
        numbers_a = [(await a.ticket(ca))["number"] for _ in range(3)]
        numbers_b = [(await b.ticket(cb))["number"] for _ in range(2)]
        assert numbers_a == ["T-000001", "T-000002", "T-000003"]
        assert numbers_b == ["T-000001", "T-000002"]
        r = await client.get("/api/v1/tickets/T-000002", headers=ca.headers)
        assert r.status_code == 200 and r.json()["number"] == "T-000002"

    @pytest.mark.parametrize("field", ["channel", "priority", "tags"])
    async def test_a_customer_cannot_choose_what_routing_decides_by(self, client, field):
        """Assignment rules match on channel, priority and tags: a customer's own ticket is
        opened on the web, and what routing reads of it is not theirs to choose."""
        ws = await make_workspace(client)
        cust = await ws.customer()
        chosen = {"channel": "phone", "priority": "URGENT", "tags": ["vip"]}[field]
        r = await client.post("/api/v1/tickets", headers=cust.headers,
                              json={"subject": "Call me", "description": "Please.", field: chosen})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []
        assert (await ws.ticket(cust))["channel"] == "web"

    async def test_agent_opens_on_behalf_of_a_customer(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        cust = await ws.customer(login=False)
        r = await client.post("/api/v1/tickets", headers=agent.headers, json={
            "subject": "Phone call", "description": "Called about a refund", "requester_id": cust.customer_id,
            "channel": "phone", "assignee_id": agent.id, "tags": ["Refund", "refund", "vip"],
        })
        assert r.status_code == 201, r.text
        t = r.json()
        assert (t["channel"], t["status"], t["assignee_id"]) == ("phone", "ASSIGNED", agent.id)
        assert t["tags"] == ["refund", "vip"]
        r = await client.post("/api/v1/tickets", headers=agent.headers, json={"subject": "x", "description": "y"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "requester_id"

    async def test_category_supplies_default_priority_and_team(self, client):
        ws = await make_workspace(client)
        team = (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=ws.admin.headers)).json()
        cat = await client.post("/api/v1/categories", headers=ws.admin.headers, json={
            "name": "Refunds", "default_priority": "HIGH", "team_id": team["id"], "required_skills": ["Billing"]})
        assert cat.status_code == 201, cat.text
        cust = await ws.customer()
        t = await ws.ticket(cust, category_id=cat.json()["id"])
        t = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
        assert (t["priority"], t["team_id"], t["category_id"]) == ("HIGH", team["id"], cat.json()["id"])

    async def test_customers_cannot_route_their_own_tickets(self, client):
        ws = await make_workspace(client)
        cust, agent = await ws.customer(), await ws.staff()
        r = await client.post("/api/v1/tickets", headers=cust.headers, json={
            "subject": "s", "description": "d", "assignee_id": agent.id})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "assignee_id"

    async def test_html_is_sanitised_before_it_is_stored(self, client):
        ws = await make_workspace(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, description='<p onclick="steal()">Hi<script>alert(1)</script> '
                                              '<a href="javascript:alert(1)">x</a> <b>bold</b></p>')
        assert "script" not in t["description"] and "onclick" not in t["description"]
        assert "javascript:" not in t["description"] and "<b>bold</b>" in t["description"]
        msg = (await thread(ws, cust, t["id"]))[0]
        assert "<script" not in msg["body_html"] and msg["body_text"].startswith("Hi")

    async def test_words_in_angle_brackets_are_kept_as_typed(self, client):
        ws = await make_workspace(client)
        cust, agent = await ws.customer(), await ws.staff()
        typed = "Please send the parcel to our returns desk <returns@shop.example> with code <RMA-1234>."
        t = await ws.ticket(cust, description="My order <A-1001> & the spare <part>")
        assert t["description"] == "<p>My order &lt;A-1001&gt; &amp; the spare &lt;part&gt;</p>"
        r = await ws.reply(agent, t["id"], typed)
        assert r.status_code == 201, r.text
        assert r.json()["body_text"] == typed
        assert "&lt;returns@shop.example&gt;" in r.json()["body_html"]
        # In HTML, what is no tag (an address in brackets) is text too; what is one is still sanitised.
        r = await ws.reply(agent, t["id"], '<p>Write to <b>us</b> at <returns@shop.example> <img src=x onerror="steal()">'
                                           "<script>alert(1)</script></p>")
        assert r.status_code == 201, r.text
        assert r.json()["body_text"] == "Write to us at <returns@shop.example>"
        assert "<b>us</b>" in r.json()["body_html"] and "onerror" not in r.json()["body_html"]
        assert "script" not in r.json()["body_html"]


class TestLifecycle:
    @pytest.mark.parametrize("current", list(S))
    async def test_every_move_from_each_status(self, client, current):
        ws = await make_workspace(client)
        agent = await ws.staff()
        tickets = []
        for target in S:
            t = await ws.ticket(agent)
            for step in PATH[current]:
                assert (await ws.move(agent, t["id"], step)).status_code == 200
            tickets.append((t, target))
        for t, target in tickets:
            r = await ws.move(agent, t["id"], target)
            if lifecycle.can_move(current, target):
                assert r.status_code == 200, (current, target, r.text)
                assert r.json()["status"] == target
            else:
                assert r.status_code == 409, (current, target, r.text)
                body = r.json()
                assert r.headers["content-type"] == "application/problem+json"
                assert body["code"] == "invalid_transition" and body["current"] == current
                assert body["allowed"] == sorted(s.value for s in lifecycle.allowed_next(current))
                now = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
                assert now["status"] == current

    async def test_status_changes_are_audited_and_announced(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        assert (await ws.move(agent, t["id"], "IN_PROGRESS")).json()["assignee_id"] == agent.id
        r = await ws.move(agent, t["id"], "RESOLVED", reason="Replacement shipped")
        assert r.json()["resolved_at"] is not None
        system = [m["body_text"] for m in await thread(ws, cust, t["id"]) if m["author_kind"] == "system"]
        assert system == ["Status changed from OPEN to IN_PROGRESS.",
                          "Status changed from IN_PROGRESS to RESOLVED. Reason: Replacement shipped"]
        rows = [(a["field"], a["before"], a["after"], a["actor_id"]) for a in await audit(ws, t["id"])
                if a["field"] == "status"]
        assert rows == [("status", None, "OPEN", cust.id), ("status", "OPEN", "IN_PROGRESS", agent.id),
                        ("status", "IN_PROGRESS", "RESOLVED", agent.id)]

    async def test_first_response_is_the_first_public_agent_reply(self, client, clock):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        await ws.reply(cust, t["id"], "Any news?")
        await ws.reply(agent, t["id"], "Checking with the courier", internal=True)
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
        assert got["first_response_at"] is None and got["status"] == "OPEN"
        clock.advance(timedelta(minutes=5))
        r = await ws.reply(agent, t["id"], "We're on it")
        assert r.status_code == 201
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
        first = got["first_response_at"]
        assert first is not None and got["status"] == "IN_PROGRESS" and got["assignee_id"] == agent.id
        await ws.reply(agent, t["id"], "Another update")
        again = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
        assert again["first_response_at"] == first

    async def test_customer_reply_moves_waiting_ticket_back_to_work(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        await ws.move(agent, t["id"], "IN_PROGRESS")
        await ws.move(agent, t["id"], "WAITING_ON_CUSTOMER")
        await ws.reply(cust, t["id"], "Here is the photo")
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).json()
        assert got["status"] == "IN_PROGRESS"

    async def test_customer_reply_reopens_a_resolved_ticket(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        await ws.move(agent, t["id"], "IN_PROGRESS")
        await ws.move(agent, t["id"], "RESOLVED")
        r = await ws.reply(cust, t["id"], "It is still broken")
        assert r.status_code == 201 and r.json()["ticket_id"] == t["id"]
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
        assert (got["status"], got["reopen_count"], got["resolved_at"]) == ("IN_PROGRESS", 1, None)
        assert got["assignee_id"] == agent.id

    async def test_customer_confirms_resolution_and_cannot_do_more(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        r = await ws.move(cust, t["id"], "RESOLVED")
        assert r.status_code == 409 and r.json()["allowed"] == []
        # Told what they can do, not that the ticket is stuck.
        assert "once it is resolved" in r.json()["detail"] and "reply" in r.json()["detail"]
        assert "no further status changes" not in r.json()["detail"]
        await ws.move(agent, t["id"], "RESOLVED")
        r = await ws.move(cust, t["id"], "CLOSED")
        assert r.status_code == 200 and r.json()["closed_at"] is not None

    async def test_reply_to_a_closed_ticket_starts_a_linked_follow_up(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust, subject="Broken zip")
        await ws.move(agent, t["id"], "RESOLVED")
        await ws.move(agent, t["id"], "CLOSED")
        r = await ws.reply(agent, t["id"], "One more thing")
        assert r.status_code == 409 and r.json()["code"] == "ticket_closed"
        r = await ws.reply(cust, t["id"], "The new one broke too")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["follow_up_created"] is True and body["ticket_id"] != t["id"]
        new = (await client.get(f"/api/v1/tickets/{body['ticket_id']}", headers=cust.headers)).json()
        assert (new["follow_up_of_id"], new["subject"], new["status"]) == (t["id"], "Re: Broken zip", "OPEN")
        old = (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).json()
        assert old["status"] == "CLOSED"
        assert any(new["number"] in m["body_text"] for m in await thread(ws, cust, t["id"]))

    async def test_patch_changes_are_audited_with_system_messages(self, client):
        ws = await make_workspace(client)
        agent, other, cust = await ws.staff(), await ws.staff(), await ws.customer()
        team = (await client.post("/api/v1/teams", json={"name": "Tier 2"}, headers=ws.admin.headers)).json()
        t = await ws.ticket(cust)
        r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=agent.headers, json={
            "priority": "URGENT", "tags": ["outage"], "assignee_id": other.id, "team_id": team["id"]})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["priority"], got["tags"], got["assignee_id"], got["status"]) == (
            "URGENT", ["outage"], other.id, "ASSIGNED")
        changes = {(a["field"], str(a["before"]), str(a["after"])) for a in await audit(ws, t["id"])
                   if a["actor_id"] == agent.id}
        assert changes == {("priority", "MEDIUM", "URGENT"), ("tags", "[]", "['outage']"),
                           ("assignee_id", "None", other.id), ("team_id", "None", team["id"]),
                           ("status", "OPEN", "ASSIGNED")}
        notes = [m for m in await thread(ws, agent, t["id"]) if m["author_kind"] == "system"]
        assert len(notes) == 4 and all(m["internal"] for m in notes)
        r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=agent.headers, json={"assignee_id": None})
        assert (r.json()["assignee_id"], r.json()["status"]) == (None, "OPEN")

    async def test_assignee_must_be_staff_of_the_workspace(self, client):
        ws, other_ws = await make_workspace(client), await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        stranger = await other_ws.staff()
        t = await ws.ticket(cust)
        for bad in (stranger.id, cust.id):
            r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=agent.headers, json={"assignee_id": bad})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "assignee_id"

    async def test_a_refused_assignment_leaves_the_ticket_as_it_was(self, client, runtime):
        """Routing catches the refusal and carries on in the same transaction (it tries the
        next agent): the refused agent must not stay on the ticket and be written with it."""
        from relaydesk.core.errors import Conflict
        from relaydesk.core.principal import Principal
        from relaydesk.tickets.schemas import TicketPatch
        from relaydesk.tickets.tasks import ticket_service

        ws = await make_workspace(client)
        agent, cust = await ws.staff(max_concurrent=1), await ws.customer()
        first, second = await ws.ticket(cust), await ws.ticket(cust)
        r = await client.patch(f"/api/v1/tickets/{first['id']}", headers=ws.admin.headers,
                               json={"assignee_id": agent.id})
        assert r.status_code == 200, r.text
        async with runtime.transaction() as session:
            tickets = ticket_service(runtime, session)
            with pytest.raises(Conflict) as refused:
                await tickets.update(Principal.system(uuid.UUID(ws.id)), second["id"],
                                     TicketPatch(assignee_id=uuid.UUID(agent.id)), runtime.clock.now())
            assert refused.value.code == "agent_at_capacity"
            ticket = await tickets.get(Principal.system(uuid.UUID(ws.id)), second["id"])
            assert ticket.assignee_id is None and ticket.status == "OPEN"
        got = (await client.get(f"/api/v1/tickets/{second['id']}", headers=ws.admin.headers)).json()
        assert got["assignee_id"] is None and got["status"] == "OPEN"


    async def test_an_agent_at_their_cap_can_still_answer_an_unowned_ticket(self, client):
        """A reply to an unowned ticket takes it, but only where there is room: at the cap
        the customer still gets the answer and the ticket stays unowned for routing."""
        ws = await make_workspace(client)
        agent, cust = await ws.staff(max_concurrent=1), await ws.customer()
        mine, waiting = await ws.ticket(cust), await ws.ticket(cust)
        r = await client.patch(f"/api/v1/tickets/{mine['id']}", headers=agent.headers,
                               json={"assignee_id": agent.id})
        assert r.status_code == 200, r.text

        r = await ws.reply(agent, waiting["id"], "We are looking into it.")
        assert r.status_code == 201, r.text
        got = (await client.get(f"/api/v1/tickets/{waiting['id']}", headers=ws.admin.headers)).json()
        assert (got["assignee_id"], got["status"]) == (None, "OPEN") and got["first_response_at"]
        assert "We are looking into it." in [m["body_text"] for m in await thread(ws, cust, waiting["id"])]

        # With room again, answering takes the ticket as before.
        assert (await ws.move(agent, mine["id"], "RESOLVED")).status_code == 200
        assert (await ws.reply(agent, waiting["id"], "Found it.")).status_code == 201
        got = (await client.get(f"/api/v1/tickets/{waiting['id']}", headers=ws.admin.headers)).json()
        assert (got["assignee_id"], got["status"]) == (agent.id, "IN_PROGRESS")

    async def test_no_path_to_owning_a_ticket_passes_the_cap(self, client):
        """Moving an unowned ticket to WAITING_ON_CUSTOMER took it with no cap check, and the
        customer's reply then made it open work: 2 tickets against a cap of 1."""
        ws = await make_workspace(client)
        full, helper, cust = await ws.staff(max_concurrent=1), await ws.staff(), await ws.customer()
        mine, unowned = await ws.ticket(cust), await ws.ticket(cust)
        r = await client.patch(f"/api/v1/tickets/{mine['id']}", headers=full.headers, json={"assignee_id": full.id})
        assert r.status_code == 200, r.text

        for status in ("WAITING_ON_CUSTOMER", "IN_PROGRESS"):
            r = await ws.move(full, unowned["id"], status)
            assert r.status_code == 409 and r.json()["code"] == "agent_at_capacity", r.text
            assert (r.json()["load"], r.json()["cap"]) == (1, 1)
        got = (await client.get(f"/api/v1/tickets/{unowned['id']}", headers=ws.admin.headers)).json()
        assert (got["assignee_id"], got["status"]) == (None, "OPEN")

        # Nor by being given a waiting ticket by hand.
        assert (await ws.move(helper, unowned["id"], "WAITING_ON_CUSTOMER")).status_code == 200
        r = await client.patch(f"/api/v1/tickets/{unowned['id']}", headers=ws.admin.headers,
                               json={"assignee_id": full.id})
        assert r.status_code == 409 and r.json()["code"] == "agent_at_capacity", r.text
        got = (await client.get(f"/api/v1/tickets/{unowned['id']}", headers=ws.admin.headers)).json()
        assert got["assignee_id"] == helper.id


class TestWhatCustomersSeeOfTheStatus:
    async def test_internal_workflow_states_show_as_in_progress_to_the_customer(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        assert (await ws.move(agent, t["id"], "ASSIGNED")).status_code == 200
        assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).json()["status"] == "OPEN"
        for step in ("IN_PROGRESS", "ESCALATED", "WAITING_INTERNAL"):
            assert (await ws.move(agent, t["id"], step)).status_code == 200
        got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).json()
        assert got["status"] == "IN_PROGRESS"
        listed = (await client.get("/api/v1/tickets", headers=cust.headers)).json()["items"]
        assert [x["status"] for x in listed] == ["IN_PROGRESS"]
        staff_view = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
        assert staff_view["status"] == "WAITING_INTERNAL"
        assert (await ws.move(agent, t["id"], "RESOLVED")).status_code == 200

        public = [m["body_text"] for m in await thread(ws, cust, t["id"]) if m["author_kind"] == "system"]
        assert public == ["Status changed from OPEN to IN_PROGRESS.", "Status changed from IN_PROGRESS to RESOLVED."]
        staff_lines = [m["body_text"] for m in await thread(ws, agent, t["id"]) if m["author_kind"] == "system"]
        assert "Status changed from IN_PROGRESS to ESCALATED." in staff_lines
        assert "Status changed from ESCALATED to WAITING_INTERNAL." in staff_lines

    async def test_customers_filter_by_the_statuses_they_see(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        escalated = await ws.ticket(cust, subject="escalated")
        await ws.ticket(cust, subject="new")
        await ws.move(agent, escalated["id"], "ESCALATED")

        async def subjects(status):
            r = await client.get("/api/v1/tickets", headers=cust.headers, params={"status": status})
            assert r.status_code == 200, r.text
            return [x["subject"] for x in r.json()["items"]]

        assert await subjects("IN_PROGRESS") == ["escalated"]
        assert await subjects("OPEN") == ["new"]
        r = await client.get("/api/v1/tickets", headers=cust.headers, params={"status": "ESCALATED"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status", r.text

    async def test_a_refused_move_does_not_tell_the_customer_the_internal_status(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        await ws.move(agent, t["id"], "ESCALATED")
        r = await ws.move(cust, t["id"], "CLOSED")
        assert r.status_code == 409 and r.json()["current"] == "IN_PROGRESS", r.text
        assert "ESCALATED" not in r.text


class TestSoftDelete:
    async def test_deleted_ticket_is_gone_from_the_api_but_kept(self, client, runtime):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        assert (await client.delete(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).status_code == 403
        assert (await client.delete(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).status_code == 204
        assert (await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)).status_code == 404
        listed = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        assert t["id"] not in [x["id"] for x in listed]
        async with runtime.db.read_session() as s:
            row = await s.scalar(select(Ticket).where(Ticket.number == 1, Ticket.workspace_id == uuid.UUID(ws.id)))
        assert row is not None and row.deleted_at is not None
        assert any(a["field"] == "deleted_at" for a in await _raw_audit(runtime, t["id"]))

    async def test_deleted_customer_and_message(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        msg = (await ws.reply(agent, t["id"], "oops, wrong ticket")).json()
        r = await client.delete(f"/api/v1/tickets/{t['id']}/messages/{msg['id']}", headers=agent.headers)
        assert r.status_code == 204
        assert msg["id"] not in [m["id"] for m in await thread(ws, agent, t["id"])]
        r = await client.delete(f"/api/v1/customers/{cust.customer_id}", headers=ws.admin.headers)
        assert r.status_code == 204
        assert (await client.get(f"/api/v1/customers/{cust.customer_id}", headers=agent.headers)).status_code == 404
        # Their ticket stays, still naming them.
        got = await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)
        assert got.status_code == 200 and got.json()["requester_id"] == cust.customer_id
        r = await client.post("/api/v1/auth/login", json={"email": cust.email, "password": "correct horse battery staple",
                                                          "workspace": ws.slug})
        assert r.status_code == 401

    async def test_a_deleted_customer_can_be_restored_and_their_email_says_so(self, client):
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        t = await ws.ticket(cust)
        assert (await client.delete(f"/api/v1/customers/{cust.customer_id}", headers=ws.admin.headers)).status_code == 204
        r = await client.post("/api/v1/customers", headers=agent.headers, json={"name": "Again", "email": cust.email})
        assert r.status_code == 409 and r.json()["errors"][0]["field"] == "email"
        assert f"/api/v1/customers/{cust.customer_id}/restore" in r.json()["detail"]
        r = await client.post(f"/api/v1/customers/{cust.customer_id}/restore", headers=agent.headers)
        assert r.status_code == 403
        r = await client.post(f"/api/v1/customers/{cust.customer_id}/restore", headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["id"] == cust.customer_id
        assert (await client.get(f"/api/v1/customers/{cust.customer_id}", headers=agent.headers)).status_code == 200
        r = await client.post("/api/v1/auth/login", json={"email": cust.email, "password": "correct horse battery staple",
                                                          "workspace": ws.slug})
        assert r.status_code == 200
        mine = (await client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {r.json()['access_token']}"}))
        assert [x["id"] for x in mine.json()["items"]] == [t["id"]]
        r = await client.post(f"/api/v1/customers/{cust.customer_id}/restore", headers=ws.admin.headers)
        assert r.status_code == 404  # not deleted (any more)


async def _raw_audit(runtime, ticket_id):
    async with runtime.db.read_session() as s:
        rows = await s.scalars(select(AuditEntry).where(AuditEntry.entity_id == uuid.UUID(ticket_id)))
        return [{"field": r.field} for r in rows]


class TestList:
    async def test_filters_and_cursor_pagination(self, client):
        ws = await make_workspace(client)
        agent, cust, cust2 = await ws.staff(), await ws.customer(), await ws.customer()
        made = []
        for i in range(7):
            t = await ws.ticket(cust if i % 2 == 0 else cust2, subject=f"t{i}")
            made.append(t)
        await ws.move(agent, made[0]["id"], "IN_PROGRESS")
        await ws.move(agent, made[3]["id"], "IN_PROGRESS")
        await client.patch(f"/api/v1/tickets/{made[5]['id']}", headers=agent.headers, json={"tags": ["vip"]})
        h = agent.headers

        async def ids(**params):
            r = await client.get("/api/v1/tickets", headers=h, params=params)
            assert r.status_code == 200, r.text
            return [x["subject"] for x in r.json()["items"]]

        assert await ids() == [f"t{i}" for i in reversed(range(7))]
        assert await ids(sort="created_at") == [f"t{i}" for i in range(7)]
        assert await ids(status="IN_PROGRESS", assignee_id=agent.id) == ["t3", "t0"]
        assert await ids(status=["IN_PROGRESS", "ASSIGNED"]) == ["t3", "t0"]
        assert await ids(assignee_id="none") == ["t6", "t5", "t4", "t2", "t1"]
        assert await ids(tag="VIP") == ["t5"]
        assert await ids(requester_id=cust2.customer_id) == ["t5", "t3", "t1"]
        assert (await ids(sort="-updated_at"))[0] == "t5"
        seen, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/tickets", headers=h, params=params)).json()
            seen += [x["subject"] for x in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [f"t{i}" for i in reversed(range(7))]
        # Where they came from.
        chat = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                                 json={"name": "Lan", "email": "lan@visitors.example.com", "message": "t7"})
        assert chat.status_code == 201
        assert await ids(channel="chat") == ["t7"] and "t7" not in await ids(channel=["web", "api"])
        r = await client.get("/api/v1/tickets", headers=h, params={"channel": "pigeon"})
        assert r.status_code == 422 and "channel" in r.text

    async def test_a_cursor_pages_only_the_sort_it_came_from(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        for i in range(3):
            await ws.ticket(agent, subject=f"t{i}")
        for sort, other in (("sla_due_at", "-updated_at"), ("created_at", "-created_at"), ("-priority", "priority")):
            r = await client.get("/api/v1/tickets", headers=agent.headers, params={"sort": sort, "limit": 1})
            cursor = r.json()["next_cursor"]
            r = await client.get("/api/v1/tickets", headers=agent.headers,
                                 params={"sort": other, "limit": 1, "cursor": cursor})
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert r.json()["errors"][0]["field"] == "cursor" and "another sort order" in r.text
            r = await client.get("/api/v1/tickets", headers=agent.headers,
                                 params={"sort": sort, "limit": 1, "cursor": cursor})
            assert r.status_code == 200 and len(r.json()["items"]) == 1, r.text

    async def test_date_range_filters(self, client, clock):
        ws = await make_workspace(client)
        cust = await ws.customer()
        await ws.ticket(cust, subject="old")
        clock.advance(timedelta(days=2))
        boundary = clock.now()
        cust.token = (await ws.login(cust.email))["access_token"]  # the old one has expired meanwhile
        await ws.ticket(cust, subject="new")
        r = await client.get("/api/v1/tickets", headers=cust.headers,
                             params={"created_from": boundary.isoformat()})
        assert [x["subject"] for x in r.json()["items"]] == ["new"]
        r = await client.get("/api/v1/tickets", headers=cust.headers,
                             params={"created_to": boundary.isoformat()})
        assert [x["subject"] for x in r.json()["items"]] == ["old"]
        r = await client.get("/api/v1/tickets", headers=cust.headers, params={
            "created_from": boundary.isoformat(), "created_to": (boundary - timedelta(days=1)).isoformat()})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "created_to"

    async def test_a_date_alone_means_the_whole_day_in_utc(self, client, clock):
        ws = await make_workspace(client)
        cust = await ws.customer()
        day = clock.now().date()
        await ws.ticket(cust, subject="today")
        clock.advance(timedelta(days=1))
        cust.token = (await ws.login(cust.email))["access_token"]
        await ws.ticket(cust, subject="tomorrow")

        async def subjects(**params):
            r = await client.get("/api/v1/tickets", headers=cust.headers, params=params)
            assert r.status_code == 200, r.text
            return [x["subject"] for x in r.json()["items"]]

        assert await subjects(created_from=day.isoformat()) == ["tomorrow", "today"]
        assert await subjects(created_to=day.isoformat()) == ["today"]
        assert await subjects(created_from=day.isoformat(), created_to=day.isoformat()) == ["today"]
        assert await subjects(updated_from=(day + timedelta(days=1)).isoformat()) == ["tomorrow"]
        r = await client.get("/api/v1/tickets", headers=cust.headers, params={
            "created_from": day.isoformat(), "created_to": (day - timedelta(days=1)).isoformat()})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "created_to", r.text

    @pytest.mark.parametrize("given", ["yesterday", "2026-12-05T09:00", "2026-02-30"])
    async def test_a_date_filter_says_what_it_accepts(self, client, given):
        ws = await make_workspace(client)
        r = await client.get("/api/v1/tickets", headers=ws.admin.headers, params={"created_from": given})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        [error] = r.json()["errors"]
        assert error["field"] == "created_from"
        assert error["message"] == ("Give a date (2026-12-05, the whole day in UTC) or a date and time with its "
                                    "time zone (2026-12-05T09:00:00Z)."), error

    async def test_queries_per_page_do_not_grow_with_page_size(self, client, runtime):
        ws = await make_workspace(client)
        cust = await ws.customer()
        for _ in range(12):
            await ws.ticket(cust)
        counts = []
        for limit in (2, 10):
            seen = []

            def count(*_args):
                seen.append(1)

            engine = runtime.db.read_engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            try:
                r = await client.get("/api/v1/tickets", headers=cust.headers, params={"limit": limit})
            finally:
                event.remove(engine, "before_cursor_execute", count)
            assert len(r.json()["items"]) == limit
            counts.append(len(seen))
        assert counts[0] == counts[1] and counts[0] <= 4


class TestPropertyBased:
    async def test_random_status_sequences_keep_the_invariants(self, client):
        """Hypothesis drives random move sequences through the API; after every step the
        ticket, its timestamps and its audit trail agree with the state machine."""
        ws = await make_workspace(client)
        agent, cust = await ws.staff(), await ws.customer()
        loop = asyncio.get_running_loop()

        def run(coro):
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

        moves = st.lists(st.tuples(st.sampled_from(list(S)), st.booleans()), min_size=1, max_size=12)

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        @given(moves)
        def check(sequence):
            t = run(ws.ticket(cust))
            status, changes = S.OPEN, 0
            for target, as_customer in sequence:
                actor = cust if as_customer else agent
                r = run(ws.move(actor, t["id"], target))
                legal = lifecycle.can_move(status, target, by_customer=as_customer)
                assert r.status_code == (200 if legal else 409), r.text
                if legal:
                    status, changes = target, changes + 1
                got = run(client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
                assert got["status"] == status
                assert (got["closed_at"] is not None) == (status is S.CLOSED)
                if status is S.RESOLVED:
                    assert got["resolved_at"] is not None
                if status in lifecycle.NEEDS_ASSIGNEE:
                    assert got["assignee_id"] is not None
                if status is S.OPEN:
                    assert got["assignee_id"] is None
            trail = run(client.get(f"/api/v1/tickets/{t['id']}/audit", headers=agent.headers)).json()
            assert sum(1 for a in trail if a["field"] == "status") == changes + 1

        await asyncio.to_thread(check)


def test_path_table_is_legal():
    for target, steps in PATH.items():
        current = S.OPEN
        for step in steps:
            assert lifecycle.can_move(current, step)
            current = step
        assert current == target
    assert set(itertools.chain.from_iterable(PATH.values())) <= set(S)


async def test_a_new_organisation_is_in_the_audit_trail(client, runtime):
    ws = await make_workspace(client)
    org = (await client.post("/api/v1/organisations", headers=ws.admin.headers, json={"name": "Northwind"})).json()
    assert [row["field"] for row in await _raw_audit(runtime, org["id"])] == ["created"]


async def test_new_customers_at_an_organisations_domain_join_it(client, settle):
    ws = await make_workspace(client)
    r = await client.post("/api/v1/organisations", headers=ws.admin.headers, json={"name": "Acme", "domain": "not a domain!!"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "domain"
    org = (await client.post("/api/v1/organisations", headers=ws.admin.headers,
                             json={"name": "Newcust", "domain": "NewCust.example.org."})).json()
    assert org["domain"] == "newcust.example.org"
    r = await client.post("/api/v1/customers", headers=ws.admin.headers,
                          json={"name": "Giulia", "email": "giulia@newcust.example.org"})
    assert r.json()["organisation_id"] == org["id"]
    r = await client.post("/api/v1/customers", headers=ws.admin.headers,
                          json={"name": "Ann", "email": "ann@elsewhere.example.org"})
    assert r.json()["organisation_id"] is None
    # Writing in is joining too.
    chat = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                             json={"name": "Marco", "email": "marco@newcust.example.org", "message": "Hello"})
    ticket = (await client.get(f"/api/v1/tickets/{chat.json()['ticket_id']}", headers=ws.admin.headers)).json()
    assert ticket["organisation_id"] == org["id"]


async def test_a_customers_language_is_kept_in_lower_case_however_it_is_given(client):
    ws = await make_workspace(client)
    r = await client.post("/api/v1/customers", headers=ws.admin.headers,
                          json={"name": "Mai", "email": "mai@customers.example.com", "language": "VI"})
    assert r.json()["language"] == "vi"
    r = await client.patch(f"/api/v1/customers/{r.json()['id']}", headers=ws.admin.headers, json={"language": "PT-BR"})
    assert r.status_code == 200 and r.json()["language"] == "pt-br"


async def test_categories_nest_five_levels_deep_however_they_are_moved(client):
    ws = await make_workspace(client)

    async def category(name, parent=None):
        r = await client.post("/api/v1/categories", headers=ws.admin.headers,
                              json={"name": name, **({"parent_id": parent} if parent else {})})
        return r

    chain = [None]
    for level in range(5):
        r = await category(f"Depth {level}", chain[-1])
        assert r.status_code == 201, r.text
        chain.append(r.json()["id"])
    r = await category("Too deep", chain[-1])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    # A branch three levels high may go under level 2 (levels 3 to 5), not under level 3.
    y1 = (await category("Y1")).json()["id"]
    y2 = (await category("Y2", y1)).json()["id"]
    await category("Y3", y2)
    r = await client.patch(f"/api/v1/categories/{y1}", headers=ws.admin.headers, json={"parent_id": chain[4]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    assert (await client.get(f"/api/v1/categories/{y1}", headers=ws.admin.headers)).json()["parent_id"] is None
    r = await client.patch(f"/api/v1/categories/{y1}", headers=ws.admin.headers, json={"parent_id": chain[2]})
    assert r.status_code == 200, r.text


async def test_control_characters_are_dropped_from_what_people_write(client):
    ws = await make_workspace(client)
    cust = await ws.customer()
    t = await ws.ticket(cust, subject="Bell\x07 and NUL\x00 here", description="Line one\nLine\ttwo\x1b[31m")
    assert t["subject"] == "Bell and NUL here"
    [first] = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=ws.admin.headers)).json()["items"]
    assert first["body_text"] == "Line one\nLine\ttwo[31m"


async def test_searching_finds_tickets_by_their_words_number_and_requester(client, settle):
    ws = await make_workspace(client)
    agent = await ws.staff()
    lan = await ws.customer(name="Lan Nguyen")
    other = await ws.customer()
    zipper = await ws.ticket(lan, subject="Broken zipper on my jacket", description="The zipper came off.")
    parcel = await ws.ticket(other, subject="Parcel late", description="Tracking says 100% delivered_ but no box")
    noted = await ws.ticket(other, subject="Refund", description="Please refund me")
    await ws.reply(agent, noted["id"], "Checked with the warehouse: the RMA-7781 label is ready.")
    r = await client.post(f"/api/v1/tickets/{noted['id']}/messages", headers=agent.headers,
                          json={"body": "Customer looks like a repeat chargeback case", "internal": True})
    assert r.status_code == 201, r.text
    await settle()

    async def found(q, actor=ws.admin, **params):
        r = await client.get("/api/v1/tickets", params={"q": q, **params}, headers=actor.headers)
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["items"]}

    assert await found("ZIPPER") == {zipper["id"]}  # subject and thread, any case
    assert await found("rma-7781") == {noted["id"]}  # an agent's reply
    assert await found("chargeback case") == {noted["id"]}  # staff find internal notes
    assert await found("lan nguyen") == {zipper["id"]}  # the requester's name
    assert await found(lan.email.upper()) == {zipper["id"]}  # and email
    assert await found(parcel["number"]) == {parcel["id"]}
    assert await found(parcel["number"].removeprefix("T-").lstrip("0")) >= {parcel["id"]}
    assert await found("100%") == {parcel["id"]} and await found("d_") == {parcel["id"]}  # taken literally
    assert await found("zipper", status="RESOLVED") == set()  # with the other filters
    # Customers search their own tickets, and not what staff noted.
    await ws.relogin(other)
    assert await found("refund", actor=other) == {noted["id"]}
    assert await found("chargeback", actor=other) == set()
    assert await found("zipper", actor=other) == set()
    r = await client.get("/api/v1/tickets", params={"q": "x"}, headers=ws.admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "q"
    assert len(await found("  ")) == 3  # an empty search box lists everything


async def test_searching_ignores_case_beyond_ascii(client, settle):
    """Vietnamese (and any other) letters match whatever their case, on SQLite as on
    PostgreSQL: SQLite's own LIKE folds only A-Z."""
    ws = await make_workspace(client)
    lan = await ws.customer(name="Đặng Thị Lan")
    order = await ws.ticket(lan, subject="Đơn hàng chưa tới", description="Tôi đặt ÁO KHOÁC hôm thứ hai.")
    await ws.ticket(lan, subject="Hỏi về size", description="Cỡ M có vừa không?")
    await settle()

    async def found(q):
        r = await client.get("/api/v1/tickets", params={"q": q}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["items"]}

    assert await found("đơn hàng") == {order["id"]}
    assert await found("áo khoác") == {order["id"]}
    assert len(await found("ĐẶNG THỊ")) == 2  # the requester's name
    assert await found("đơn_") == set()  # LIKE's wildcards still taken literally


async def test_customers_are_found_by_part_of_their_name_or_email(client):
    ws = await make_workspace(client)
    lan = await ws.customer(name="Đặng Thị Lan")
    minh = await ws.customer(name="Minh Tran")

    async def found(q):
        r = await client.get("/api/v1/customers", params={"q": q}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["items"]}

    assert await found("đặng thị") == {lan.customer_id}
    assert await found("MINH") == {minh.customer_id}
    assert await found(minh.email.split("@")[0].upper()) == {minh.customer_id}
    assert await found("nobody") == set()
    r = await client.get("/api/v1/customers", params={"q": "x"}, headers=ws.admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "q"


async def test_open_work_counts_follow_a_transactions_own_changes(client, runtime, settle) -> None:  # noqa: ANN001
    """What routing and the cap check are told of agents' open work, within one
    transaction that moves tickets around (flushed or not, or by a statement against the
    table), is what a fresh count says at each step."""
    from sqlalchemy import func, update

    from relaydesk.tickets.repository import TicketRepository

    ws = await make_workspace(client)
    agent, other = await ws.staff(), await ws.staff()
    made = [await ws.ticket(ws.admin, assignee_id=agent.id) for _ in range(4)]
    await settle()
    workspace_id, agents = uuid.UUID(ws.id), [uuid.UUID(agent.id), uuid.UUID(other.id)]
    async with runtime.db.write_session() as session:
        repo = TicketRepository(session)
        tickets = [await session.get(Ticket, uuid.UUID(t["id"])) for t in made]

        async def counted_then_fresh() -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
            told = await repo.open_load(workspace_id, agents)
            await session.flush()
            rows = await session.execute(select(Ticket.assignee_id, func.count()).where(
                Ticket.workspace_id == workspace_id, Ticket.assignee_id.in_(agents), Ticket.deleted_at.is_(None),
                Ticket.status.in_([s.value for s in lifecycle.OPEN_WORK])).group_by(Ticket.assignee_id))
            fresh = dict.fromkeys(agents, 0) | dict(rows.all())
            return told, fresh

        told, fresh = await counted_then_fresh()
        assert told == fresh == {agents[0]: 4, agents[1]: 0}
        steps = [
            lambda: setattr(tickets[0], "assignee_id", agents[1]),
            lambda: setattr(tickets[1], "status", S.RESOLVED.value),
            lambda: (setattr(tickets[2], "deleted_at", tickets[2].created_at),
                     setattr(tickets[0], "status", S.IN_PROGRESS.value)),  # two, unflushed, then counted
            lambda: setattr(tickets[1], "status", S.ESCALATED.value),
        ]
        for step in steps:
            step()
            told, fresh = await counted_then_fresh()
            assert told == fresh, (told, fresh)
        await session.execute(update(Ticket).where(Ticket.id == tickets[3].id).values(assignee_id=agents[1]))
        told, fresh = await counted_then_fresh()
        assert told == fresh == {agents[0]: 1, agents[1]: 2}, (told, fresh)
        await session.rollback()


async def test_customers_see_of_categories_only_what_they_choose_by(client):
    """A customer picks a category when opening a ticket; which team and skills and SLA it
    routes to, and the priority it starts at, are how the support team works inside."""
    ws = await make_workspace(client)
    team = (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=ws.admin.headers)).json()
    parent = (await client.post("/api/v1/categories", json={"name": "Money"}, headers=ws.admin.headers)).json()
    r = await client.post("/api/v1/categories", headers=ws.admin.headers, json={
        "name": "Refunds", "description": "Money back", "parent_id": parent["id"], "default_priority": "HIGH",
        "team_id": team["id"], "required_skills": ["billing"]})
    assert r.status_code == 201, r.text
    refunds = r.json()
    cust = await ws.customer()
    [seen] = [c for c in (await client.get("/api/v1/categories", headers=cust.headers)).json()["items"]
              if c["id"] == refunds["id"]]
    one = (await client.get(f"/api/v1/categories/{refunds['id']}", headers=cust.headers)).json()
    for shown in (seen, one):
        assert (shown["name"], shown["description"], shown["parent_id"]) == ("Refunds", "Money back", parent["id"])
        assert (shown["team_id"], shown["sla_policy_id"], shown["required_skills"], shown["default_priority"]) == \
            (None, None, None, None)
    staff = (await client.get(f"/api/v1/categories/{refunds['id']}", headers=ws.admin.headers)).json()
    assert (staff["team_id"], staff["required_skills"], staff["default_priority"]) == (team["id"], ["billing"], "HIGH")

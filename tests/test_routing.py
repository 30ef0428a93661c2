"""Routing through the API: classification, priority, assignment, queueing, rules."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conftest import statements_run
from factories import make_workspace
from relaydesk.routing.tasks import routing_service


async def setup_desk(client, *, agents=2, cap=5, skills=(("billing", 4),), languages=("en",), **agent_fields):
    ws = await make_workspace(client)
    team = (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=ws.admin.headers)).json()
    staff = [await ws.staff(max_concurrent=cap, skills=[{"skill": s, "level": lvl} for s, lvl in skills],
                            languages=list(languages), team_ids=[team["id"]], **agent_fields)
             for _ in range(agents)]
    cats = {}
    for name, skill in (("Billing", ["billing"]), ("Shipping", []), ("General", [])):
        r = await client.post("/api/v1/categories", headers=ws.admin.headers, json={
            "name": name, "required_skills": skill, "team_id": team["id"] if name == "Billing" else None})
        cats[name] = r.json()["id"]
    return ws, team, staff, cats


async def sweep_after(ws, clock, runtime, settle, *, minutes):  # noqa: ANN001, ANN201
    """Let ``minutes`` pass, run the queue sweep, deliver the alerts it published, and sign
    the admin in again (the access token has expired meanwhile)."""
    clock.advance(timedelta(minutes=minutes))
    await runtime.jobs.enqueue("routing.sweep_queues")
    await settle()
    await settle()
    await ws.relogin()


async def routing_of(client, ws, ticket_id):
    r = await client.get(f"/api/v1/tickets/{ticket_id}/routing", headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def ticket(client, ws, ticket_id):
    return (await client.get(f"/api/v1/tickets/{ticket_id}", headers=ws.admin.headers)).json()


class TestIntake:
    async def test_new_ticket_is_classified_prioritised_and_assigned(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Charged twice",
                            description="My credit card was charged twice for the same invoice. "
                                        "If this is not refunded I will file a chargeback.")
        await settle()
        got = await ticket(client, ws, t["id"])
        assert got["category_id"] == cats["Billing"]
        assert got["priority"] == "URGENT"
        assert got["team_id"] == team["id"]
        assert got["assignee_id"] in {a.id for a in staff} and got["status"] == "ASSIGNED"
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "assigned" and why["category"]["source"] == "model"
        assert why["category"]["label"] == "BILLING" and why["category"]["confidence"] > 0.4
        assert any("chargeback" in r for r in why["priority"]["reasons"])
        decision = why["decision"]
        assert decision["strategy"] == "skill_weighted" and decision["winner"] == got["assignee_id"]
        assert {s["agent_id"] for s in decision["scored"]} == {a.id for a in staff}
        assert all({"capacity", "skill"} <= s["parts"].keys() for s in decision["scored"])

    async def test_a_vietnamese_ticket_is_classified_too(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="don hang chua toi",
                            description="Shop ơi, mình đặt hôm thứ Hai mà tới giờ vẫn chưa nhận được hàng, "
                                        "tra mã vận đơn thì thấy nằm ở kho Bình Dương mấy hôm nay rồi.")
        await settle()
        assert (await ticket(client, ws, t["id"]))["category_id"] == cats["Shipping"]
        why = await routing_of(client, ws, t["id"])
        assert why["category"]["source"] == "model" and why["category"]["label"] == "SHIPPING", why["category"]

    async def test_routing_writes_the_ticket_and_its_record_once(self, client, settle, runtime):
        """Routing decides first and writes once: classification, priority and the
        assignment land in one UPDATE of the ticket and one INSERT of its record (they
        were five writes, each flushed on its own)."""
        ws, team, staff, cats = await setup_desk(client)
        cust = await ws.customer()
        await settle()
        t = await ws.ticket(cust, subject="Charged twice", description="My card was charged twice. Refund it now!")
        with statements_run(runtime) as seen:
            await settle()
        # (The SLA domain's own write of the due time is not routing's.)
        writes = [" ".join(sql.split()[:3]) for sql in seen
                  if sql.startswith(("INSERT INTO tickets ", "INSERT INTO ticket_routing ", "UPDATE tickets ",
                                     "UPDATE ticket_routing ")) and not sql.startswith("UPDATE tickets SET sla_due_at")]
        got = await ticket(client, ws, t["id"])
        assert got["assignee_id"] in {a.id for a in staff} and got["priority"] != "MEDIUM"
        assert got["category_id"] == cats["Billing"]
        assert sorted(writes) == ["INSERT INTO ticket_routing", "UPDATE tickets SET"], writes
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "assigned" and why["decision"]["winner"] == got["assignee_id"]

    async def test_a_batch_of_new_tickets_looks_up_and_locks_once(self, client, settle, runtime, backend):
        """Tickets that arrive together are routed in one transaction: their routing
        records are looked for in one query, not one each, and on PostgreSQL the
        workspace's routing lock and the agent's capacity lock (both held until commit)
        are taken once, while the agent's cap still holds within the batch. On SQLite,
        whose one writer no one else can change tickets under, the agents' open work is
        counted once for the batch and carried from ticket to ticket."""
        ws, team, [agent], cats = await setup_desk(client, agents=1, cap=3)
        cust = await ws.customer()
        await settle()
        made = [await ws.ticket(cust, subject=f"Order {n} never arrived", description="Where is my parcel?")
                for n in range(4)]
        with statements_run(runtime) as seen:
            await settle()  # the four ticket.created events leave as one batch
        locks = [sql for sql in seen if "pg_advisory_xact_lock" in sql]
        capacity_locks = [sql for sql in seen
                          if sql.startswith("SELECT agent_profiles.max_concurrent") and "FOR UPDATE" in sql]
        lookups = [sql for sql in seen if sql.startswith("SELECT ticket_routing.")]
        load_counts = [sql for sql in seen if sql.startswith("SELECT tickets.assignee_id, count(*)")]
        states = [(await routing_of(client, ws, t["id"]))["state"] for t in made]
        assert sorted(states) == ["assigned"] * 3 + ["queued"], states
        owners = {(await ticket(client, ws, t["id"]))["assignee_id"] for t in made}
        assert owners == {agent.id, None}
        assert len(lookups) == 1, lookups
        once = 1 if backend == "postgres" else 0
        assert (len(locks), len(capacity_locks)) == (once, once), locks + capacity_locks
        if backend == "sqlite":
            assert len(load_counts) == 1, load_counts

    async def test_what_a_person_chose_is_kept(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        agent = staff[0]
        cust = await ws.customer(login=False)
        r = await client.post("/api/v1/tickets", headers=agent.headers, json={
            "subject": "refund please, urgent", "description": "chargeback coming",
            "requester_id": cust.customer_id, "priority": "LOW", "category_id": cats["Shipping"]})
        await settle()
        got = await ticket(client, ws, r.json()["id"])
        assert (got["priority"], got["category_id"]) == ("LOW", cats["Shipping"])
        why = await routing_of(client, ws, got["id"])
        assert why["category"]["source"] == "given" and why["priority"]["source"] == "given"

    async def test_a_change_made_before_routing_ran_is_kept(self, client, settle):
        """Staff who correct a ticket in the moments before routing gets to it (a busy
        desk, a worker catching up) are not overruled by the classifier and the rules."""
        ws, team, staff, cats = await setup_desk(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Refund please, urgent", description="Charged twice for one invoice")
        r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=staff[0].headers,
                               json={"category_id": cats["Shipping"], "priority": "LOW"})
        assert r.status_code == 200, r.text
        await settle()
        got = await ticket(client, ws, t["id"])
        assert (got["priority"], got["category_id"]) == ("LOW", cats["Shipping"])
        why = await routing_of(client, ws, t["id"])
        assert why["category"]["source"] == "agent" and why["priority"]["source"] == "agent", why

    async def test_vip_customers_get_higher_priority(self, client, settle):
        ws, *_ = await setup_desk(client)
        vip = await ws.customer(tier="vip")
        t = await ws.ticket(vip, subject="Question about sizes", description="Do the boots run small?")
        await settle()
        got = await ticket(client, ws, t["id"])
        assert got["priority"] == "HIGH"
        assert any("VIP" in r for r in (await routing_of(client, ws, t["id"]))["priority"]["reasons"])

    async def test_agent_override_of_category_and_priority_is_audited(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Invoice", description="Need a copy of my invoice")
        await settle()
        r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=staff[0].headers,
                               json={"category_id": cats["Shipping"], "priority": "LOW"})
        assert r.status_code == 200
        trail = (await client.get(f"/api/v1/tickets/{t['id']}/audit", headers=ws.admin.headers)).json()
        system = [(a["field"], a["actor_kind"]) for a in trail if a["field"] in ("category_id", "priority")]
        assert ("category_id", "system") in system and ("category_id", "agent") in system
        assert ("priority", "agent") in system


class TestSettings:
    @pytest.mark.parametrize("bad", [{"fallback_category": ""}, {"fallback_category": "   "},
                                     {"fallback_category": "Triage"},  # no category is called so
                                     {"priority_keywords": {"!!": "URGENT"}}])
    async def test_settings_that_would_break_routing_are_refused(self, client, settle, bad):
        ws, team, staff, cats = await setup_desk(client)
        r = await client.patch("/api/v1/workspace/settings", json=bad, headers=ws.admin.headers)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"].startswith(next(iter(bad)))
        settings = (await client.get("/api/v1/workspace/settings", headers=ws.admin.headers)).json()
        assert (settings["fallback_category"], settings["priority_keywords"]) == ("GENERAL", None)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Charged twice", description="My card was charged twice for one invoice.")
        await settle()
        got = await ticket(client, ws, t["id"])
        assert got["category_id"] == cats["Billing"] and got["assignee_id"] in {a.id for a in staff}


    async def test_the_fallback_category_names_a_category_whatever_its_case(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        r = await client.patch("/api/v1/workspace/settings", json={"fallback_category": "shipping"},
                               headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["fallback_category"] == "shipping", r.text

    async def test_a_workspaces_priority_keywords_change_the_built_ins(self, client, settle):
        """One custom keyword silently removed every built-in one (chargeback, fraud, lawyer,
        urgent...), and the settings showed null instead of what applied."""
        ws, *_ = await setup_desk(client)
        r = await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                               json={"priority_keywords": {"wrong size": "HIGH", "Urgent": None, "asap": "URGENT"}})
        assert r.status_code == 200, r.text
        shown = (await client.get("/api/v1/workspace/settings", headers=ws.admin.headers)).json()
        assert shown["priority_keywords"] == {"wrong size": "HIGH", "Urgent": None, "asap": "URGENT"}
        in_effect, built_in = shown["priority_keywords_in_effect"], shown["built_in_priority_keywords"]
        assert (built_in["urgent"], built_in["asap"], built_in["chargeback"]) == ("URGENT", "HIGH", "URGENT")
        assert "urgent" not in in_effect and in_effect["asap"] == "URGENT" and in_effect["wrong size"] == "HIGH"
        assert in_effect["chargeback"] == in_effect["lawyer"] == "URGENT"
        cust = await ws.customer()
        made = {text: await ws.ticket(cust, subject="About my order", description=text)
                for text in ("I will file a chargeback", "They sent the wrong size", "urgent please")}
        await settle()
        got = {text: (await ticket(client, ws, t["id"]))["priority"] for text, t in made.items()}
        assert got == {"I will file a chargeback": "URGENT", "They sent the wrong size": "HIGH",
                       "urgent please": "MEDIUM"}

    async def test_a_stored_keyword_list_keeps_its_meaning_after_the_upgrade(self, tmp_path):
        """A list saved when it replaced the built-ins still means just that list."""
        from conftest import test_settings
        from relaydesk.migrate import upgrade
        from relaydesk.routing.priority import keywords_in_effect
        from relaydesk.runtime import build_runtime
        from relaydesk.tenancy.service import WorkspaceService

        rt = build_runtime(test_settings(tmp_path))
        try:
            await upgrade(rt.db, "0010")
            async with rt.db.write_session() as session:
                workspace = await WorkspaceService(session).create("Before", rt.clock.now())
                workspace.settings = {"priority_keywords": {"wrong size": "HIGH", "urgent": "HIGH"}}
                untouched = await WorkspaceService(session).create("Defaults", rt.clock.now())
                await session.commit()
            await upgrade(rt.db)
            async with rt.db.write_session() as session:
                kept = (await WorkspaceService(session).settings(workspace.id)).priority_keywords
                assert (await WorkspaceService(session).settings(untouched.id)).priority_keywords is None
            # Of the built-ins it replaced, none came back; those added since apply as anywhere.
            from relaydesk.routing.priority import DEFAULT_KEYWORDS
            added_since = {k for k in DEFAULT_KEYWORDS if not k.isascii()}
            assert {k: v for k, v in keywords_in_effect(kept).items() if k not in added_since} == \
                {"wrong size": "HIGH", "urgent": "HIGH"}
        finally:
            await rt.close()


class TestStrategies:
    async def test_round_robin_rotates(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=3)
        r = await client.post("/api/v1/assignment-rules", headers=ws.admin.headers, json={
            "name": "everything round robin", "team_id": team["id"], "strategy": "round_robin"})
        assert r.status_code == 201, r.text
        cust = await ws.customer()
        owners = []
        for i in range(6):
            t = await ws.ticket(cust, subject=f"Invoice {i}", description="invoice question")
            await settle()
            owners.append((await ticket(client, ws, t["id"]))["assignee_id"])
        assert owners[:3] == owners[3:] and len(set(owners)) == 3

    async def test_least_loaded_prefers_the_emptiest_queue(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=2, cap=10)
        await client.post("/api/v1/assignment-rules", headers=ws.admin.headers, json={
            "name": "least loaded", "team_id": team["id"], "strategy": "least_loaded"})
        cust = await ws.customer()
        busy, free = staff
        for _ in range(3):
            t = await ws.ticket(busy, requester_id=cust.customer_id, assignee_id=busy.id)
        await settle()
        t = await ws.ticket(cust, subject="Billing question", description="about my invoice")
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == free.id

    async def test_rules_match_in_order_on_conditions(self, client, settle):
        ws, team, staff, cats = await setup_desk(client)
        vip_team = (await client.post("/api/v1/teams", json={"name": "VIP desk"}, headers=ws.admin.headers)).json()
        vip_agent = await ws.staff(team_ids=[vip_team["id"]], skills=[{"skill": "billing", "level": 2}])
        rule = await client.post("/api/v1/assignment-rules", headers=ws.admin.headers, json={
            "name": "VIPs", "position": 0, "conditions": {"customer_tiers": ["vip"]}, "team_id": vip_team["id"]})
        assert rule.status_code == 201
        vip, normal = await ws.customer(tier="vip"), await ws.customer()
        a = await ws.ticket(vip, subject="invoice", description="billing question on my invoice")
        b = await ws.ticket(normal, subject="invoice", description="billing question on my invoice")
        await settle()
        assert (await ticket(client, ws, a["id"]))["assignee_id"] == vip_agent.id
        assert (await ticket(client, ws, b["id"]))["assignee_id"] in {s.id for s in staff}
        assert (await routing_of(client, ws, a["id"]))["rule"]["name"] == "VIPs"


class TestFilters:
    @pytest.mark.parametrize("reason_kind", ["away", "language", "skill", "shift"])
    async def test_ineligible_agents_are_passed_over_with_a_reason(self, client, settle, clock, reason_kind):
        ws, team, staff, cats = await setup_desk(client, agents=1, languages=("en", "vi"))
        ok = staff[0]
        odd = {"away": {"availability": "away"},
               "language": {"languages": ["de"]},
               "skill": {"skills": [{"skill": "shipping", "level": 5}]},
               "shift": {"timezone": "UTC", "shifts": [{"weekday": (clock.now().weekday() + 3) % 7,
                                                        "start": "09:00", "end": "10:00"}]}}[reason_kind]
        fields = {"skills": [{"skill": "billing", "level": 5}], "languages": ["en", "vi"], **odd}
        other = await ws.staff(team_ids=[team["id"]], **fields)
        cust = await ws.customer(language="vi")
        t = await ws.ticket(cust, subject="Hóa đơn", description="my invoice was charged twice, billing error")
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == ok.id
        excluded = {e["agent_id"]: e["reasons"] for e in (await routing_of(client, ws, t["id"]))["decision"]["excluded"]}
        expected = {"away": "away", "language": "does not speak", "skill": "missing skill", "shift": "off shift"}
        assert any(expected[reason_kind] in r for r in excluded[other.id])


class TestQueue:
    async def test_waits_in_queue_until_capacity_frees(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=1, cap=1)
        agent = staff[0]
        cust = await ws.customer()
        made = [await ws.ticket(cust, subject=f"invoice {i}", description="billing issue with invoice")
                for i in range(2)]
        await settle()
        # Intake jobs run concurrently, so either ticket may win the one free slot.
        owners = {t["id"]: (await ticket(client, ws, t["id"]))["assignee_id"] for t in made}
        assert sorted(owners.values(), key=str) == [agent.id, None]
        owned = next(t for t, a in owners.items() if a)
        waiting_id = next(t for t, a in owners.items() if not a)
        waiting = await routing_of(client, ws, waiting_id)
        assert waiting["state"] == "queued" and waiting["queued_since"]
        assert waiting["decision"]["winner"] is None and "at cap" in waiting["decision"]["reason"]
        assert (await ticket(client, ws, waiting_id))["team_id"] == team["id"]
        # The agent resolves their ticket: the waiting one is theirs at once, no sweep needed.
        r = await ws.move(agent, owned, "RESOLVED")
        assert r.status_code == 200, r.text
        await settle()
        assert (await ticket(client, ws, waiting_id))["assignee_id"] == agent.id
        assert (await routing_of(client, ws, waiting_id))["state"] == "assigned"

    async def test_agent_coming_online_takes_the_queue(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=1, availability="offline")
        agent = staff[0]
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question")
        await settle()
        assert (await routing_of(client, ws, t["id"]))["state"] == "queued"
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        assert r.status_code == 200
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id

    async def test_draining_a_queue_stops_at_the_cap(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=1, cap=3, availability="offline")
        agent = staff[0]
        cust = await ws.customer()
        made = [await ws.ticket(cust, subject=f"invoice {i}", description="billing question") for i in range(6)]
        await settle()
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        await settle()
        owners = [(await ticket(client, ws, t["id"]))["assignee_id"] for t in made]
        assert owners.count(agent.id) == 3 and owners.count(None) == 3

    async def test_supervisors_hear_of_tickets_waiting_too_long(self, client, settle, clock, runtime):
        ws, team, staff, cats = await setup_desk(client, agents=1, availability="offline")
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question")
        await settle()
        clock.advance(timedelta(minutes=31))
        await runtime.jobs.enqueue("routing.sweep_queues")
        await settle()
        await runtime.jobs.enqueue("routing.sweep_queues")  # a second sweep does not repeat the alert
        await settle()
        await ws.relogin()
        notes = (await client.get("/api/v1/notifications", headers=ws.admin.headers)).json()["items"]
        waiting = [n for n in notes if n["kind"] == "queue_waiting"]
        assert len(waiting) == 1 and waiting[0]["ticket_id"] == t["id"]

    async def test_a_ticket_that_waits_again_is_alerted_again(self, client, settle, clock, runtime):
        """Each wait gets its alert: one alerted, then assigned, unassigned and left waiting
        again was never alerted a second time."""
        ws, team, [agent], cats = await setup_desk(client, agents=1, availability="offline")
        t = await ws.ticket(await ws.customer(), subject="invoice", description="billing question")
        await settle()
        clock.advance(timedelta(minutes=31))
        await runtime.jobs.enqueue("routing.sweep_queues")
        await settle()
        await ws.relogin(agent)
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "offline"}, headers=agent.headers)
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": None}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        await sweep_after(ws, clock, runtime, settle, minutes=31)
        notes = (await client.get("/api/v1/notifications", headers=ws.admin.headers)).json()["items"]
        assert [n["ticket_id"] for n in notes if n["kind"] == "queue_waiting"] == [t["id"], t["id"]]

    async def test_a_backlog_nobody_can_take_holds_up_no_other_workspace(self, client, settle, clock, runtime):
        """Every workspace's queue is retried and alerted whatever another holds: more than
        a sweep's page of tickets nobody could take, oldest in the queue, filled every page,
        so another workspace's ticket was never given to its agent when their shift began,
        and a third's waited with no alert."""
        stuck, *_ = await setup_desk(client, agents=0)
        backlog_owner = await stuck.customer()
        for n in range(4):
            await stuck.ticket(backlog_owner, subject=f"invoice {n}", description="billing question")
        await settle()
        clock.advance(timedelta(minutes=1))
        shift_starts = (clock.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        shift = {"weekday": shift_starts.weekday(), "start": f"{shift_starts:%H:%M}",
                 "end": f"{shift_starts + timedelta(hours=2):%H:%M}"}
        waiting, _, [agent], _ = await setup_desk(client, agents=1, timezone="UTC", shifts=[shift])
        unstaffed, *_ = await setup_desk(client, agents=0)
        for_agent = await waiting.ticket(await waiting.customer(), subject="invoice", description="billing question")
        for_nobody = await unstaffed.ticket(await unstaffed.customer(), subject="invoice",
                                            description="billing question")
        await settle()
        assert "off shift" in (await routing_of(client, waiting, for_agent["id"]))["decision"]["reason"]
        clock.advance(shift_starts - clock.now() + timedelta(minutes=1))
        for _ in range(2):
            async with runtime.transaction() as session:
                await routing_service(runtime, session).sweep(clock.now(), limit=3)
            await settle()
        await waiting.relogin()
        await unstaffed.relogin()
        assert (await ticket(client, waiting, for_agent["id"]))["assignee_id"] == agent.id
        notes = (await client.get("/api/v1/notifications", headers=waiting.admin.headers)).json()["items"]
        assert [n for n in notes if n["kind"] == "queue_waiting"] == []  # assigned by the same sweep
        notes = (await client.get("/api/v1/notifications", headers=unstaffed.admin.headers)).json()["items"]
        assert [n["ticket_id"] for n in notes if n["kind"] == "queue_waiting"] == [for_nobody["id"]]

    async def test_manual_assignment_wins_and_unassignment_requeues(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=1, availability="offline")
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question")
        await settle()
        helper = await ws.staff()
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": helper.id},
                               headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "manual" and why["assignee_id"] == helper.id
        assert why["decision"]["assigned_by_hand"]["by"] == ws.admin.id
        assert why["decision"]["assigned_by_hand"]["assignee_id"] == helper.id

    async def test_unassigning_hands_the_ticket_to_someone_else(self, client, settle):
        ws, team, [strong], cats = await setup_desk(client, agents=1, skills=(("billing", 5),))
        weak = await ws.staff(team_ids=[team["id"]], skills=[{"skill": "billing", "level": 1}], languages=["en"])
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question", category_id=cats["Billing"])
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == strong.id  # the better scorer
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": None}, headers=strong.headers)
        assert r.status_code == 200 and r.json()["status"] == "OPEN"
        await settle()
        got = await ticket(client, ws, t["id"])
        assert (got["assignee_id"], got["status"]) == (weak.id, "ASSIGNED")
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "assigned" and why["decision"]["winner"] == weak.id

    async def test_a_ticket_handed_back_by_the_only_agent_waits_for_someone_else(self, client, settle, runtime):
        ws, team, [agent], cats = await setup_desk(client, agents=1)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question", category_id=cats["Billing"])
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id
        r = await ws.move(agent, t["id"], "OPEN", "needs someone else")
        assert r.status_code == 200, r.text
        await settle()
        await runtime.jobs.enqueue("routing.sweep_queues")  # nor does the sweep give it back
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] is None
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "queued" and why["decision"]["handed_back_by"] == agent.id
        assert why["decision"]["reason"] == "no candidate: 1 handed it back"
        assert why["decision"]["excluded"] == [{"agent_id": agent.id, "reasons": ["handed it back"]}]
        other = await ws.staff(team_ids=[team["id"]], skills=[{"skill": "billing", "level": 2}], languages=["en"])
        await runtime.jobs.enqueue("routing.sweep_queues")
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == other.id
        assert (await routing_of(client, ws, t["id"]))["state"] == "assigned"

    async def test_a_ticket_a_supervisor_unassigns_may_go_back_to_its_agent(self, client, settle):
        """Only an agent who gives a ticket back is passed over for it: one a supervisor
        unassigned never went back to its agent, even the only one qualified, with room,
        and the reason given for the wait did not say why."""
        ws, team, [agent], cats = await setup_desk(client, agents=1)
        t = await ws.ticket(await ws.customer(), subject="invoice", description="billing question",
                            category_id=cats["Billing"])
        await settle()
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": None}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["assignee_id"] is None, r.text
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "assigned" and "handed_back_by" not in why["decision"]

    async def test_a_ticket_only_the_agent_who_handed_it_back_can_take_goes_back_after_the_alert(
            self, client, settle, clock, runtime):
        """Supervisors are told, with the reason, and then it goes back: it waited for ever."""
        ws, team, [agent], cats = await setup_desk(client, agents=1)
        t = await ws.ticket(await ws.customer(), subject="invoice", description="billing question",
                            category_id=cats["Billing"])
        await settle()
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": None}, headers=agent.headers)
        assert r.status_code == 200, r.text
        await settle()
        await sweep_after(ws, clock, runtime, settle, minutes=31)
        assert (await ticket(client, ws, t["id"]))["assignee_id"] is None
        notes = (await client.get("/api/v1/notifications", headers=ws.admin.headers)).json()["items"]
        assert [n["body"] for n in notes if n["kind"] == "queue_waiting"] == ["no candidate: 1 handed it back"]
        await runtime.jobs.enqueue("routing.sweep_queues")
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id

    async def test_an_escalated_ticket_without_an_owner_stays_queued(self, client, settle):
        ws, team, [agent], cats = await setup_desk(client, agents=1, availability="offline")
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question", category_id=cats["Billing"])
        await settle()
        r = await client.post(f"/api/v1/tickets/{t['id']}/escalations", headers=ws.admin.headers,
                              json={"kind": "manual", "reason": "Customer is about to churn"})
        assert r.status_code == 201, r.text
        await settle()
        assert (await routing_of(client, ws, t["id"]))["state"] == "queued"
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        await settle()
        got = await ticket(client, ws, t["id"])
        assert (got["assignee_id"], got["status"]) == (agent.id, "ESCALATED")
        assert (await routing_of(client, ws, t["id"]))["state"] == "assigned"

    async def test_the_queue_follows_a_changed_priority(self, client, settle):
        ws, team, [agent], cats = await setup_desk(client, agents=1, cap=1, availability="offline")
        made = [await ws.ticket(ws.admin, subject=f"invoice {n}", description="billing question", priority="LOW",
                                category_id=cats["Billing"]) for n in range(2)]
        await settle()
        r = await client.patch(f"/api/v1/tickets/{made[1]['id']}", json={"priority": "URGENT"},
                               headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        await settle()
        owners = [(await ticket(client, ws, t["id"]))["assignee_id"] for t in made]
        assert owners == [None, agent.id]


    async def test_a_category_override_routes_a_queued_ticket_again(self, client, settle):
        ws, team, [billing_agent], cats = await setup_desk(client, agents=1, availability="offline")
        logistics = (await client.post("/api/v1/teams", json={"name": "Logistics"}, headers=ws.admin.headers)).json()
        returns = (await client.post("/api/v1/categories", headers=ws.admin.headers, json={
            "name": "Returns", "required_skills": ["returns"], "team_id": logistics["id"]})).json()
        handler = await ws.staff(team_ids=[logistics["id"]], skills=[{"skill": "returns", "level": 3}],
                                 languages=["en"])
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="Charged twice", description="My card was charged twice for one invoice.")
        await settle()
        assert (await routing_of(client, ws, t["id"]))["state"] == "queued"
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"category_id": returns["id"], "priority": "LOW"},
                               headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        got = await ticket(client, ws, t["id"])
        assert (got["assignee_id"], got["team_id"]) == (handler.id, logistics["id"])
        why = await routing_of(client, ws, t["id"])
        assert why["state"] == "assigned" and why["team_id"] == logistics["id"]
        assert (why["category"]["source"], why["category"]["label"]) == ("agent", "Returns")
        assert why["priority"]["source"] == "agent"


    async def test_a_deactivated_agents_tickets_go_to_someone_else(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=1, cap=5)
        leaving = staff[0]
        cust = await ws.customer()
        made = [await ws.ticket(cust, subject=f"invoice {i}", description="billing issue with invoice")
                for i in range(2)]
        await settle()
        assert {(await ticket(client, ws, t["id"]))["assignee_id"] for t in made} == {leaving.id}
        staying = await ws.staff(max_concurrent=5, skills=[{"skill": "billing", "level": 3}], languages=["en"],
                                 team_ids=[team["id"]])
        r = await client.patch(f"/api/v1/agents/{leaving.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["availability"] == "offline"
        await settle()
        assert {(await ticket(client, ws, t["id"]))["assignee_id"] for t in made} == {staying.id}

    async def test_a_waiting_ticket_that_loses_its_owner_is_routed_when_the_wait_ends(self, client, settle):
        """A deactivated agent's ticket waiting on the customer stayed waiting without an
        owner; the customer's reply then put it IN_PROGRESS with nobody on it, outside the
        queue, and told nobody. One waiting on an internal team has no reply to end its
        wait: it goes back to the queue at once."""
        ws, team, [leaving], cats = await setup_desk(client, agents=1)
        cust = await ws.customer()
        on_customer, on_team = [await ws.ticket(cust, subject=f"invoice {i}", description="billing question",
                                                category_id=cats["Billing"]) for i in range(2)]
        await settle()
        for t, status in ((on_customer, "WAITING_ON_CUSTOMER"), (on_team, "WAITING_INTERNAL")):
            assert (await ws.move(leaving, t["id"], status)).status_code == 200
        staying = await ws.staff(team_ids=[team["id"]], skills=[{"skill": "billing", "level": 3}], languages=["en"])
        r = await client.patch(f"/api/v1/agents/{leaving.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        got = await ticket(client, ws, on_customer["id"])
        assert (got["assignee_id"], got["status"]) == (None, "WAITING_ON_CUSTOMER")
        got = await ticket(client, ws, on_team["id"])
        assert (got["assignee_id"], got["status"]) == (staying.id, "ASSIGNED")

        assert (await ws.reply(cust, on_customer["id"], "Here is the invoice number.")).status_code == 201
        await settle()
        got = await ticket(client, ws, on_customer["id"])
        assert (got["assignee_id"], got["status"]) == (staying.id, "ASSIGNED")
        assert (await routing_of(client, ws, on_customer["id"]))["state"] == "assigned"
        notes = (await client.get("/api/v1/notifications", headers=staying.headers)).json()["items"]
        assert {n["ticket_id"] for n in notes if n["kind"] == "assigned"} == {on_customer["id"], on_team["id"]}

    async def test_a_reply_on_a_waiting_ticket_a_supervisor_unassigned_queues_it(self, client, settle):
        ws, team, [agent], cats = await setup_desk(client, agents=1)
        cust = await ws.customer()
        t = await ws.ticket(cust, subject="invoice", description="billing question", category_id=cats["Billing"])
        await settle()
        assert (await ws.move(agent, t["id"], "WAITING_ON_CUSTOMER")).status_code == 200
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "offline"}, headers=agent.headers)
        r = await client.patch(f"/api/v1/tickets/{t['id']}", json={"assignee_id": None}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["status"] == "WAITING_ON_CUSTOMER", r.text
        await settle()
        assert (await ws.reply(cust, t["id"], "Any news?")).status_code == 201
        await settle()
        got = await ticket(client, ws, t["id"])
        assert (got["assignee_id"], got["status"]) == (None, "OPEN")
        assert (await routing_of(client, ws, t["id"]))["state"] == "queued"
        await client.patch(f"/api/v1/agents/{agent.id}", json={"availability": "online"}, headers=agent.headers)
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] == agent.id

    async def test_more_capacity_empties_a_long_queue_at_once(self, client, settle):
        """Not just the first page of the queue: every waiting ticket the new capacity
        has room for is assigned when it is raised, with no sweep needed."""
        ws, team, staff, cats = await setup_desk(client, agents=1, cap=1)
        cust = await ws.customer()
        made = [await ws.ticket(cust, subject=f"invoice {i}", description="billing issue with invoice")
                for i in range(60)]
        await settle()
        owned = [(await ticket(client, ws, t["id"]))["assignee_id"] for t in made]
        assert owned.count(staff[0].id) == 1
        r = await client.patch(f"/api/v1/agents/{staff[0].id}", json={"max_concurrent": 100},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        owned = [(await ticket(client, ws, t["id"]))["assignee_id"] for t in made]
        assert owned == [staff[0].id] * 60

    async def test_a_ticket_whose_routing_failed_every_try_is_routed_once_the_fault_is_gone(
            self, client, settle, clock, runtime, monkeypatch):
        """A fault in routing (a bad setting, the database away for longer than the job's
        retries) does not leave a ticket unrouted for good: the reaction is kept and tried
        again a few minutes later."""
        from relaydesk.routing.service import RoutingService

        ws, team, staff, cats = await setup_desk(client, agents=1)
        cust = await ws.customer()
        await settle()
        real_intake = RoutingService.intake

        async def broken_intake(self, *args, **kwargs):  # noqa: ANN001, ANN202
            raise RuntimeError("routing settings unreadable")

        monkeypatch.setattr(RoutingService, "intake", broken_intake)
        t = await ws.ticket(cust, subject="Charged twice", description="My card was charged twice for one invoice.")
        await settle()
        assert (await ticket(client, ws, t["id"]))["assignee_id"] is None

        monkeypatch.setattr(RoutingService, "intake", real_intake)  # the fix is deployed
        clock.advance(timedelta(minutes=6))
        await runtime.jobs.enqueue("outbox.retry_failed")
        await settle()
        got = await ticket(client, ws, t["id"])
        assert got["assignee_id"] == staff[0].id and got["category_id"] == cats["Billing"]
        assert (await routing_of(client, ws, t["id"]))["state"] == "assigned"


class TestCapUnderConcurrency:
    async def test_fifty_concurrent_tickets_never_push_an_agent_past_cap(self, client, settle):
        ws, team, staff, cats = await setup_desk(client, agents=4, cap=3)
        customers = [await ws.customer() for _ in range(5)]

        async def create(i):
            return await client.post("/api/v1/tickets", headers=customers[i % 5].headers, json={
                "subject": f"invoice {i}", "description": "billing question about my invoice"})

        results = await asyncio.gather(*(create(i) for i in range(50)))
        assert all(r.status_code == 201 for r in results)
        await settle()
        loads = {}
        for r in results:
            got = await ticket(client, ws, r.json()["id"])
            if got["assignee_id"]:
                loads[got["assignee_id"]] = loads.get(got["assignee_id"], 0) + 1
        assert loads and max(loads.values()) <= 3 and sum(loads.values()) == 12
        for r in results:
            trail = (await client.get(f"/api/v1/tickets/{r.json()['id']}/audit", headers=ws.admin.headers)).json()
            assert len([a for a in trail if a["field"] == "assignee_id" and a["after"]]) <= 1


class TestRules:
    async def test_a_rule_put_at_a_taken_position_runs_before_the_one_there(self, client):
        ws, team, staff, cats = await setup_desk(client)
        made = {}
        for name, position in (("VIP to Billing", None), ("Second", None), ("Urgent first", 0)):
            body = {"name": name, "team_id": team["id"], "strategy": "least_loaded", "conditions": {}}
            if position is not None:
                body["position"] = position
            r = await client.post("/api/v1/assignment-rules", headers=ws.admin.headers, json=body)
            assert r.status_code == 201, r.text
            made[name] = r.json()["id"]
        listed = (await client.get("/api/v1/assignment-rules", headers=ws.admin.headers)).json()
        rules = listed["items"] if isinstance(listed, dict) else listed
        assert [(r["name"], r["position"]) for r in rules] == [("Urgent first", 0), ("VIP to Billing", 1), ("Second", 2)]
        r = await client.patch(f"/api/v1/assignment-rules/{made['Second']}", headers=ws.admin.headers,
                               json={"position": 0})
        assert r.status_code == 200
        listed = (await client.get("/api/v1/assignment-rules", headers=ws.admin.headers)).json()
        rules = listed["items"] if isinstance(listed, dict) else listed
        assert [r["name"] for r in rules] == ["Second", "Urgent first", "VIP to Billing"]

    async def test_a_rule_patch_merges_its_conditions(self, client):
        """Changing one condition keeps the others: a rule limited to VIP customers, given
        new priorities, started taking every customer's urgent tickets."""
        ws, team, staff, cats = await setup_desk(client)
        rule = (await client.post("/api/v1/assignment-rules", headers=ws.admin.headers, json={
            "name": "VIP", "conditions": {"customer_tiers": ["vip"], "priorities": ["HIGH"], "channels": ["email"]},
            "team_id": team["id"]})).json()
        r = await client.patch(f"/api/v1/assignment-rules/{rule['id']}", headers=ws.admin.headers,
                               json={"conditions": {"priorities": ["URGENT"], "channels": None}})
        assert r.status_code == 200, r.text
        conditions = (await client.get(f"/api/v1/assignment-rules/{rule['id']}", headers=ws.admin.headers)
                      ).json()["conditions"]
        assert (conditions["customer_tiers"], conditions["priorities"], conditions["channels"]) == (
            ["vip"], ["URGENT"], [])
        r = await client.patch(f"/api/v1/assignment-rules/{rule['id']}", headers=ws.admin.headers,
                               json={"conditions": {"customer_tiers": []}})
        assert r.json()["conditions"]["customer_tiers"] == [] and r.json()["conditions"]["priorities"] == ["URGENT"]

    async def test_rule_crud_and_permissions(self, client):
        ws, team, staff, cats = await setup_desk(client)
        agent = staff[0]
        body = {"name": "Shipping", "conditions": {"category_ids": [cats["Shipping"]], "channels": ["email"]},
                "team_id": team["id"], "strategy": "least_loaded"}
        assert (await client.post("/api/v1/assignment-rules", json=body, headers=agent.headers)).status_code == 403
        r = await client.post("/api/v1/assignment-rules", json=body, headers=ws.admin.headers)
        assert r.status_code == 201 and r.json()["position"] == 0
        rule = r.json()
        second = await client.post("/api/v1/assignment-rules", json={**body, "name": "second"},
                                   headers=ws.admin.headers)
        assert second.json()["position"] == 1
        listed = (await client.get("/api/v1/assignment-rules", headers=agent.headers)).json()["items"]
        assert [x["name"] for x in listed] == ["Shipping", "second"]
        r = await client.patch(f"/api/v1/assignment-rules/{rule['id']}", json={"enabled": False, "position": 5},
                               headers=ws.admin.headers)
        assert r.json()["enabled"] is False and r.json()["position"] == 5
        bad = await client.post("/api/v1/assignment-rules", json={**body, "strategy": "random"},
                                headers=ws.admin.headers)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "strategy"
        bad = await client.post("/api/v1/assignment-rules", headers=ws.admin.headers,
                                json={**body, "conditions": {"languages": ["english!!"]}})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "conditions.languages.0"
        other = await make_workspace(client)
        assert (await client.get(f"/api/v1/assignment-rules/{rule['id']}",
                                 headers=other.admin.headers)).status_code == 404
        assert (await client.delete(f"/api/v1/assignment-rules/{rule['id']}",
                                    headers=ws.admin.headers)).status_code == 204
        assert (await client.get(f"/api/v1/assignment-rules/{rule['id']}",
                                 headers=ws.admin.headers)).status_code == 404

    async def test_routing_record_is_staff_only(self, client, settle):
        ws, *_ = await setup_desk(client)
        cust = await ws.customer()
        t = await ws.ticket(cust)
        await settle()
        r = await client.get(f"/api/v1/tickets/{t['id']}/routing", headers=cust.headers)
        assert r.status_code == 404

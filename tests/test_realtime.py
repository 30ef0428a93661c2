"""Live updates over a real WebSocket: a uvicorn server on loopback, a real client."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from factories import PASSWORD, Actor, Workspace, make_workspace
from relaydesk.core.realtime import LiveEvent
from relaydesk.realtime.audience import Viewer
from relaydesk.realtime.credentials import Credential
from relaydesk.realtime.sockets import CLOSE_IDLE, CLOSE_TOO_SLOW, CLOSE_UNAUTHENTICATED, Connection
from relaydesk.runtime import Runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
async def ws_url(app) -> AsyncIterator[str]:  # noqa: ANN001
    """The session's app behind a real server; background loops stay off so tests
    decide when events are delivered (``settle``)."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"ws://127.0.0.1:{port}/api/v1/ws"
    server.should_exit = True
    await task


class Live:
    """One client socket, with helpers that skip heartbeats."""

    def __init__(self, socket_: ClientConnection) -> None:
        self.socket = socket_

    async def send(self, **frame: Any) -> None:
        await self.socket.send(orjson.dumps(frame).decode())

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        while True:
            frame = orjson.loads(await asyncio.wait_for(self.socket.recv(), timeout))
            if frame["type"] != "ping":
                return frame

    async def expect(self, type_: str, **match: Any) -> dict[str, Any]:
        frame = await self.next()
        assert frame["type"] == type_, frame
        for key, value in match.items():
            assert frame.get(key) == value, frame
        return frame

    async def events(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every event frame that arrives until the socket has been quiet for a moment."""
        seen = []
        while True:
            try:
                frame = await self.next(timeout=quiet)
            except TimeoutError:
                return seen
            if frame["type"] == "event":
                seen.append(frame)


async def open_live(url: str, actor: Actor, *subscribe: str, **params: Any) -> Live:
    query = f"?token={actor.token}"
    if subscribe:
        query += "&subscribe=" + ",".join(subscribe)
    for key, value in params.items():
        query += f"&{key}={value}"
    live = Live(await connect(url + query))
    await live.expect("hello")
    for _ in subscribe:
        await live.expect("subscribed")
    return live


async def latest_event_id(url: str, actor: Actor) -> int:
    """Where a client that connects now starts: the id its hello names."""
    first = await connect(f"{url}?token={actor.token}")
    try:
        return orjson.loads(await first.recv())["last_event_id"]
    finally:
        await first.close()


async def assign_new_tickets(client, ws: Workspace, agent: Actor, count: int) -> None:  # noqa: ANN001
    """``count`` new tickets assigned to ``agent``: an in-app notification each."""
    for _ in range(count):
        ticket = await ws.ticket(ws.admin)
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": agent.id},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text

async def setup(client) -> tuple[Workspace, Actor, Actor, dict[str, Any]]:  # noqa: ANN001
    ws = await make_workspace(client)
    agent = await ws.staff()
    customer = await ws.customer()
    ticket = await ws.ticket(customer)
    return ws, agent, customer, ticket


class TestConnecting:
    async def test_a_bad_token_is_refused_with_a_reason(self, ws_url: str) -> None:
        async with connect(ws_url + "?token=nonsense") as sock:
            frame = orjson.loads(await sock.recv())
            assert frame["type"] == "error" and frame["code"] == "unauthenticated"
            with pytest.raises(ConnectionClosed) as closed:
                await sock.recv()
            assert closed.value.rcvd.code == 4401

    async def test_one_person_holds_a_bounded_number_of_sockets(self, client, ws_url: str, runtime: Runtime,
                                                                monkeypatch) -> None:  # noqa: ANN001
        """Each socket costs the server memory: one person's tabs and devices are capped, and
        the one over the cap is told why; someone else is not held back by it."""
        monkeypatch.setattr(runtime.settings, "ws_sockets_per_person", 3)
        ws = await make_workspace(client)
        agent = await ws.staff()
        held = [await open_live(ws_url, agent) for _ in range(3)]
        try:
            async with connect(f"{ws_url}?token={agent.token}") as extra:
                frame = orjson.loads(await extra.recv())
                assert frame["type"] == "error" and frame["code"] == "too_many_sockets", frame
                with pytest.raises(ConnectionClosed) as closed:
                    await extra.recv()
                assert closed.value.rcvd.code == 1008
            other = await open_live(ws_url, ws.admin)
            await other.socket.close()
        finally:
            for live in held:
                await live.socket.close()
        await asyncio.sleep(0.2)  # the server lets go of the closed ones
        again = await open_live(ws_url, agent)
        await again.socket.close()

    async def test_the_token_may_come_in_the_first_frame(self, client, ws_url: str) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        async with connect(ws_url) as sock:
            await sock.send(orjson.dumps({"type": "auth", "token": ws.admin.token}).decode())
            hello = orjson.loads(await sock.recv())
            assert hello["type"] == "hello" and hello["user_id"] == ws.admin.id and hello["role"] == "admin"

    async def test_a_first_frame_that_is_not_auth_is_refused(self, ws_url: str) -> None:
        async with connect(ws_url) as sock:
            await sock.send('{"type": "subscribe", "channel": "dashboard"}')
            assert orjson.loads(await sock.recv())["code"] == "unauthenticated"

    async def test_malformed_frames_get_an_error_naming_the_problem(self, client, ws_url: str) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        live = await open_live(ws_url, ws.admin)
        await live.socket.send("not json")
        assert (await live.expect("error"))["code"] == "invalid_frame"
        await live.socket.send(b"\x00\x01")
        assert "binary" in (await live.expect("error", code="invalid_frame"))["detail"]
        await live.send(type="subscribe", channel="nowhere:1")
        error = await live.expect("error", code="invalid_channel")
        assert error["field"] == "channel"
        await live.send(type="resume", last_event_id=-4)
        assert (await live.expect("error"))["field"] == "last_event_id"
        await live.send(type="dance")
        assert (await live.expect("error"))["code"] == "unknown_type"
        await live.send(type="ping")
        await live.expect("pong")  # still connected and answering


class TestWhoHearsWhat:
    async def test_agent_and_customer_see_the_conversation_live(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['number']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")

        assert (await ws.reply(agent, ticket["id"], "Internal: check the warehouse", internal=True)).status_code == 201
        assert (await ws.reply(agent, ticket["id"], "We are sending a new one today.")).status_code == 201
        await settle()

        staff_events = await staff_live.events()
        bodies = [e["data"]["body_text"] for e in staff_events if e["event"] == "message.posted"]
        assert bodies == ["Internal: check the warehouse", "We are sending a new one today."]
        assert "ticket.status_changed" in {e["event"] for e in staff_events}
        ids = [e["id"] for e in staff_events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        customer_events = [e for e in await customer_live.events() if e["event"] != "notification.created"]
        assert [e["event"] for e in customer_events] == ["message.posted", "ticket.status_changed"]
        reply = customer_events[0]["data"]
        assert reply["body_text"] == "We are sending a new one today." and reply["author_kind"] == "agent"
        assert "internal" not in reply and "assignee_id" not in reply and "actor_id" not in reply
        assert customer_events[1]["data"]["after"] == "IN_PROGRESS"

    async def test_the_customer_sees_an_answers_attachments_live(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        r = await client.post("/api/v1/uploads", files={"file": ("label.pdf", b"%PDF-1.4\n%%EOF\n")},
                              headers=agent.headers)
        assert r.status_code == 201, r.text
        label = r.json()["id"]
        assert (await ws.reply(agent, ticket["id"], "Here is your return label.", attachment_ids=[label])).status_code \
            == 201
        await settle()
        [posted] = [e for e in await customer_live.events() if e["event"] == "message.posted"]
        assert posted["data"]["attachment_ids"] == [label]
        r = await client.get(f"/api/v1/attachments/{label}", headers=customer.headers)
        assert r.status_code == 200 and r.content == b"%PDF-1.4\n%%EOF\n"

    async def test_customers_never_hear_agent_only_events(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "URGENT", "assignee_id": agent.id},
                               headers=agent.headers)
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalations", json={"reason": "VIP angry"},
                              headers=agent.headers)
        assert r.status_code in (200, 201), r.text
        await settle()
        # The status is the customer's business (the portal shows it), as they know it: an
        # escalated ticket is one being worked on; the rest is not.
        heard = await customer_live.events()
        assert [(e["event"], e["data"]["before"], e["data"]["after"]) for e in heard] == [
            ("ticket.status_changed", "OPEN", "IN_PROGRESS")]
        assert set(heard[0]["data"]) == {"ticket_id", "number", "before", "after", "at"}

    async def test_customers_hear_only_the_status_changes_they_can_see(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        assert (await ws.move(agent, ticket["id"], "IN_PROGRESS")).status_code == 200
        await settle()
        start = await latest_event_id(ws_url, customer)
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        for step in ("ESCALATED", "WAITING_INTERNAL", "RESOLVED"):
            assert (await ws.move(agent, ticket["id"], step)).status_code == 200
        await settle()

        changes = [(e["data"]["before"], e["data"]["after"]) for e in await staff_live.events()
                   if e["event"] == "ticket.status_changed"]
        assert changes == [("IN_PROGRESS", "ESCALATED"), ("ESCALATED", "WAITING_INTERNAL"),
                           ("WAITING_INTERNAL", "RESOLVED")]
        expected = [("ticket.status_changed", "IN_PROGRESS", "RESOLVED")]

        def seen(events: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
            return [(e["event"], e["data"].get("before"), e["data"].get("after")) for e in events
                    if e["event"] != "notification.created"]

        assert seen(await customer_live.events()) == expected
        # A reconnecting socket is replayed the same view.
        resumed = await open_live(ws_url, customer, f"ticket:{ticket['id']}", last_event_id=start)
        replayed = []
        while (frame := await resumed.next())["type"] != "replayed":
            replayed.append(frame)
        # (PostgreSQL's replay also sends again a few events from before the id given.)
        assert seen([e for e in replayed if e["id"] > start]) == expected

    async def test_customers_cannot_watch_someone_elses_ticket_or_the_queues(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        stranger = await ws.customer()
        live = await open_live(ws_url, stranger)
        for channel, code in ((f"ticket:{ticket['id']}", "not_found"), (f"ticket:{ticket['number']}", "not_found"),
                              ("dashboard", "forbidden"), ("queue:me", "forbidden")):
            await live.send(type="subscribe", channel=channel)
            assert (await live.expect("error"))["code"] == code, channel

    async def test_another_workspace_is_invisible(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        other = await make_workspace(client)
        outsider = await open_live(ws_url, other.admin, "dashboard")
        await outsider.send(type="subscribe", channel=f"ticket:{ticket['id']}")
        assert (await outsider.expect("error"))["code"] == "not_found"
        await ws.reply(agent, ticket["id"], "Hello from the first workspace")
        await settle()
        assert await outsider.events() == []

    async def test_queues_and_dashboard(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        team = (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=ws.admin.headers)).json()
        agent = await ws.staff(team_ids=[team["id"]])
        customer = await ws.customer()
        mine = await open_live(ws_url, agent, "queue:me")
        team_live = await open_live(ws_url, ws.admin, f"queue:team:{team['id']}")
        dashboard = await open_live(ws_url, ws.admin, "dashboard")
        ticket = await ws.ticket(customer)
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"team_id": team["id"], "assignee_id": agent.id},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        mine_events = await mine.events()
        assert any(e["event"] == "ticket.assigned" and e["data"]["after"] == agent.id for e in mine_events)
        assert {"ticket.team_changed", "ticket.assigned"} <= {e["event"] for e in await team_live.events()}
        assert "ticket.created" in {e["event"] for e in await dashboard.events()}

        await team_live.send(type="subscribe", channel="queue:team:" + "0" * 8 + "-0000-0000-0000-" + "0" * 12)
        assert (await team_live.expect("error"))["code"] == "not_found"


class TestQueueNames:
    async def test_an_agents_queue_by_its_own_name(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent, colleague = await ws.staff(), await ws.staff()
        supervisor = await ws.staff(role="supervisor")
        customer = await ws.customer()
        own = f"queue:user:{agent.id}"

        mine = await open_live(ws_url, agent)
        await mine.send(type="subscribe", channel="queue:me")
        await mine.expect("subscribed", channel=own)
        await mine.send(type="unsubscribe", channel=own)
        await mine.expect("unsubscribed", channel=own)
        await mine.send(type="subscribe", channel=own)
        await mine.expect("subscribed", channel=own)
        await mine.send(type="subscribe", channel=f"queue:user:{colleague.id}")
        await mine.expect("error", code="forbidden", field="channel")

        watching = await open_live(ws_url, supervisor, own)
        for channel, code in ((f"queue:user:{customer.id}", "not_found"), (f"queue:user:{uuid.uuid4()}", "not_found"),
                              ("dashboardx", "invalid_channel"), ("queue:bogus", "invalid_channel"),
                              ("queue:user:bogus", "invalid_channel")):
            await watching.send(type="subscribe", channel=channel)
            assert (await watching.expect("error", field="channel"))["code"] == code, channel
        ticket = await ws.ticket(customer)
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": agent.id},
                               headers=supervisor.headers)
        assert r.status_code == 200, r.text
        await settle()
        assigned = [e for e in await watching.events() if e["event"] == "ticket.assigned"]
        assert [e["channels"] for e in assigned] == [[own]]

        outsider = await open_live(ws_url, customer)
        await outsider.send(type="subscribe", channel=f"queue:user:{customer.id}")
        await outsider.expect("error", code="forbidden")


class TestNotificationsPushed:
    async def test_a_person_gets_their_own_in_app_notifications_and_nobody_elses(
            self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent, colleague = await ws.staff(), await ws.staff()
        mine = await open_live(ws_url, agent)
        theirs = await open_live(ws_url, colleague, "dashboard")
        ticket = await ws.ticket(ws.admin)
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": agent.id},
                               headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        pushed = [e for e in await mine.events() if e["event"] == "notification.created"]
        assert [(e["channels"], e["data"]["kind"]) for e in pushed] == [(["notifications"], "assigned")]
        listed = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
        assert pushed[0]["data"]["notification_id"] == listed[0]["id"]
        assert [e for e in await theirs.events() if e["event"] == "notification.created"] == []

    async def test_marking_read_updates_the_count_in_every_tab_of_that_person_only(
            self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, other = await make_workspace(client), await make_workspace(client)
        agent, colleague = await ws.staff(), await ws.staff()
        await assign_new_tickets(client, ws, agent, 3)
        await settle()
        tabs = [await open_live(ws_url, agent), await open_live(ws_url, agent)]
        others = [await open_live(ws_url, colleague, "dashboard"), await open_live(ws_url, ws.admin, "dashboard"),
                  await open_live(ws_url, other.admin, "dashboard")]
        first, second, _ = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]

        async def heard(live: Live) -> list[tuple[str, Any, int]]:
            return [(e["event"], e["data"]["notification_id"], e["data"]["unread_count"])
                    for e in await live.events() if e["event"].startswith("notification.")]

        r = await client.post(f"/api/v1/notifications/{first['id']}/read", headers=agent.headers)
        assert r.status_code == 200 and r.json()["read_at"] is not None, r.text
        await client.post(f"/api/v1/notifications/{first['id']}/read", headers=agent.headers)  # no news: no event
        await settle()
        for tab in tabs:
            assert await heard(tab) == [("notification.read", first["id"], 2)]
        r = await client.post("/api/v1/notifications/read-all", headers=agent.headers)
        assert r.status_code == 204, r.text
        await client.post("/api/v1/notifications/read-all", headers=agent.headers)  # nothing left unread
        await settle()
        for tab in tabs:
            [frame] = [e for e in await tab.events() if e["event"] == "notification.read"]
            assert frame["channels"] == ["notifications"]
            assert frame["data"]["user_id"] == agent.id and frame["data"]["unread_count"] == 0
            assert frame["data"]["notification_id"] is None  # all of them
        assert (await client.get("/api/v1/notifications", headers=agent.headers)).json()["unread_count"] == 0
        for outsider in others:
            assert await heard(outsider) == []
        for stranger in (colleague, other.admin):  # someone else's notification is not theirs to mark
            r = await client.post(f"/api/v1/notifications/{second['id']}/read", headers=stranger.headers)
            assert r.status_code == 404, r.text

    async def test_marking_unread_again_is_pushed_the_same_way(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, other = await make_workspace(client), await make_workspace(client)
        agent, colleague = await ws.staff(), await ws.staff()
        ticket = await ws.ticket(ws.admin)
        r = await client.patch(f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": agent.id},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        [note] = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
        assert (await client.post(f"/api/v1/notifications/{note['id']}/read", headers=agent.headers)).status_code == 200
        await settle()
        tab = await open_live(ws_url, agent)
        outsiders = [await open_live(ws_url, colleague, "dashboard"), await open_live(ws_url, other.admin, "dashboard")]

        r = await client.post(f"/api/v1/notifications/{note['id']}/unread", headers=agent.headers)
        assert r.status_code == 200 and r.json()["id"] == note["id"] and r.json()["read_at"] is None, r.text
        await client.post(f"/api/v1/notifications/{note['id']}/unread", headers=agent.headers)  # no news: no event
        await settle()
        [frame] = [e for e in await tab.events() if e["event"].startswith("notification.")]
        assert frame["event"] == "notification.unread" and frame["channels"] == ["notifications"]
        assert frame["data"]["notification_id"] == note["id"] and frame["data"]["unread_count"] == 1
        listed = (await client.get("/api/v1/notifications?unread=true", headers=agent.headers)).json()
        assert listed["unread_count"] == 1 and [n["id"] for n in listed["items"]] == [note["id"]]
        for outsider in outsiders:
            assert [e for e in await outsider.events() if e["event"].startswith("notification.")] == []
        for stranger in (colleague, other.admin):
            r = await client.post(f"/api/v1/notifications/{note['id']}/unread", headers=stranger.headers)
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text


    async def test_two_tabs_marking_read_at_once_end_with_the_true_count(
            self, client, ws_url, settle, runtime, backend) -> None:  # noqa: ANN001
        """Each change counts the unread in its own transaction: on PostgreSQL two at once
        each missed the other's, and the badge kept a count one too high."""
        if backend == "sqlite":
            pytest.skip("SQLite has one writer: the two changes cannot overlap")
        from relaydesk.core.principal import Principal, Role
        from relaydesk.notifications.service import NotificationService

        ws = await make_workspace(client)
        agent = await ws.staff()
        await assign_new_tickets(client, ws, agent, 3)
        await settle()
        tab = await open_live(ws_url, agent)
        first, second, _ = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
        async with runtime.db.write_session() as one_tab:  # still to commit when the other tab's click comes
            await NotificationService(one_tab).mark_read(
                Principal(uuid.UUID(agent.id), uuid.UUID(ws.id), Role.AGENT), uuid.UUID(first["id"]),
                runtime.clock.now())
            other_tab = asyncio.create_task(client.post(f"/api/v1/notifications/{second['id']}/read",
                                                        headers=agent.headers))
            await asyncio.sleep(0.5)
            await one_tab.commit()
            await runtime.dispatcher.committed(one_tab)
        assert (await other_tab).status_code == 200
        await settle()
        counts = [e["data"]["unread_count"] for e in await tab.events() if e["event"] == "notification.read"]
        assert counts[-1] == 1, counts  # the badge shows the last count heard

class TestResume:
    async def test_a_reconnecting_client_gets_what_it_missed_then_live(self, client, ws_url, settle,
                                                                      backend) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        last_seen = await latest_event_id(ws_url, agent)

        await ws.reply(customer, ticket["id"], "Any news?")
        await ws.reply(agent, ticket["id"], "Yes, shipped.")
        await settle()

        live = await open_live(ws_url, agent, f"ticket:{ticket['id']}", last_event_id=last_seen)
        replayed = await live.events()
        # On PostgreSQL events made just before last_seen come again (one may have committed
        # after it): a client ignores what it already has. SQLite's ids follow commit order.
        if backend == "sqlite":
            assert all(e["id"] > last_seen for e in replayed), replayed
        missed = [e for e in replayed if e["id"] > last_seen]
        posted = [e["data"]["body_text"] for e in missed if e["event"] == "message.posted"]
        assert posted == ["Any news?", "Yes, shipped."]

        await ws.reply(customer, ticket["id"], "Thanks!")
        await settle()
        after = await live.events()
        assert [e["data"]["body_text"] for e in after if e["event"] == "message.posted"] == ["Thanks!"]
        assert min(e["id"] for e in after) > max(e["id"] for e in missed)

    async def test_the_customer_replay_is_filtered_like_live(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        last_seen = await latest_event_id(ws_url, customer)
        await ws.reply(agent, ticket["id"], "secret note", internal=True)
        await ws.reply(agent, ticket["id"], "public answer")
        await settle()
        live = await open_live(ws_url, customer, f"ticket:{ticket['id']}", last_event_id=last_seen)
        texts = [e["data"].get("body_text") for e in await live.events() if e["event"] == "message.posted"]
        assert texts == ["public answer"]


class TestDeletedMessages:
    async def test_a_deleted_message_is_withdrawn_live_and_never_replayed(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        last_seen = await latest_event_id(ws_url, customer)
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        posted = (await ws.reply(agent, ticket["id"], "Your card number is 4111 1111 1111 1111")).json()
        note = (await ws.reply(agent, ticket["id"], "a note to withdraw", internal=True)).json()
        await settle()
        await staff_live.events()
        await customer_live.events()

        for message in (posted, note):
            r = await client.delete(f"/api/v1/tickets/{ticket['id']}/messages/{message['id']}", headers=agent.headers)
            assert r.status_code == 204, r.text
        await settle()
        deleted = [e for e in await staff_live.events() if e["event"] == "message.deleted"]
        assert [e["data"]["message_id"] for e in deleted] == [posted["id"], note["id"]]
        heard = [e for e in await customer_live.events() if e["event"] != "notification.created"]
        assert [(e["event"], e["data"]["message_id"]) for e in heard] == [("message.deleted", posted["id"])]
        assert set(heard[0]["data"]) == {"ticket_id", "number", "message_id", "at"}

        resumed = await open_live(ws_url, customer, f"ticket:{ticket['id']}", last_event_id=last_seen)
        replayed = await resumed.events()
        assert [e for e in replayed if e["event"] == "message.posted"] == []
        assert [e["data"]["message_id"] for e in replayed if e["event"] == "message.deleted"] == [posted["id"]]


class TestDeletedTickets:
    async def test_watchers_hear_a_ticket_is_deleted_and_stop_watching_it(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        dashboard = await open_live(ws_url, ws.admin, "dashboard")
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['number']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        other_customer = await open_live(ws_url, await ws.customer())

        r = await client.delete(f"/api/v1/tickets/{ticket['id']}", headers=ws.admin.headers)
        assert r.status_code == 204, r.text
        await settle()
        assert [e["data"]["ticket_id"] for e in await dashboard.events() if e["event"] == "ticket.deleted"] == \
            [ticket["id"]]
        for live in (staff_live, customer_live):
            frame = await live.expect("event", event="ticket.deleted")
            assert frame["data"]["ticket_id"] == ticket["id"]
            await live.expect("unsubscribed", channel=f"ticket:{ticket['id']}")
        assert set(frame["data"]) == {"ticket_id", "number", "at"}  # the customer's view
        assert await other_customer.events() == []

        await customer_live.send(type="typing", ticket_id=ticket["id"], state="started")
        await customer_live.expect("error", code="not_subscribed")
        assert await staff_live.events() == []
        await staff_live.send(type="unsubscribe", channel=f"ticket:{ticket['id']}")
        await staff_live.expect("unsubscribed", channel=f"ticket:{ticket['id']}")

    async def test_a_deleted_ticket_can_still_be_unsubscribed_from(self, client, ws_url) -> None:  # noqa: ANN001
        """A client that asks after the ticket went (say it had not read the news yet)."""
        ws, agent, customer, ticket = await setup(client)
        live = await open_live(ws_url, agent, f"ticket:{ticket['number']}")
        r = await client.delete(f"/api/v1/tickets/{ticket['id']}", headers=ws.admin.headers)
        assert r.status_code == 204
        for name in (ticket["id"], ticket["number"]):
            await live.send(type="unsubscribe", channel=f"ticket:{name}")
        await live.expect("event", event="ticket.deleted")
        await live.expect("unsubscribed", channel=f"ticket:{ticket['id']}")
        await live.expect("unsubscribed", channel=f"ticket:{ticket['id']}")
        await live.expect("unsubscribed", channel=f"ticket:{ticket['number']}")


class TestTypingAndPresence:
    async def test_typing_reaches_the_other_side_but_note_drafting_does_not(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")

        await customer_live.send(type="typing", ticket_id=ticket["id"], state="started")
        typing = await staff_live.expect("event", event="typing")
        assert typing["id"] is None and typing["data"]["author_kind"] == "customer"

        await staff_live.send(type="typing", ticket_id=ticket["id"], state="started", internal=True)
        assert [e for e in await customer_live.events() if e["data"].get("author_kind") == "agent"] == []
        await staff_live.send(type="typing", ticket_id=ticket["id"], state="stopped")
        frame = await customer_live.expect("event", event="typing")
        assert frame["data"]["state"] == "stopped" and "user_id" not in frame["data"]

    async def test_typing_names_who_is_typing_to_either_side(self, client, ws_url) -> None:  # noqa: ANN001
        """So a chat can say "Anna is typing…": the agent's name, as their replies' emails
        show it to the customer, and the customer's to the agent; the stop says it too."""
        ws, agent, customer, ticket = await setup(client)
        agent_name = (await client.get(f"/api/v1/agents/{agent.id}", headers=ws.admin.headers)).json()["name"]
        customer_name = (await client.get(f"/api/v1/customers/{customer.customer_id}",
                                          headers=ws.admin.headers)).json()["name"]
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")

        await staff_live.send(type="typing", ticket_id=ticket["id"], state="started")
        frame = await customer_live.expect("event", event="typing")
        assert frame["data"]["name"] == agent_name and "user_id" not in frame["data"], frame
        await staff_live.expect("event", event="typing")  # its own, as every watcher hears it
        await customer_live.send(type="typing", ticket_id=ticket["id"], state="started")
        frame = await staff_live.expect("event", event="typing")
        assert (frame["data"]["name"], frame["data"]["author_kind"]) == (customer_name, "customer"), frame
        await customer_live.expect("event", event="typing")
        await staff_live.send(type="unsubscribe", channel=f"ticket:{ticket['id']}")
        frame = await customer_live.expect("event", event="typing")
        assert (frame["data"]["state"], frame["data"]["name"]) == ("stopped", agent_name), frame

    async def test_switching_from_a_note_to_a_reply_shows_the_customer_typing(self, client, ws_url) -> None:  # noqa: ANN001
        """Drafting a note and then a reply, quickly: the reply's "started" is news to the
        customer, not a repeat of the note's."""
        ws, agent, customer, ticket = await setup(client)
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        await staff_live.send(type="typing", ticket_id=ticket["id"], state="started", internal=True)
        await staff_live.send(type="typing", ticket_id=ticket["id"], state="started")
        frame = await customer_live.expect("event", event="typing")
        assert frame["data"]["state"] == "started" and frame["data"]["author_kind"] == "agent"

    async def test_switching_from_a_reply_to_a_note_ends_the_customers_view_of_the_typing(  # noqa: ANN201
            self, client, ws_url):  # noqa: ANN001
        """The customer saw "Support is typing..." for the reply; once that stops being a
        reply (a note instead, then nothing, or the socket closes), they hear it stopped."""
        ws, agent, customer, ticket = await setup(client)
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        for ending in ("stopped", "closed"):
            staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
            await staff_live.send(type="typing", ticket_id=ticket["id"], state="started")
            await staff_live.send(type="typing", ticket_id=ticket["id"], state="started", internal=True)
            if ending == "stopped":
                await staff_live.send(type="typing", ticket_id=ticket["id"], state="stopped", internal=True)
                heard_by_staff = await staff_live.events(1.5)
                for note in (False, True):  # a reply's typing and a note's, each begun and ended
                    assert [e["data"]["state"] for e in heard_by_staff if e["data"]["internal"] is note] == \
                        ["started", "stopped"]
            await staff_live.socket.close()
            heard = [e["data"]["state"] for e in await customer_live.events(quiet=1.5)
                     if e["data"]["author_kind"] == "agent"]
            assert heard == ["started", "stopped"], ending

    async def test_typing_names_the_ticket_by_id_or_by_number(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        staff_live = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        customer_live = await open_live(ws_url, customer, f"ticket:{ticket['number']}")
        await customer_live.send(type="typing", ticket_id=ticket["number"], state="started")
        frame = await staff_live.expect("event", event="typing")
        assert frame["data"]["ticket_id"] == ticket["id"] and frame["data"]["state"] == "started"

    async def test_typing_needs_a_subscription(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        live = await open_live(ws_url, customer)
        await live.send(type="typing", ticket_id=ticket["id"], state="started")
        assert (await live.expect("error"))["code"] == "not_subscribed"

    async def test_presence_set_by_the_agent_and_by_leaving(self, client, ws_url, settle, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff(availability="offline")
        dashboard = await open_live(ws_url, ws.admin, "dashboard")
        live = await open_live(ws_url, agent)
        await live.send(type="presence", status="online")
        await live.expect("presence", status="online")
        await settle()
        changed = [e for e in await dashboard.events() if e["event"] == "agent.availability_changed"]
        assert [(e["data"]["agent_id"], e["data"]["after"]) for e in changed] == [(agent.id, "online")]

        # Idle past the limit: away; a sign of life: online again.
        registry = app.state.sockets
        registry.presence[_ids(ws, agent)].last_active = \
            time.monotonic() - app.state.runtime.settings.agent_away_after_seconds - 1
        await registry.sweep(time.monotonic())
        assert await _availability(client, ws, agent) == "away"
        await live.send(type="activity")
        await live.send(type="ping")
        await live.expect("pong")
        assert await _availability(client, ws, agent) == "online"

        await live.socket.close()
        for _ in range(100):
            if await _availability(client, ws, agent) == "offline":
                break
            await asyncio.sleep(0.02)
        assert await _availability(client, ws, agent) == "offline"

    async def test_quiet_here_is_not_away_while_another_server_sees_the_agent_work(
            self, client, ws_url, settle, app, monkeypatch, redis_url) -> None:  # noqa: ANN001
        """In the scaled mode the servers share on Redis when they last saw an agent act;
        here a second ``RedisPresence`` plays the server where the agent's other tab is."""
        import secrets

        from relaydesk.realtime.presence import RedisPresence

        url = redis_url
        prefix = f"relaydesk-test:{secrets.token_hex(4)}:presence"
        here, elsewhere = RedisPresence(url, prefix), RedisPresence(url, prefix)
        registry = app.state.sockets
        monkeypatch.setattr(registry, "shared", here)
        try:
            ws = await make_workspace(client)
            agent = await ws.staff(availability="offline")
            live = await open_live(ws_url, agent)
            await live.send(type="presence", status="online")
            await live.expect("presence", status="online")
            person, quiet_for = _ids(ws, agent), app.state.runtime.settings.agent_away_after_seconds

            registry.presence[person].last_active = time.monotonic() - quiet_for - 1
            await elsewhere.acted(person, time.time())  # working in the tab on the other server
            await registry.sweep(time.monotonic())
            assert await _availability(client, ws, agent) == "online"

            await elsewhere.acted(person, time.time() - quiet_for - 1)  # quiet there too
            await registry.sweep(time.monotonic())
            assert await _availability(client, ws, agent) == "away"

            await elsewhere.acted(person, time.time())  # back at work, in the other tab
            await registry.sweep(time.monotonic())
            assert await _availability(client, ws, agent) == "online"
            await live.socket.close()
            for _ in range(100):  # its only tab anywhere: offline
                if await _availability(client, ws, agent) == "offline":
                    break
                await asyncio.sleep(0.02)
            assert await _availability(client, ws, agent) == "offline"
        finally:
            await here.close()
            await elsewhere.close()

    async def test_presence_left_behind_by_a_crash_ends_but_not_one_set_through_the_api(
            self, client, ws_url, app, runtime) -> None:  # noqa: ANN001
        """A server killed with its agents' sockets open never saw them leave: on its next
        start they are taken offline. An agent made available through the API (an
        integration, a supervisor) has no socket to lose and stays so."""
        from sqlalchemy import update

        from relaydesk.agents.models import AgentProfile

        ws = await make_workspace(client)
        at_desk, left_behind, by_api = [await ws.staff(availability="offline") for _ in range(3)]
        live = await open_live(ws_url, at_desk)
        await live.send(type="presence", status="online")
        await live.expect("presence", status="online")
        r = await client.patch(f"/api/v1/agents/{by_api.id}", json={"availability": "online"}, headers=ws.admin.headers)
        assert r.status_code == 200
        async with runtime.db.write_session() as session:  # as a crashed server left it
            await session.execute(update(AgentProfile).where(AgentProfile.user_id == uuid.UUID(left_behind.id))
                                  .values(availability="online", availability_by_socket=True))
            await session.commit()

        assert await app.state.sockets.end_presence_without_sockets() >= 1
        assert await _availability(client, ws, left_behind) == "offline"
        assert await _availability(client, ws, at_desk) == "online"
        assert await _availability(client, ws, by_api) == "online"
        await live.socket.close()

    async def test_customers_have_no_presence(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        live = await open_live(ws_url, customer)
        await live.send(type="presence", status="online")
        assert (await live.expect("error"))["code"] == "forbidden"


def _ids(ws: Workspace, actor: Actor) -> tuple[Any, Any]:
    import uuid

    return uuid.UUID(ws.id), uuid.UUID(actor.id)


async def _availability(client, ws: Workspace, agent: Actor) -> str:  # noqa: ANN001
    r = await client.get(f"/api/v1/agents/{agent.id}", headers=ws.admin.headers)
    return r.json()["availability"]


class TestSlowAndSilentSockets:
    async def test_a_socket_that_cannot_keep_up_is_dropped_without_holding_others(self, runtime: Runtime) -> None:
        import uuid

        from relaydesk.core.principal import Principal, Role

        class Stuck:  # a peer whose network never drains
            application_state = None

            async def send_text(self, _frame: str) -> None:
                await asyncio.sleep(3600)

        class Quick:
            application_state = None

            def __init__(self) -> None:
                self.frames: list[str] = []

            async def send_text(self, frame: str) -> None:
                self.frames.append(frame)

        ws_id, user = uuid.uuid4(), uuid.uuid4()
        principal = Principal(user, ws_id, Role.AGENT)
        stuck = Connection(Stuck(), principal, Viewer(user, is_staff=True),  # type: ignore[arg-type]
                           credential=Credential(""), buffer=5)
        quick_peer = Quick()
        quick = Connection(quick_peer, principal, Viewer(user, is_staff=True),  # type: ignore[arg-type]
                           credential=Credential(""), buffer=5)
        for c in (stuck, quick):
            c.subscriptions.add("dashboard")
        pumps = [asyncio.create_task(c.pump()) for c in (stuck, quick)]
        started = time.monotonic()
        for i in range(1, 21):
            event = LiveEvent(i, ws_id, "ticket.created", {"ticket_id": str(uuid.uuid4())})
            stuck.receive(event)
            quick.receive(event)
            await asyncio.sleep(0)
        assert time.monotonic() - started < 1
        assert stuck.closed and stuck.close_code == CLOSE_TOO_SLOW
        assert not quick.closed and len(quick_peer.frames) == 20
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    async def test_a_socket_is_dropped_by_the_bytes_it_holds_not_only_by_its_frames(self) -> None:
        """A thousand frames of 200 KB (long messages) would be 200 MB for one client that
        stopped reading: the buffer's bytes are bounded too, whatever the frame count."""
        import uuid

        from relaydesk.core.principal import Principal, Role

        class Stuck:
            application_state = None

            async def send_text(self, _frame: str) -> None:
                await asyncio.sleep(3600)

        ws_id, user = uuid.uuid4(), uuid.uuid4()
        stuck = Connection(Stuck(), Principal(user, ws_id, Role.AGENT), Viewer(user, is_staff=True),  # type: ignore[arg-type]
                           credential=Credential(""), buffer=1000, buffer_bytes=1024 * 1024)
        stuck.subscriptions.add("dashboard")
        pump = asyncio.create_task(stuck.pump())
        long_text = "x" * 200_000
        for i in range(1, 9):
            stuck.receive(LiveEvent(i, ws_id, "ticket.created", {"ticket_id": str(uuid.uuid4()), "note": long_text}))
            await asyncio.sleep(0)
        assert stuck.closed and stuck.close_code == CLOSE_TOO_SLOW  # at about 1 MB, not 1,000 frames
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    async def test_a_dropped_client_that_stopped_reading_is_closed_promptly(self) -> None:
        """Its network never drains, so neither a frame nor the close handshake gets
        through: the sender still ends, after a short grace, having tried to close."""
        from starlette.websockets import WebSocketState

        from relaydesk.core.principal import Principal, Role

        class StoppedReading:
            application_state = WebSocketState.CONNECTED

            def __init__(self) -> None:
                self.close_codes: list[int] = []

            async def send_text(self, _frame: str) -> None:
                await asyncio.sleep(3600)

            async def close(self, code: int) -> None:
                self.close_codes.append(code)
                await asyncio.sleep(3600)

        ws_id, user = uuid.uuid4(), uuid.uuid4()
        peer = StoppedReading()
        connection = Connection(peer, Principal(user, ws_id, Role.AGENT),  # type: ignore[arg-type]
                                Viewer(user, is_staff=True), credential=Credential(""), buffer=5)
        pump = asyncio.create_task(connection.pump())
        connection.send({"type": "ping"})
        await asyncio.sleep(0.05)  # the sender is stuck in that send
        started = time.monotonic()
        connection.drop(CLOSE_TOO_SLOW)
        await asyncio.wait_for(pump, 5)
        assert time.monotonic() - started < 3
        assert peer.close_codes == [CLOSE_TOO_SLOW]

    async def test_a_silent_socket_is_closed(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        live = await open_live(ws_url, ws.admin)
        registry = app.state.sockets
        connection = registry.connections_of(*_ids(ws, ws.admin))[0]
        connection.last_heard = time.monotonic() - app.state.runtime.settings.ws_idle_timeout_seconds - 1
        await registry.sweep(time.monotonic())
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await live.next()
        assert closed.value.rcvd.code == CLOSE_IDLE


async def _refused(live: Live) -> dict[str, Any]:
    """The socket's last word (an unauthenticated error), then its 4401 close."""
    error = await live.expect("error", code="unauthenticated")
    with pytest.raises(ConnectionClosed) as closed:
        await live.next()
    assert closed.value.rcvd.code == CLOSE_UNAUTHENTICATED
    return error


async def _still_open(live: Live) -> None:
    await live.send(type="ping")
    while (frame := await live.next())["type"] == "event":
        pass
    assert frame["type"] == "pong", frame


class TestSignInThatStopsHolding:
    """A socket lasts only as long as what it signed in with (checked by each sweep)."""

    async def test_a_revoked_api_token_closes_its_socket(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        created = (await client.post("/api/v1/me/api-tokens", json={"name": "wallboard"},
                                     headers=agent.headers)).json()
        live = await open_live(ws_url, Actor(agent.id, agent.email, "agent", created["token"]), "dashboard")
        await app.state.sockets.sweep(time.monotonic())
        await _still_open(live)
        r = await client.delete(f"/api/v1/me/api-tokens/{created['id']}", headers=agent.headers)
        assert r.status_code == 204
        await app.state.sockets.sweep(time.monotonic())
        assert "revoked" in (await _refused(live))["detail"]

    async def test_a_deactivated_agent_is_disconnected(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        live = await open_live(ws_url, agent)
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await app.state.sockets.sweep(time.monotonic())
        await _refused(live)

    async def test_signing_out_closes_that_sessions_sockets_only(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        other_session = await open_live(ws_url, agent)
        tokens = await ws.login(agent.email)
        live = await open_live(ws_url, Actor(agent.id, agent.email, "agent", tokens["access_token"]))
        r = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        await app.state.sockets.sweep(time.monotonic())
        await _refused(live)
        await _still_open(other_session)

    async def test_an_access_token_that_runs_out_closes_the_socket(self, client, ws_url, app, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        live = await open_live(ws_url, ws.admin, "dashboard")
        clock.advance(timedelta(seconds=app.state.runtime.settings.access_token_ttl_seconds + 1))
        await app.state.sockets.sweep(time.monotonic())
        assert "expired" in (await _refused(live))["detail"]
        await ws.relogin()
        await _still_open(await open_live(ws_url, ws.admin, "dashboard"))

    async def test_leaving_a_sharing_organisation_stops_its_tickets(self, client, ws_url, settle, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        org = (await client.post("/api/v1/organisations", json={"name": f"Org {ws.slug}", "shared_tickets": True},
                                 headers=ws.admin.headers)).json()
        owner = await ws.customer(organisation_id=org["id"])
        colleague = await ws.customer(organisation_id=org["id"])
        ticket = await ws.ticket(owner)
        await settle()
        live = await open_live(ws_url, colleague, f"ticket:{ticket['id']}")
        r = await client.patch(f"/api/v1/customers/{colleague.customer_id}", json={"organisation_id": None},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await app.state.sockets.sweep(time.monotonic())
        await live.expect("unsubscribed", channel=f"ticket:{ticket['id']}")
        await ws.reply(agent, ticket["id"], "Only for the requester now")
        await settle()
        assert [e for e in await live.events() if e["event"] != "notification.created"] == []
        await live.send(type="typing", ticket_id=ticket["id"], state="started")
        await live.expect("error", code="not_subscribed")


class TestFramesThatMustNotBreakTheSocket:
    async def test_odd_numbers_get_an_error_and_the_socket_stays(self, client, ws_url) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        live = await open_live(ws_url, ws.admin)
        for channel in ("ticket:T-²", "ticket:T-99999999999999999999999"):
            await live.send(type="subscribe", channel=channel)
            await live.expect("error", code="not_found")
        for value in ("²", "99999999999999999999999", 18446744073709551615, "9" * 5000):
            await live.send(type="resume", last_event_id=value)
            await live.expect("error", code="invalid_value", field="last_event_id")
        await live.socket.send('{"type": "resume", "last_event_id": 99999999999999999999999}')
        await live.expect("error", code="invalid_value")
        await _still_open(live)

        query = f"?token={ws.admin.token}&subscribe=ticket:T-%C2%B2&last_event_id=18446744073709551615"
        from_query = Live(await connect(ws_url + query))
        await from_query.expect("hello")
        await from_query.expect("error", code="not_found")
        await from_query.expect("error", code="invalid_value")
        await _still_open(from_query)

    async def test_a_binary_first_frame_is_refused_like_any_bad_one(self, ws_url) -> None:
        live = Live(await connect(ws_url))
        await live.socket.send(b"\x01")
        await _refused(live)


class TestTypingFloods:
    async def test_one_senders_flood_reaches_the_watchers_at_most_once_a_second(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        watcher = await open_live(ws_url, agent, f"ticket:{ticket['id']}")
        flooder = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        for i in range(400):
            await flooder.send(type="typing", ticket_id=ticket["id"], state=("started", "stopped")[i % 2])
        await _still_open(flooder)  # dropped silently, no error for each
        heard = [e["data"]["state"] for e in await watcher.events(quiet=1.5)]
        # The first at once; the last (held back) when the second is over, so nobody shows as typing.
        assert heard == ["started", "stopped"]
        await _still_open(watcher)

    async def test_leaving_a_ticket_mid_sentence_ends_the_typing(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        other = await ws.ticket(customer)
        watcher = await open_live(ws_url, agent, f"ticket:{ticket['id']}", f"ticket:{other['id']}")
        typist = await open_live(ws_url, customer, f"ticket:{ticket['id']}", f"ticket:{other['id']}")
        for t in (ticket, other):
            await typist.send(type="typing", ticket_id=t["id"], state="started")
        assert {e["data"]["ticket_id"]: e["data"]["state"] for e in await watcher.events()} == \
            {ticket["id"]: "started", other["id"]: "started"}
        await typist.events()  # its own signals, echoed

        await typist.send(type="unsubscribe", channel=f"ticket:{ticket['id']}")
        await typist.expect("unsubscribed")
        await typist.socket.close()
        heard = [(e["data"]["ticket_id"], e["data"]["state"]) for e in await watcher.events(quiet=1.5)]
        assert sorted(heard) == sorted([(ticket["id"], "stopped"), (other["id"], "stopped")])

    async def test_no_typing_after_unsubscribing(self, client, ws_url) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        await live.send(type="unsubscribe", channel=f"ticket:{ticket['id']}")
        await live.expect("unsubscribed")
        await live.send(type="typing", ticket_id=ticket["id"], state="started")
        await live.expect("error", code="not_subscribed")


class TestPresenceIsPerPerson:
    async def _until(self, client, ws: Workspace, agent: Actor, status: str) -> str:  # noqa: ANN001
        for _ in range(100):
            if (now := await _availability(client, ws, agent)) == status:
                return now
            await asyncio.sleep(0.02)
        return now

    async def test_offline_when_the_last_tab_closes_whichever_set_it(self, client, ws_url) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff(availability="offline")
        first, second = await open_live(ws_url, agent), await open_live(ws_url, agent)
        await first.send(type="presence", status="online")
        await first.expect("presence")
        await first.socket.close()
        await _still_open(second)
        assert await _availability(client, ws, agent) == "online"
        await second.socket.close()
        assert await self._until(client, ws, agent, "offline") == "offline"

    async def test_a_chosen_away_outlasts_idleness_and_activity(self, client, ws_url, app, monkeypatch) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        live = await open_live(ws_url, agent)
        await live.send(type="presence", status="away")
        await live.expect("presence", status="away")
        monkeypatch.setattr(app.state.runtime.settings, "agent_away_after_seconds", 0.05)
        await asyncio.sleep(0.1)
        await app.state.sockets.sweep(time.monotonic())
        await live.send(type="activity")
        await _still_open(live)
        assert await _availability(client, ws, agent) == "away"

    async def test_a_supervisors_choice_outlasts_idleness_and_activity(self, client, ws_url, app, settle,
                                                                       monkeypatch) -> None:  # noqa: ANN001
        """A supervisor takes an agent offline through the API: quiet does not make them
        away nor activity online again (routing would give them work)."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        live = await open_live(ws_url, agent)
        await live.send(type="presence", status="online")
        await live.expect("presence", status="online")
        r = await client.patch(f"/api/v1/agents/{agent.id}", headers=ws.admin.headers,
                               json={"availability": "offline"})
        assert r.status_code == 200, r.text
        await settle()  # the change reaches the sockets' server
        monkeypatch.setattr(app.state.runtime.settings, "agent_away_after_seconds", 0.05)
        await asyncio.sleep(0.1)
        await app.state.sockets.sweep(time.monotonic())
        assert await _availability(client, ws, agent) == "offline"
        await live.send(type="activity")
        await _still_open(live)
        assert await _availability(client, ws, agent) == "offline"

    async def test_activity_in_any_tab_keeps_the_agent_online(self, client, ws_url, app, monkeypatch) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        background, working = await open_live(ws_url, agent), await open_live(ws_url, agent)
        for tab in (background, working):
            await tab.send(type="presence", status="online")
            await tab.expect("presence")
        monkeypatch.setattr(app.state.runtime.settings, "agent_away_after_seconds", 0.3)
        for _ in range(4):
            await asyncio.sleep(0.1)
            await working.send(type="activity")
            await background.send(type="pong")
        await _still_open(working)
        await app.state.sockets.sweep(time.monotonic())
        assert await _availability(client, ws, agent) == "online"
        await asyncio.sleep(0.4)  # now quiet in every tab
        await app.state.sockets.sweep(time.monotonic())
        assert await _availability(client, ws, agent) == "away"


async def _commit_event(runtime: Runtime, workspace_id: uuid.UUID, ticket_id: str, priority: str) -> None:
    from relaydesk.core.outbox import Outbox

    async with runtime.db.write_session() as session:
        Outbox(session).publish(workspace_id, "ticket.priority_changed", runtime.clock.now(), ticket_id=ticket_id,
                                before="NORMAL", after=priority)
        await session.commit()
        await runtime.dispatcher.committed(session)


class TestResumeAcrossCommitOrder:
    async def test_an_event_that_commits_after_a_higher_id_reaches_the_resuming_client(
            self, client, ws_url, settle, runtime, backend) -> None:  # noqa: ANN001
        """PostgreSQL takes ids from a sequence, but transactions commit in their own order:
        a client that saw the higher id and resumes from it still gets the lower one."""
        if backend == "sqlite":
            pytest.skip("SQLite has one writer: its ids follow the commit order")
        from sqlalchemy import select

        from relaydesk.core.outbox import Outbox
        from relaydesk.tenancy.models import Workspace as WorkspaceRow

        ws, agent, customer, ticket = await setup(client)
        await settle()
        workspace_id = uuid.UUID(ws.id)
        live = await open_live(ws_url, ws.admin, "dashboard")
        async with runtime.db.write_session() as holder:
            # While the workspace row is locked, a transaction's event takes its id and then
            # waits on it (its foreign key), so the event below gets the higher id and commits first.
            await holder.execute(select(WorkspaceRow.id).where(WorkspaceRow.id == workspace_id).with_for_update())
            late = asyncio.create_task(_commit_event(runtime, workspace_id, ticket["id"], "LOW"))
            await asyncio.sleep(0.5)
            Outbox(holder).publish(workspace_id, "ticket.priority_changed", runtime.clock.now(),
                                   ticket_id=ticket["id"], before="NORMAL", after="URGENT")
            await holder.commit()
            await runtime.dispatcher.committed(holder)
        seen = await live.expect("event", event="ticket.priority_changed")
        assert seen["data"]["after"] == "URGENT"
        await live.socket.close()  # gone before the late one is heard
        await late

        resumed = await open_live(ws_url, ws.admin, "dashboard", last_event_id=seen["id"])
        heard = {e["data"]["after"]: e["id"] for e in await resumed.events() if e["event"] == "ticket.priority_changed"}
        assert "URGENT" not in heard and heard["LOW"] < seen["id"]


    async def test_a_busy_moment_before_the_clients_last_event_does_not_force_a_resync(
            self, client, ws_url, settle, runtime, backend, monkeypatch) -> None:  # noqa: ANN001
        """The events just before the client's last one come again (any may have committed
        late), but they are not what it missed: however many there are, a client that
        missed one event is sent it, not told to reload everything."""
        if backend == "sqlite":
            pytest.skip("SQLite has one writer: its ids follow the commit order, nothing is looked back on")
        ws, agent, customer, ticket = await setup(client)
        monkeypatch.setattr(runtime.settings, "ws_replay_limit", 5)
        for n in range(8):  # a busy few seconds in the workspace: more events than the limit
            await ws.reply(agent, ticket["id"], f"Update {n}")
        await settle()
        last_seen = await latest_event_id(ws_url, agent)
        await ws.reply(customer, ticket["id"], "Thanks!")
        await settle()

        live = await open_live(ws_url, agent, f"ticket:{ticket['id']}", last_event_id=last_seen)
        frames = []
        while (frame := await live.next())["type"] == "event":
            frames.append(frame)
        assert frame["type"] == "replayed", frame
        missed = [e["data"]["body_text"] for e in frames if e["id"] > last_seen and e["event"] == "message.posted"]
        assert missed == ["Thanks!"]


class TestResumeCounts:
    async def test_redis_back_replays_only_what_came_since_hello(self, client, ws_url, settle, app, clock) -> None:  # noqa: ANN001
        """A socket that heard nothing since connecting is replayed from where hello put
        it when the hub comes back, not the workspace's whole history."""
        ws, agent, customer, ticket = await setup(client)
        await ws.reply(agent, ticket["id"], "An old answer")
        await settle()
        live = await open_live(ws_url, customer, f"ticket:{ticket['id']}")
        hello_id = (await app.state.sockets.latest_event_id(uuid.UUID(ws.id)))
        clock.advance(timedelta(seconds=30))  # the outage comes a while later
        await app.state.sockets.hub_state_changed(False)
        await live.expect("live", state="degraded")
        await app.state.sockets.hub_state_changed(True)
        await live.expect("live", state="up")
        await live.expect("replayed", count=0, last_event_id=hello_id)

    async def test_nothing_missed_keeps_the_clients_place(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        live = Live(await connect(f"{ws_url}?token={ws.admin.token}"))
        latest = (await live.expect("hello"))["last_event_id"]
        assert latest > 0
        await live.send(type="resume", last_event_id=latest)
        await live.expect("replayed", count=0, last_event_id=latest)

    async def test_an_id_from_the_future_asks_for_a_resync(self, client, ws_url, settle) -> None:  # noqa: ANN001
        """An id above the workspace's latest (a restored database, another deployment) is
        not echoed back: kept, it would make every later resume come back empty."""
        ws, agent, customer, ticket = await setup(client)
        await settle()
        live = Live(await connect(f"{ws_url}?token={agent.token}&subscribe=ticket:{ticket['id']}"
                                  f"&last_event_id=987654321"))
        latest = (await live.expect("hello"))["last_event_id"]
        await live.expect("subscribed")
        await live.expect("resync_required", last_event_id=latest)
        await live.send(type="resume", last_event_id=latest + 1)
        await live.expect("resync_required", last_event_id=latest)
        await ws.reply(customer, ticket["id"], "Still there?")
        await settle()
        await live.send(type="resume", last_event_id=latest)
        assert [e["data"]["body_text"] for e in await live.events() if e["event"] == "message.posted"] == \
            ["Still there?"]

    async def test_count_is_what_this_socket_was_sent(self, client, ws_url, settle) -> None:  # noqa: ANN001
        ws, agent, customer, ticket = await setup(client)
        await settle()
        live = Live(await connect(f"{ws_url}?token={customer.token}&subscribe=ticket:{ticket['id']}"))
        last_seen = (await live.expect("hello"))["last_event_id"]
        await live.expect("subscribed")
        for n in range(4):
            await ws.reply(agent, ticket["id"], f"internal note {n}", internal=True)
        await settle()
        await live.events()  # live, none of it for the customer
        await live.send(type="resume", last_event_id=last_seen)
        sent = []
        while (frame := await live.next())["type"] == "event":
            sent.append(frame)  # on PostgreSQL, the ticket's events from just before last_seen
        assert frame["type"] == "replayed" and frame["count"] == len(sent)
        assert [e for e in sent if e["event"] == "message.posted" or e["id"] > last_seen] == []
        assert frame["last_event_id"] > last_seen


class TestCookieOrigin:
    async def test_a_cookie_is_taken_only_from_the_deployments_own_pages(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        cookie = {"Cookie": f"relaydesk_access={ws.admin.token}"}
        own = app.state.runtime.settings.public_url.rstrip("/")
        hijack = Live(await connect(ws_url, origin="https://evil.example", additional_headers=cookie))
        assert "cookie" in (await _refused(hijack))["detail"]
        for origin in (own, None):  # a page of ours, or no browser at all
            await Live(await connect(ws_url, origin=origin, additional_headers=cookie)).expect("hello")
        # A token is not ambient: any site may use one it was given, the chat widget's included.
        await Live(await connect(f"{ws_url}?token={ws.admin.token}", origin="https://evil.example")).expect("hello")
        chat = (await client.post(f"/api/v1/chat/{ws.slug}/conversations", json={"message": "hi", "name": "Lan", "email": "lan@visitors.example.com"},
                                  headers={"Origin": "https://shop.example"})).json()
        widget = Live(await connect(f"{ws_url}?chat_token={chat['token']}", origin="https://shop.example",
                                    additional_headers=cookie))
        await widget.expect("hello")

    async def test_signing_in_gives_the_web_app_its_socket_cookie(self, client, ws_url, app) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.post("/api/v1/auth/login", json={"email": ws.admin.email, "password": PASSWORD,
                                                          "workspace": ws.slug})
        set_cookie = r.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
        assert set_cookie.startswith("relaydesk_access=") and "path=/api/v1/ws" in set_cookie.lower()
        assert {"httponly", "samesite", "max-age"} <= attributes and "samesite=strict" in set_cookie.lower()
        value = set_cookie.split(";")[0].split("=", 1)[1]
        own = app.state.runtime.settings.public_url.rstrip("/")
        live = Live(await connect(ws_url, origin=own, additional_headers={"Cookie": f"relaydesk_access={value}"}))
        await live.expect("hello", user_id=ws.admin.id)
        # Signing out takes it away.
        r = await client.post("/api/v1/auth/logout", json={"refresh_token": r.json()["refresh_token"]})
        assert r.status_code == 204 and 'relaydesk_access=""' in r.headers["set-cookie"]

"""The chat channel's API, as the widget uses it (the browser test drives the widget itself)."""

from __future__ import annotations

import time

import jwt

from factories import make_workspace
from test_realtime import ws_url  # noqa: F401 - the live server fixture


async def start(client, slug: str, **body):  # noqa: ANN001, ANN201
    body = {"name": "Lan", "email": "lan@visitors.example.com", "message": "Where is order 5521?", **body}
    return await client.post(f"/api/v1/chat/{slug}/conversations", json=body, headers={"Origin": "https://shop.example"})


class TestConversations:
    async def test_a_visitor_starts_a_chat_that_is_a_ticket_and_talks_with_an_agent(self, client, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        status = (await client.get(f"/api/v1/chat/{ws.slug}/status")).json()
        assert status["agents_online"] is True
        r = await start(client, ws.slug)
        assert r.status_code == 201, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        chat = r.json()
        ticket = (await client.get(f"/api/v1/tickets/{chat['ticket_id']}", headers=agent.headers)).json()
        assert ticket["channel"] == "chat" and "unverified" in ticket["tags"]
        await settle()
        await ws.reply(agent, chat["ticket_id"], "It ships tomorrow.")
        await ws.reply(agent, chat["ticket_id"], "staff only", internal=True)
        token = {"X-Chat-Token": chat["token"]}
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                              json={"message": "Thank you!"}, headers=token)  # "body" works too
        assert r.status_code == 201, r.text
        lines = (await client.get(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  headers=token)).json()
        texts = [(m["author_kind"], m["body_text"]) for m in lines if m["author_kind"] != "system"]
        assert texts == [("customer", "Where is order 5521?"), ("agent", "It ships tomorrow."),
                         ("customer", "Thank you!")]

    async def test_what_a_visitor_types_is_kept_as_typed(self, client) -> None:  # noqa: ANN001
        """A chat is plain text: angle brackets are what the visitor typed, not markup to drop."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        typed = ["my address is <oleg@example.com>", "use Vec<String> please", "<x>", "<script>alert(1)</script>"]
        chat = (await start(client, ws.slug, message=typed[0])).json()
        token = {"X-Chat-Token": chat["token"]}
        for line in typed[1:]:
            r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  json={"body": line}, headers=token)
            assert r.status_code == 201, r.text
        lines = (await client.get(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  headers=token)).json()
        assert [m["body_text"] for m in lines] == typed
        shown = (await client.get(f"/api/v1/tickets/{chat['ticket_id']}/messages", headers=agent.headers)).json()
        html = [m["body_html"] for m in shown["items"] if m["author_kind"] == "customer"]
        assert html[-1] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" and "<script" not in "".join(html)

    async def test_a_long_chat_comes_back_with_its_latest_lines(self, client, runtime, monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setattr(runtime.settings, "chat_lines_per_minute", 1000)
        ws = await make_workspace(client)
        chat = (await start(client, ws.slug, message="line 0")).json()
        token = {"X-Chat-Token": chat["token"]}
        for n in range(1, 205):
            r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  json={"body": f"line {n}"}, headers=token)
            assert r.status_code == 201
        lines = (await client.get(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  headers=token)).json()
        assert [m["body_text"] for m in lines] == [f"line {n}" for n in range(5, 205)]

    async def test_writing_into_a_closed_chat_opens_a_follow_up_that_keeps_its_tags(self, client, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        chat = (await start(client, ws.slug, message="Do you ship to Norway?")).json()
        await ws.reply(agent, chat["ticket_id"], "We do.")
        for status in ("RESOLVED", "CLOSED"):
            assert (await ws.move(agent, chat["ticket_id"], status)).status_code == 200
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                              json={"body": "And to Iceland?"}, headers={"X-Chat-Token": chat["token"]})
        assert r.status_code == 201, r.text
        follow_up = (await client.get(f"/api/v1/tickets/{r.json()['ticket_id']}", headers=agent.headers)).json()
        assert follow_up["follow_up_of_id"] == chat["ticket_id"] and follow_up["channel"] == "chat"
        assert follow_up["tags"] == ["chat", "unverified"]  # nobody has checked who this is, still

    async def test_a_closed_chat_continues_in_one_follow_up_that_counts_as_a_conversation(  # noqa: ANN201
            self, client, runtime, monkeypatch):  # noqa: ANN001
        """The old token keeps working after the chat moved on, into the same follow-up:
        otherwise every line sent with it opened a ticket and mailed an acknowledgement."""
        monkeypatch.setattr(runtime.settings, "chat_starts_per_email", 2)
        ws = await make_workspace(client)
        agent = await ws.staff()
        chat = (await start(client, ws.slug, email="target@example.org")).json()
        old = {"X-Chat-Token": chat["token"]}
        for status in ("RESOLVED", "CLOSED"):
            assert (await ws.move(agent, chat["ticket_id"], status)).status_code == 200
        said = []
        for n in range(3):
            r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  json={"body": f"line {n}"}, headers=old)
            assert r.status_code == 201, r.text
            said.append(r.json())
        follow_up_id = said[0]["ticket_id"]
        assert follow_up_id != chat["ticket_id"] and {s["ticket_id"] for s in said} == {follow_up_id}
        tickets = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        assert len(tickets) == 2
        lines = (await client.get(f"/api/v1/chat/{ws.slug}/conversations/{follow_up_id}/messages",
                                  headers={"X-Chat-Token": said[-1]["token"]})).json()
        assert [m["body_text"] for m in lines] == ["line 0", "line 1", "line 2"]
        # The follow-up was this email's second conversation: a third is refused, old token or new.
        for status in ("RESOLVED", "CLOSED"):
            assert (await ws.move(agent, follow_up_id, status)).status_code == 200
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                              json={"body": "once more"}, headers=old)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text
        assert len((await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]) == 2

    async def test_nobody_can_use_the_chat_to_mail_anyone_at_will(self, client, runtime, monkeypatch) -> None:  # noqa: ANN001
        """Anyone may start a chat without signing in, and each sends an acknowledgement to
        the email given: so starts are limited per address and per email, and lines per
        conversation."""
        ws = await make_workspace(client)
        victim = {"name": "Spam", "email": "victim@example.org", "message": "Your account is suspended, verify at"}
        for _ in range(runtime.settings.chat_starts_per_email):
            assert (await start(client, ws.slug, **victim)).status_code == 201
        r = await start(client, ws.slug, **victim)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) > 0
        tickets = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        assert len(tickets) == runtime.settings.chat_starts_per_email  # the refused one made nothing
        assert (await start(client, ws.slug, email="someone.else@example.org")).status_code == 201

        monkeypatch.setattr(runtime.settings, "chat_lines_per_minute", 3)
        chat = (await start(client, ws.slug, email="chatty@example.org")).json()
        said = [await client.post(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                                  json={"body": f"line {n}"}, headers={"X-Chat-Token": chat["token"]})
                for n in range(4)]
        assert [r.status_code for r in said] == [201, 201, 201, 429]

        monkeypatch.setattr(runtime.settings, "chat_starts_per_ip", 2)
        other = await make_workspace(client)
        for n in range(2):
            assert (await start(client, other.slug, email=f"v{n}@example.org")).status_code == 201
        assert (await start(client, other.slug, email="v9@example.org")).status_code == 429

    async def test_the_widget_says_when_nobody_is_online(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await ws.staff(availability="offline")
        assert (await client.get(f"/api/v1/chat/{ws.slug}/status")).json()["agents_online"] is False
        r = await start(client, ws.slug)
        assert r.status_code == 201 and r.json()["agents_online"] is False

    async def test_a_chat_token_opens_one_conversation_only(self, client, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        older = await ws.ticket(customer, subject="My private earlier ticket")
        # Anyone can type this customer's email into the widget...
        r = await start(client, ws.slug, email=customer.email)
        chat = r.json()
        token = {"X-Chat-Token": chat["token"]}
        # ...but the token shows only the new conversation, not the customer's history.
        r = await client.get(f"/api/v1/chat/{ws.slug}/conversations/{older['id']}/messages", headers=token)
        assert r.status_code == 404
        r = await client.get(f"/api/v1/tickets/{older['id']}", headers={"Authorization": f"Bearer {chat['token']}"})
        assert r.status_code == 401
        other = await make_workspace(client)
        r = await client.get(f"/api/v1/chat/{other.slug}/conversations/{chat['ticket_id']}/messages", headers=token)
        assert r.status_code == 404
        r = await client.get(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                             headers={"X-Chat-Token": chat["token"][:-3] + "abc"})
        assert r.status_code == 401

    async def test_bad_input_names_the_field(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations", json={"message": "hi", "name": "Lan"})
        assert r.status_code == 422 and "email" in r.text
        r = await start(client, ws.slug, message="")
        assert r.status_code == 422 and "message" in r.text
        assert (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"] == []
        r = await start(client, "no-such-workspace")
        assert r.status_code == 404
        r = await client.options(f"/api/v1/chat/{ws.slug}/conversations",
                                 headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        assert r.status_code == 204 and "x-chat-token" in r.headers["access-control-allow-headers"]


class TestIdentityTokens:
    async def test_a_host_site_vouches_for_its_signed_in_user(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/chat-identity-secret", headers=ws.admin.headers)
        assert r.status_code == 200
        secret = r.json()["secret"]
        identity = jwt.encode({"email": "member@shop.example.com", "name": "Member Mai", "exp": int(time.time()) + 600},
                              secret, algorithm="HS256")
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                              json={"identity_token": identity, "message": "I am signed in"})
        assert r.status_code == 201, r.text
        ticket = (await client.get(f"/api/v1/tickets/{r.json()['ticket_id']}", headers=agent.headers)).json()
        assert ticket["tags"] == ["chat"]
        forged = jwt.encode({"email": "ceo@shop.example.com", "exp": int(time.time()) + 600},
                            "a guess at the workspace secret, long enough", algorithm="HS256")
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                              json={"identity_token": forged, "message": "I am the CEO"})
        assert r.status_code == 422 and "identity_token" in r.text
        assert (await client.post("/api/v1/chat-identity-secret", headers=agent.headers)).status_code == 403

    async def test_a_team_members_address_cannot_start_a_chat(self, client) -> None:  # noqa: ANN001
        """A chat acts as a customer; a team member's account is not one (their live
        socket was closed every few seconds and the widget kept reconnecting)."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await start(client, ws.slug, email=agent.email.upper())
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["email"], r.text
        assert "customer" in r.json()["errors"][0]["message"]
        secret = (await client.post("/api/v1/chat-identity-secret", headers=ws.admin.headers)).json()["secret"]
        identity = jwt.encode({"email": ws.admin.email, "exp": int(time.time()) + 600}, secret, algorithm="HS256")
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                              json={"identity_token": identity, "message": "Testing the widget"})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["identity_token"], r.text
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []
        assert (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"] == []

    async def test_a_signed_token_with_a_bad_email_or_name_is_refused_by_field(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        secret = (await client.post("/api/v1/chat-identity-secret", headers=ws.admin.headers)).json()["secret"]
        exp = int(time.time()) + 600
        for claims in ({"email": "not an email"}, {"email": "12345"}, {"email": ""}, {"email": 12345},
                       {"email": ["a@shop.example.com"]}, {"email": "a@shop.example.com", "name": 7},
                       {"email": "a@shop.example.com", "name": ["Mai"]}):
            identity = jwt.encode({**claims, "exp": exp}, secret, algorithm="HS256")
            r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                                  json={"identity_token": identity, "message": "Hello"})
            assert r.status_code == 422, (claims, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert [e["field"] for e in r.json()["errors"]] == ["identity_token"], r.text
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []
        assert (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"] == []
        # A blank name is no name: the visitor is called by their email.
        identity = jwt.encode({"email": "a@shop.example.com", "name": "  ", "exp": exp}, secret, algorithm="HS256")
        r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                              json={"identity_token": identity, "message": "Hello"})
        assert r.status_code == 201, r.text
        [customer] = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert customer["name"] == "a@shop.example.com"


async def test_the_widget_script_is_served(client) -> None:  # noqa: ANN001
    r = await client.get("/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "data-workspace" in r.text and "/api/v1/ws?chat_token=" in r.text


class TestLive:
    async def test_a_chat_socket_sees_its_conversation_and_nothing_else(self, client, settle, ws_url) -> None:  # noqa: ANN001, F811
        import orjson
        from websockets.asyncio.client import connect

        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        older = await ws.ticket(customer, subject="Earlier, private")
        chat = (await start(client, ws.slug, email=customer.email)).json()
        await settle()
        url = f"{ws_url}?chat_token={chat['token']}&subscribe=ticket:{chat['ticket_id']}"
        async with connect(url) as sock:
            frames = [orjson.loads(await sock.recv()) for _ in range(2)]
            assert [f["type"] for f in frames] == ["hello", "subscribed"]
            # The customer's other ticket is answered as one that does not exist: the visitor
            # cannot tell which numbers are the customer's.
            answers = []
            for ref in (older["id"], older["number"], "T-999999", "01a247b1-0000-7000-8000-000000000000"):
                await sock.send(orjson.dumps({"type": "subscribe", "channel": f"ticket:{ref}"}).decode())
                answers.append(orjson.loads(await sock.recv()))
            assert answers[0]["code"] == "not_found" and all(a == answers[0] for a in answers), answers
            await ws.reply(agent, older["id"], "About the earlier one")
            await ws.reply(agent, chat["ticket_id"], "Hello from support")
            await settle()
            heard = []
            while not any(f.get("event") == "message.posted" for f in heard):
                heard.append(orjson.loads(await sock.recv()))
            events = [f for f in heard if f["type"] == "event"]
            assert [f["data"]["ticket_id"] for f in events] == [chat["ticket_id"]] * len(events)
            assert events[-1]["data"]["body_text"] == "Hello from support"
        r = await client.get(f"/api/v1/chat/{ws.slug}/conversations/{chat['ticket_id']}/messages",
                             headers={"X-Chat-Token": chat["token"]})
        assert r.status_code == 200

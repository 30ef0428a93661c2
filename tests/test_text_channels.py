"""SMS through Twilio's webhook format (signatures checked) with replies sent back as SMS,
and the generic signed JSON webhook for connected social channels."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from factories import Workspace, make_workspace
from httppeers import receiver, served  # noqa: F401 - a fixture
from relaydesk.channels.messaging import twilio_signature

AUTH_TOKEN = "twilio-auth-token-123"


async def set_up_sms(client, ws: Workspace, provider_url: str) -> None:  # noqa: ANN001
    r = await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers, json={
        "sms_number": "+15550001111", "sms_account_sid": "AC123", "sms_auth_token": AUTH_TOKEN,
        "sms_api_url": provider_url})
    assert r.status_code == 200, r.text
    assert "sms_auth_token" not in r.json()


async def text_in(client, runtime, ws: Workspace, sender: str, body: str, sid: str, *,  # noqa: ANN001
                  token: str = AUTH_TOKEN, media: tuple[tuple[str, str], ...] = ()):  # noqa: ANN201
    path = f"/api/v1/sms/{ws.slug}/twilio"
    form = {"From": sender, "To": "+15550001111", "Body": body, "MessageSid": sid, "NumMedia": str(len(media))}
    for n, (content_type, url) in enumerate(media):
        form[f"MediaContentType{n}"], form[f"MediaUrl{n}"] = content_type, url
    signature = twilio_signature(token, runtime.settings.public_url.rstrip("/") + path, list(form.items()))
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


class TestSms:
    async def test_texts_become_a_ticket_and_answers_go_back_by_sms(self, client, runtime, settle,
                                                                      receiver) -> None:  # noqa: ANN001, F811
        provider, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        await set_up_sms(client, ws, url)
        r = await text_in(client, runtime, ws, "+15557654321", "My order never came", "SM1")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
        assert (await text_in(client, runtime, ws, "+15557654321", "My order never came", "SM1")).status_code == 200
        r = await text_in(client, runtime, ws, "+15557654321", "It was order 88", "SM2")
        tickets = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        assert [(t["channel"], t["subject"]) for t in tickets] == [("sms", "My order never came")]
        messages = (await client.get(f"/api/v1/tickets/{tickets[0]['id']}/messages", headers=agent.headers)).json()
        assert [m["body_text"] for m in messages["items"] if m["author_kind"] == "customer"] == [
            "My order never came", "It was order 88"]  # the retried SM1 counted once
        await settle()
        await ws.reply(agent, tickets[0]["id"], "It is on the way, sorry!")
        await settle()
        [(headers, body)] = provider.requests
        form = dict(parse_qsl(body.decode()))
        assert form == {"To": "+15557654321", "From": "+15550001111", "Body": "It is on the way, sorry!"}
        assert headers["authorization"].startswith("Basic ")

    async def test_a_text_after_the_ticket_was_resolved_reopens_it_as_typed(self, client, runtime, settle,
                                                                           receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        await set_up_sms(client, ws, url)
        await text_in(client, runtime, ws, "+15557654322", "Where is my parcel?", "SM21")
        [ticket] = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        await settle()
        await ws.reply(agent, ticket["id"], "It was delivered this morning.")
        assert (await ws.move(agent, ticket["id"], "RESOLVED")).status_code == 200
        r = await text_in(client, runtime, ws, "+15557654322", "Not here! Can you ship to <my office>?", "SM22")
        assert r.status_code == 200
        [again] = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        assert again["id"] == ticket["id"] and again["status"] == "IN_PROGRESS" and again["reopen_count"] == 1
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers)).json()
        assert [m["body_text"] for m in messages["items"] if m["author_kind"] == "customer"][-1] == \
            "Not here! Can you ship to <my office>?"
        # Once closed, the next text is a new ticket that points back to it.
        assert (await ws.move(agent, ticket["id"], "RESOLVED")).status_code == 200
        assert (await ws.move(agent, ticket["id"], "CLOSED")).status_code == 200
        await text_in(client, runtime, ws, "+15557654322", "One more thing", "SM23")
        tickets = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        [follow_up] = [t for t in tickets if t["id"] != ticket["id"]]
        assert follow_up["follow_up_of_id"] == ticket["id"] and follow_up["channel"] == "sms"

    async def test_an_answer_with_words_in_angle_brackets_is_texted_as_typed(self, client, runtime, settle,
                                                                             receiver) -> None:  # noqa: ANN001, F811
        provider, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        await set_up_sms(client, ws, url)
        await text_in(client, runtime, ws, "+15557654326", "When does it ship?", "SM51")
        [ticket] = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        await settle()
        assert (await ws.reply(agent, ticket["id"], "Your order ships <tomorrow> & arrives Friday")).status_code == 201
        await settle()
        [(_, body)] = provider.requests
        assert dict(parse_qsl(body.decode()))["Body"] == "Your order ships <tomorrow> & arrives Friday"

    async def test_a_text_too_long_to_keep_is_kept_cut_with_a_note(self, client, runtime, receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        # A new texter's first text, then one that is long only once written as markup.
        for body, sid in (("Where is my order? " + "x" * 200_000, "SM71"), ("<" * 60_000, "SM72")):
            r = await text_in(client, runtime, ws, "+15557654327", body, sid)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml"), r.text
        [ticket] = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        assert ticket["subject"] == "Where is my order? " + "x" * 61
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", params={"limit": 100},
                                     headers=ws.admin.headers)).json()["items"]
        first, second = [m["body_text"] for m in messages if m["author_kind"] == "customer"]
        assert first.startswith("Where is my order? xxx") and 90_000 < len(first) < 100_000
        assert set(second) == {"<"} and 20_000 < len(second) < 25_000
        notes = [m for m in messages if m["author_kind"] == "system" and "too long" in m["body_text"]]
        assert len(notes) == 2 and all(n["internal"] for n in notes)

    async def test_a_text_finds_the_customer_whose_number_was_saved_with_formatting(  # noqa: ANN201
            self, client, runtime, settle, receiver):  # noqa: ANN001, F811
        provider, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        saved = {"+1 (555) 888-0000": await ws.customer(login=False, phone="+1 (555) 888-0000"),
                 "+44 20.7946/0958": await ws.customer(login=False, phone="+44 20.7946/0958")}
        for n, sender in enumerate(("+15558880000", "+442079460958")):
            assert (await text_in(client, runtime, ws, sender, "Hello, it is me", f"SM6{n}")).status_code == 200
        tickets = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        assert sorted(t["requester_id"] for t in tickets) == sorted(c.customer_id for c in saved.values())
        assert len((await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]) == 2
        # The answer goes to the number as the provider wants it, not as it was typed.
        await settle()
        for ticket in tickets:
            await ws.reply(ws.admin, ticket["id"], "Hello again")
        await settle()
        assert sorted(dict(parse_qsl(body.decode()))["To"] for _, body in provider.requests) == \
            ["+15558880000", "+442079460958"]

    async def test_a_picture_sent_by_mms_is_linked_on_the_ticket(self, client, runtime, receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        picture = "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1"
        r = await text_in(client, runtime, ws, "+15557654324", "", "MM1", media=(("image/jpeg", picture),))
        assert r.status_code == 200
        [ticket] = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)).json()
        [first] = [m for m in messages["items"] if m["author_kind"] == "customer"]
        assert first["body_text"] == f"[image/jpeg] {picture}"

    async def test_a_long_answer_goes_out_whole_as_numbered_texts(self, client, runtime, settle,
                                                                 receiver) -> None:  # noqa: ANN001, F811
        provider, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        await set_up_sms(client, ws, url)
        await text_in(client, runtime, ws, "+15557654323", "How do I reset the router?", "SM31")
        [ticket] = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
        await settle()
        answer = " ".join(f"Step {n}: press the button marked {n} and wait for the light." for n in range(1, 61))
        assert len(answer) > 3200
        await ws.reply(agent, ticket["id"], answer)
        await settle()
        texts = [dict(parse_qsl(body.decode()))["Body"] for _, body in provider.requests]
        assert len(texts) == 3 and all(len(t) <= 1600 for t in texts)
        assert sorted(t[:6] for t in texts) == ["(1/3) ", "(2/3) ", "(3/3) "]
        in_order = sorted(texts)
        assert " ".join(t[6:] for t in in_order) == answer  # cut between words, nothing lost

    async def test_an_answer_the_provider_refuses_is_noted_on_the_ticket_with_its_reason(
            self, client, runtime, settle) -> None:  # noqa: ANN001
        refusal = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}

        async def provider(request: Request) -> Response:
            return Response(orjson.dumps(refusal), status_code=400, media_type="application/json")

        async with served(Starlette(routes=[Route("/sms", provider, methods=["POST"])])) as port:
            ws = await make_workspace(client)
            agent = await ws.staff()
            await set_up_sms(client, ws, f"http://127.0.0.1:{port}/sms")
            await text_in(client, runtime, ws, "+15557654325", "Is my order ready?", "SM41")
            [ticket] = (await client.get("/api/v1/tickets", headers=agent.headers)).json()["items"]
            await settle()
            await ws.reply(agent, ticket["id"], "Yes, come by after 3 and ask for the parcel desk. " * 40)
            await settle()
        r = await client.get("/api/v1/notifications/deliveries", params={"recipient": "+15557654325"},
                             headers=ws.admin.headers)
        texts = r.json()["items"]
        assert len(texts) == 2 and {t["status"] for t in texts} == {"dead"}  # a long answer, two texts
        assert all("HTTP 400" in t["last_error"] and refusal["message"] in t["last_error"] for t in texts)
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers)).json()
        [note] = [m for m in messages["items"] if m["author_kind"] == "system" and "could not be texted" in
                  m["body_text"]]
        assert note["internal"] is True and "+15557654325" in note["body_text"]
        assert refusal["message"] in note["body_text"]

    async def test_a_bad_signature_is_refused_and_nothing_is_stored(self, client, runtime, receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        r = await text_in(client, runtime, ws, "+15557654321", "hi", "SM9", token="not-the-token")
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []
        other = await make_workspace(client)
        assert (await text_in(client, runtime, other, "+1555", "hi", "SM8")).status_code == 404

    async def test_a_signed_text_without_twilios_message_sid_or_number_is_refused_naming_it(
            self, client, runtime, receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        for sender, sid, field in (("+15557654328", "", "MessageSid"), ("not-a-number", "SM81", "From"),
                                   ("", "SM82", "From"), ("+", "SM83", "From")):
            r = await text_in(client, runtime, ws, sender, "Hello?", sid)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert r.json()["errors"][0]["field"] == field, (sender, sid, r.text)
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []

    async def test_a_signature_with_non_ascii_characters_is_a_bad_signature(self, client, runtime,
                                                                           receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        r = await client.post(f"/api/v1/sms/{ws.slug}/twilio", data={"From": "+15557654321", "Body": "hi"},
                              headers={"X-Twilio-Signature": "sïgnature".encode()})
        assert r.status_code == 403 and r.json()["code"] == "bad_signature", r.text
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []


SECRET = "channel-secret-0123456789abcdef"


def signed(body: dict) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"X-Relaydesk-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}


class TestChannelWebhook:
    async def test_a_connector_posts_social_messages_into_tickets(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                               json={"channel_webhook_secret": SECRET})
        assert r.status_code == 200
        path = f"/api/v1/channels/{ws.slug}/messages"
        message = {"channel": "social", "user_id": "fb:42", "name": "Lan", "text": "Is the blue one in stock?",
                   "message_id": "m1"}
        raw, headers = signed(message)
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 202, r.text
        first = r.json()
        raw, headers = signed({**message, "text": "Size M please", "message_id": "m2"})
        assert (await client.post(path, content=raw, headers=headers)).json()["ticket_id"] == first["ticket_id"]
        raw, headers = signed(message)
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 409 and "message_id" in r.text
        ticket = (await client.get(f"/api/v1/tickets/{first['ticket_id']}", headers=ws.admin.headers)).json()
        assert ticket["channel"] == "social"

    async def test_a_person_stays_one_when_the_platform_later_gives_their_email(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        path = f"/api/v1/channels/{ws.slug}/messages"
        seen = []
        for n, extra in enumerate(({}, {"email": "mai.anh@example.com"}, {})):
            raw, headers = signed({"user_id": "ig:MaiAnh", "text": f"message {n}", **extra})
            r = await client.post(path, content=raw, headers=headers)
            assert r.status_code == 202, r.text
            seen.append(r.json()["ticket_id"])
        assert len(set(seen)) == 1
        assert len((await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]) == 1

    async def test_a_person_who_gave_their_email_first_stays_one_when_later_messages_do_not(
            self, client, settle, receiver) -> None:  # noqa: ANN001, F811
        """Known by their email (already a customer, or made with it on first contact), a
        person's later messages without it still join their ticket, and answers reach them
        on the platform."""
        hooks, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        known = await ws.customer(login=False)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                          json={"url": url, "events": ["message.posted"], "allow_private": True})
        path = f"/api/v1/channels/{ws.slug}/messages"
        for user_id, email in (("wa:4477", "nadia@example.com"), ("wa:5588", known.email)):
            tickets = []
            for extra in ({"email": email}, {}, {"email": email}):
                raw, headers = signed({"user_id": user_id, "name": "Nadia", "text": "about my order", **extra})
                r = await client.post(path, content=raw, headers=headers)
                assert r.status_code == 202, r.text
                tickets.append(r.json()["ticket_id"])
            assert len(set(tickets)) == 1, user_id
            await settle()
            await ws.reply(agent, tickets[0], "On its way.")
            await settle()
            answers = [orjson.loads(body) for _, body in hooks.requests]
            answer = [a for a in answers if a["data"].get("author_kind") == "agent"][-1]
            assert answer["ticket"]["requester"]["channel_user_id"] == user_id
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert sorted(c["email"] for c in customers) == sorted(["nadia@example.com", known.email])

    async def test_a_handle_staff_give_a_customer_brings_their_messages_to_them(self, client) -> None:  # noqa: ANN001
        """Staff link a known customer to their platform id in the profile's metadata; the
        platform's messages then join that customer, and follow the link when it changes."""
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        r = await client.post("/api/v1/customers", headers=ws.admin.headers, json={
            "name": "Lan", "email": "lan@example.com", "metadata": {"channel_user_id": "fb:777", "vip": True}})
        lan = r.json()["id"]

        async def requester(user_id: str) -> str:
            raw, headers = signed({"user_id": user_id, "name": "Someone", "text": "Hello again"})
            ticket_id = (await client.post(f"/api/v1/channels/{ws.slug}/messages", content=raw,
                                           headers=headers)).json()["ticket_id"]
            return (await client.get(f"/api/v1/tickets/{ticket_id}", headers=ws.admin.headers)).json()["requester_id"]

        assert await requester("fb:777") == lan
        r = await client.patch(f"/api/v1/customers/{lan}", headers=ws.admin.headers,
                               json={"metadata": {"channel_user_id": "fb:888"}})
        assert r.status_code == 200, r.text
        assert await requester("fb:888") == lan
        assert await requester("fb:777") != lan  # no longer hers: a new contact

    async def test_a_connector_hears_whom_to_answer_on_the_platform(self, client, settle,
                                                                     receiver) -> None:  # noqa: ANN001, F811
        """The way out: a webhook for agents' replies carries the ticket's channel and the
        platform's id of the person, so the connector can post the answer there."""
        hooks, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                              json={"url": url, "events": ["message.posted"], "allow_private": True})
        assert r.status_code == 201, r.text
        raw, headers = signed({"user_id": "fb:55501", "name": "Lan", "text": "Do you ship to Hanoi?"})
        ticket_id = (await client.post(f"/api/v1/channels/{ws.slug}/messages", content=raw,
                                       headers=headers)).json()["ticket_id"]
        await settle()
        await ws.reply(agent, ticket_id, "We do, in three days.")
        await settle()
        bodies = [orjson.loads(body) for _, body in hooks.requests]
        [answer] = [b for b in bodies if b["data"].get("author_kind") == "agent"]
        assert answer["ticket"]["channel"] == "social"
        assert answer["ticket"]["requester"]["channel_user_id"] == "fb:55501"

    async def test_unsigned_or_invalid_posts_are_refused_with_the_field(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        path = f"/api/v1/channels/{ws.slug}/messages"
        r = await client.post(path, json={"user_id": "x", "text": "hi"})
        assert r.status_code == 403
        raw, headers = signed({"user_id": "x"})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 422 and "text" in r.text
        raw, headers = signed({"user_id": "x", "text": "hi", "channel": "email"})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 422 and "channel" in r.text
        raw, headers = signed({"user_id": "x", "text": "hi"})
        stamp = headers["X-Relaydesk-Signature"].split(",")[0]
        for header in (f"{stamp},v1=ünïcode", "t=" + "9" * 400 + ",v1=00"):
            r = await client.post(path, content=raw, headers={**headers, "X-Relaydesk-Signature": header.encode()})
            assert r.status_code == 403 and r.json()["code"] == "bad_signature", r.text
        assert (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"] == []

    async def test_a_message_long_once_written_as_markup_is_kept_cut_with_a_note(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        path = f"/api/v1/channels/{ws.slug}/messages"
        raw, headers = signed({"user_id": "fb:7", "text": "&" * 20_001})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "text", r.text
        raw, headers = signed({"user_id": "fb:7", "text": '"' * 20_000, "message_id": "q1"})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 202, r.text
        raw, headers = signed({"user_id": "fb:7", "text": "&" * 20_000, "message_id": "q2"})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 202, r.text
        messages = (await client.get(f"/api/v1/tickets/{r.json()['ticket_id']}/messages",
                                     headers=ws.admin.headers)).json()["items"]
        assert [m["body_text"] for m in messages if m["author_kind"] == "customer"] == ['"' * 20_000, "&" * 19_999]
        [note] = [m for m in messages if m["author_kind"] == "system" and "too long" in m["body_text"]]
        assert note["internal"] is True

    async def test_each_platform_user_id_is_a_person_of_their_own(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        path = f"/api/v1/channels/{ws.slug}/messages"
        long_id = "u" * 70
        user_ids = ["ig:AbC", "ig:abc", "ig.abc", long_id + "1", long_id + "2", "1029384756"]
        tickets = set()
        for user_id in user_ids:
            raw, headers = signed({"user_id": user_id, "name": user_id, "text": f"Hello from {user_id}"})
            r = await client.post(path, content=raw, headers=headers)
            assert r.status_code == 202, r.text
            tickets.add(r.json()["ticket_id"])
        assert len(tickets) == len(user_ids)
        customers = (await client.get("/api/v1/customers", params={"limit": 50},
                                      headers=ws.admin.headers)).json()["items"]
        assert sorted(c["name"] for c in customers) == sorted(user_ids)
        assert len({c["email"] for c in customers}) == len(user_ids)
        # An id that is only lowercase letters and digits keeps the address it always had.
        assert {c["email"] for c in customers if c["name"] == "1029384756"} == {"social-1029384756@social.invalid"}
        # And each person's next message still finds them.
        raw, headers = signed({"user_id": "ig:AbC", "text": "Me again"})
        r = await client.post(path, content=raw, headers=headers)
        assert r.status_code == 202 and r.json()["ticket_id"] in tickets
        assert len((await client.get("/api/v1/customers", params={"limit": 50},
                                     headers=ws.admin.headers)).json()["items"]) == len(user_ids)


class TestRetriesArrivingTogether:
    """A provider that times out sends the same message again while the first is still
    being stored: each copy must see the one before it."""

    async def test_one_message_id_posted_eight_times_at_once_is_stored_once(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                           json={"channel_webhook_secret": SECRET})
        lines = ["Is it in stock?", "In blue?"]  # from someone new, then from someone known
        for n, line in enumerate(lines):
            raw, headers = signed({"user_id": "wa:3300", "name": "Bao", "text": line, "message_id": f"wamid.{n}"})
            answers = await asyncio.gather(*(client.post(f"/api/v1/channels/{ws.slug}/messages", content=raw,
                                                         headers=headers) for _ in range(8)))
            assert sorted(r.status_code for r in answers) == [202] + [409] * 7, [r.text for r in answers]
            assert {r.json()["code"] for r in answers if r.status_code == 409} == {"duplicate"}
        [ticket] = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)).json()
        assert [m["body_text"] for m in messages["items"] if m["author_kind"] == "customer"] == lines

    async def test_an_sms_retried_at_once_is_stored_once_and_always_answered_with_twiml(
            self, client, runtime, receiver) -> None:  # noqa: ANN001, F811
        _, url = receiver
        ws = await make_workspace(client)
        await set_up_sms(client, ws, url)
        lines = ["Is the shop open?", "On Sunday?"]  # from someone new, then from someone known
        for n, line in enumerate(lines):
            answers = await asyncio.gather(*(text_in(client, runtime, ws, "+15557650000", line, f"SM7{n}")
                                             for _ in range(8)))
            assert [(r.status_code, r.headers["content-type"].split(";")[0]) for r in answers] == \
                [(200, "text/xml")] * 8, [r.text for r in answers]
        [ticket] = (await client.get("/api/v1/tickets", headers=ws.admin.headers)).json()["items"]
        messages = (await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)).json()
        assert [m["body_text"] for m in messages["items"] if m["author_kind"] == "customer"] == lines

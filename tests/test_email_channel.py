"""The email channel end to end over real protocols: SMTP sessions to the built-in
listener, a real IMAP server (Dovecot) polled for mail, and outbound mail to a sink."""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
import pytest
from sqlalchemy import select

from factories import Workspace, make_workspace, verification_email
from mailpeers import ImapServer, SmtpSink, free_port, smtp_send
from relaydesk.channels.smtp import SmtpListener
from relaydesk.channels.tasks import inbound_service, poll_mailbox, process_email
from relaydesk.channels import tasks as channel_tasks
from relaydesk.channels.models import Mailbox
from relaydesk.core.audit import AuditEntry
from relaydesk.core.mail import SmtpMailer
from relaydesk.core.outbox import OutboxEvent
from relaydesk.tenancy.models import Workspace as WorkspaceRow
from relaydesk.notifications.delivery import EMAIL_CHANNELS
from relaydesk.notifications.sender import deliver_due
from relaydesk.runtime import Runtime
from test_attachments import png_1x1

CORPUS = Path(__file__).parent / "email_corpus"


@pytest.fixture
async def listener(runtime: Runtime, smtp_sink: SmtpSink) -> AsyncIterator[SmtpListener]:
    """Our SMTP listener on a free port; what we send goes to the sink."""
    before, runtime.mailer = runtime.mailer, SmtpMailer("127.0.0.1", smtp_sink.port, timeout=5)
    async with SmtpListener(runtime, "127.0.0.1", 0) as smtp:
        yield smtp
    runtime.mailer = before


def address(runtime: Runtime, ws: Workspace) -> str:
    return f"{ws.slug}@{runtime.settings.mail_domain}"


def email(sender: str, to: str, subject: str, body: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = headers.pop("Message_ID", None) or make_msgid(domain="customers.example.com")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return bytes(message)


def from_corpus(path: Path, ws: Workspace) -> bytes:
    """A corpus message as ``ws`` receives it: our own mail echoed back names the workspace
    that sent it in its loop header, this one."""
    return path.read_bytes().replace(b"acme/ws_01HQ8Z3K2Y", ws.id.encode())


async def send(listener: SmtpListener, raw: bytes, to: str, sender: str = "someone@example.com") -> None:
    await smtp_send("127.0.0.1", listener.port, raw, sender, [to])


async def inbound(client, ws: Workspace, **params: str) -> list[dict[str, Any]]:  # noqa: ANN001
    r = await client.get("/api/v1/inbound-emails", params=params, headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def tickets(client, ws: Workspace) -> list[dict[str, Any]]:  # noqa: ANN001
    return (await client.get("/api/v1/tickets", params={"limit": 100}, headers=ws.admin.headers)).json()["items"]


async def thread(client, ws: Workspace, ticket_id: str) -> list[dict[str, Any]]:  # noqa: ANN001
    r = await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=ws.admin.headers)
    return r.json()["items"]


async def kettle_ticket(client, runtime: Runtime, settle, listener: SmtpListener, smtp_sink: SmtpSink,  # noqa: ANN001
                        ws: Workspace) -> tuple[str, dict[str, Any], Any]:
    """Lan's new ticket by email: (the support address, the ticket, our acknowledgement)."""
    to = address(runtime, ws)
    await send(listener, email("Lan <lan@customers.example.com>", to, "Broken kettle", "It leaks."), to)
    await settle()
    [ticket] = await tickets(client, ws)
    [ack] = smtp_sink.messages
    return to, ticket, ack

class TestNewTicketsByEmail:
    async def test_a_stranger_writes_in_and_gets_a_ticket_and_an_acknowledgement(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("Lan Nguyen <lan@customers.example.com>", to, "Order 5521 never arrived",
                                   "Hello, my order 5521 has not arrived.\n\nThanks, Lan"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Order 5521 never arrived" and ticket["channel"] == "email"
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert [(c["name"], c["email"]) for c in customers] == [("Lan Nguyen", "lan@customers.example.com")]
        [ack] = [m for m in smtp_sink.messages if "lan@customers.example.com" in m.rcpt_tos]
        assert f"[{ticket['number']}]" in ack["Subject"]
        [row] = await inbound(client, ws)
        assert row["status"] == "processed" and row["ticket_id"] == ticket["id"] and row["source"] == "smtp"
        raw = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=ws.admin.headers)
        assert raw.headers["content-type"].startswith("message/rfc822") and b"order 5521" in raw.content
        assert raw.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert raw.headers["x-content-type-options"] == "nosniff"

    async def test_a_web_forms_mail_is_answered_at_its_reply_to(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """A contact form mails from its own noreply address with the visitor in Reply-To:
        the ticket is the visitor's, and so are the acknowledgement and the answers."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("Shop Forms <noreply@forms.shop.example>", to, "Contact form: wrong size",
                                   "Name: Maria Garcia\nMessage: I got the wrong size.",
                                   Reply_To="Maria Garcia <maria.garcia@customers.example.com>"), to)
        # A mailing list's Reply-To is the list: its posts stay the sender's.
        await send(listener, email("Tom <tom@customers.example.com>", to, "Shop news", "Hello",
                                   Reply_To="list@lists.example.com", List_Post="<mailto:list@lists.example.com>"), to)
        await settle()
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert sorted((c["name"], c["email"]) for c in customers) == [
            ("Maria Garcia", "maria.garcia@customers.example.com"), ("Tom", "tom@customers.example.com")]
        acks = [m for m in smtp_sink.messages if "Contact form" in message_from_bytes(m.raw)["Subject"]]
        assert [m.rcpt_tos for m in acks] == [["maria.garcia@customers.example.com"]]

    async def test_unknown_addresses_are_refused_at_rcpt(self, listener) -> None:  # noqa: ANN001
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await send(listener, email("a@b.example.com", "nobody@nowhere.example", "Hi", "Hi"),
                       "nobody@nowhere.example")

    async def test_role_addresses_at_the_mail_domain_are_refused_even_for_a_workspace_of_that_name(
            self, client, runtime, listener) -> None:  # noqa: ANN001
        """A workspace may hold such a slug from before they were reserved: the address is the
        deployment's all the same (RFC 2142), never that workspace's tickets."""
        ws = await make_workspace(client)
        async with runtime.transaction() as session:
            taken = await session.scalar(select(WorkspaceRow.id).where(WorkspaceRow.slug == "abuse"))
            if taken is None:
                row = await session.get(WorkspaceRow, uuid.UUID(ws.id))
                row.slug = "abuse"
        to = f"abuse@{runtime.settings.mail_domain}"
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await send(listener, email("a@b.example.com", to, "Hi", "Hi"), to)

    async def test_a_workspace_called_support_from_before_keeps_its_mail(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        """"support" is no longer given out, but is no operator's address: a merchant who
        had it before the list existed goes on receiving there."""
        ws = await make_workspace(client)
        async with runtime.transaction() as session:  # each test has a database of its own
            (await session.get(WorkspaceRow, uuid.UUID(ws.id))).slug = "support"
        to = f"support@{runtime.settings.mail_domain}"
        await send(listener, email("x@customers.example.com", to, "Still here", "Hello"), to)
        await settle()
        assert [t["subject"] for t in await tickets(client, ws)] == ["Still here"]

    async def test_a_workspace_mailbox_address_receives_too(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        own = f"help-{uuid.uuid4().hex[:6]}@acme.example.com"
        r = await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)
        assert r.status_code == 201, r.text
        assert "imap_password" not in r.json()
        await send(listener, email("x@customers.example.com", own, "Via our own address", "Hello"), own)
        await settle()
        assert [t["subject"] for t in await tickets(client, ws)] == ["Via our own address"]
        r = await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)
        assert r.status_code == 409

    async def test_a_customer_is_answered_from_the_address_they_wrote_to(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        tag = uuid.uuid4().hex[:6]
        support, sales = f"support-{tag}@acme.example.com", f"sales-{tag}@acme.example.com"
        for own in (support, sales):
            await ws.mailbox(own, sink=smtp_sink, settle=settle)
        await send(listener, email("Lan <lan@customers.example.com>", sales, "A quote for 40 jackets", "Hi"), sales)
        await settle()
        [ticket] = await tickets(client, ws)
        await ws.reply(agent, ticket["id"], "Here is your quote.")
        await settle()
        sent = [message_from_bytes(m.raw) for m in smtp_sink.messages if "lan@customers.example.com" in m.rcpt_tos]
        assert [m["Subject"].split(":")[0] for m in sent] == ["[T-000001] We received your request",
                                                             "[T-000001] New reply"]
        assert all(sales in m["From"] and support not in m["From"] for m in sent), [m["From"] for m in sent]

    async def test_a_support_address_on_an_internationalised_domain_receives_in_either_spelling(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """Mail servers hand the recipient over in the domain's ASCII form, and the answers
        go out from it in that form (a header cannot carry the Unicode one)."""
        ws = await make_workspace(client)
        local = f"hilfe-{uuid.uuid4().hex[:6]}"
        await ws.mailbox(f"{local}@bücher.example", sink=smtp_sink, settle=settle)
        for to in (f"{local}@xn--bcher-kva.example", f"{local.upper()}@XN--BCHER-KVA.example"):
            await send(listener, email("x@customers.example.com", to, f"Sent to {to}", "Hallo"), to)
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == sorted(
            [f"Sent to {local}@xn--bcher-kva.example", f"Sent to {local.upper()}@XN--BCHER-KVA.example"])
        acks = [message_from_bytes(m.raw) for m in smtp_sink.messages]
        assert len(acks) == 2 and {parseaddr(a["From"])[1] for a in acks} == {f"{local}@xn--bcher-kva.example"}

    async def test_a_team_member_who_writes_in_is_the_requester_and_keeps_their_sign_in(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        supervisor, agent = await ws.staff("supervisor"), await ws.staff()
        to = address(runtime, ws)
        await send(listener, email(f"Sam Supervisor <{supervisor.email}>", to, "My laptop will not boot",
                                   "It shows a blank screen."), to)
        await settle()
        [ticket] = await tickets(client, ws)
        profile = f"/api/v1/customers/{ticket['requester_id']}"
        assert (await client.get(profile, headers=ws.admin.headers)).json()["email"] == supervisor.email
        # Whoever manages customers cannot take over the team member's sign-in through the profile.
        r = await client.patch(profile, json={"password": "a password the admin chose"}, headers=ws.admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password", r.text
        r = await client.patch(profile, json={"name": "Renamed by an agent"}, headers=agent.headers)
        assert r.status_code == 200, r.text
        # Given another address, the profile is someone else: what comes from there is not the team member's.
        r = await client.patch(profile, json={"email": "sam.home@customers.example.com"}, headers=agent.headers)
        assert r.status_code == 200, r.text
        await send(listener, email("sam.home@customers.example.com", to, f"Re: [{ticket['number']}] My laptop",
                                   "Still blank."), to)
        await settle()
        [still_blank] = [m for m in await thread(client, ws, ticket["id"]) if m["body_text"] == "Still blank."]
        assert still_blank["author_kind"] == "customer" and still_blank["author_id"] != supervisor.id
        assert (await client.delete(profile, headers=ws.admin.headers)).status_code == 204
        me = await client.get("/api/v1/me", headers={
            "Authorization": f"Bearer {(await ws.login(supervisor.email))['access_token']}"})
        assert me.json()["role"] == "supervisor" and me.json()["name"] != "Renamed by an agent", me.text

    @pytest.mark.parametrize(("html", "text", "shown"), [
        # Sanitised HTML without a tag left must not be taken for plain text and escaped twice.
        ("<html><body>Tom &amp; Jerry &lt;3</body></html>", "Tom & Jerry <3", "<p>Tom &amp; Jerry &lt;3</p>"),
        # Markup with nothing in it still makes a ticket, which says so.
        ("<html><body><div><br></div><script>x()</script></body></html>", "(This email had no text.)", None),
    ])
    async def test_html_only_mail_shows_what_it_says(self, client, runtime, settle, listener, html: str, text: str,
                                                     shown: str | None) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "tom@customers.example.com", to, "Cartoons"
        message.set_content(html, subtype="html")
        await send(listener, bytes(message), to)
        await settle()
        [ticket] = await tickets(client, ws)
        [first] = await thread(client, ws, ticket["id"])
        assert first["body_text"] == text
        if shown is not None:
            assert first["body_html"] == shown

    async def test_a_customer_on_an_internationalised_domain_replies_into_their_ticket(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("Ulla <ulla@xn--bcher-kva.example>", to, "Wrong edition", "I got the 2nd."), to)
        await settle()
        [ticket] = await tickets(client, ws)
        # The acknowledgement is addressed so that a mail server can deliver it.
        [ack] = smtp_sink.messages
        assert ack.rcpt_tos == ["ulla@xn--bcher-kva.example"]
        assert message_from_bytes(ack.raw)["To"] == "ulla@xn--bcher-kva.example"
        await send(listener, email("Ulla <Ulla@XN--BCHER-KVA.example>", to, f"Re: [{ticket['number']}] Wrong edition",
                                   "It should be the 3rd."), to)
        await settle()
        assert [t["id"] for t in await tickets(client, ws)] == [ticket["id"]]
        texts = [m["body_text"] for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "customer"]
        assert texts == ["I got the 2nd.", "It should be the 3rd."]
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert [c["email"] for c in customers] == ["ulla@bücher.example"]
        # New mail (no token) from the same person is theirs too, not a second profile.
        await send(listener, email("ulla@xn--bcher-kva.example", to, "Another thing", "And a bookmark."), to)
        await settle()
        assert {t["requester_id"] for t in await tickets(client, ws)} == {ticket["requester_id"]}

    async def test_a_deleted_customer_who_writes_in_again_is_restored(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        gone = await ws.customer(login=False)
        first = await ws.ticket(ws.admin, requester_id=gone.customer_id)
        assert (await client.delete(f"/api/v1/customers/{gone.customer_id}", headers=ws.admin.headers)).status_code \
            == 204
        to = address(runtime, ws)
        await send(listener, email(gone.email, to, "Me again", "Hello, I am back."), to)
        await settle()
        [new] = [t for t in await tickets(client, ws) if t["id"] != first["id"]]
        assert new["requester_id"] == gone.customer_id
        r = await client.get(f"/api/v1/customers/{gone.customer_id}", headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["email"] == gone.email

    async def test_attachments_left_out_are_named_to_the_agents(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "kim@customers.example.com", to, "Logs attached"
        message.set_content("Everything is attached.")
        message.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application", subtype="pdf", filename="invoice.pdf")
        message.add_attachment(b"MZ\x90\x00binary", maintype="application", subtype="x-msdownload",
                               filename="setup.exe")
        for i in range(21):
            message.add_attachment(f"line {i}\n".encode(), maintype="text", subtype="plain", filename=f"log{i:02}.txt")
        await send(listener, bytes(message), to)
        await settle()
        [ticket] = await tickets(client, ws)
        [first, note] = await thread(client, ws, ticket["id"])
        assert len(first["attachments"]) == 20 and first["attachments"][0]["filename"] == "invoice.pdf"
        assert note["author_kind"] == "system" and note["internal"] is True
        assert "setup.exe (Files of type .exe are not accepted; allowed: " in note["body_text"]
        assert "log18.txt" not in note["body_text"]  # the 20th kept
        assert "log19.txt (more than 20 attachments); log20.txt (more than 20 attachments)" in note["body_text"]
        [row] = await inbound(client, ws)
        assert f"/api/v1/inbound-emails/{row['id']}/raw" in note["body_text"]
        assert "invoice.pdf" not in note["body_text"]

    async def test_logs_and_exports_attached_to_an_email_are_kept(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "kim@customers.example.com", to, "Export attached"
        message.set_content("The export and the HAR from the browser.")
        message.add_attachment(b'{"a":1}', maintype="application", subtype="json", filename="data.json")
        message.add_attachment(b'{"log": {"entries": []}}', maintype="application", subtype="octet-stream",
                               filename="checkout.har")
        await send(listener, bytes(message), to)
        await settle()
        [ticket] = await tickets(client, ws)
        [first] = await thread(client, ws, ticket["id"])  # nothing left out, so no note
        assert [(a["filename"], a["content_type"]) for a in first["attachments"]] == [
            ("data.json", "application/json"), ("checkout.har", "application/json")]
        got = await client.get(first["attachments"][0]["download_url"], headers=ws.admin.headers)
        assert got.status_code == 200 and got.content == b'{"a":1}'

    async def test_an_attachment_without_a_name_is_named_after_its_type(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        """Scripts and some phones send a part with a type but no filename: an allowed type
        is kept under a name that says what it is, not refused as an unknown ".bin"."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "kim@customers.example.com", to, "Order export"
        message.set_content("The export from our shop system.")
        unnamed = ((b'{"order": 8812}', "application", "json"), (b"order,qty\n8812,2\n", "text", "csv"),
                   (png_1x1(), "image", "png"))
        for data, maintype, subtype in unnamed:
            message.add_attachment(data, maintype=maintype, subtype=subtype)  # Content-Disposition: attachment
        await send(listener, bytes(message), to)
        await settle()
        [ticket] = await tickets(client, ws)
        messages = await thread(client, ws, ticket["id"])
        assert [m["author_kind"] for m in messages] == ["customer"], messages  # nothing left out, so no note
        first = messages[0]
        assert [(a["filename"], a["content_type"]) for a in first["attachments"]] == [
            ("attachment-1.json", "application/json"), ("attachment-2.csv", "text/csv"),
            ("attachment-3.png", "image/png")]
        got = await client.get(first["attachments"][0]["download_url"], headers=ws.admin.headers)
        assert got.status_code == 200 and got.content == b'{"order": 8812}'

    async def test_a_body_too_long_for_the_thread_is_cut_cleanly_and_the_agents_are_told(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        """A log pasted into an email: the thread keeps its first 100,000 characters, ends
        on whole words (no half an entity or tag shown as text), and an internal note says
        the rest is in the original."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        lines = ["Exported from monitoring, all hosts:", *(f"Line {i:06}: disk & memory OK" for i in range(1, 6000))]
        body = "\n".join(lines)[:150_000]
        await send(listener, email("ops@customers.example.com", to, "Monitoring log", body), to)
        await settle()
        [ticket] = await tickets(client, ws)
        # Written at the same moment: told apart by author, not by order.
        [first] = [m for m in await thread(client, ws, ticket["id"]) if m["author_kind"] != "system"]
        [note] = [m for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "system" and
                  "/inbound-emails/" in m["body_text"]]
        shown = first["body_text"].splitlines()
        assert shown[0] == lines[0] and 2000 < len(shown) < 4000
        for i, line in enumerate(shown):
            assert lines[i].startswith(line), (i, line)
        assert "&lt;" not in first["body_html"]
        assert note["internal"] is True and "longer than 100,000 characters" in note["body_text"], note["body_text"]
        [row] = await inbound(client, ws)
        assert f"/api/v1/inbound-emails/{row['id']}/raw" in note["body_text"]
        raw = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=ws.admin.headers)
        assert body.rsplit("\n", 1)[-1].encode() in raw.content and b"Line 004500: disk & memory OK" in raw.content

    async def test_an_agent_forwarding_a_customers_email_opens_the_ticket_for_the_customer(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """Mail that reached an agent directly is forwarded to support: the ticket is the
        customer's (the forwarded email's From), not the agent's. Anyone else's forward,
        or an agent handing on a colleague's email, stays the sender's own."""
        ws = await make_workspace(client)
        agent, colleague = await ws.staff(), await ws.staff()
        to = address(runtime, ws)
        forward = (CORPUS / "apple_mail_forward.eml").read_bytes().replace(b"tom@partner.example", agent.email.encode())
        await send(listener, forward, to)
        await send(listener, (CORPUS / "gmail_forward_chain.eml").read_bytes(), to)  # from a partner, not staff
        handed_on = email(agent.email, to, "Fwd: Rota", "For the queue.\n\n---------- Forwarded message ---------\n"
                          f"From: Colleague <{colleague.email}>\nSubject: Rota\n\nWho covers Friday?")
        await send(listener, handed_on, to)
        await settle()
        by_subject = {t["subject"]: t for t in await tickets(client, ws)}
        customers = {c["id"]: c for c in (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]}
        licence = by_subject["Lizenz läuft ab"]
        assert (customers[licence["requester_id"]]["name"], customers[licence["requester_id"]]["email"]) == \
            ("Hannah Weber", "h.weber@example.de")
        messages = await thread(client, ws, licence["id"])
        [first] = [m for m in messages if m["author_kind"] == "customer"]
        assert "meine Lizenz" in first["body_text"]
        [note] = [n for n in messages if "Forwarded by" in n["body_text"]]
        assert note["internal"] is True and agent.email in note["body_text"]
        assert ["h.weber@example.de"] in [m.rcpt_tos for m in smtp_sink.messages]  # acknowledged to the customer
        # A partner's forward is their own request, kept whole under their subject.
        outage = by_subject["Fwd: Fwd: Outage report"]
        assert customers[outage["requester_id"]]["email"] == "priya@partner.example"
        [first] = [m for m in await thread(client, ws, outage["id"]) if m["author_kind"] == "customer"]
        assert first["body_text"].startswith("Forwarding the thread below") and "From: Ops Team" in first["body_text"]
        assert customers[by_subject["Fwd: Rota"]["requester_id"]]["email"] == agent.email

    async def test_a_forwarded_ticket_shows_the_customer_their_own_email_and_colleagues_the_agents_words(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """What an agent writes above a forward is meant for colleagues; the customer's ticket
        (their portal, the acknowledgement) opens with the email they wrote, under its own
        subject, without the forward's header lines."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        apple = (CORPUS / "apple_mail_forward.eml").read_bytes().replace(b"tom@partner.example", agent.email.encode())
        gmail = email(agent.email, to, "Fwd: Refund for order 2002",
                      "Customer wrote to me directly, please handle.\n\n---------- Forwarded message ---------\n"
                      "From: Maria Garcia <maria@customers.example.com>\nDate: Fri, Dec 4, 2026 at 9:12 AM\n"
                      f"Subject: Refund for order 2002\nTo: <{agent.email}>\n\n\n"
                      "Where is my refund for order 2002? It has been three weeks.\n\nMaria")
        html_only = EmailMessage()
        html_only["From"], html_only["To"], html_only["Subject"] = agent.email, to, "FW: Broken hinge"
        html_only.set_content(
            '<div dir="ltr">Ken is a VIP, be quick.<br><br><div class="gmail_quote"><div class="gmail_attr">'
            "---------- Forwarded message ---------<br>From: <strong>Ken Ito</strong> &lt;ken@customers.example.com"
            "&gt;<br>Date: Fri, Dec 4, 2026 at 9:12 AM<br>Subject: Broken hinge<br></div><br><br>"
            "<div>The lid hinge snapped after two days &amp; <b>I want a replacement</b>.</div></div></div>",
            subtype="html")
        for raw in (apple, gmail, bytes(html_only)):
            await send(listener, raw, to)
        await settle()
        by_subject = {t["subject"]: t for t in await tickets(client, ws)}
        expected = {  # subject: (the customer, their words, the agent's words)
            "Lizenz läuft ab": ("h.weber@example.de", "meine Lizenz läuft morgen ab",
                                "Can you help this customer? She wrote to me directly."),
            "Refund for order 2002": ("maria@customers.example.com", "Where is my refund for order 2002?",
                                      "Customer wrote to me directly, please handle."),
            "Broken hinge": ("ken@customers.example.com", "The lid hinge snapped after two days & I want a replacement",
                             "Ken is a VIP, be quick."),
        }
        assert set(by_subject) == set(expected)
        for subject, (customer, theirs, agents) in expected.items():
            messages = await thread(client, ws, by_subject[subject]["id"])
            [first] = [m for m in messages if m["author_kind"] == "customer"]
            assert first["internal"] is False and theirs in first["body_text"], subject
            for leaked in (agents, "From:", "Date:", "Forwarded message", "Begin forwarded message"):
                assert leaked not in first["body_text"] and leaked not in first["body_html"], (subject, leaked)
            assert first["body_html"].startswith("<p>") and "<script" not in first["body_html"]
            [note] = [m for m in messages if "Forwarded by" in m["body_text"]]
            assert note["internal"] is True and agents in note["body_text"], subject
            [ack] = [m for m in smtp_sink.messages if m.rcpt_tos == [customer]]
            said = "".join(part.get_content() for part in ack.message.walk() if part.get_content_maintype() == "text")
            assert agents not in said and "Fwd:" not in ack["Subject"] and "FW:" not in ack["Subject"], subject
            assert subject in ack["Subject"]

    async def test_a_phone_photo_and_a_forwarded_email_are_kept_as_attachments(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, from_corpus(CORPUS / "attached_rfc822.eml", ws), to)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "kim@customers.example.com", to, "Photo of the damage"
        message.set_content("Taken just now.")
        message.add_attachment(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), maintype="image",
                               subtype="heic", filename="IMG_4821.HEIC")
        await send(listener, bytes(message), to)
        await settle()
        kept = {}
        for ticket in await tickets(client, ws):
            first, *notes = await thread(client, ws, ticket["id"])
            kept.update({a["filename"]: a["content_type"] for a in first["attachments"]})
            assert not any("Not attached" in m["body_text"] for m in notes), ticket["subject"]
        assert kept == {"Damaged parcel on arrival.eml": "message/rfc822", "IMG_4821.HEIC": "image/heic"}

    async def test_an_inline_image_shows_in_the_thread(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, (CORPUS / "nested_related_inline_image.eml").read_bytes(), to)
        await settle()
        [ticket] = await tickets(client, ws)
        first, *_system_notes = await thread(client, ws, ticket["id"])  # routing's
        [image] = [a for a in first["attachments"] if a["filename"] == "image001.png"]
        assert f'src="/api/v1/attachments/{image["id"]}"' in first["body_html"] and "cid:" not in first["body_html"]
        r = await client.get(f"/api/v1/attachments/{image['id']}", headers=ws.admin.headers)
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")

    async def test_mail_from_the_workspaces_own_support_address_is_ignored(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        own = f"support-{uuid.uuid4().hex[:6]}@merchant.example"
        await ws.mailbox(own, sink=smtp_sink, settle=settle)
        to = address(runtime, ws)
        await send(listener, email(f"Merchant Support <{own.upper()}>", to, "Test from our mailbox", "Hello?"), to)
        await settle()
        assert await tickets(client, ws) == []
        assert smtp_sink.messages == []
        [row] = await inbound(client, ws)
        assert row["status"] == "ignored" and "own support address" in row["reason"]
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert customers == []


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` and its key, as PEM files in ``directory``."""
    cert, key = directory / "listener-cert.pem", directory / "listener-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
async def tls_listener(runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[SmtpListener, Path]]:
    """The listener given a certificate, as an operator on port 25 does: (it, the certificate)."""
    cert, key = self_signed_certificate(tmp_path, runtime.settings.mail_domain)
    monkeypatch.setattr(runtime.settings, "smtp_listen_tls_cert", cert)
    monkeypatch.setattr(runtime.settings, "smtp_listen_tls_key", key)
    monkeypatch.setattr(runtime, "mailer", SmtpMailer("127.0.0.1", smtp_sink.port, timeout=5))
    async with SmtpListener(runtime, "127.0.0.1", 0) as smtp:
        yield smtp, cert


async def ehlo(port: int) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False, timeout=10)
    await client.connect()
    await client.ehlo()
    return client


class TestListenerTls:
    async def test_a_sending_server_switches_to_tls_and_its_mail_becomes_a_ticket(
            self, client, runtime, settle, tls_listener, smtp_sink) -> None:  # noqa: ANN001
        listener, cert = tls_listener
        ws = await make_workspace(client)
        to = address(runtime, ws)
        sender = await ehlo(listener.port)
        assert sender.supports_extension("starttls")
        await sender.starttls(tls_context=ssl.create_default_context(cafile=str(cert)),
                              server_hostname=runtime.settings.mail_domain)
        assert sender.get_transport_info("sslcontext") is not None
        await sender.sendmail("lan@customers.example.com", [to],
                              email("Lan <lan@customers.example.com>", to, "Sent over TLS", "Private details."))
        await sender.quit()
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Sent over TLS"

    async def test_plain_mail_is_still_taken_unless_tls_is_required(
            self, client, runtime, settle, tls_listener, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
        listener, _cert = tls_listener
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("lan@customers.example.com", to, "Plain", "Hi"), to)
        await settle()
        assert [t["subject"] for t in await tickets(client, ws)] == ["Plain"]
        monkeypatch.setattr(runtime.settings, "smtp_listen_require_tls", True)
        async with SmtpListener(runtime, "127.0.0.1", 0) as strict:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await send(strict, email("lan@customers.example.com", to, "Plain again", "Hi"), to)
        assert refused.value.code == 530 and "STARTTLS" in refused.value.message

    async def test_without_a_certificate_starttls_is_not_offered(self, listener) -> None:  # noqa: ANN001
        sender = await ehlo(listener.port)
        assert not sender.supports_extension("starttls")
        await sender.quit()


class TestOwnership:
    @pytest.fixture(autouse=True)
    def real_mail_domain(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        """Email validation refuses the default ``.localhost`` domain before anything else
        could: a real deployment's domain passes it."""
        monkeypatch.setattr(runtime.settings, "mail_domain", "help.relaydesk-test.example")

    async def test_no_workspace_can_take_another_ones_built_in_address(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        victim, attacker = await make_workspace(client), await make_workspace(client)
        to = address(runtime, victim)
        domain = runtime.settings.mail_domain
        for taken in (to, to.upper(), f"anything@{domain}", f"help@eu.{domain}"):
            r = await client.post("/api/v1/mailboxes", json={"address": taken}, headers=attacker.admin.headers)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "address", (taken, r.text)
        own = await client.post("/api/v1/mailboxes", json={"address": f"help-{uuid.uuid4().hex[:6]}@acme.example.com"},
                                headers=attacker.admin.headers)
        r = await client.patch(f"/api/v1/mailboxes/{own.json()['id']}", json={"address": to},
                               headers=attacker.admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "address", r.text
        assert [m["address"] for m in (await client.get("/api/v1/mailboxes", headers=attacker.admin.headers)).json()] \
            == [own.json()["address"]]

    async def test_a_mailbox_saved_at_the_mail_domain_earlier_diverts_nothing(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        victim, attacker = await make_workspace(client), await make_workspace(client)
        to = address(runtime, victim)
        async with runtime.transaction() as session:  # as a deployment may still hold one
            session.add(Mailbox(workspace_id=uuid.UUID(attacker.id), address=to, created_at=runtime.clock.now()))
        await send(listener, email("lan@customers.example.com", to, "For the real owner", "Hello"), to)
        await settle()
        assert [t["subject"] for t in await tickets(client, victim)] == ["For the real owner"]
        assert await tickets(client, attacker) == []
        attackers_ticket = await attacker.ticket(attacker.admin, subject="Sent from where?")
        await settle()
        smtp_sink.clear()
        r = await client.post(f"/api/v1/tickets/{attackers_ticket['id']}/messages", headers=attacker.admin.headers,
                              json={"body": "Which address is this from?"})
        assert r.status_code == 201, r.text
        await settle()
        senders = {parseaddr(message_from_bytes(m.raw)["From"])[1] for m in smtp_sink.messages}
        assert senders == {address(runtime, attacker)}


class TestVerification:
    """A support address is only sent from once the workspace has shown that mail to it
    reaches the workspace: the verification email Relaydesk sends to it comes back in, or
    an admin types the code it carries. Until then any workspace may claim it too."""

    async def test_a_new_mailbox_is_sent_from_only_once_verified_by_its_code(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        own = f"support-{uuid.uuid4().hex[:6]}@acme.example.com"
        r = await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)
        assert r.status_code == 201, r.text
        box = r.json()
        assert box["verified"] is False and box["verified_at"] is None
        await settle()
        [sent] = smtp_sink.messages
        code = sent["X-Relaydesk-Verification"]
        assert sent.rcpt_tos == [own] and parseaddr(sent["From"])[1] == address(runtime, ws)
        body = sent.message.get_body(("plain",)).get_content()
        assert code in body and address(runtime, ws) in body, body
        smtp_sink.clear()

        await send(listener, email("Lan <lan@customers.example.com>", own, "Where is my order?", "Hi"), own)
        await settle()
        [ticket] = await tickets(client, ws)
        await ws.reply(agent, ticket["id"], "On its way.")
        await settle()
        unverified = {parseaddr(m["From"])[1] for m in smtp_sink.messages}
        assert unverified == {address(runtime, ws)}, unverified  # never From an address it may not own

        r = await client.post(f"/api/v1/mailboxes/{box['id']}/verify", json={"code": code}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["verified"] is True and r.json()["verified_at"], r.text
        smtp_sink.clear()
        await ws.reply(agent, ticket["id"], "It arrives tomorrow.")
        await settle()
        assert {parseaddr(m["From"])[1] for m in smtp_sink.messages} == {own}

    async def test_a_wrong_or_old_code_is_refused_and_a_new_email_waits_a_minute(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        own = f"support-{uuid.uuid4().hex[:6]}@acme.example.com"
        box = (await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)).json()
        await settle()
        first = smtp_sink.messages[-1]["X-Relaydesk-Verification"]
        verify, again = f"/api/v1/mailboxes/{box['id']}/verify", f"/api/v1/mailboxes/{box['id']}/send-verification"
        r = await client.post(verify, json={"code": first + "x"}, headers=ws.admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code", r.text
        r = await client.post(again, headers=ws.admin.headers)
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json", r.text
        assert 0 < int(r.headers["Retry-After"]) <= 60
        clock.advance(timedelta(seconds=61))
        r = await client.post(again, headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        await settle()
        second = smtp_sink.messages[-1]["X-Relaydesk-Verification"]
        assert len(smtp_sink.messages) == 2 and second != first
        r = await client.post(verify, json={"code": first}, headers=ws.admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code", r.text
        [listed] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert listed["verified"] is False
        r = await client.post(verify, json={"code": second}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["verified"] is True, r.text
        r = await client.post(again, headers=ws.admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "already_verified", r.text

    async def test_a_verification_email_the_relay_refuses_is_shown_on_the_mailbox(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        own = f"nobody-{uuid.uuid4().hex[:6]}@acme.example.com"
        smtp_sink.rejected_recipients.add(own)
        await ws.mailbox(own)
        await settle()
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert box["verified"] is False and box["last_error"].startswith("The verification email could not be sent")
        assert "550" in box["last_error"] and smtp_sink.messages == []
        # The relay fixed, the admin asks again at once: nothing went out, so no minute to wait.
        smtp_sink.rejected_recipients.discard(own)
        r = await client.post(f"/api/v1/mailboxes/{box['id']}/send-verification", headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        await settle()
        assert verification_email(smtp_sink, own)["X-Relaydesk-Verification"]

    async def test_the_verification_email_forwarded_to_the_workspaces_own_address_verifies_it(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """The address's mail forwarded to the workspace's built-in address, as the email
        asks: nothing to type."""
        ws = await make_workspace(client)
        own = f"support-{uuid.uuid4().hex[:6]}@acme.example.com"
        box = (await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)).json()
        await settle()
        [sent] = smtp_sink.messages
        await send(listener, sent.raw, address(runtime, ws), sender=sent.mail_from)
        await settle()
        [listed] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert listed["id"] == box["id"] and listed["verified"] is True
        [row] = await inbound(client, ws)
        assert row["status"] == "ignored" and row["reason"].startswith("Mailbox verification"), row
        assert await tickets(client, ws) == []
        assert smtp_sink.messages == [sent]  # nothing acknowledged

    async def test_a_squatters_verification_email_sent_straight_to_the_address_verifies_nothing(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """The owner points the address's mail at the listener, where it goes to the
        earliest claimant: a squatter who claimed first gets its own verification email
        back. That proves nothing, and the code in it is withheld and no longer counts."""
        squatter, owner = await make_workspace(client), await make_workspace(client)
        shared = f"billing-{uuid.uuid4().hex[:6]}@acmeshop.example"
        theirs = (await client.post("/api/v1/mailboxes", json={"address": shared},
                                    headers=squatter.admin.headers)).json()
        await settle()
        sent = verification_email(smtp_sink, shared)
        code = sent["X-Relaydesk-Verification"]
        assert (await client.post("/api/v1/mailboxes", json={"address": shared},
                                  headers=owner.admin.headers)).status_code == 201
        await settle()
        await send(listener, sent.raw, shared, sender=sent.mail_from)
        await settle()
        [box] = (await client.get("/api/v1/mailboxes", headers=squatter.admin.headers)).json()
        assert box["id"] == theirs["id"] and box["verified"] is False
        [row] = await inbound(client, squatter)
        assert row["status"] == "ignored" and "verifies nothing" in row["reason"], row
        raw = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=squatter.admin.headers)
        assert raw.status_code == 200 and code.encode() not in raw.content
        r = await client.post(f"/api/v1/mailboxes/{theirs['id']}/verify", json={"code": code},
                              headers=squatter.admin.headers)
        assert r.status_code == 422, r.text
        assert [b["address"] for b in (await client.get("/api/v1/mailboxes", headers=owner.admin.headers)).json()] \
            == [shared]

    async def test_the_verification_email_polled_from_the_imap_mailbox_verifies_it(
            self, client, runtime, settle, listener, smtp_sink, imap_server: ImapServer) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        poll = await connected_mailbox(client, runtime, ws, imap_server, user, password)
        await settle()
        imap_server.deliver(user, verification_email(smtp_sink, user).raw)  # as the relay would have
        assert await poll() == 1
        await settle()
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert box["verified"] is True
        [row] = await inbound(client, ws)
        assert row["source"] == "imap" and row["status"] == "ignored", row
        assert row["reason"].startswith("Mailbox verification")

    async def test_a_second_workspace_may_claim_an_unverified_address_and_keeps_it_once_verified(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        squatter, owner = await make_workspace(client), await make_workspace(client)
        shared = f"support-{uuid.uuid4().hex[:6]}@bigshop.example"
        assert (await client.post("/api/v1/mailboxes", json={"address": shared},
                                  headers=squatter.admin.headers)).status_code == 201
        await send(listener, email("lan@customers.example.com", shared, "Before", "Hi"), shared)
        await settle()
        assert [t["subject"] for t in await tickets(client, squatter)] == ["Before"]  # the earliest claim, as before
        r = await client.post("/api/v1/mailboxes", json={"address": shared}, headers=owner.admin.headers)
        assert r.status_code == 201, r.text
        await settle()
        # The owner forwards the address to its workspace's own one; the email is
        # recognised by its code although the address's mail still goes to the squatter.
        sent = verification_email(smtp_sink, shared)
        await send(listener, sent.raw, address(runtime, owner), sender=sent.mail_from)
        await settle()
        [box] = (await client.get("/api/v1/mailboxes", headers=owner.admin.headers)).json()
        assert box["address"] == shared and box["verified"] is True
        assert (await client.get("/api/v1/mailboxes", headers=squatter.admin.headers)).json() == []
        await send(listener, email("lan@customers.example.com", shared, "After", "Hi"), shared)
        await settle()
        assert [t["subject"] for t in await tickets(client, owner)] == ["After"]
        assert [t["subject"] for t in await tickets(client, squatter)] == ["Before"]
        r = await client.post("/api/v1/mailboxes", json={"address": shared}, headers=squatter.admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "address_taken", r.text
        assert r.json()["errors"][0]["field"] == "address"

    async def test_a_workspace_whose_claim_is_removed_is_told_but_not_by_whom(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """Its admins find the address gone from their mailboxes: each is told, in the app
        and by email in their language, which address and why, and what they can do, but
        not which workspace verified it (that is the other workspace's business)."""
        claimant = await make_workspace(client)
        owner = await make_workspace(client, name=f"Bigshop Official {uuid.uuid4().hex[:6]}")
        other_admin = await claimant.staff("admin", languages=["vi"])
        shared = f"support-{uuid.uuid4().hex[:6]}@bigshop.example"
        assert (await client.post("/api/v1/mailboxes", json={"address": shared},
                                  headers=claimant.admin.headers)).status_code == 201
        await settle()
        await owner.mailbox(shared, sink=smtp_sink, settle=settle)
        await settle()
        assert (await client.get("/api/v1/mailboxes", headers=claimant.admin.headers)).json() == []
        told = {m.rcpt_tos[0]: m for m in smtp_sink.messages if not m["X-Relaydesk-Verification"]}
        assert set(told) == {claimant.admin.email, other_admin.email}  # the owner's admin is not told
        english = told[claimant.admin.email].message.get_body(("plain",)).get_content()
        vietnamese = told[other_admin.email].message.get_body(("plain",)).get_content()
        assert shared in told[claimant.admin.email]["Subject"] and shared in english
        assert "another workspace verified" in english and "verify" in english and "support" in english
        assert shared in vietnamese and "xác minh" in vietnamese
        for email_told in told.values():
            assert owner.slug not in email_told.raw.decode() and "Bigshop Official" not in email_told.raw.decode()
        for admin in (claimant.admin, other_admin):
            notes = (await client.get("/api/v1/notifications", headers=admin.headers)).json()["items"]
            [note] = [n for n in notes if n["kind"] == "mailbox_claim_removed"]
            assert shared in note["title"] + note["body"] and owner.slug not in str(note)
        logged = (await client.get("/api/v1/notifications/deliveries", params={"kind": "mailbox_claim_removed"},
                                   headers=claimant.admin.headers)).json()["items"]
        assert sorted((d["recipient"], d["status"]) for d in logged) == sorted(
            [(claimant.admin.email, "sent"), (other_admin.email, "sent")])
        assert (await client.get("/api/v1/notifications", headers=owner.admin.headers)).json()["items"] == []
        async with runtime.db.read_session() as s:
            events = (await s.scalars(select(OutboxEvent).where(OutboxEvent.type == "mailbox.claim_removed"))).all()
        [event] = [e for e in events if e.payload["address"] == shared]
        assert str(event.workspace_id) == claimant.id and set(event.payload) == {"address", "at"}

    async def test_mail_to_the_address_reaching_another_claimant_verifies_nobody(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """The address's mail comes to Relaydesk and goes to the workspace that claimed it
        first. Another claimant's verification email arriving there only proves that the
        mail reaches Relaydesk, not that the other claimant is the address's owner."""
        owner, attacker = await make_workspace(client), await make_workspace(client)
        shared = f"support-{uuid.uuid4().hex[:6]}@bigshop.example"
        await owner.mailbox(shared)  # unverified, as every mailbox is after the upgrade
        await settle()
        smtp_sink.clear()
        theirs = (await client.post("/api/v1/mailboxes", json={"address": shared},
                                    headers=attacker.admin.headers)).json()
        await settle()
        sent = verification_email(smtp_sink, shared)
        await send(listener, sent.raw, shared, sender=sent.mail_from)
        await settle()
        [box] = (await client.get("/api/v1/mailboxes", headers=attacker.admin.headers)).json()
        assert box["id"] == theirs["id"] and box["verified"] is False
        [row] = await inbound(client, owner)
        assert row["status"] == "ignored" and "verifies nothing" in row["reason"], row
        raw = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=owner.admin.headers)
        assert sent["X-Relaydesk-Verification"].encode() not in raw.content
        assert await inbound(client, attacker) == []  # the code never reaches the attacker
        assert await tickets(client, owner) == [] and await tickets(client, attacker) == []
        assert [b["address"] for b in (await client.get("/api/v1/mailboxes", headers=owner.admin.headers)).json()] \
            == [shared]


class TestCopies:
    async def test_a_message_delivered_again_is_kept_but_makes_no_second_ticket_nor_answer(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        own = f"help-{uuid.uuid4().hex[:6]}@acme.example.com"
        r = await client.post("/api/v1/mailboxes", json={"address": own}, headers=ws.admin.headers)
        assert r.status_code == 201, r.text
        raw = email("lan@customers.example.com", to, "Order 77", "Where is it?", Message_ID="<dup-1@example.com>")
        # One envelope to two addresses of the workspace is one message; then the sender
        # retries twice (its 250s got lost), once before and once after we processed it.
        await smtp_send("127.0.0.1", listener.port, raw, "lan@customers.example.com", [to, own])
        await send(listener, raw, to)
        await settle()
        await send(listener, raw, to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert [m["body_text"] for m in await thread(client, ws, ticket["id"])] == ["Where is it?"]
        assert len([m for m in smtp_sink.messages if "lan@customers.example.com" in m.rcpt_tos]) == 1
        rows = await inbound(client, ws)
        assert sorted(r["status"] for r in rows) == ["ignored", "ignored", "processed"]
        for row in rows:
            if row["status"] == "ignored":
                assert row["reason"] == "A copy of an email already received (same Message-ID)."
                kept = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=ws.admin.headers)
                assert b"Where is it?" in kept.content
        # A reply delivered twice is one reply.
        reply = email("lan@customers.example.com", to, f"Re: [{ticket['number']}] Order 77", "Any news?")
        await send(listener, reply, to)
        await send(listener, reply, to)
        await settle()
        assert [m["body_text"] for m in await thread(client, ws, ticket["id"])] == ["Where is it?", "Any news?"]

    async def test_a_folded_message_id_still_recognises_the_copy(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """A long id goes on the line after its header name, as Outlook's do and as
        Python's email package folds them."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        long_id = f"<AM9PR07MB{uuid.uuid4().hex}{uuid.uuid4().hex}@AM9PR07MB7890.eurprd07.prod.outlook.com>"
        raw = email("lan@customers.example.com", to, "Folded", "Hello", Message_ID="<x>")
        raw = raw.replace(b"Message-ID: <x>", b"Message-ID:\r\n " + long_id.encode())
        for _ in "ab":
            await send(listener, raw, to)
        await settle()
        assert len(await tickets(client, ws)) == 1
        assert len([m for m in smtp_sink.messages if "lan@customers.example.com" in m.rcpt_tos]) == 1
        rows = await inbound(client, ws)
        assert sorted(r["status"] for r in rows) == ["ignored", "processed"]
        assert {r["header_message_id"] for r in rows} == {long_id.strip("<>")}

    async def test_two_copies_processed_at_once_make_one_ticket(self, client, runtime, settle, smtp_sink,
                                                               listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        # A customer with a login: for a new sender both copies would race to create it, and
        # the loser would start again after the winner committed, never really at once.
        mai = await ws.customer()
        raw = email(mai.email, to, "Twice at once", "Hello", Message_ID="<dup-2@example.com>")
        async with runtime.transaction() as session:
            service = inbound_service(runtime, session)
            copies = [service.receive(uuid.UUID(ws.id), raw, source="smtp", now=runtime.clock.now()) for _ in "ab"]
            ids = [row.id for row in copies]
        assert sorted(await asyncio.gather(*(process_email(runtime, i) for i in ids))) == ["ignored", "processed"]
        await settle()
        assert len(await tickets(client, ws)) == 1
        assert len([m for m in smtp_sink.messages if mai.email in m.rcpt_tos]) == 1

    async def test_a_copy_that_was_quarantined_does_not_hold_back_the_next_one(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        broken = b"To: " + to.encode() + b"\r\nSubject: Lost\r\nMessage-ID: <dup-3@example.com>\r\n\r\nNo sender.\r\n"
        await send(listener, broken, to, sender="")  # MAIL FROM:<>: no sender anywhere
        await settle()
        [quarantined] = await inbound(client, ws, status="quarantined")
        r = await client.post(f"/api/v1/inbound-emails/{quarantined['id']}/discard", headers=ws.admin.headers)
        assert r.status_code == 200
        await send(listener, email("kim@customers.example.com", to, "Found", "Hi", Message_ID="<dup-3@example.com>"),
                   to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Found"
        # Retried now, the broken copy is a copy of what became a ticket.
        r = await client.post(f"/api/v1/inbound-emails/{quarantined['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        [row] = [r for r in await inbound(client, ws) if r["id"] == quarantined["id"]]
        assert row["status"] == "ignored" and "same Message-ID" in row["reason"]
        assert len(await tickets(client, ws)) == 1


class TestReplies:
    async def test_a_customers_odd_message_id_does_not_break_the_threading_of_our_answers(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await ws.staff()
        to = address(runtime, ws)
        raw = email("lan@customers.example.com", to, "Question", "Hello", Message_ID="<x>")
        raw = raw.replace(b"Message-ID: <x>", "Message-ID: <тест.123@example.com>".encode())
        await send(listener, raw, to)
        await settle()
        [ticket] = await tickets(client, ws)
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers,
                              json={"body": "Here is the answer."})
        assert r.status_code == 201, r.text
        await settle()
        answer = message_from_bytes(smtp_sink.messages[-1].raw)
        assert "Here is the answer." in smtp_sink.messages[-1].raw.decode(errors="replace")
        for header in ("In-Reply-To", "References"):
            value = " ".join(answer[header].split())
            assert "=?" not in value and value.startswith("<rd."), (header, value)

    async def test_the_acknowledgement_answers_the_customers_own_email(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """The customer's mail client shows our acknowledgement under the email they sent,
        not as a conversation of its own."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("Lan <lan@customers.example.com>", to, "Broken kettle", "It leaks.",
                                   Message_ID="<kettle.1@customers.example.com>"), to)
        await settle()
        [ack] = smtp_sink.messages
        assert ack["In-Reply-To"].strip() == "<kettle.1@customers.example.com>"
        assert "<kettle.1@customers.example.com>" in ack["References"].split()

    async def test_a_long_conversation_keeps_its_root_in_the_references(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """References names the thread's first email and the latest ones: clients that
        thread by it (Thunderbird, Apple Mail) keep a long conversation together."""
        ws = await make_workspace(client)
        to, ticket, ack = await kettle_ticket(client, runtime, settle, listener, smtp_sink, ws)
        root = ack["References"].split()[0]
        for n in range(12):
            await send(listener, email("Lan <lan@customers.example.com>", to, f"Re: {ack['Subject']}",
                                       f"And another thing, number {n}.", In_Reply_To=ack["Message-ID"]), to)
        await settle()
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers,
                              json={"body": "All noted."})
        assert r.status_code == 201, r.text
        await settle()
        answer = message_from_bytes(smtp_sink.messages[-1].raw)
        references = " ".join(answer["References"].split()).split()
        assert references[0] == root and len(references) <= 10, references
        assert references[-1] == answer["In-Reply-To"].strip()

    async def test_a_reply_to_our_email_joins_its_ticket_without_the_quoted_history(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to, ticket, ack = await kettle_ticket(client, runtime, settle, listener, smtp_sink, ws)
        reply = email("Lan <lan@customers.example.com>", to, f"Re: {ack['Subject']}",
                      "Here is a photo of the leak.\n\nOn Tue, 4 Mar 2025 at 10:00, Acme wrote:\n> We received your request",
                      In_Reply_To=ack["Message-ID"], References=ack["Message-ID"])
        await send(listener, reply, to)
        await settle()
        assert len(await tickets(client, ws)) == 1
        messages = await thread(client, ws, ticket["id"])
        texts = [m["body_text"] for m in messages if m["author_kind"] == "customer"]
        assert texts[-1] == "Here is a photo of the leak."
        assert all(m["channel"] == "email" for m in messages if m["author_kind"] == "customer")

    @staticmethod
    async def reply_from_corpus(client, runtime, settle, listener, smtp_sink, raw: bytes  # noqa: ANN001
                                ) -> dict[str, Any]:
        """The thread's message for a corpus reply Lan sends on her ticket."""
        ws = await make_workspace(client)
        to, ticket, _ = await kettle_ticket(client, runtime, settle, listener, smtp_sink, ws)
        raw = re.sub(rb"(?m)^From: .*$", b"From: Lan <lan@customers.example.com>", raw, count=1)
        await send(listener, re.sub(rb"\[T-\d+\]", f"[{ticket['number']}]".encode(), raw), to)
        await settle()
        *_, reply = await thread(client, ws, ticket["id"])
        assert reply["author_kind"] == "customer", reply
        return reply

    @pytest.mark.parametrize("name", ["gmail_formatted_reply.eml", "apple_mail_formatted_reply.eml",
                                      "outlook_formatted_reply.eml", "outlook_web_formatted_reply.eml"])
    async def test_a_replys_formatting_stays_in_the_thread_and_its_quoted_history_does_not(
            self, client, runtime, settle, listener, smtp_sink, name: str) -> None:  # noqa: ANN001
        reply = await self.reply_from_corpus(client, runtime, settle, listener, smtp_sink, (CORPUS / name).read_bytes())
        assert "<b>by Friday</b>" in reply["body_html"]
        assert '<a href="https://shop.example/jacket"' in reply["body_html"]
        assert re.search(r"<[ou]l>\s*<li>200 jackets</li>", reply["body_html"])
        assert "how many jackets" not in reply["body_html"] and "how many jackets" not in reply["body_text"]

    async def test_a_reply_whose_html_and_text_disagree_shows_the_texts_words_escaped_once(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        raw = (CORPUS / "gmail_formatted_reply.eml").read_bytes().replace(b"<b>by Friday</b>", b"<b>by Monday</b>")
        reply = await self.reply_from_corpus(client, runtime, settle, listener, smtp_sink, raw)
        assert "Monday" not in reply["body_html"] and "how many jackets" not in reply["body_html"]
        assert "this jacket &lt;https://shop.example/jacket&gt;." in reply["body_html"]
        assert "this jacket <https://shop.example/jacket>." in reply["body_text"]

    async def test_the_subject_token_works_for_the_requester_but_not_for_a_stranger(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("lan@customers.example.com", to, "Refund please", "Order 1"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        token = f"[{ticket['number']}]"
        await send(listener, email("lan@customers.example.com", to, f"Re: {token} Refund please", "Any news?"), to)
        await send(listener, email("mallory@evil.example.com", to, f"Re: {token} Refund please",
                                   "Send the refund to my account instead"), to)
        await settle()
        all_tickets = await tickets(client, ws)
        assert len(all_tickets) == 2
        texts = [m["body_text"] for m in await thread(client, ws, ticket["id"])]
        assert "Any news?" in texts and not any("my account instead" in t for t in texts)

    async def test_an_agent_answers_by_replying_to_our_email_and_nobody_can_do_it_in_their_name(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        await send(listener, email("lan@customers.example.com", to, "Question", "How do I reset it?"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["assignee_id"] == agent.id
        clock.advance(timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        await deliver_due(runtime, EMAIL_CHANNELS)  # "assigned to you" waits out the batching window
        [ack] = [m for m in smtp_sink.messages if "lan@customers.example.com" in m.rcpt_tos]
        [assigned] = [m for m in smtp_sink.messages if agent.email in m.rcpt_tos]
        seen = len(smtp_sink.messages)

        # Someone who knows the ticket's token, and has even seen the customer's copy of
        # the thread, puts the agent's address in From: that is new mail, not the agent.
        ack_id = "".join(message_from_bytes(ack.raw)["Message-ID"].split())  # unfolded
        await send(listener, email(agent.email, to, f"Re: [{ticket['number']}] Question",
                                   "Pay the refund fee at https://pay.example.net", In_Reply_To=ack_id,
                                   References=ack_id), to, sender="mallory@example.net")
        await settle()
        assert not [m for m in await thread(client, ws, ticket["id"]) if "refund fee" in m["body_text"]]
        assert not [m for m in smtp_sink.messages[seen:] if "lan@customers.example.com" in m.rcpt_tos]
        [opened] = [t for t in await tickets(client, ws) if t["id"] != ticket["id"]]
        assert opened["subject"] == f"Re: [{ticket['number']}] Question"

        # The agent answers the email we sent them: it goes on the ticket and to the customer.
        assigned_id = "".join(message_from_bytes(assigned.raw)["Message-ID"].split())
        await send(listener, email(agent.email, to, f"Re: [{ticket['number']}] Question",
                                   "Hold the button for ten seconds.", In_Reply_To=assigned_id,
                                   References=assigned_id), to)
        await settle()
        [answer] = [m for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "agent"
                    and "ten seconds" in m["body_text"]]
        assert answer["internal"] is False and answer["author_id"] == agent.id
        assert any("ten seconds" in m.raw.decode(errors="replace") for m in smtp_sink.messages[seen:]
                   if "lan@customers.example.com" in m.rcpt_tos)

    @pytest.mark.parametrize(("language", "words"), [("en", "reply to the email about that one ticket"),
                                                      ("vi", "trả lời email về riêng phiếu yêu cầu đó")])
    async def test_a_reply_to_a_digest_of_several_tickets_opens_nothing_and_the_agent_is_told_why(
            self, client, runtime, clock, settle, listener, smtp_sink, language: str, words: str) -> None:  # noqa: ANN001
        """One email about two tickets: which one an answer to it is for cannot be told, and
        it is no request of the agent's own either."""
        ws = await make_workspace(client)
        agent = await ws.staff(languages=[language, "en"])
        to = address(runtime, ws)
        for subject in ("Broken kettle", "Missing parcel"):
            await send(listener, email("lan@customers.example.com", to, subject, "Please help."), to)
        await settle()
        before = await tickets(client, ws)
        assert len(before) == 2 and {t["assignee_id"] for t in before} == {agent.id}
        clock.advance(timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        await deliver_due(runtime, EMAIL_CHANNELS)
        [digest] = [m for m in smtp_sink.messages if agent.email in m.rcpt_tos]
        digest_id = "".join(message_from_bytes(digest.raw)["Message-ID"].split())
        seen = len(smtp_sink.messages)

        await send(listener, email(agent.email, to, "Re: your tickets", "Done, refunded both.",
                                   In_Reply_To=digest_id, References=digest_id), to)
        await settle()
        await deliver_due(runtime, EMAIL_CHANNELS)
        assert [t["id"] for t in await tickets(client, ws)] == [t["id"] for t in before]
        for ticket in before:
            assert not [m for m in await thread(client, ws, ticket["id"]) if "refunded both" in m["body_text"]]
        row = (await inbound(client, ws))[0]
        assert row["status"] == "ignored" and row["ticket_id"] is None, row
        assert "several tickets" in row["reason"], row
        [answer] = [m for m in smtp_sink.messages[seen:] if agent.email in m.rcpt_tos]
        assert [m for m in smtp_sink.messages[seen:] if agent.email not in m.rcpt_tos] == []
        text = message_from_bytes(answer.raw, policy=email_policy.default).get_body(("plain",)).get_content()
        assert words in text and "Re: your tickets" in text, text
        assert message_from_bytes(answer.raw)["Auto-Submitted"] == "auto-generated"

        # Answering that answer (about no one ticket either) is refused too, but not told again.
        answer_id = "".join(message_from_bytes(answer.raw)["Message-ID"].split())
        await send(listener, email(agent.email, to, "Re: Not added", "Which one then?",
                                   In_Reply_To=answer_id, References=f"{digest_id} {answer_id}"), to)
        await settle()
        await deliver_due(runtime, EMAIL_CHANNELS)
        assert len(await tickets(client, ws)) == 2
        assert (await inbound(client, ws))[0]["status"] == "ignored"
        assert [m for m in smtp_sink.messages[seen:] if agent.email in m.rcpt_tos] == [answer]


class TestNoise:
    @pytest.mark.parametrize("name", ["out_of_office_auto_submitted.eml", "x_autoreply.eml", "newsletter_bulk.eml",
                                      "precedence_auto_reply.eml", "loop_own_outbound.eml", "dsn_delayed.eml"])
    async def test_automatic_mail_never_opens_a_ticket_nor_gets_an_answer(
            self, client, runtime, settle, listener, smtp_sink, name: str) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, from_corpus(CORPUS / name, ws), to)
        await settle()
        assert await tickets(client, ws) == []
        assert smtp_sink.messages == []
        [row] = await inbound(client, ws)
        assert row["status"] == "ignored" and row["reason"]

    async def test_mail_with_a_null_return_path_gets_a_ticket_but_no_automatic_answer(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """MAIL FROM:<> marks bounces and other automatic mail (RFC 3834 2, RFC 5321 4.5.5):
        answering it automatically is how mail loops start. What does not read as a bounce
        may still be someone's request."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("Lan <lan@customers.example.com>", to, "Broken kettle", "It leaks."), to,
                   sender="")
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Broken kettle"
        assert smtp_sink.messages == []
        [row] = await inbound(client, ws)
        assert row["status"] == "processed" and row["envelope_from"] == "<>", row
        assert "Not acknowledged" in row["reason"] and "return path" in row["reason"], row

    async def test_a_null_return_paths_reply_to_a_closed_ticket_opens_a_follow_up_without_an_answer(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to, ticket, ack = await kettle_ticket(client, runtime, settle, listener, smtp_sink, ws)
        for status in ("RESOLVED", "CLOSED"):
            assert (await ws.move(ws.admin, ticket["id"], status)).status_code == 200
        await settle()
        smtp_sink.clear()
        await send(listener, email("Lan <lan@customers.example.com>", to, f"Re: {ack['Subject']}", "Still leaks.",
                                   In_Reply_To=ack["Message-ID"]), to, sender="")
        await settle()
        [follow_up] = [t for t in await tickets(client, ws) if t["id"] != ticket["id"]]
        assert follow_up["follow_up_of_id"] == ticket["id"]
        assert smtp_sink.messages == []

    async def test_polled_mail_is_answered_unless_its_return_path_is_null(
            self, client, runtime, settle, listener, smtp_sink, imap_server: ImapServer) -> None:  # noqa: ANN001
        """Polled mail has no envelope of ours: the server that put it in the mailbox wrote
        its envelope sender into Return-Path, and only a null one there holds back the answer."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
            "address": user, "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
            "imap_username": user, "imap_password": password})
        assert r.status_code == 201, r.text
        imap_server.deliver(user, email("lan@customers.example.com", user, "Broken kettle", "It leaks.",
                                        Return_Path="<>"))
        imap_server.deliver(user, email("tom@customers.example.com", user, "Burnt toast", "It burns.",
                                        Return_Path="<tom@customers.example.com>"))
        imap_server.deliver(user, email("mai@customers.example.com", user, "Cold tea", "It cools."))
        async with runtime.db.read_session() as s:
            mailbox = await s.get(Mailbox, uuid.UUID(r.json()["id"]))
        assert await poll_mailbox(runtime, mailbox) == 3
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == ["Broken kettle", "Burnt toast", "Cold tea"]
        acknowledged = sorted(m.rcpt_tos[0] for m in smtp_sink.messages if user not in m.rcpt_tos)
        assert acknowledged == ["mai@customers.example.com", "tom@customers.example.com"]

    async def test_a_person_writing_from_another_relaydesk_workspace_gets_a_ticket(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        """An agent of another shop on Relaydesk writes to this one's support address: their
        mail carries their workspace's loop header, and it is a person's mail all the same."""
        ws, other = await make_workspace(client), await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("agent@other-shop.example", to, "Wholesale order",
                                   "We would like to order 40 units.", X_Relaydesk_Loop=other.id), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Wholesale order"

    async def test_a_person_writing_through_a_mailing_list_gets_a_ticket_but_no_automatic_answer(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await ws.staff()
        to = address(runtime, ws)
        await send(listener, (CORPUS / "mailing_list_post.eml").read_bytes(), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "We cannot log in to the dashboard since this morning"
        assert ticket["assignee_id"] is not None  # routed like any other
        assert smtp_sink.messages == []  # an answer could reach every member of the list
        # An agent's own reply still goes to the person, as any reply does.
        agent_reply = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers,
                                        json={"body": "We are looking into it."})
        assert agent_reply.status_code == 201, agent_reply.text
        await settle()
        assert [m.rcpt_tos for m in smtp_sink.messages] == [["priya.raman@northwind.example.com"]]

    async def test_a_sender_opening_ticket_after_ticket_is_acknowledged_only_a_few_times(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """Another helpdesk acknowledging our acknowledgements, without auto-reply headers,
        would otherwise make tickets and answers for ever."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        for n in range(8):
            await send(listener, email("Vendor Help <help@vendor.example>", to, f"We received your request #{n}",
                                       "Thank you for contacting us."), to)
            await settle()
        assert len(await tickets(client, ws)) == 8
        assert len([m for m in smtp_sink.messages if "help@vendor.example" in m.rcpt_tos]) == 5
        reasons = [r["reason"] for r in reversed(await inbound(client, ws))]
        assert reasons[:5] == [None] * 5 and all("Not acknowledged" in r for r in reasons[5:])
        # An hour later they are a correspondent like any other again.
        clock.advance(timedelta(hours=1, seconds=1))
        await send(listener, email("help@vendor.example", to, "A real question", "Hello?"), to)
        await settle()
        assert len([m for m in smtp_sink.messages if "help@vendor.example" in m.rcpt_tos]) == 6

    # The report names the address as it was sent: an internationalised domain in ASCII.
    @pytest.mark.parametrize(("profile", "reported"), [("nobody@example.org", "nobody@example.org"),
                                                       ("ulla@bücher.example", "ulla@xn--bcher-kva.example")])
    async def test_only_a_bounce_of_our_own_email_marks_the_address_until_the_customer_writes_again(
            self, client, runtime, settle, listener, smtp_sink, profile, reported) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.post("/api/v1/customers", json={"name": "Nobody", "email": profile},
                              headers=ws.admin.headers)
        customer = r.json()
        profile_url = f"/api/v1/customers/{customer['id']}"
        ticket = await ws.ticket(ws.admin, requester_id=customer["id"])
        await settle()
        [ours] = [m for m in smtp_sink.messages if reported in m.rcpt_tos]
        our_id = "".join(message_from_bytes(ours.raw)["Message-ID"].split())
        to = address(runtime, ws)
        dsn = (CORPUS / "dsn_postfix_failed.eml").read_bytes().replace(b"nobody@example.org", reported.encode())

        # Anyone can send a report naming a customer: about no email of ours, it changes nothing.
        await send(listener, dsn, to)
        await settle()
        [forged] = await inbound(client, ws)
        assert forged["status"] == "ignored" and "no email we sent" in forged["reason"]
        assert (await client.get(profile_url, headers=ws.admin.headers)).json()["email_undeliverable_at"] is None

        await send(listener, dsn.replace(b"<reply.T-000042.1741083300@relaydesk.test>", our_id.encode()), to)
        await settle()
        row = (await inbound(client, ws))[0]
        assert row["status"] == "ignored" and profile in row["reason"]
        got = (await client.get(profile_url, headers=ws.admin.headers)).json()
        assert got["email_undeliverable_at"] is not None

        # An answer is not emailed, and the agents are told so on the ticket (when the
        # address bounced, in the workspace's time zone).
        smtp_sink.clear()
        r = await client.patch("/api/v1/workspace/settings", json={"timezone": "Asia/Ho_Chi_Minh"},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers,
                              json={"body": "Your refund is on its way."})
        assert r.status_code == 201, r.text
        await settle()
        assert smtp_sink.messages == []
        [note] = [m for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "system"
                  and "not emailed" in m["body_text"]]
        assert note["internal"] is True and profile in note["body_text"]
        bounced = datetime.fromisoformat(got["email_undeliverable_at"]).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        assert f"{bounced:%Y-%m-%d %H:%M} (UTC+07:00)" in note["body_text"], note["body_text"]

        # Mail from the address proves it works again: it is acknowledged.
        await send(listener, email(reported, to, "New address works?", "I fixed my mailbox."), to)
        await settle()
        assert (await client.get(profile_url, headers=ws.admin.headers)).json()["email_undeliverable_at"] is None
        assert [m for m in smtp_sink.messages if reported in m.rcpt_tos]


class TestSpam:
    """Mail a filter before us judged spam: its From is usually forged, so acknowledging it
    would send our mail to strangers (backscatter, which gets the relay blacklisted)."""

    @pytest.mark.parametrize(("name", "header"), [("spamassassin_flagged.eml", "X-Spam-Flag: YES"),
                                                  ("exchange_scl9.eml", "X-MS-Exchange-Organization-SCL: 9")])
    async def test_spam_is_held_for_an_admin_who_can_release_it(
            self, client, runtime, settle, listener, smtp_sink, name: str, header: str) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, from_corpus(CORPUS / name, ws), to)
        await settle()
        assert await tickets(client, ws) == []
        assert smtp_sink.messages == []
        assert (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"] == []
        [held] = await inbound(client, ws, status="spam")
        assert header in held["reason"] and held["ticket_id"] is None
        assert await inbound(client, ws, status="quarantined") == []
        agent = await ws.staff()
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/retry", headers=agent.headers)
        assert r.status_code == 403
        other = await make_workspace(client)
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/retry", headers=other.admin.headers)
        assert r.status_code == 404

        # The admin says it is not spam: it is processed as any mail, verdict or not.
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["status"] == "released", r.text
        await settle()
        [ticket] = await tickets(client, ws)
        [row] = await inbound(client, ws)
        assert row["status"] == "processed" and row["ticket_id"] == ticket["id"]
        sender = parseaddr(message_from_bytes((CORPUS / name).read_bytes())["From"])[1]
        assert [m.rcpt_tos for m in smtp_sink.messages] == [[sender]]
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 409

    async def test_a_filters_no_is_mail_as_usual(self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, from_corpus(CORPUS / "spamassassin_not_spam.eml", ws), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert ticket["subject"] == "Where do I change my billing address?"
        assert [m.rcpt_tos for m in smtp_sink.messages] == [["kenji.watanabe@example.net"]]
        [row] = await inbound(client, ws)
        assert row["status"] == "processed" and row["reason"] is None

    async def test_a_reply_marked_spam_waits_for_an_admin_before_it_joins_its_ticket(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to, ticket, ack = await kettle_ticket(client, runtime, settle, listener, smtp_sink, ws)
        await send(listener, email("Lan <lan@customers.example.com>", to, f"Re: {ack['Subject']}",
                                   "Here is the receipt: https://receipts.example/4411",
                                   In_Reply_To=ack["Message-ID"], References=ack["Message-ID"],
                                   X_Spam_Status="Yes, score=5.3 required=5.0 tests=URIBL_BLOCKED"), to)
        await settle()
        texts = [m["body_text"] for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "customer"]
        assert not any("receipt" in t for t in texts)
        [held] = await inbound(client, ws, status="spam")
        assert "X-Spam-Status: Yes" in held["reason"]
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await settle()
        assert len(await tickets(client, ws)) == 1
        texts = [m["body_text"] for m in await thread(client, ws, ticket["id"]) if m["author_kind"] == "customer"]
        assert texts[-1] == "Here is the receipt: https://receipts.example/4411"

    async def test_spam_can_be_discarded_and_the_log_filtered_by_it(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, from_corpus(CORPUS / "spamassassin_flagged.eml", ws), to)
        await send(listener, email("lan@customers.example.com", to, "Refund please", "Order 1"), to)
        await settle()
        [held] = await inbound(client, ws, status="spam")
        r = await client.post(f"/api/v1/inbound-emails/{held['id']}/discard", headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["status"] == "discarded", r.text
        assert await inbound(client, ws, status="spam") == []
        assert [r["status"] for r in await inbound(client, ws)] == ["processed", "discarded"]
        assert [m.rcpt_tos for m in smtp_sink.messages] == [["lan@customers.example.com"]]
        r = await client.get("/api/v1/inbound-emails", params={"status": "junk"}, headers=ws.admin.headers)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == "status", r.text


class TestQuarantine:
    async def test_unparseable_mail_is_kept_for_an_admin_to_retry_or_discard(
            self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, (CORPUS / "unparseable_no_from.eml").read_bytes(), to, sender="")
        await settle()
        [row] = await inbound(client, ws, status="quarantined")
        assert "parsed" in row["reason"]
        raw = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=ws.admin.headers)
        # Exactly what crossed the wire (SMTP carries lines ending in CRLF).
        assert raw.content == (CORPUS / "unparseable_no_from.eml").read_bytes().replace(b"\r\n", b"\n").replace(
            b"\n", b"\r\n")
        agent = await ws.staff()
        assert (await client.post(f"/api/v1/inbound-emails/{row['id']}/retry", headers=agent.headers)).status_code == 403
        r = await client.post(f"/api/v1/inbound-emails/{row['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        [row] = await inbound(client, ws)
        assert row["status"] == "quarantined" and row["attempts"] == 2
        r = await client.post(f"/api/v1/inbound-emails/{row['id']}/discard", headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["status"] == "discarded"
        r = await client.post(f"/api/v1/inbound-emails/{row['id']}/discard", headers=ws.admin.headers)
        assert r.status_code == 409
        other = await make_workspace(client)
        r = await client.get(f"/api/v1/inbound-emails/{row['id']}/raw", headers=other.admin.headers)
        assert r.status_code == 404

    @pytest.mark.parametrize("from_header", [None, "undisclosed", "Jo Bloggs <jo@corp.local>"])
    async def test_mail_without_a_usable_from_is_answered_at_the_envelope_sender(
            self, client, runtime, settle, listener, smtp_sink, from_header: str | None) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        def without_from(subject: str) -> bytes:
            raw = email("placeholder@customers.example.com", to, subject, "Please call us.")
            return raw.replace(b"From: placeholder@customers.example.com\n",
                               b"" if from_header is None else f"From: {from_header}\n".encode())

        await send(listener, without_from("Printer on fire"), to, sender="jo.bloggs@corp.example.com")
        await settle()
        [ticket] = await tickets(client, ws)
        customer = (await client.get(f"/api/v1/customers/{ticket['requester_id']}", headers=ws.admin.headers)).json()
        assert customer["email"] == "jo.bloggs@corp.example.com"
        assert [m.rcpt_tos for m in smtp_sink.messages] == [["jo.bloggs@corp.example.com"]]
        # Without a sender in the envelope either, there is nobody to answer: it waits for an admin.
        await send(listener, without_from("Still on fire"), to, sender="")
        await settle()
        [row] = await inbound(client, ws, status="quarantined")
        assert "sender" in row["reason"]

    async def test_an_email_that_fails_midway_is_quarantined_alone_and_leaves_nothing_behind(
            self, client, runtime, settle, listener, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
        """Emails arriving together are threaded in one transaction. One whose attachment
        the file store cannot take goes to the quarantine on its own: the others become
        tickets, and of it nothing is left (no customer, no audit row, no acknowledgement)
        until an admin retries it."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        with_file = EmailMessage()
        with_file["From"], with_file["To"], with_file["Subject"] = "Pia <pia@customers.example.com>", to, "Invoice"
        with_file["Message-ID"] = make_msgid(domain="customers.example.com")
        with_file.set_content("The invoice is attached.")
        with_file.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application", subtype="pdf", filename="invoice.pdf")
        store = runtime.files.put

        async def disk_full(data: bytes) -> str:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(runtime.files, "put", disk_full)
        await send(listener, email("Ann <ann@customers.example.com>", to, "First", "Hello"), to)
        await send(listener, bytes(with_file), to)
        await send(listener, email("Bo <bo@customers.example.com>", to, "Third", "Hello"), to)
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == ["First", "Third"]
        [row] = await inbound(client, ws, status="quarantined")
        assert "No space left on device" in row["reason"]
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert sorted(c["email"] for c in customers) == ["ann@customers.example.com", "bo@customers.example.com"]
        assert sorted(m.rcpt_tos for m in smtp_sink.messages) == [["ann@customers.example.com"],
                                                                   ["bo@customers.example.com"]]
        async with runtime.db.read_session() as session:
            audited = set(await session.scalars(select(AuditEntry.entity_id).where(
                AuditEntry.workspace_id == uuid.UUID(ws.id), AuditEntry.entity_type == "customer")))
        assert audited <= {uuid.UUID(c["id"]) for c in customers}

        monkeypatch.setattr(runtime.files, "put", store)  # room again: the admin's retry makes the ticket
        r = await client.post(f"/api/v1/inbound-emails/{row['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 200
        await settle()
        [invoice] = [t for t in await tickets(client, ws) if t["subject"] == "Invoice"]
        [first] = await thread(client, ws, invoice["id"])
        assert [a["filename"] for a in first["attachments"]] == ["invoice.pdf"]

    async def test_the_whole_corpus_arrives_and_nothing_is_lost(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        files = sorted(CORPUS.glob("*.eml"))
        assert len(files) >= 30
        for path in files:
            await send(listener, from_corpus(path, ws), to, sender="")  # as from a probe or a relay: the headers say who
        await settle()
        rows = await inbound(client, ws, limit="100")
        assert len(rows) == len(files)
        assert {r["status"] for r in rows} <= {"processed", "ignored", "quarantined", "spam"}
        quarantined = sorted(r["reason"] for r in rows if r["status"] == "quarantined")
        assert len(quarantined) == 2, [q[:300] for q in quarantined]  # the two unparseable ones
        assert len([r for r in rows if r["status"] == "spam"]) == 2  # the two an upstream filter marked


async def connected_mailbox(client, runtime: Runtime, ws: Workspace, imap_server: ImapServer, user: str,  # noqa: ANN001
                            password: str):  # noqa: ANN201
    """Connects the IMAP account as the workspace's mailbox; returns a poll of it (how
    many messages it stored)."""
    r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
        "address": user, "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
        "imap_username": user, "imap_password": password})
    assert r.status_code == 201, r.text

    async def poll() -> int:
        async with runtime.db.read_session() as s:
            return await poll_mailbox(runtime, await s.get(Mailbox, uuid.UUID(r.json()["id"])))

    return poll


async def poll_round(runtime: Runtime) -> None:
    """One round of the periodic ``channels.poll_imap`` job, as the scheduler starts it."""
    await runtime.jobs.enqueue("channels.poll_imap")
    await runtime.jobs.wait_idle()


class TestImap:
    async def test_a_mailbox_is_polled_and_each_message_stored_once(
            self, client, runtime, settle, imap_server: ImapServer) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
            "address": user, "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
            "imap_username": user, "imap_password": password})
        assert r.status_code == 201, r.text
        assert "imap_password" not in r.json()
        for i in range(2):
            imap_server.deliver(user, email(f"buyer{i}@customers.example.com", user, f"IMAP question {i}", "Hi"))
        async with runtime.db.read_session() as s:
            mailbox = await s.get(Mailbox, uuid.UUID(r.json()["id"]))
        assert await poll_mailbox(runtime, mailbox) == 2
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == ["IMAP question 0", "IMAP question 1"]
        assert imap_server.count(user, unseen_only=True) == 0
        assert await poll_mailbox(runtime, mailbox) == 0
        assert [r["source"] for r in await inbound(client, ws)] == ["imap", "imap"]

    async def test_a_folder_named_in_any_language_is_polled(
            self, client, runtime, settle, imap_server: ImapServer) -> None:  # noqa: ANN001
        """IMAP spells folder names in its own modified UTF-7 ("Boîte" is "Bo&AO4-te")."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        poll = await connected_mailbox(client, runtime, ws, imap_server, user, password)
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        r = await client.patch(f"/api/v1/mailboxes/{box['id']}", json={"imap_folder": "Boîte de réception & co"},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        imap_server.deliver(user, email("buyer@customers.example.com", user, "From the French folder", "Bonjour"),
                            mailbox="Bo&AO4-te de r&AOk-ception &- co")
        assert await poll() == 1
        await settle()
        assert [t["subject"] for t in await tickets(client, ws)] == ["From the French folder"]
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert box["last_error"] is None and box["poll_failures"] == 0

    async def test_mail_someone_opened_before_the_poll_still_becomes_a_ticket(
            self, client, runtime, settle, imap_server: ImapServer) -> None:  # noqa: ANN001
        """Whoever watches the support mailbox in their own mail client may open a message
        before Relaydesk polls; it is fetched all the same. Mail read before the mailbox
        was connected is its history, and is left alone."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        imap_server.deliver(user, email("old@customers.example.com", user, "Read long ago", "Hi"), flags=[r"\Seen"])
        poll = await connected_mailbox(client, runtime, ws, imap_server, user, password)

        assert await poll() == 0
        imap_server.deliver(user, email("buyer@customers.example.com", user, "Opened in Outlook first", "Hi"),
                            flags=[r"\Seen"])
        imap_server.deliver(user, email("other@customers.example.com", user, "Still unread", "Hi"))
        assert await poll() == 2
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == ["Opened in Outlook first", "Still unread"]
        assert await poll() == 0
        assert imap_server.count(user, unseen_only=True) == 0

    async def test_a_first_poll_with_more_unread_mail_than_one_batch_leaves_the_read_mail_alone(
            self, client, runtime, settle, imap_server: ImapServer, monkeypatch) -> None:  # noqa: ANN001
        """A mailbox connected with more unread mail than one poll takes: the next polls go
        on with the unread mail, not with the read history lying between."""
        monkeypatch.setattr(channel_tasks, "IMAP_BATCH", 2)
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        for subject, flags in (("Unread 1", []), ("Unread 2", []), ("Read long ago", [r"\Seen"]), ("Unread 3", [])):
            imap_server.deliver(user, email("someone@customers.example.com", user, subject, "Hi"), flags=flags)
        poll = await connected_mailbox(client, runtime, ws, imap_server, user, password)

        assert [await poll() for _ in range(3)] == [2, 1, 0]
        await settle()
        assert sorted(t["subject"] for t in await tickets(client, ws)) == ["Unread 1", "Unread 2", "Unread 3"]

    @pytest.mark.parametrize(("mistake", "says"), [
        ({"imap_password": "wrong"}, ["password", "user name", "Authentication failed"]),
        ({"imap_tls": True}, ["TLS", "switch TLS off"]),
        ({"imap_port": "nothing listening"}, ["127.0.0.1", "port", "refused"]),
        ({"imap_folder": "Support"}, ['"Support"', "folder", "doesn't exist"]),
    ], ids=["password", "tls", "port", "folder"])
    async def test_a_failed_poll_tells_the_admin_what_to_check(
            self, client, runtime, imap_server: ImapServer, mistake: dict[str, Any],  # noqa: ANN001
            says: list[str]) -> None:
        """Against the real server: the error names the setting to look at, with the
        server's own words (decoded) where it gave some, not Python's repr of them."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        if mistake.get("imap_port"):
            mistake = {"imap_port": free_port()}
        r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
            "address": user, "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
            "imap_username": user, "imap_password": password, **mistake})
        assert r.status_code == 201, r.text
        await poll_round(runtime)
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        error = box["last_error"]
        assert box["last_polled_at"] and all(s in error for s in says), error
        assert "b'" not in error and "Errno" not in error and "Error:" not in error, error

    async def test_a_failing_mailbox_is_tried_less_and_less_often_until_it_is_saved_again(
            self, client, runtime, clock, settle, imap_server: ImapServer) -> None:  # noqa: ANN001
        """A wrong password tried every minute gets the account locked at many providers:
        each failure waits longer (1, 2, 5, 10, then every 30 minutes). Saving the mailbox
        (the right password) has it tried on the very next round."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        await connected_mailbox(client, runtime, ws, imap_server, user, "wrong")

        async def listed() -> dict[str, Any]:
            await ws.relogin()  # the clock moves past the access token's lifetime
            [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
            return box

        assert (await listed())["next_poll_at"] is None  # new: the next round takes it
        await poll_round(runtime)
        for failures, minutes in enumerate((1, 2, 5, 10, 30, 30), start=1):
            box = await listed()
            assert "password" in box["last_error"] and box["poll_failures"] == failures, box
            wait = datetime.fromisoformat(box["next_poll_at"]) - datetime.fromisoformat(box["last_polled_at"])
            assert abs(wait - timedelta(minutes=minutes)) < timedelta(seconds=1), (failures, wait)
            clock.advance(timedelta(minutes=minutes) - timedelta(seconds=10))
            await poll_round(runtime)
            assert (await listed())["last_polled_at"] == box["last_polled_at"], f"tried early after {failures}"
            clock.advance(timedelta(seconds=10))
            await poll_round(runtime)
            assert (await listed())["last_polled_at"] != box["last_polled_at"], f"not tried after {failures}"

        r = await client.patch(f"/api/v1/mailboxes/{box['id']}", headers=ws.admin.headers,
                               json={"imap_password": password})
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["next_poll_at"] is None and saved["poll_failures"] == 0 and saved["last_error"] is None, saved
        imap_server.deliver(user, email("buyer@customers.example.com", user, "Are you there?", "Hi"))
        await poll_round(runtime)  # the clock has not moved: the next round after saving
        box = await listed()
        assert box["last_error"] is None and box["poll_failures"] == 0 and box["next_poll_at"] is None, box
        await settle()
        assert [t["subject"] for t in await tickets(client, ws)] == ["Are you there?"]

    async def test_a_good_poll_leaves_the_verification_emails_failure_shown(
            self, client, runtime, settle, listener, smtp_sink, imap_server: ImapServer) -> None:  # noqa: ANN001
        """The two share ``last_error``: mail arriving says nothing about the email that
        could not be sent."""
        ws = await make_workspace(client)
        user, password = imap_server.make_user(domain="imap.example.com")
        smtp_sink.rejected_recipients.add(user)
        await connected_mailbox(client, runtime, ws, imap_server, user, password)
        await settle()
        await poll_round(runtime)
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert box["last_polled_at"] and box["last_error"].startswith("The verification email could not be sent")


class TestMailboxSettings:
    async def test_a_blank_imap_host_means_no_imap(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
            "address": f"imap5-{uuid.uuid4().hex[:6]}@shop.example", "imap_host": "", "imap_username": "u",
            "imap_password": "p"})
        assert r.status_code == 201 and r.json()["imap_host"] is None, r.text
        forwarded = await client.post("/api/v1/mailboxes", headers=ws.admin.headers,
                                      json={"address": f"fwd-{uuid.uuid4().hex[:6]}@shop.example"})
        r = await client.patch(f"/api/v1/mailboxes/{forwarded.json()['id']}", headers=ws.admin.headers,
                               json={"imap_host": " "})
        assert r.status_code == 200 and r.json()["imap_host"] is None, r.text

    async def test_an_imap_host_needs_a_user_name_and_a_password(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        imap = {"address": f"nocreds-{uuid.uuid4().hex[:6]}@shop.example", "imap_host": "93.184.216.34"}
        for given, missing in (({}, "imap_username"), ({"imap_username": "u"}, "imap_password"),
                               ({"imap_username": " ", "imap_password": "p"}, "imap_username"),
                               ({"imap_username": "u", "imap_password": ""}, "imap_password")):
            r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={**imap, **given})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == missing, (given, r.text)
        forwarded = (await client.post("/api/v1/mailboxes", headers=ws.admin.headers,
                                       json={"address": f"fwd-{uuid.uuid4().hex[:6]}@shop.example"})).json()
        path = f"/api/v1/mailboxes/{forwarded['id']}"
        r = await client.patch(path, headers=ws.admin.headers, json={"imap_host": "93.184.216.34"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "imap_username", r.text
        r = await client.patch(path, headers=ws.admin.headers,
                               json={"imap_host": "93.184.216.34", "imap_username": "u", "imap_password": "p"})
        assert r.status_code == 200 and r.json()["imap_host"] == "93.184.216.34", r.text
        # What is stored counts: taking away the password of a polled mailbox is refused.
        r = await client.patch(path, headers=ws.admin.headers, json={"imap_password": None})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "imap_password", r.text
        r = await client.patch(path, headers=ws.admin.headers, json={"imap_host": None, "imap_password": None})
        assert r.status_code == 200 and r.json()["imap_host"] is None, r.text


class TestPrivateTargets:
    """A workspace admin (anyone can make a workspace) must not have the server reach the
    network around it: loopback, private and metadata addresses are refused for IMAP hosts
    and the SMS provider, unless the operator allows private targets."""

    async def test_imap_hosts_and_sms_urls_on_private_addresses_are_refused(self, client, runtime,
                                                                             monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setattr(runtime.settings, "allow_private_targets", False)
        ws = await make_workspace(client)
        for host in ("127.0.0.1", "localhost", "10.0.0.5", "169.254.169.254"):
            r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
                "address": f"help-{uuid.uuid4().hex[:6]}@acme.example.com", "imap_host": host, "imap_port": 9556,
                "imap_tls": False, "imap_username": "u", "imap_password": "p"})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "imap_host", r.text
        r = await client.patch("/api/v1/workspace/settings", headers=ws.admin.headers,
                               json={"sms_api_url": "http://169.254.169.254/latest/"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sms_api_url", r.text
        assert (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json() == []

    async def test_a_mailbox_whose_host_turned_private_is_not_polled(self, client, runtime, monkeypatch) -> None:  # noqa: ANN001
        """Checked again at each poll: the name may resolve somewhere else by now."""
        ws = await make_workspace(client)
        r = await client.post("/api/v1/mailboxes", headers=ws.admin.headers, json={
            "address": f"help-{uuid.uuid4().hex[:6]}@acme.example.com", "imap_host": "127.0.0.1", "imap_port": 9,
            "imap_tls": False, "imap_username": "u", "imap_password": "p"})
        assert r.status_code == 201, r.text
        r = await client.patch(f"/api/v1/mailboxes/{r.json()['id']}", headers=ws.admin.headers, json={"active": None})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "active"
        monkeypatch.setattr(runtime.settings, "allow_private_targets", False)
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        async with runtime.db.read_session() as s:
            mailbox = await s.get(Mailbox, uuid.UUID(box["id"]))
        assert await poll_mailbox(runtime, mailbox) == 0
        [box] = (await client.get("/api/v1/mailboxes", headers=ws.admin.headers)).json()
        assert "loopback or private address" in box["last_error"] and "RELAYDESK_ALLOW_PRIVATE_TARGETS" in \
            box["last_error"]
        # The admin can still switch it off or change its password; only a new host is checked.
        r = await client.patch(f"/api/v1/mailboxes/{box['id']}", headers=ws.admin.headers,
                               json={"active": False, "imap_password": "new"})
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        r = await client.patch(f"/api/v1/mailboxes/{box['id']}", headers=ws.admin.headers,
                               json={"imap_host": "10.0.0.5"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "imap_host"


def sent_with(sink: SmtpSink, text: str) -> list[Any]:
    return [m for m in sink.messages if text in m.raw.decode(errors="replace")]


class TestCcs:
    async def test_replies_on_several_tickets_at_once_each_copy_their_own_ccs(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """The CCs of a batch's replies are read together: each email still copies its own
        ticket's, and a ticket without CCs copies nobody."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        people = {"lan": "sam", "kim": "joe", "ana": None}
        for who, cc in people.items():
            await send(listener, email(f"{who}@customers.example.com", to, f"Question from {who}", "Hello?",
                                       **({"Cc": f"{cc}@customers.example.com"} if cc else {})), to)
        await settle()
        for ticket in await tickets(client, ws):  # answered together: one batch of events
            r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers,
                                  json={"body": f"Answer to {ticket['subject']}."})
            assert r.status_code == 201, r.text
        await settle()
        for who, cc in people.items():
            [answer] = sent_with(smtp_sink, f"Answer to Question from {who}.")
            assert sorted(answer.rcpt_tos) == sorted([f"{who}@customers.example.com",
                                                      *([f"{cc}@customers.example.com"] if cc else [])])

    async def test_the_acknowledgement_copies_the_ccs_of_the_email(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """As Zendesk's "notify requester and CCs of received request": everyone the customer
        copied learns the request arrived, and its number, from one email they can all answer."""
        ws = await make_workspace(client)
        to = address(runtime, ws)
        lan, sam = "lan@customers.example.com", "sam@customers.example.com"
        await send(listener, email(f"Lan <{lan}>", to, "Printer on fire", "It smokes.", Cc=f"Sam Lee <{sam}>"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        [ack] = [m for m in smtp_sink.messages if f"[{ticket['number']}]" in message_from_bytes(m.raw)["Subject"]]
        assert sorted(ack.rcpt_tos) == [lan, sam]
        parsed = message_from_bytes(ack.raw)
        assert parseaddr(parsed["To"])[1] == lan and parseaddr(parsed["Cc"]) == ("Sam Lee", sam)

    async def test_a_colleague_in_cc_follows_the_ticket_and_answers_on_it(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        lan, sam = "lan@customers.example.com", "sam@customers.example.com"
        # Our own addresses, the team and the sender are in the headers too: none is a CC.
        await send(listener, email(f"Lan <{lan}>", f"{to}, Sam Lee <{sam}>", "Printer on fire", "It smokes.",
                                   Cc=f"{agent.email}, postmaster@{runtime.settings.mail_domain}, {lan}"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/ccs", headers=agent.headers)
        assert r.status_code == 200, r.text
        assert [(c["email"], c["name"], c["added_by"]) for c in r.json()] == [(sam, "Sam Lee", "email")]

        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers,
                              json={"body": "Unplug it first."})
        assert r.status_code == 201, r.text
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers,
                              json={"body": "Told them to unplug it.", "internal": True})
        assert r.status_code == 201, r.text
        await settle()
        [answer] = sent_with(smtp_sink, "Unplug it first.")
        assert sorted(answer.rcpt_tos) == [lan, sam]  # the envelope, not only the header
        parsed = message_from_bytes(answer.raw)
        assert parseaddr(parsed["To"])[1] == lan and parseaddr(parsed["Cc"])[1] == sam
        assert sent_with(smtp_sink, "Told them to unplug") == []

        # Sam answers everyone: the reply joins the ticket on the customer's side, as Sam's.
        answer_id = "".join(parsed["Message-ID"].split())
        await send(listener, email(f"Sam Lee <{sam}>", to, f"Re: {parsed['Subject']}", "Done, it is unplugged.",
                                   Cc=lan, In_Reply_To=answer_id, References=answer_id), to)
        # Someone else with the ticket's token is still nobody on it.
        await send(listener, email("mallory@evil.example.com", to, f"Re: [{ticket['number']}] Printer on fire",
                                   "Wire the repair fee to me"), to)
        await settle()
        assert len(await tickets(client, ws)) == 2
        messages = await thread(client, ws, ticket["id"])
        [from_sam] = [m for m in messages if "it is unplugged" in m["body_text"]]
        assert from_sam["author_kind"] == "customer" and from_sam["internal"] is False
        customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
        assert sorted((c["name"], c["email"]) for c in customers) == [
            ("Lan", lan), ("Sam Lee", sam), ("mallory", "mallory@evil.example.com")]
        [from_lan] = [m for m in messages if "It smokes" in m["body_text"]]
        assert from_sam["author_id"] not in (None, from_lan["author_id"])
        assert not [m for m in messages if "repair fee" in m["body_text"]]

        # Removed, Sam gets no more copies, and Sam's mail is new mail again.
        for nobody in ("%00", "no address", "joe@customers.example.com"):  # none of them a CC: 404, never a 500
            r = await client.delete(f"/api/v1/tickets/{ticket['id']}/ccs/{nobody}", headers=agent.headers)
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        r = await client.delete(f"/api/v1/tickets/{ticket['id']}/ccs/{sam}", headers=agent.headers)
        assert r.status_code == 204, r.text
        assert (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs", headers=agent.headers)).json() == []
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers,
                              json={"body": "Now plug it back in."})
        await settle()
        [later] = sent_with(smtp_sink, "Now plug it back in.")
        assert later.rcpt_tos == [lan] and message_from_bytes(later.raw)["Cc"] is None
        await send(listener, email(f"Sam Lee <{sam}>", to, f"Re: {parsed['Subject']}", "Still smoking.",
                                   In_Reply_To=answer_id, References=answer_id), to)
        await settle()
        assert len(await tickets(client, ws)) == 3
        assert not [m for m in await thread(client, ws, ticket["id"]) if "Still smoking" in m["body_text"]]

    async def test_a_ccs_reply_is_theirs_and_reaches_the_requester_and_the_other_ccs(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """A CC's answer is written by them, a customer of the workspace, on the requester's
        ticket: the requester sees it in the portal and gets it by email with the other CCs
        (not its writer), the agent is told, and it is the customer's reply to the SLA. The
        CC gains no sight of the ticket."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        lan, sam = await ws.customer(), await ws.customer()  # both can sign in to the portal
        joe = "joe@customers.example.com"
        to = address(runtime, ws)
        await send(listener, email(lan.email, to, "Printer on fire", "It smokes.",
                                   Cc=f"Sam Lee <{sam.email}>, Joe <{joe}>"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert (await ws.reply(agent, ticket["id"], "Unplug it first.")).status_code == 201  # now the agent's
        assert (await ws.move(agent, ticket["id"], "WAITING_ON_CUSTOMER")).status_code == 200
        await settle()
        [answer] = sent_with(smtp_sink, "Unplug it first.")
        answer_id = "".join(message_from_bytes(answer.raw)["Message-ID"].split())
        await send(listener, email(f"Sam Lee <{sam.email}>", to, "Re: Printer on fire", "Done, it is unplugged.",
                                   Cc=lan.email, In_Reply_To=answer_id, References=answer_id), to)
        await settle()

        [from_sam] = [m for m in await thread(client, ws, ticket["id"]) if "it is unplugged" in m["body_text"]]
        assert (from_sam["author_kind"], from_sam["author_id"], from_sam["internal"]) == ("customer", sam.id, False)
        assert "in Cc" not in from_sam["body_text"]
        r = await client.get(f"/api/v1/tickets/{ticket['id']}", headers=agent.headers)
        assert (r.json()["status"], r.json()["requester_id"]) == ("IN_PROGRESS", lan.customer_id)
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=lan.headers)
        assert [m["author_id"] for m in r.json()["items"] if "it is unplugged" in m["body_text"]] == [sam.id]
        assert (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=sam.headers)).status_code == 404
        assert (await client.get("/api/v1/tickets", headers=sam.headers)).json()["items"] == []
        notes = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
        assert [n["kind"] for n in notes if n["ticket_id"] == ticket["id"]].count("reply_to_agent") == 1

        [copy] = sent_with(smtp_sink, "it is unplugged")
        assert sorted(copy.rcpt_tos) == sorted([lan.email, joe])
        parsed = message_from_bytes(copy.raw)
        assert parseaddr(parsed["To"])[1] == lan.email and parseaddr(parsed["Cc"])[1] == joe
        assert parsed["Auto-Submitted"] == "auto-generated"  # responders leave it be: no loop through us
        assert message_from_bytes(answer.raw)["Auto-Submitted"] is None  # an agent's reply is a person's
        # Answering our copy is the requester's reply, which goes to the agent alone (the
        # CCs it had in To or Cc got it from the requester's own mail).
        copy_id = "".join(parsed["Message-ID"].split())
        await send(listener, email(lan.email, to, f"Re: {parsed['Subject']}", "Thanks Sam.",
                                   In_Reply_To=copy_id, References=copy_id), to)
        await settle()
        assert [m["author_id"] for m in await thread(client, ws, ticket["id"]) if "Thanks Sam" in m["body_text"]] \
            == [lan.id]
        assert sent_with(smtp_sink, "Thanks Sam") == []

    async def test_a_follow_up_to_a_closed_ticket_keeps_its_ccs(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """But not one whose copies bounced, nor the requester's own address."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        lan, sam, joe, kim = (f"{who}@customers.example.com" for who in ("lan", "sam", "joe", "kim"))
        gone = "nobody@example.org"
        await send(listener, email(lan, to, "Invoice copy", "Please send it.",
                                   Cc=f"Sam Lee <{sam}>, {joe}, {kim}, {gone}"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        await ws.reply(agent, ticket["id"], "Attached.")
        await settle()
        [answer] = sent_with(smtp_sink, "Attached.")
        answer_id = "".join(message_from_bytes(answer.raw)["Message-ID"].split())
        dsn = (CORPUS / "dsn_postfix_failed.eml").read_bytes()
        await send(listener, dsn.replace(b"<reply.T-000042.1741083300@relaydesk.test>", answer_id.encode()), to)
        # Lan now writes from Kim's address, once Kim's own.
        r = await client.patch(f"/api/v1/customers/{ticket['requester_id']}", headers=agent.headers,
                               json={"email": kim})
        assert r.status_code == 200, r.text
        for status in ("RESOLVED", "CLOSED"):
            assert (await ws.move(agent, ticket["id"], status)).status_code == 200
        await settle()

        await send(listener, email(f"Sam Lee <{sam}>", to, "Re: Invoice copy", "The copy is of the wrong month.",
                                   In_Reply_To=answer_id, References=answer_id), to)
        await settle()
        [follow_up] = [t for t in await tickets(client, ws) if t["id"] != ticket["id"]]
        assert (follow_up["follow_up_of_id"], follow_up["requester_id"]) == (ticket["id"], ticket["requester_id"])
        r = await client.get(f"/api/v1/tickets/{follow_up['id']}/ccs", headers=agent.headers)
        assert sorted((c["email"], c["name"]) for c in r.json()) == [(joe, None), (sam, "Sam Lee")]
        # Sam wrote it, so Sam learns of the new number too, on the requester's acknowledgement.
        [ack] = [m for m in smtp_sink.messages
                 if f"[{follow_up['number']}]" in str(message_from_bytes(m.raw)["Subject"])]
        assert sorted(ack.rcpt_tos) == sorted([kim, sam, joe])
        await ws.reply(agent, follow_up["id"], "Here is March.")
        await settle()
        [last] = sent_with(smtp_sink, "Here is March.")
        assert sorted(last.rcpt_tos) == sorted([kim, sam, joe])

    async def test_staff_add_and_remove_ccs_and_nobody_else_sees_them(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws, other = await make_workspace(client), await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        ccs = f"/api/v1/tickets/{ticket['id']}/ccs"
        r = await client.post(ccs, headers=agent.headers, json={"email": "not an address"})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert "email" in [e["field"] for e in r.json()["errors"]]
        r = await client.post(ccs, headers=agent.headers, json={"email": address(runtime, ws)})
        assert r.status_code == 422 and "email" in [e["field"] for e in r.json()["errors"]]
        r = await client.post(ccs, headers=agent.headers, json={"email": "Boss@Customers.example.com", "name": "Bo"})
        assert r.status_code == 201, r.text
        added = r.json()
        assert (added["email"], added["name"], added["added_by"]) == ("boss@customers.example.com", "Bo", "staff")
        r = await client.post(ccs, headers=agent.headers, json={"email": "boss@customers.example.com"})
        assert r.status_code == 200 and r.json()["id"] == added["id"]  # already there: the same one
        for caller in (customer.headers, other.admin.headers):
            assert (await client.get(ccs, headers=caller)).status_code in (403, 404)
            assert (await client.post(ccs, headers=caller, json={"email": "x@customers.example.com"})).status_code \
                in (403, 404)
            assert (await client.delete(f"{ccs}/{added['id']}", headers=caller)).status_code in (403, 404)
        assert (await client.get(ccs, headers=other.admin.headers)).status_code == 404
        await settle()
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/messages", headers=agent.headers,
                              json={"body": "Copied to your boss."})
        assert r.status_code == 201, r.text
        await settle()
        [answer] = sent_with(smtp_sink, "Copied to your boss.")
        assert sorted(answer.rcpt_tos) == sorted([customer.email, "boss@customers.example.com"])
        r = await client.delete(f"{ccs}/{added['id']}", headers=agent.headers)
        assert r.status_code == 204
        assert (await client.delete(f"{ccs}/{added['id']}", headers=agent.headers)).status_code == 404
        assert (await client.get(ccs, headers=agent.headers)).json() == []

    async def test_mail_through_a_list_adds_no_ccs(self, client, runtime, settle, listener) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        to = address(runtime, ws)
        await send(listener, email("tom@customers.example.com", f"{to}, members@lists.example.com", "News", "Hi",
                                   List_Post="<mailto:members@lists.example.com>"), to)
        await settle()
        [ticket] = await tickets(client, ws)
        assert (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers)).json() == []

    async def test_a_cc_whose_copy_bounced_is_left_out_until_they_write_again(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        to = address(runtime, ws)
        lan, gone = "lan@customers.example.com", "nobody@example.org"
        await send(listener, email(lan, to, "Invoice copy", "Please send it.", Cc=gone), to)
        await settle()
        [ticket] = await tickets(client, ws)
        await ws.reply(agent, ticket["id"], "Attached.")
        await settle()
        [answer] = sent_with(smtp_sink, "Attached.")
        assert sorted(answer.rcpt_tos) == [lan, gone]
        answer_id = "".join(message_from_bytes(answer.raw)["Message-ID"].split())
        dsn = (CORPUS / "dsn_postfix_failed.eml").read_bytes()
        await send(listener, dsn.replace(b"<reply.T-000042.1741083300@relaydesk.test>", answer_id.encode()), to)
        await settle()
        assert gone in (await inbound(client, ws))[0]["reason"]
        [cc] = (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs", headers=agent.headers)).json()
        assert cc["undeliverable_at"] is not None
        await ws.reply(agent, ticket["id"], "Sent again.")
        await settle()
        assert [m.rcpt_tos for m in sent_with(smtp_sink, "Sent again.")] == [[lan]]
        # Mail from the address shows it works again.
        await send(listener, email(gone, to, f"Re: [{ticket['number']}] Invoice copy", "Got it now.",
                                   In_Reply_To=answer_id, References=answer_id), to)
        await settle()
        assert len(await tickets(client, ws)) == 1
        await ws.reply(agent, ticket["id"], "Good.")
        await settle()
        [last] = sent_with(smtp_sink, "Good.")
        assert sorted(last.rcpt_tos) == [lan, gone]

    async def test_a_cc_no_header_can_carry_is_refused_by_the_api(self, client, runtime, listener) -> None:  # noqa: ANN001
        """An address whose part before the @ is not ASCII needs SMTPUTF8, which Relaydesk
        does not send; a name with a line break would end the Cc header and start another."""
        ws = await make_workspace(client)
        ticket = await ws.ticket(await ws.customer())
        ccs = f"/api/v1/tickets/{ticket['id']}/ccs"
        for body, field in (({"email": "mañana@例え.jp"}, "email"), ({"email": "josé@empresa.es"}, "email"),
                            ({"email": "inj@customers.example.com", "name": "Sam\r\nBcc: evil@x.com"}, "name")):
            r = await client.post(ccs, headers=ws.admin.headers, json=body)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert [e["field"] for e in r.json()["errors"]] == [field], r.text
        assert (await client.get(ccs, headers=ws.admin.headers)).json() == []
        r = await client.post(ccs, headers=ws.admin.headers, json={"email": "sam@例え.jp", "name": "Sam"})
        assert r.status_code == 201, r.text

    async def test_one_cc_no_header_can_carry_never_stops_the_reply(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        """CCs kept before the API refused them (or copied from a customer's headers): the
        one with a non-ASCII local part is left out, the name is cleaned, the rest get it."""
        from relaydesk.channels.models import TicketCc

        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers,
                              json={"email": "sam@例え.jp", "name": "Sam"})
        assert r.status_code == 201, r.text
        async with runtime.db.write_session() as s:
            for address_, name in (("josé@empresa.es", "José"), ("inj@customers.example.com",
                                                                 "Sam\r\nBcc: evil@x.com")):
                s.add(TicketCc(workspace_id=uuid.UUID(ws.id), ticket_id=uuid.UUID(ticket["id"]), address=address_,
                               name=name, added_by="email", created_at=runtime.clock.now()))
            await s.commit()
        await settle()
        r = await ws.reply(ws.admin, ticket["id"], "Your refund is on its way.")
        assert r.status_code == 201, r.text
        await settle()
        [answer] = sent_with(smtp_sink, "Your refund is on its way.")
        assert sorted(answer.rcpt_tos) == sorted([customer.email, "sam@xn--r8jz45g.jp", "inj@customers.example.com"])
        parsed = message_from_bytes(answer.raw)
        assert parsed["Bcc"] is None and "Sam Bcc: evil@x.com" in parsed["Cc"] and "xn--r8jz45g.jp" in parsed["Cc"]
        assert not [m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]

    async def test_the_requester_refused_while_a_cc_is_taken_is_noted_on_the_ticket(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        boss = "boss@customers.example.com"
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers, json={"email": boss})
        assert r.status_code == 201, r.text
        await settle()
        smtp_sink.rejected_recipients.add(customer.email.lower())
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        assert [m.rcpt_tos for m in sent_with(smtp_sink, "Your parcel left today.")] == [[boss]]
        [note] = [m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]
        assert note["internal"] is True and customer.email in note["body_text"] and "refused" in note["body_text"]
        r = await client.get("/api/v1/notifications/deliveries", params={"recipient": customer.email},
                             headers=ws.admin.headers)
        [reply] = [d for d in r.json()["items"] if d["kind"] == "reply_to_customer"]
        assert reply["status"] == "dead"
        [cc] = (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers)).json()
        assert cc["undeliverable_at"] is None

    async def test_a_cc_the_relay_refuses_for_good_is_left_out_and_the_others_get_the_reply(
            self, client, runtime, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        gone, boss = "gone@customers.example.com", "boss@customers.example.com"
        for cc in (gone, boss):
            r = await client.post(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers, json={"email": cc})
            assert r.status_code == 201, r.text
        await settle()
        smtp_sink.rejected_recipients.add(gone)
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        [answer] = sent_with(smtp_sink, "Your parcel left today.")
        assert sorted(answer.rcpt_tos) == sorted([customer.email, boss])
        ccs = {c["email"]: c for c in (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs",
                                                        headers=ws.admin.headers)).json()}
        assert ccs[gone]["undeliverable_at"] is not None and ccs[boss]["undeliverable_at"] is None
        r = await client.get("/api/v1/notifications/deliveries", params={"recipient": customer.email},
                             headers=ws.admin.headers)
        [reply] = [d for d in r.json()["items"] if d["kind"] == "reply_to_customer"]
        assert reply["status"] == "sent"
        await ws.reply(ws.admin, ticket["id"], "It arrives tomorrow.")
        await settle()
        [later] = sent_with(smtp_sink, "It arrives tomorrow.")
        assert sorted(later.rcpt_tos) == sorted([customer.email, boss]) and gone not in message_from_bytes(
            later.raw)["Cc"]


class TestCcsRefusedForNow:
    """A relay's 4xx at RCPT (greylisting, a mailbox full for now) is temporary: a CC so
    refused gets the very email later, on a delivery of its own, and nobody gets it twice."""

    @staticmethod
    async def reply_with_ccs(client, settle, ws: Workspace, ticket: dict[str, Any], *ccs: str) -> None:  # noqa: ANN001
        for cc in ccs:
            r = await client.post(f"/api/v1/tickets/{ticket['id']}/ccs", headers=ws.admin.headers, json={"email": cc})
            assert r.status_code == 201, r.text
        await settle()

    @staticmethod
    async def log(client, ws: Workspace) -> dict[str, dict[str, Any]]:  # noqa: ANN001
        """The replies' deliveries, by recipient."""
        r = await client.get("/api/v1/notifications/deliveries", headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        return {d["recipient"]: d for d in r.json()["items"] if d["kind"] == "reply_to_customer"}

    @staticmethod
    async def later(runtime: Runtime, clock, seconds: int) -> None:  # noqa: ANN001
        clock.advance(timedelta(seconds=seconds))
        await deliver_due(runtime, EMAIL_CHANNELS)

    async def test_a_cc_refused_for_now_gets_the_same_email_later_and_one_refused_for_good_is_left_out(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        later, gone, boss = "later@customers.example.com", "gone@customers.example.com", "boss@customers.example.com"
        await self.reply_with_ccs(client, settle, ws, ticket, later, gone, boss)
        smtp_sink.deferred_recipients.add(later)
        smtp_sink.rejected_recipients.add(gone)
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        [answer] = sent_with(smtp_sink, "Your parcel left today.")
        assert sorted(answer.rcpt_tos) == sorted([customer.email, boss])
        log = await self.log(client, ws)
        assert log[customer.email]["status"] == "sent" and gone not in log
        assert log[later]["status"] == "failed" and log[later]["next_attempt_at"] and "451" in log[later]["last_error"]
        ccs = {c["email"]: c for c in (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs",
                                                        headers=ws.admin.headers)).json()}
        assert ccs[gone]["undeliverable_at"] is not None and ccs[later]["undeliverable_at"] is None
        [note] = [m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]
        assert note["internal"] is True and gone in note["body_text"] and "550" in note["body_text"]

        smtp_sink.deferred_recipients.clear()  # the greylist lets it through now
        await self.later(runtime, clock, 31)
        first, again = sent_with(smtp_sink, "Your parcel left today.")
        assert again.rcpt_tos == [later]
        for header in ("Message-ID", "To", "Cc", "Subject", "In-Reply-To"):  # the very email the others got
            assert " ".join(again[header].split()) == " ".join(first[header].split()), header
        log = await self.log(client, ws)
        assert log[later]["status"] == "sent" and log[later]["attempts"] == 2, log[later]
        await self.later(runtime, clock, 120)
        assert len(sent_with(smtp_sink, "Your parcel left today.")) == 2
        assert len([m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]) == 1

    async def test_a_cc_refused_at_every_attempt_is_given_up_noted_and_left_out(
            self, client, runtime, clock, settle, listener, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setattr(runtime.settings, "delivery_max_attempts", 2)
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        later, boss = "later@customers.example.com", "boss@customers.example.com"
        await self.reply_with_ccs(client, settle, ws, ticket, later, boss)
        smtp_sink.deferred_recipients.add(later)
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        await self.later(runtime, clock, 31)
        log = await self.log(client, ws)
        assert log[later]["status"] == "dead" and log[later]["attempts"] == 2, log[later]
        [note] = [m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]
        assert note["internal"] is True and later in note["body_text"] and "2 attempt(s)" in note["body_text"]
        ccs = {c["email"]: c for c in (await client.get(f"/api/v1/tickets/{ticket['id']}/ccs",
                                                        headers=ws.admin.headers)).json()}
        assert ccs[later]["undeliverable_at"] is not None and ccs[boss]["undeliverable_at"] is None
        await ws.reply(ws.admin, ticket["id"], "It arrives tomorrow.")
        await settle()
        [next_one] = sent_with(smtp_sink, "It arrives tomorrow.")
        assert sorted(next_one.rcpt_tos) == sorted([customer.email, boss])

    async def test_a_requester_refused_for_now_gets_it_later_and_the_ccs_only_once(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        boss = "boss@customers.example.com"
        await self.reply_with_ccs(client, settle, ws, ticket, boss)
        smtp_sink.deferred_recipients.add(customer.email.lower())
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        assert [m.rcpt_tos for m in sent_with(smtp_sink, "Your parcel left today.")] == [[boss]]
        log = await self.log(client, ws)
        assert log[customer.email]["status"] == "failed" and log[customer.email]["next_attempt_at"]
        assert boss not in log
        smtp_sink.deferred_recipients.clear()
        await self.later(runtime, clock, 31)
        first, again = sent_with(smtp_sink, "Your parcel left today.")
        assert again.rcpt_tos == [customer.email] and again["Message-ID"] == first["Message-ID"]
        assert (await self.log(client, ws))[customer.email]["status"] == "sent"
        assert not [m for m in await thread(client, ws, ticket["id"]) if "could not be emailed" in m["body_text"]]

    async def test_everyone_refused_for_now_each_gets_the_reply_once_later(
            self, client, runtime, clock, settle, listener, smtp_sink) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        boss = "boss@customers.example.com"
        await self.reply_with_ccs(client, settle, ws, ticket, boss)
        smtp_sink.deferred_recipients |= {customer.email.lower(), boss}
        await ws.reply(ws.admin, ticket["id"], "Your parcel left today.")
        await settle()
        assert sent_with(smtp_sink, "Your parcel left today.") == []
        log = await self.log(client, ws)
        assert [log[a]["status"] for a in (customer.email, boss)] == ["failed", "failed"], log
        smtp_sink.deferred_recipients.clear()
        await self.later(runtime, clock, 31)
        await self.later(runtime, clock, 120)
        sent = sent_with(smtp_sink, "Your parcel left today.")
        assert sorted(m.rcpt_tos for m in sent) == sorted([[customer.email], [boss]])
        assert len({m["Message-ID"] for m in sent}) == 1
        log = await self.log(client, ws)
        assert [log[a]["status"] for a in (customer.email, boss)] == ["sent", "sent"], log

"""Notifications reach people by email (a real SMTP conversation with a sink), in-app and
over webhooks: preferences, templates, batching, retries, crash safety, the delivery log."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import orjson
import pytest

from conftest import statements_run
from test_attachments import GIF_1X1, png_1x1
from test_chat import start as start_chat
from factories import Workspace, make_workspace
from httppeers import receiver  # noqa: F401 - a fixture
from mailpeers import SmtpSink
from relaydesk.channels.models import InboundEmail
from relaydesk.channels.tasks import inbound_service
from relaydesk.channels.threading import ticket_of
from relaydesk.core.mail import FolderMailer, SmtpMailer, flatten
from relaydesk.notifications.delivery import EMAIL_CHANNELS, HTTP_CHANNELS
from relaydesk.notifications.inline_images import Image, for_email, uploads_linked, uploads_shown
from relaydesk.notifications.notifier import CHAT_RECAP_DELAY
from relaydesk.notifications.sender import deliver_due
from relaydesk.runtime import Runtime


@pytest.fixture
def mail(runtime: Runtime, smtp_sink: SmtpSink) -> Iterator[SmtpSink]:
    """Outbound mail goes to a real SMTP server for the test."""
    before = runtime.mailer
    assert smtp_sink.port is not None
    runtime.mailer = SmtpMailer("127.0.0.1", smtp_sink.port, timeout=5)
    yield smtp_sink
    runtime.mailer = before


class MailerDouble:
    """Stands in for the runtime's mailer; subclasses say what ``send`` does."""

    def batch(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


def to(sink: SmtpSink, address: str) -> list[Any]:
    return [m for m in sink.messages if address in m.rcpt_tos]


async def deliver_everything_due(runtime: Runtime) -> int:
    """A round of each delivery job, at once, as the two jobs run: emails, and calls out."""
    return sum(await asyncio.gather(deliver_due(runtime, EMAIL_CHANNELS), deliver_due(runtime, HTTP_CHANNELS)))


async def send_due(runtime: Runtime, clock, *, after: timedelta = timedelta(0)) -> int:  # noqa: ANN001
    clock.advance(after)
    return await deliver_everything_due(runtime)


async def deliveries(client, ws: Workspace, **params: str) -> list[dict[str, Any]]:  # noqa: ANN001
    r = await client.get("/api/v1/notifications/deliveries", params=params, headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def reply_to(client, ws: Workspace, address: str) -> dict[str, Any]:  # noqa: ANN001
    """The one delivery of an agent's reply to ``address``."""
    [reply] = [d for d in await deliveries(client, ws, recipient=address) if d["kind"] == "reply_to_customer"]
    return reply


async def customer_writes_again_and_again(client, settle, mail, updates: int):  # noqa: ANN001, ANN201
    """A workspace whose customer writes ``updates`` times ("Update number 0", 1, ...) on
    one ticket, handled by its agent; the mail sink holds only what follows. Returns the
    workspace, the agent, the customer and the ticket."""
    ws = await make_workspace(client)
    agent = await ws.staff()
    customer = await ws.customer()
    ticket = await ws.ticket(customer)
    await settle()
    assert (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=agent.headers)).json()["assignee_id"]
    mail.clear()
    for i in range(updates):
        await ws.reply(customer, ticket["id"], f"Update number {i}")
    await settle()
    return ws, agent, customer, ticket


async def escalation_email(client, settle, mail, ws: Workspace, ticket: dict[str, Any], staff) -> EmailMessage:  # noqa: ANN001
    """The one email ``staff`` gets when an admin escalates ``ticket`` by hand."""
    await settle()
    mail.clear()
    r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalations", json={"reason": "Refund overdue"},
                          headers=ws.admin.headers)
    assert r.status_code in (200, 201), r.text
    await settle()
    [email] = to(mail, staff.email)
    return email.message


class TestCustomerEmails:
    async def test_a_new_ticket_is_acknowledged_with_its_number(self, client, settle, mail, runtime) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer, subject="Refund for order 1182")
        await settle()
        [email] = to(mail, customer.email)
        ref = ticket['number']
        assert f"[{ref}]" in email["Subject"]
        assert ref in email.message.get_body(("plain",)).get_content()
        assert email["Auto-Submitted"] == "auto-generated"
        assert ticket_of(email["Message-ID"], secret=runtime.settings.resolved_secret_key()) is not None
        assert email.message.get_body(("html",)) is not None

    async def test_links_point_into_the_web_app_when_there_is_one_and_nowhere_else(
            self, client, settle, mail, runtime, monkeypatch) -> None:  # noqa: ANN001
        """Relaydesk serves no ticket pages itself: without RELAYDESK_APP_URL an email has no
        link that would lead to a 404."""
        ws = await make_workspace(client)
        customer = await ws.customer()
        await ws.ticket(customer, subject="No web app")
        await settle()
        [plain] = to(mail, customer.email)
        body = plain.message.get_body(("plain",)).get_content() + plain.message.get_body(("html",)).get_content()
        assert "http" not in body.replace("http://www.w3.org", "")

        monkeypatch.setattr(runtime.settings, "app_url", "https://help.shop.example/")
        mail.clear()
        ticket = await ws.ticket(customer, subject="With a web app")
        await settle()
        [linked] = to(mail, customer.email)
        text = linked.message.get_body(("plain",)).get_content()
        assert f"https://help.shop.example/portal/tickets/{ticket['number']}" in text
        assert "https://help.shop.example/settings/notifications" in text

    async def test_an_agent_reply_is_a_threaded_email_to_the_customer(self, client, settle, mail, runtime) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        await ws.reply(agent, ticket["id"], "A note just for us", internal=True)
        await ws.reply(agent, ticket["id"], "Your replacement ships today.")
        await settle()
        [email] = to(mail, customer.email)
        assert "Your replacement ships today." in email.message.get_body(("plain",)).get_content()
        assert "A note just for us" not in email.raw.decode(errors="replace")
        assert "Auto-Submitted" not in email.message  # a person wrote it
        assert email["In-Reply-To"] and email["References"]
        secret = runtime.settings.resolved_secret_key()
        assert str(ticket_of(email["In-Reply-To"], secret=secret)) == ticket["id"]
        assert email["X-Relaydesk-Loop"]

    async def test_the_plain_text_of_a_formatted_reply_keeps_its_links_and_lists(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent, customer = await ws.staff(), await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        await ws.reply(agent, ticket["id"], '<p>Follow it <a href="https://carrier.example/track/88">here</a>:</p>'
                                            "<ul><li>Open the link</li><li>Enter your postcode</li></ul>")
        await settle()
        [email] = to(mail, customer.email)
        text = email.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert "here (https://carrier.example/track/88)" in text
        assert "- Open the link\n- Enter your postcode" in text

    async def test_vietnamese_customers_get_vietnamese_email(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer(language="vi")
        await ws.ticket(customer)
        await settle()
        [email] = to(mail, customer.email)
        text = email.message.get_body(("plain",)).get_content()
        assert "yêu cầu" in text

    async def test_status_news_names_only_the_statuses_the_customer_sees(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        assert (await ws.move(agent, ticket["id"], "ESCALATED")).status_code == 200
        await settle()
        await send_due(runtime, clock, after=timedelta(minutes=5))
        mail.clear()
        assert (await ws.move(agent, ticket["id"], "RESOLVED")).status_code == 200
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        [email] = to(mail, customer.email)
        text = email.message.get_body(("plain",)).get_content()
        assert "changed from “In progress” to “Resolved”" in text and "Escalated" not in text, text

    async def test_in_app_notifications_speak_the_customers_language(self, client, settle) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        lan, ann = await ws.customer(language="vi"), await ws.customer(language="en")
        for customer in (lan, ann):
            ticket = await ws.ticket(customer)
            await settle()
            await ws.reply(agent, ticket["id"], "Đã xử lý / Done.")
            await ws.move(agent, ticket["id"], "RESOLVED")
            await settle()
        titles = {c.email: [n["title"] for n in (await client.get("/api/v1/notifications", headers=c.headers)).json()["items"]]
                  for c in (lan, ann)}
        assert any(t.startswith("Chúng tôi đã nhận được yêu cầu T-") for t in titles[lan.email])
        assert any(t.startswith("Phản hồi mới cho yêu cầu T-") for t in titles[lan.email])
        assert not any("We received" in t or "New reply" in t or "is now" in t for t in titles[lan.email])
        assert any(t.startswith("We received your request T-") for t in titles[ann.email])
        assert any(t.endswith("is now resolved") for t in titles[ann.email])

    async def test_emails_are_written_exactly_as_the_standard_library_writes_them(
            self, client, settle, runtime) -> None:  # noqa: ANN001
        """core.mail.flatten skips compat32's folding of headers that fit on one line;
        the bytes must stay what compat32 writes, short headers and long ones alike."""
        composed: list[Any] = []

        class Recording(MailerDouble):
            async def send(self, message, recipients=None):  # noqa: ANN001, ANN202
                composed.append(message)

        ws = await make_workspace(client, name="Cửa hàng Hương & Sons " + "Trading " * 6)
        customer = await ws.customer(language="vi", name="Nguyễn Thị Hương")
        before, runtime.mailer = runtime.mailer, Recording()
        try:
            ticket = await ws.ticket(customer, subject="Đơn hàng bị hỏng " + "rất  dài\t " * 12)
            await ws.ticket(customer, subject="Plain  ascii subject with double  spaces ")
            assert (await ws.reply(ws.admin, ticket["id"], "Xin lỗi, chúng tôi sẽ gửi lại.")).status_code == 201
            await settle()
        finally:
            runtime.mailer = before
        assert len(composed) >= 3
        for message in composed:
            assert flatten(message) == bytes(message)

    def test_a_multipart_email_reads_back_as_written_whatever_its_text(self) -> None:
        """flatten picks the MIME boundaries itself: text full of boundary-like lines
        must still come back part for part."""
        text = "\n".join(["Order lines:", "===============", "--===============0123456789abcdef0123==",
                          "=" * 15 + "x" * 20 + "==", "Thanks"])
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = "Boundaries", "a@example.com", "b@example.com"
        message.set_content(text)
        message.add_alternative(f"<pre>{text}</pre>", subtype="html")
        message.add_attachment(text.encode(), maintype="text", subtype="plain", filename="order.txt")
        parsed = BytesParser(policy=email.policy.default).parsebytes(flatten(message))
        parts = [p for p in parsed.walk() if not p.is_multipart()]
        assert [p.get_content().strip() for p in parts] == [text, f"<pre>{text}</pre>", text]

    async def test_without_a_relay_each_email_lands_in_the_outbox_folder(
            self, client, settle, runtime, tmp_path) -> None:  # noqa: ANN001
        before, runtime.mailer = runtime.mailer, FolderMailer(tmp_path / "mail-outbox")
        try:
            ws = await make_workspace(client)
            customers = [await ws.customer() for _ in range(3)]
            for customer in customers:
                await ws.ticket(customer, subject=f"Parcel for {customer.email} is late")
            await settle()
        finally:
            runtime.mailer = before
        files = list((tmp_path / "mail-outbox").glob("*.eml"))
        emails = [BytesParser(policy=email.policy.default).parsebytes(f.read_bytes()) for f in files]
        assert sorted(e["To"] for e in emails) == sorted(c.email for c in customers)
        for e in emails:
            assert e["Message-ID"].strip().strip("<>") + ".eml" in {f.name for f in files}
            assert e.get_body(("plain",)) is not None and e.get_body(("html",)) is not None


class TestStaffEmailsAndPreferences:
    async def test_customer_replies_to_an_agent_are_batched_into_one_email(self, client, settle, mail, runtime,
                                                                          clock) -> None:  # noqa: ANN001
        ws, agent, *_ = await customer_writes_again_and_again(client, settle, mail, 10)
        assert to(mail, agent.email) == []  # waiting for the batch window
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        emails = to(mail, agent.email)
        assert len(emails) == 1
        body = emails[0].message.get_body(("plain",)).get_content()
        assert all(f"Update number {i}" in body for i in range(10))
        log = await deliveries(client, ws, recipient=agent.email)
        statuses = sorted(d["status"] for d in log)
        assert statuses == ["batched"] * (len(log) - 1) + ["sent"] and len(log) >= 10

    @pytest.mark.parametrize("runtime", ["postgres"], indirect=True)  # where rounds run at once
    async def test_rounds_at_once_share_out_one_persons_batch_without_deadlocking(self, client, settle, mail,
                                                                                runtime, clock) -> None:  # noqa: ANN001
        """Several workers' rounds each claim one email of the same person's batch: each
        leaves with the updates no other round holds, every update is sent once, and no
        round waits on another's (PostgreSQL found deadlocks there under load)."""
        ws, agent, *_ = await customer_writes_again_and_again(client, settle, mail, 12)
        clock.advance(timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        for _ in range(6):
            await asyncio.gather(*(deliver_due(runtime, EMAIL_CHANNELS, limit=1) for _ in range(4)))
        bodies = [e.message.get_body(("plain",)).get_content() for e in to(mail, agent.email)]
        sent = sorted(int(n) for body in bodies for n in re.findall(r"Update number (\d+)\b", body))
        assert sent == list(range(12))  # each once, in one email or another
        statuses = [d["status"] for d in await deliveries(client, ws, recipient=agent.email)]
        assert set(statuses) <= {"sent", "batched"}, statuses

    async def test_staff_emails_name_the_requester(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer(name="Lan Nguyen")
        message = await escalation_email(client, settle, mail, ws, await ws.ticket(customer), agent)
        assert "Requester: Lan Nguyen" in message.get_body(("plain",)).get_content()
        assert "<li>Requester: Lan Nguyen</li>" in message.get_body(("html",)).get_content()

    @pytest.mark.parametrize(("languages", "vietnamese"), [(["vi"], True), (["fr", "vi-VN"], True),
                                                          (["fr"], False), (["en", "vi"], False)])
    async def test_staff_get_email_in_their_language(self, client, settle, mail, languages: list[str],
                                                     vietnamese: bool) -> None:  # noqa: ANN001
        """The first language on the agent's profile that emails are written in; English
        when there is none."""
        ws = await make_workspace(client)
        agent = await ws.staff(languages=languages)
        message = await escalation_email(client, settle, mail, ws, await ws.ticket(ws.admin, assignee_id=agent.id),
                                         agent)
        text = message.get_body(("plain",)).get_content()
        assert ("Bạn nhận được email này vì" in text) is vietnamese, text
        assert ("You receive this because" in text) is not vietnamese, text

    async def test_updates_handled_together_keep_the_order_they_happened_in(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """Ten replies handled in one batch: the digest lists them as they were written, at
        the time each was written, and the in-app list has them newest first."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        written = []
        for i in range(10):
            written.append(clock.now())
            await ws.reply(customer, ticket["id"], f"Update number {i}")
            clock.advance(timedelta(minutes=1))
        await settle()  # one consumer batch
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        [email] = to(mail, agent.email)
        body = email.message.get_body(("plain",)).get_content()
        lines = [line for line in body.splitlines() if "Update number" in line]
        assert [line.rpartition(" ")[2] for line in lines] == [str(i) for i in range(10)], body
        for line, at in zip(lines, written, strict=True):  # each at the time it was written
            assert line.startswith(f"- {at:%H:%M} UTC"), (line, at)
        r = await client.get("/api/v1/notifications", headers=agent.headers)
        bodies = [n["body"] for n in r.json()["items"] if n["kind"] == "reply_to_agent"]
        assert bodies == [f"Update number {i}" for i in reversed(range(10))]

    async def test_a_digest_retried_after_a_failed_send_loses_nothing(self, client, settle, mail, runtime,
                                                                      clock) -> None:  # noqa: ANN001
        """The first try takes the waiting updates into one digest; the retry sends that
        same digest, and an update that came meanwhile leaves in the next email."""
        ws, agent, customer, ticket = await customer_writes_again_and_again(client, settle, mail, 3)
        mail.fail_next(1)
        window = timedelta(seconds=runtime.settings.notification_batch_seconds + 1)
        await send_due(runtime, clock, after=window)
        assert to(mail, agent.email) == []
        await ws.reply(customer, ticket["id"], "Update number 3")
        await settle()
        for _ in range(3):
            await send_due(runtime, clock, after=window)
        bodies = [e.message.get_body(("plain",)).get_content() for e in to(mail, agent.email)]
        assert len(bodies) == 2 and all(f"Update number {i}" in bodies[0] for i in range(3))
        assert "Update number 3" in bodies[1] and "Update number 3" not in bodies[0]

    async def test_an_agents_reply_brings_its_files_to_the_customer(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"
        big = b"%PDF-1.4\n" + b"0" * (6 * 1024 * 1024) + b"\n%%EOF\n"
        ids = []
        for name, data in (("Réclamation 7.pdf", pdf), ("scan-a.pdf", big), ("scan-b.pdf", big)):
            r = await client.post("/api/v1/uploads", files={"file": (name, data)}, headers=ws.admin.headers)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = await ws.reply(ws.admin, ticket["id"], "Here is the credit note.", attachment_ids=ids)
        assert r.status_code == 201, r.text
        await settle()
        [email] = to(mail, customer.email)
        assert email.message.get_content_type() == "multipart/mixed"
        attached = {part.get_filename(): part.get_content() for part in email.message.iter_attachments()}
        # Two fit in the limit for one email; the third is named in the text instead.
        assert attached == {"Réclamation 7.pdf": pdf, "scan-a.pdf": big}
        text = email.message.get_body(("plain",)).get_content()
        assert "Here is the credit note." in text and "Not attached, too large for email" in text
        assert "scan-b.pdf" in text and "scan-a.pdf" not in text
        assert "scan-b.pdf" in email.message.get_body(("html",)).get_content()

    async def test_a_replys_files_are_read_once_the_round_has_let_go_of_the_database(
            self, client, settle, mail, runtime, backend, monkeypatch) -> None:  # noqa: ANN001
        """Reading a file waits on the disk (or an object store). On SQLite the delivery
        round used to wait holding the only writer, and every request that writes waited
        with it; the files are read once the round's transaction is over."""
        if backend != "sqlite":
            pytest.skip("PostgreSQL takes concurrent writers: a read there holds nobody up")
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        r = await client.post("/api/v1/uploads", files={"file": ("invoice.pdf", b"%PDF-1.4 tiny")},
                              headers=ws.admin.headers)
        assert r.status_code == 201, r.text
        writer_free_while_reading: list[bool] = []
        read = runtime.files.get

        async def get_and_try_to_write(key: str) -> bytes:
            try:
                async with asyncio.timeout(2):
                    async with runtime.db.write_session() as session:
                        await session.connection()  # BEGIN IMMEDIATE: the writer, if free
                writer_free_while_reading.append(True)
            except TimeoutError:
                writer_free_while_reading.append(False)
            return await read(key)

        monkeypatch.setattr(runtime.files, "get", get_and_try_to_write)
        r = await ws.reply(ws.admin, ticket["id"], "Your invoice.", attachment_ids=[r.json()["id"]])
        assert r.status_code == 201, r.text
        await settle()
        [email] = to(mail, customer.email)
        assert [part.get_filename() for part in email.message.iter_attachments()] == ["invoice.pdf"]
        assert writer_free_while_reading == [True]

    @staticmethod
    async def status_digest(client, settle, mail, runtime, clock, **customer_fields):  # noqa: ANN001, ANN205
        """A customer's ticket resolved, then closed five seconds later: the one digest
        email they get (its plain text), and when the first change was made."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer(**customer_fields)
        ticket = await ws.ticket(customer)
        await settle()
        await send_due(runtime, clock, after=timedelta(minutes=5))
        mail.clear()
        moved = clock.now()
        assert (await ws.move(agent, ticket["id"], "RESOLVED")).status_code == 200
        await settle()
        clock.advance(timedelta(seconds=5))
        assert (await ws.move(agent, ticket["id"], "CLOSED")).status_code == 200
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        [digest] = to(mail, customer.email)
        return digest.message.get_body(("plain",)).get_content(), moved

    async def test_a_digest_lists_its_updates_in_order_and_in_the_recipients_language(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        body, _ = await self.status_digest(client, settle, mail, runtime, clock, language="vi")
        resolved = body.index("Trạng thái đã chuyển sang Đã giải quyết")
        closed = body.index("Trạng thái đã chuyển sang Đã đóng")
        assert resolved < closed
        assert "RESOLVED" not in body and "Status changed" not in body
        assert " UTC" in body  # times in the recipient's time zone; this customer keeps none, and it says so

    async def test_a_customers_updates_are_batched_per_ticket_and_stay_in_its_thread(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """Two of a customer's tickets resolved in the same minute: two emails, each in its
        ticket's conversation (its token, threaded on it), so answering either reaches that
        ticket. One ticket resolved and closed: one email, threaded the same way."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        tickets = [await ws.ticket(customer, subject=f"Parcel {n} is late") for n in (1, 2)]
        await settle()
        await send_due(runtime, clock, after=timedelta(minutes=5))
        mail.clear()
        for t in tickets:
            assert (await ws.move(agent, t["id"], "RESOLVED")).status_code == 200
        assert (await ws.move(agent, tickets[1]["id"], "CLOSED")).status_code == 200
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        emails = sorted((e.message for e in to(mail, customer.email)), key=lambda m: "Parcel 2" in str(m["Subject"]))
        assert len(emails) == 2, [str(m["Subject"]) for m in emails]
        assert str(emails[1]["Subject"]) == f"2 new updates on “Parcel 2 is late” [{tickets[1]['number']}]"
        for message, t in zip(emails, tickets, strict=True):
            assert f"[{t['number']}]" in str(message["Subject"])
            assert message["In-Reply-To"] and message["References"]
            body = message.get_body(("plain",)).get_content()
            other = tickets[1 - tickets.index(t)]
            assert other["number"] not in body
        # A reply to the digest (resolved, then closed) follows its ticket up, as a reply to
        # any of our emails about a closed ticket does.
        first = emails[1]
        reply = (f"From: {customer.email}\r\nTo: {ws.slug}@{runtime.settings.mail_domain}\r\n"
                 f"Subject: Re: {first['Subject']}\r\nMessage-ID: <answer-1@example.com>\r\n"
                 f"In-Reply-To: {first['Message-ID']}\r\nReferences: {first['References']} {first['Message-ID']}\r\n"
                 "\r\nThanks, all good now.\r\n").encode()
        async with runtime.transaction() as session:
            row = inbound_service(runtime, session).receive(uuid.UUID(ws.id), reply, source="smtp",
                                                            now=clock.now())
        await settle()
        async with runtime.db.read_session() as session:
            stored = await session.get(InboundEmail, row.id)
        assert stored.status == "processed", stored.reason
        follow_up = (await client.get(f"/api/v1/tickets/{stored.ticket_id}", headers=agent.headers)).json()
        assert follow_up["follow_up_of_id"] == tickets[1]["id"], follow_up

    async def test_digest_times_are_in_the_recipients_time_zone(self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        body, moved = await self.status_digest(client, settle, mail, runtime, clock, timezone="Asia/Ho_Chi_Minh")
        local = moved.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        assert f"{local:%H:%M}" in body and " UTC" not in body

    async def test_preferences_turn_email_off_but_keep_in_app(self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        r = await client.put("/api/v1/me/notification-preferences", headers=agent.headers, json={"preferences": [
            {"kind": "reply_to_agent", "channel": "email", "enabled": False}]})
        assert r.status_code == 200, r.text
        choice = next(p for p in r.json() if p["kind"] == "reply_to_agent" and p["channel"] == "email")
        assert choice == {"kind": "reply_to_agent", "channel": "email", "enabled": False, "default": False}
        ticket = await ws.ticket(customer)
        await settle()
        await ws.reply(customer, ticket["id"], "Hello?")
        await settle()
        await send_due(runtime, clock, after=timedelta(minutes=5))
        assert [m for m in to(mail, agent.email) if "Hello?" in m.raw.decode(errors="replace")] == []
        kinds = [n["kind"] for n in (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]]
        assert "reply_to_agent" in kinds

    async def test_assignments_made_together_still_follow_each_agents_choice(self, client, settle, mail, runtime,
                                                                              clock) -> None:  # noqa: ANN001
        """Assignments that reach the notifier in one batch have their agents and choices
        read together (one query each); each agent's choice still decides."""
        ws = await make_workspace(client)
        quiet, keen = await ws.staff(availability="away"), await ws.staff(availability="away")
        r = await client.put("/api/v1/me/notification-preferences", headers=quiet.headers, json={"preferences": [
            {"kind": "assigned", "channel": "email", "enabled": False}]})
        assert r.status_code == 200, r.text
        customer = await ws.customer()
        first, second = await ws.ticket(customer, subject="First"), await ws.ticket(customer, subject="Second")
        await settle()
        mail.clear()
        for t, agent in ((first, quiet), (second, keen)):
            r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers,
                                   json={"assignee_id": agent.id})
            assert r.status_code == 200, r.text
        with statements_run(runtime) as seen:
            await settle()  # both ticket.assigned events in one batch
        reads = [sql for sql in seen if sql.startswith("SELECT notification_preferences.")]
        await send_due(runtime, clock, after=timedelta(minutes=5))
        assert to(mail, quiet.email) == []
        [email] = to(mail, keen.email)
        assert "Second" in email.message["Subject"]
        for agent, subject in ((quiet, "First"), (keen, "Second")):
            items = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
            assert [n["kind"] for n in items if subject in n["title"]] == ["assigned"]
        assert len(reads) == 1, reads

    async def test_preferences_name_the_bad_field(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        r = await client.put("/api/v1/me/notification-preferences", headers=customer.headers, json={"preferences": [
            {"kind": "sla_breached", "channel": "email", "enabled": False}]})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert "preferences.0.kind" in r.text
        r = await client.put("/api/v1/me/notification-preferences", headers=customer.headers, json={"preferences": [
            {"kind": "ticket_created", "channel": "pigeon", "enabled": False}]})
        assert r.status_code == 422 and "channel" in r.text
        r = await client.put("/api/v1/me/notification-preferences", headers=customer.headers, json={"preferences": [
            {"kind": "ticket_created", "channel": "email", "enabled": False},
            {"kind": "ticket_created", "channel": "email", "enabled": True}]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "preferences.1"
        current = (await client.get("/api/v1/me/notification-preferences", headers=customer.headers)).json()
        assert [p["enabled"] for p in current if (p["kind"], p["channel"]) == ("ticket_created", "email")] == [True]


class TestInlineImages:
    """An image an agent puts in a reply's text reaches the customer inside the email (a
    relative link to the app, or one that needs signing in, shows nothing in a mail client)."""

    @staticmethod
    async def upload(client, by, name: str, data: bytes) -> str:  # noqa: ANN001
        r = await client.post("/api/v1/uploads", files={"file": (name, data)}, headers=by.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    @staticmethod
    def related_parts(message: EmailMessage) -> tuple[str, dict[str, Any]]:
        """The HTML of the email's multipart/related part, and its images by Content-ID."""
        [related] = [p for p in message.walk() if p.get_content_type() == "multipart/related"]
        html, *images = related.iter_parts()
        assert html.get_content_type() == "text/html"
        return html.get_content(), {p["Content-ID"].strip("<>"): p for p in images}

    @staticmethod
    def said(message: EmailMessage) -> str:
        """The email's text and HTML, decoded (a line of quoted-printable may break anywhere)."""
        return "".join(p.get_content() for p in message.walk() if p.get_content_maintype() == "text")

    async def test_an_image_in_a_reply_travels_inside_its_email(self, client, settle, mail, runtime) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent, customer = await ws.staff(), await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        png, gif = png_1x1(), GIF_1X1
        label = await self.upload(client, agent, "label.png", png)
        arrow = await self.upload(client, agent, "arrow.gif", gif)
        manual = await self.upload(client, agent, "manual.pdf", b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n")
        own = runtime.settings.public_url.rstrip("/")
        r = await ws.reply(agent, ticket["id"],
                           f'<p>The serial number is on this label:</p><p><img src="/api/v1/attachments/{label}" '
                           f'alt="Serial number label"></p>'
                           f'<p>Turn it this way <img src="{own}/api/v1/attachments/{arrow}"> and see the '
                           f'<a href="/api/v1/attachments/{manual}">manual</a>.</p>',
                           attachment_ids=[label, arrow, manual])
        assert r.status_code == 201, r.text
        await settle()
        [email] = to(mail, customer.email)
        html, images = self.related_parts(email.message)
        assert [(p.get_content_type(), p.get_content()) for p in images.values()] == [("image/png", png),
                                                                                      ("image/gif", gif)]
        label_cid, arrow_cid = images
        assert f'src="cid:{label_cid}"' in html and f'src="cid:{arrow_cid}"' in html
        assert "/api/v1/attachments" not in self.said(email.message)
        assert "see the manual." in html  # the link that led nowhere outside the app is its words
        # The images are in the text, not attached a second time; the other file is attached as before.
        assert [part.get_filename() for part in email.message.iter_attachments()] == ["manual.pdf"]
        text = email.message.get_body(("plain",)).get_content()
        assert "[image: Serial number label]" in text and "[image: arrow.gif]" in text

    def test_only_links_to_our_own_uploads_change(self) -> None:
        upload, linked_only = uuid.uuid4(), uuid.uuid4()
        origins = ("https://help.shop.example",)
        body = (f'<p><a href="/api/v1/attachments/{linked_only}">Photo</a> <a href="https://carrier.example/t/8">'
                f'Track</a> <img src="https://cdn.example/logo.png" alt="Logo">'
                f'<img src="https://help.shop.example.evil/api/v1/attachments/{upload}">'
                f'<a href="https://help.shop.example/api/v1/attachments/{upload}" rel="noopener"><b>label</b></a>'
                f'<img src="HTTPS://help.shop.example/api/v1/attachments/{upload}" width="20"></p>')
        assert uploads_shown(body, origins) == [upload]
        assert uploads_linked(body, origins) == [upload, linked_only]
        html, text = for_email(body, origins, {upload: Image("label.png", "a1@mail.example"),
                                               linked_only: Image("photo.png")})
        assert html == ('<p>Photo <a href="https://carrier.example/t/8">Track</a> '
                        '<img src="https://cdn.example/logo.png" alt="Logo">'
                        f'<img src="https://help.shop.example.evil/api/v1/attachments/{upload}">'
                        '<b>label</b><img src="cid:a1@mail.example" width="20"></p>')
        assert text == "Photo Track (https://carrier.example/t/8) label[image: label.png]"

    async def test_an_image_the_customer_may_not_see_is_never_embedded(self, client, settle, mail) -> None:  # noqa: ANN001
        """Only the images of the ticket's public messages travel: not another workspace's,
        another ticket's or an internal note's, whatever the reply's text points at."""
        ws, elsewhere = await make_workspace(client), await make_workspace(client)
        agent, customer = await ws.staff(), await ws.customer()
        ticket = await ws.ticket(customer)
        other_ticket = await ws.ticket(customer, subject="Another order")
        foreign_ticket = await elsewhere.ticket(elsewhere.admin)
        secret_png = png_1x1() + b"secret"  # PNG readers ignore what follows the end; the test finds it
        foreign = await self.upload(client, elsewhere.admin, "theirs.png", secret_png)
        assert (await elsewhere.reply(elsewhere.admin, foreign_ticket["id"], "Theirs",
                                      attachment_ids=[foreign])).status_code == 201
        other = await self.upload(client, agent, "other.png", secret_png)
        assert (await ws.reply(agent, other_ticket["id"], "Other", attachment_ids=[other])).status_code == 201
        noted = await self.upload(client, agent, "noted.png", secret_png)
        assert (await ws.reply(agent, ticket["id"], "Just for us", internal=True,
                               attachment_ids=[noted])).status_code == 201
        await settle()
        mail.clear()
        images = "".join(f'<img src="/api/v1/attachments/{i}" alt="picture {n}">'
                         for n, i in enumerate([foreign, other, noted, str(uuid.uuid4())]))
        assert (await ws.reply(agent, ticket["id"], f"<p>Look:</p>{images}")).status_code == 201
        await settle()
        [email] = to(mail, customer.email)
        assert not [p for p in email.message.walk() if p.get_content_maintype() == "image"]
        said = self.said(email.message)
        assert "cid:" not in said and "/api/v1/attachments" not in said and b"secret" not in email.raw
        for filename in ("theirs.png", "other.png", "noted.png"):
            assert filename not in said and filename not in email.raw.decode(errors="replace")
        html = email.message.get_body(("html",)).get_content()
        text = email.message.get_body(("plain",)).get_content()
        assert all(f"[image: picture {n}]" in html and f"[image: picture {n}]" in text for n in range(4))

    async def test_images_beyond_what_an_email_carries_are_named_instead(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent, customer = await ws.staff(), await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        big = png_1x1() + bytes(6 * 1024 * 1024)
        first = await self.upload(client, agent, "before.png", big)
        second = await self.upload(client, agent, "after.png", big)
        r = await ws.reply(agent, ticket["id"], f'<img src="/api/v1/attachments/{first}">'
                                                f'<img src="/api/v1/attachments/{second}">',
                           attachment_ids=[first, second])
        assert r.status_code == 201, r.text
        await settle()
        [email] = to(mail, customer.email)
        html, images = self.related_parts(email.message)
        [cid] = images
        assert images[cid].get_content() == big and f'src="cid:{cid}"' in html
        assert "[image: after.png]" in html and "after.png (6.3 MB)" in html
        text = email.message.get_body(("plain",)).get_content()
        assert "[image: before.png]" in text and "Not attached, too large for email" in text

    async def test_a_chat_recap_carries_the_images_of_its_replies(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """The visitor left the chat: the agent's replies reach them together, a few minutes
        later, as one email, and the images in them travel inside it as in a single reply."""
        ws = await make_workspace(client)
        agent = await ws.staff()
        chat = (await start_chat(client, ws.slug, email="lan@visitors.example.com")).json()
        await settle()
        mail.clear()
        png, gif = png_1x1(), GIF_1X1
        label = await self.upload(client, agent, "label.png", png)
        arrow = await self.upload(client, agent, "arrow.gif", gif)
        for body, image in ((f'<p>The serial number is here:</p><img src="/api/v1/attachments/{label}" '
                             'alt="Serial number label">', label),
                            (f'<p>Then turn it <img src="/api/v1/attachments/{arrow}"> this way.</p>', arrow)):
            r = await ws.reply(agent, chat["ticket_id"], body, attachment_ids=[image])
            assert r.status_code == 201, r.text
            await settle()
        await send_due(runtime, clock, after=CHAT_RECAP_DELAY + timedelta(seconds=1))
        [recap] = to(mail, "lan@visitors.example.com")
        html, images = self.related_parts(recap.message)
        assert [(p.get_content_type(), p.get_content()) for p in images.values()] == [("image/png", png),
                                                                                      ("image/gif", gif)]
        label_cid, arrow_cid = images
        assert f'src="cid:{label_cid}"' in html and f'src="cid:{arrow_cid}"' in html
        assert "The serial number is here" in html and "/api/v1/attachments" not in self.said(recap.message)
        assert list(recap.message.iter_attachments()) == []  # shown in the text, not attached again
        text = recap.message.get_body(("plain",)).get_content()
        assert "[image: Serial number label]" in text and "[image: arrow.gif]" in text


class TestReliability:
    async def test_a_refusing_relay_is_retried_with_back_off_and_every_attempt_logged(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        mail.fail_next(2)
        await ws.ticket(customer)
        await settle()
        assert to(mail, customer.email) == []
        [ack] = [d for d in await deliveries(client, ws, recipient=customer.email)]
        assert ack["status"] == "failed" and ack["attempts"] == 1 and "451" in ack["last_error"]
        await send_due(runtime, clock, after=timedelta(seconds=29))
        assert to(mail, customer.email) == []  # still backing off
        await send_due(runtime, clock, after=timedelta(seconds=2))
        await send_due(runtime, clock, after=timedelta(seconds=61))
        assert len(to(mail, customer.email)) == 1
        [ack] = await deliveries(client, ws, recipient=customer.email.upper())  # however the admin types it
        assert ack["status"] == "sent" and ack["attempts"] == 3
        assert [a["outcome"] for a in ack["attempt_log"]] == ["failed", "failed", "sent"]
        # The log names the email as it went out, to find it in a mailbox or the relay's log.
        [sent] = to(mail, customer.email)
        assert ack["message_id"] and sent["Message-ID"].strip().strip("<>") == ack["message_id"]

    async def test_an_email_that_cannot_be_composed_fails_alone(
            self, client, settle, mail, runtime, monkeypatch) -> None:  # noqa: ANN001
        """A fault composing one email (a template, an address no header can carry) is that
        delivery's failure, logged with its reason; the round's other emails still go."""
        from relaydesk.notifications import sender

        ws = await make_workspace(client)
        unlucky, lucky = await ws.customer(), await ws.customer()
        compose = sender._compose

        async def breaks_for_one(runtime, session, delivery, now):  # noqa: ANN001, ANN202
            if delivery.recipient == unlucky.email:
                raise UnicodeEncodeError("ascii", "ü", 0, 1, "ordinal not in range(128)")
            return await compose(runtime, session, delivery, now)

        monkeypatch.setattr(sender, "_compose", breaks_for_one)
        await ws.ticket(unlucky)
        await ws.ticket(lucky)
        await settle()
        assert len(to(mail, lucky.email)) == 1 and to(mail, unlucky.email) == []
        [failed] = await deliveries(client, ws, recipient=unlucky.email)
        assert failed["status"] == "dead" and "could not be composed: UnicodeEncodeError" in failed["last_error"]

    async def test_a_round_of_emails_shares_one_connection_to_the_relay(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customers = [await ws.customer() for _ in range(4)]
        mail.fail_next(4)  # the acknowledgements wait for their retry, then go in one round
        for customer in customers:
            await ws.ticket(customer)
        await settle()
        assert mail.messages == []
        await send_due(runtime, clock, after=timedelta(minutes=2))
        sent = [m for c in customers for m in to(mail, c.email)]
        assert len(sent) == 4
        assert len({m.peer for m in sent}) == 1  # one TCP connection carried all four

    async def test_a_relay_that_hangs_up_mid_round_is_dialled_again(self, client, settle, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customers = [await ws.customer() for _ in range(5)]
        with SmtpSink(messages_per_connection=2) as sink:
            before, runtime.mailer = runtime.mailer, SmtpMailer("127.0.0.1", sink.port, timeout=5)
            try:
                sink.fail_next(5)
                for customer in customers:
                    await ws.ticket(customer)
                await settle()
                await send_due(runtime, clock, after=timedelta(minutes=2))
            finally:
                runtime.mailer = before
            sent = [m for c in customers for m in to(sink, c.email)]
        assert len(sent) == 5  # none lost to the 421s, none sent twice
        assert len({m.peer for m in sent}) == 3  # 2 + 2 + 1
        for customer in customers:
            [ack] = await deliveries(client, ws, recipient=customer.email)
            assert ack["status"] == "sent" and ack["attempts"] == 2

    async def test_an_unreachable_relay_fails_the_rest_of_the_round_without_dialling_each(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """A relay that hangs up before its greeting is dialled once per round: the other
        emails fail at once (to be retried with back-off), not each after its own wait."""
        ws = await make_workspace(client)
        customers = [await ws.customer() for _ in range(3)]
        mail.fail_next(3)  # first attempts fail, so the retries meet in one round
        for customer in customers:
            await ws.ticket(customer)
        await settle()
        dialled = 0

        async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal dialled
            dialled += 1
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        before, runtime.mailer = runtime.mailer, SmtpMailer("127.0.0.1", port, timeout=5)
        try:
            assert await send_due(runtime, clock, after=timedelta(minutes=2)) == 3
        finally:
            runtime.mailer = before
            server.close()
            await server.wait_closed()
        assert dialled == 1
        for customer in customers:
            [ack] = await deliveries(client, ws, recipient=customer.email)
            assert ack["status"] == "failed" and ack["attempts"] == 2 and ack["next_attempt_at"]
        assert mail.messages == []

    async def test_a_relay_that_refuses_our_login_is_retried_until_the_password_is_fixed(
            self, client, settle, runtime, clock) -> None:  # noqa: ANN001
        """A 535 is about our set-up, not the recipients: the round's emails wait with
        back-off, and go once the relay takes the login."""
        ws = await make_workspace(client)
        customers = [await ws.customer() for _ in range(2)]
        with SmtpSink(require_auth=("relaydesk", "right")) as sink:
            before = runtime.mailer
            runtime.mailer = SmtpMailer("127.0.0.1", sink.port, username="relaydesk", password="wrong", timeout=5)
            try:
                for customer in customers:
                    await ws.ticket(customer)
                await settle()
                for customer in customers:
                    [ack] = await deliveries(client, ws, recipient=customer.email)
                    assert ack["status"] == "failed" and ack["next_attempt_at"], ack
                    assert "refused our login: 535" in ack["last_error"]
                runtime.mailer = SmtpMailer("127.0.0.1", sink.port, username="relaydesk", password="right", timeout=5)
                await send_due(runtime, clock, after=timedelta(minutes=2))
            finally:
                runtime.mailer = before
            assert all(len(to(sink, c.email)) == 1 for c in customers)
        for customer in customers:
            [ack] = await deliveries(client, ws, recipient=customer.email)
            assert ack["status"] == "sent" and ack["attempts"] == 2

    async def test_a_relay_that_wants_a_login_we_do_not_give_is_retried_until_it_is_set(
            self, client, settle, runtime, clock) -> None:  # noqa: ANN001
        """No RELAYDESK_SMTP_USERNAME for a relay that needs one: it answers MAIL FROM with
        530. Our set-up again, not the customer's address: the email waits, and goes."""
        ws = await make_workspace(client)
        customer = await ws.customer()
        with SmtpSink(require_auth=("relaydesk", "right")) as sink:
            before = runtime.mailer
            runtime.mailer = SmtpMailer("127.0.0.1", sink.port, timeout=5)
            try:
                await ws.ticket(customer)
                await settle()
                [ack] = await deliveries(client, ws, recipient=customer.email)
                assert ack["status"] == "failed" and ack["next_attempt_at"] and "530" in ack["last_error"], ack
                runtime.mailer = SmtpMailer("127.0.0.1", sink.port, username="relaydesk", password="right", timeout=5)
                await send_due(runtime, clock, after=timedelta(minutes=2))
            finally:
                runtime.mailer = before
            assert len(to(sink, customer.email)) == 1
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "sent" and ack["attempts"] == 2

    async def test_slow_webhooks_hold_up_no_email(self, client, settle, mail, receiver, runtime, clock,
                                                   monkeypatch) -> None:  # noqa: ANN001
        """Eight webhooks of one workspace answering after the timeout: another workspace's
        acknowledgement, due in the same round, is sent at once, and the calls wait out
        their timeouts together rather than one after another."""
        from relaydesk.notifications import sender

        monkeypatch.setattr(sender, "WEBHOOK_TIMEOUT_SECONDS", 0.5)
        hooks, url = receiver
        ws, other = await make_workspace(client), await make_workspace(client)
        for _ in range(8):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
                "url": url, "events": ["ticket.created"], "allow_private": True})
            assert r.status_code == 201, r.text
        customer = await other.customer()
        hooks.fail_next = 8  # first attempts fail, so the retries meet in one round, the calls first
        await ws.ticket(ws.admin)
        await settle()
        mail.fail_next(1)
        await other.ticket(customer)
        await settle()
        hooks.delay = 1.0
        started = time.perf_counter()
        round_ = asyncio.create_task(send_due(runtime, clock, after=timedelta(seconds=31)))
        while not to(mail, customer.email) and not round_.done():
            await asyncio.sleep(0.01)
        emailed_after = time.perf_counter() - started
        await round_
        took = time.perf_counter() - started
        assert len(to(mail, customer.email)) == 1 and emailed_after < 0.5, emailed_after
        assert took < 2, took  # one after another: 8 × 0.5 s
        calls = [d for d in await deliveries(client, ws) if d["channel"] == "webhook"]
        assert len(calls) == 8 and all(d["status"] == "failed" and d["attempts"] == 2 for d in calls), calls

    async def test_a_round_that_runs_long_leaves_the_rest_to_the_next_and_sends_nothing_twice(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """A relay taking 100 s per email, while the periodic rounds keep coming: the long
        round stops starting emails well before its claim runs out, the next round takes
        the rest, and every customer gets their acknowledgement once."""
        ws = await make_workspace(client)
        customers = [await ws.customer() for _ in range(4)]
        mail.fail_next(4)  # first attempts fail, so the retries meet in one round
        for customer in customers:
            await ws.ticket(customer)
        await settle()
        sent: list[str] = []

        class SlowRelay(MailerDouble):
            scanning = False

            async def send(self, message, recipients=None):  # noqa: ANN001, ANN202
                clock.advance(timedelta(seconds=100))
                sent.append(str(message["To"]))
                if not SlowRelay.scanning:  # the periodic round, come while the relay holds this email
                    SlowRelay.scanning = True
                    try:
                        await deliver_everything_due(runtime)
                    finally:
                        SlowRelay.scanning = False

        before, runtime.mailer = runtime.mailer, SlowRelay()
        try:
            await send_due(runtime, clock, after=timedelta(seconds=31))
            for _ in range(3):
                await deliver_everything_due(runtime)
        finally:
            runtime.mailer = before
        assert sorted(sent) == sorted(c.email for c in customers), sent
        for customer in customers:
            [ack] = await deliveries(client, ws, recipient=customer.email)
            assert ack["status"] == "sent" and [a["outcome"] for a in ack["attempt_log"]].count("sent") == 1, ack

    async def test_a_send_that_outlives_its_claim_does_not_overwrite_the_next_claim(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """A send that takes longer than the claim (here the clock jumps past it while the
        relay holds the email): the round that claimed it again owns its outcome; the late
        one does not write over it."""
        ws = await make_workspace(client)
        customer = await ws.customer()
        mail.fail_next(1)
        await ws.ticket(customer)
        await settle()
        stuck, go_on = asyncio.Event(), asyncio.Event()

        class StallsOnce(MailerDouble):
            calls = 0

            async def send(self, message, recipients=None):  # noqa: ANN001, ANN202
                StallsOnce.calls += 1
                if StallsOnce.calls == 1:
                    clock.advance(timedelta(minutes=6))
                    stuck.set()
                    await go_on.wait()

        before, runtime.mailer = runtime.mailer, StallsOnce()
        try:
            late = asyncio.create_task(send_due(runtime, clock, after=timedelta(seconds=31)))
            await stuck.wait()
            await deliver_everything_due(runtime)  # the claim ran out: taken again, and sent
            assert StallsOnce.calls == 2
            go_on.set()
            await late
        finally:
            runtime.mailer = before
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "sent" and [a["outcome"] for a in ack["attempt_log"]] == ["failed", "sent"], ack
        assert ack["attempts"] == 3

    async def test_a_permanent_refusal_gives_up_at_once(self, client, settle, runtime, clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        with SmtpSink(rejected_recipients={customer.email.lower()}) as sink:
            before, runtime.mailer = runtime.mailer, SmtpMailer("127.0.0.1", sink.port, timeout=5)
            try:
                await ws.ticket(customer)
                await settle()
            finally:
                runtime.mailer = before
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "dead" and ack["next_attempt_at"] is None

    async def test_a_reply_the_relay_refuses_for_good_is_noted_on_the_ticket(self, client, settle, runtime,
                                                                             clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        with SmtpSink(rejected_recipients={customer.email.lower()}) as sink:
            before, runtime.mailer = runtime.mailer, SmtpMailer("127.0.0.1", sink.port, timeout=5)
            try:
                ticket = await ws.ticket(customer)
                r = await ws.reply(ws.admin, ticket["id"], "Your parcel is on its way.")
                assert r.status_code == 201, r.text
                await settle()
            finally:
                runtime.mailer = before
        [reply] = [d for d in await deliveries(client, ws, recipient=customer.email) if d["kind"] == "reply_to_customer"]
        assert reply["status"] == "dead"
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)
        [note] = [m for m in r.json()["items"] if m["author_kind"] == "system" and "could not be emailed" in
                  m["body_text"]]
        assert note["internal"] is True and customer.email in note["body_text"]
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=customer.headers)
        assert not [m for m in r.json()["items"] if "could not be emailed" in m["body_text"]]

    async def test_a_greylisted_reply_is_retried_with_back_off_until_it_goes(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """A 4xx at RCPT (greylisting, a mailbox full for now) is temporary: only a 5xx is
        the relay's last word."""
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        mail.deferred_recipients.add(customer.email.lower())
        await ws.reply(ws.admin, ticket["id"], "Your parcel is on its way.")
        await settle()
        assert to(mail, customer.email) == []
        reply = await reply_to(client, ws, customer.email)
        assert reply["status"] == "failed" and reply["next_attempt_at"] and "451" in reply["last_error"], reply
        mail.deferred_recipients.clear()  # the greylist lets it through now
        await send_due(runtime, clock, after=timedelta(seconds=31))
        [email] = to(mail, customer.email)
        assert "Your parcel is on its way." in email.message.get_body(("plain",)).get_content()
        reply = await reply_to(client, ws, customer.email)
        assert reply["status"] == "sent" and reply["attempts"] == 2, reply
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)
        assert not [m for m in r.json()["items"] if "could not be emailed" in m["body_text"]]

    async def test_a_reply_refused_for_now_at_every_attempt_is_given_up_and_noted(
            self, client, settle, mail, runtime, clock, monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setattr(runtime.settings, "delivery_max_attempts", 3)
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.deferred_recipients.add(customer.email.lower())
        await ws.reply(ws.admin, ticket["id"], "Your parcel is on its way.")
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=31))
        reply = await reply_to(client, ws, customer.email)
        assert reply["status"] == "failed", reply
        await send_due(runtime, clock, after=timedelta(seconds=61))
        reply = await reply_to(client, ws, customer.email)
        assert reply["status"] == "dead" and reply["attempts"] == 3 and reply["next_attempt_at"] is None, reply
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)
        [note] = [m for m in r.json()["items"] if "could not be emailed" in m["body_text"]]
        assert note["internal"] is True and "after 3 attempt(s)" in note["body_text"] and "451" in note["body_text"]

    async def test_a_crash_mid_delivery_neither_loses_nor_duplicates(self, client, settle, mail, runtime,
                                                                     clock) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()

        class Crash(BaseException):
            pass

        class DiesBeforeSending(MailerDouble):
            async def send(self, message, recipients=None):  # noqa: ANN001, ANN202
                raise Crash

        before, runtime.mailer = runtime.mailer, DiesBeforeSending()
        try:
            await ws.ticket(customer)
            await settle()  # the job dies (the broker logs it) after claiming the email
        finally:
            runtime.mailer = before
        [claimed] = await deliveries(client, ws, recipient=customer.email)
        assert claimed["status"] == "sending"  # claimed, never sent, never marked
        await send_due(runtime, clock)
        assert to(mail, customer.email) == []  # the claim has not run out yet: nobody sends it twice at once
        await send_due(runtime, clock, after=timedelta(minutes=6))
        await send_due(runtime, clock, after=timedelta(minutes=6))
        assert len(to(mail, customer.email)) == 1
        [done] = await deliveries(client, ws, recipient=customer.email)
        assert done["status"] == "sent"

    async def test_the_same_event_handled_twice_sends_once(self, client, settle, mail, runtime) -> None:  # noqa: ANN001
        from sqlalchemy import update

        from relaydesk.core.outbox import OutboxEvent, ProcessedEvent

        ws = await make_workspace(client)
        customer = await ws.customer()
        await ws.ticket(customer)
        await settle()
        async with runtime.db.write_session() as s:  # forget that notifications handled it; deliver again
            await s.execute(ProcessedEvent.__table__.delete().where(ProcessedEvent.consumer == "notifications.on_event"))
            await s.execute(update(OutboxEvent).where(OutboxEvent.workspace_id == uuid.UUID(ws.id),
                                                      OutboxEvent.type == "ticket.created").values(dispatched_at=None))
            await s.commit()
        await settle()
        assert len(to(mail, customer.email)) == 1

    async def test_the_delivery_log_is_for_admins_of_the_workspace(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        await ws.ticket(customer)
        await settle()
        assert [d["recipient"] for d in await deliveries(client, ws)] == [customer.email]
        agent = await ws.staff()
        r = await client.get("/api/v1/notifications/deliveries", headers=agent.headers)
        assert r.status_code == 403
        other = await make_workspace(client)
        assert await deliveries(client, other) == []


    async def test_the_delivery_log_refuses_filters_it_does_not_know(self, client) -> None:  # noqa: ANN001
        """An unknown status is a mistake to be told about, not an empty log that looks
        like nothing failed."""
        ws = await make_workspace(client)
        for bad in ("FAILED", "bounced", ""):
            r = await client.get("/api/v1/notifications/deliveries", params={"status": bad}, headers=ws.admin.headers)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (bad, r.text)
            [error] = r.json()["errors"]
            assert error["field"] == "status", r.text
            for allowed in ("pending", "sending", "sent", "failed", "dead", "batched", "suppressed"):
                assert f"'{allowed}'" in error["message"], r.text
        for params, field in (({"cursor": "not-a-cursor"}, "cursor"), ({"limit": "0"}, "limit"),
                              ({"limit": "201"}, "limit"), ({"recipient": "x" * 501}, "recipient")):
            r = await client.get("/api/v1/notifications/deliveries", params=params, headers=ws.admin.headers)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (params, r.text)
        for good in ({"status": "dead"}, {"recipient": "@"}, {"recipient": "Not An Address"}):
            assert await deliveries(client, ws, **good) == []


class TestRetryingDeadDeliveries:
    async def test_a_reply_that_died_while_the_relay_refused_goes_once_when_an_admin_retries_it(
            self, client, settle, mail, runtime) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        ticket = await ws.ticket(customer)
        await settle()
        mail.clear()
        mail.fail_next(1, reply="554 5.7.1 Relay access denied")  # the relay's set-up, fixed afterwards
        await ws.reply(ws.admin, ticket["id"], "Your refund left our bank today.")
        await settle()
        assert to(mail, customer.email) == []
        [dead] = [d for d in await deliveries(client, ws, recipient=customer.email)
                  if d["kind"] == "reply_to_customer"]
        assert dead["status"] == "dead" and dead["next_attempt_at"] is None

        r = await client.post(f"/api/v1/notifications/deliveries/{dead['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        queued = r.json()
        assert queued["id"] == dead["id"] and queued["status"] == "failed" and queued["next_attempt_at"]
        assert queued["attempt_log"][-1]["outcome"] == "retried" and queued["attempt_log"][-1]["by"] == ws.admin.id
        await settle()  # the retry wakes the delivery job: no waiting for the periodic scan
        [email] = to(mail, customer.email)
        assert "Your refund left our bank today." in email.message.get_body(("plain",)).get_content()
        [sent] = [d for d in await deliveries(client, ws, recipient=customer.email) if d["id"] == dead["id"]]
        assert sent["status"] == "sent" and sent["attempts"] == 2
        assert [a["outcome"] for a in sent["attempt_log"]] == ["failed", "retried", "sent"]
        # The same delivery, so the same Message-ID: a copy from an earlier try is the same message.
        assert email["Message-ID"].strip().strip("<>") == sent["message_id"] == dead["message_id"]

        r = await client.post(f"/api/v1/notifications/deliveries/{dead['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["code"] == "delivery_not_retryable" and r.json()["status_now"] == "sent", r.text
        await settle()
        assert len(to(mail, customer.email)) == 1
        r = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=ws.admin.headers)
        notes = [m["body_text"] for m in r.json()["items"] if m["author_kind"] == "system"]
        assert any("could not be emailed" in n for n in notes)
        assert any("was emailed" in n and "after all" in n and customer.email in n for n in notes), notes

    async def test_a_retried_delivery_gets_all_its_attempts_again(self, client, settle, mail, runtime, clock,
                                                                  monkeypatch) -> None:  # noqa: ANN001
        """Died after the last of its attempts: retried, a temporary failure backs off and
        tries again rather than giving up at once."""
        monkeypatch.setattr(runtime.settings, "delivery_max_attempts", 2)
        ws = await make_workspace(client)
        customer = await ws.customer()
        mail.fail_next(3)
        await ws.ticket(customer)
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=31))
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "dead" and ack["attempts"] == 2, ack
        r = await client.post(f"/api/v1/notifications/deliveries/{ack['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        await settle()  # the third refusal
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "failed" and ack["next_attempt_at"], ack
        await send_due(runtime, clock, after=timedelta(seconds=31))
        assert len(to(mail, customer.email)) == 1
        [ack] = await deliveries(client, ws, recipient=customer.email)
        assert ack["status"] == "sent" and ack["attempts"] == 4, ack

    async def test_a_webhook_call_given_up_goes_once_when_retried(self, client, settle, receiver, runtime,
                                                                   monkeypatch) -> None:  # noqa: ANN001
        """The endpoint was down until the delivery ran out of attempts; fixed, the call is
        made again through the call-out job, signed and logged like any."""
        hooks, url = receiver
        monkeypatch.setattr(runtime.settings, "delivery_max_attempts", 1)
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                              json={"url": url, "events": ["ticket.created"], "allow_private": True})
        assert r.status_code == 201, r.text
        hooks.fail_next = 1
        ping = (await client.post(f"/api/v1/webhooks/{r.json()['id']}/test", headers=ws.admin.headers)).json()
        await settle()
        [dead] = [d for d in await deliveries(client, ws) if d["id"] == ping["id"]]
        assert dead["status"] == "dead" and dead["last_error"] == "HTTP 503" and hooks.requests == [], dead
        r = await client.post(f"/api/v1/notifications/deliveries/{ping['id']}/retry", headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        await settle()
        [(headers, body)] = hooks.requests
        assert headers["x-relaydesk-delivery"] == ping["id"] and orjson.loads(body)["type"] == "ping"
        [sent] = [d for d in await deliveries(client, ws) if d["id"] == ping["id"]]
        assert [a["outcome"] for a in sent["attempt_log"]] == ["failed", "retried", "sent"], sent

    async def test_only_the_workspaces_admins_retry_and_only_what_did_not_go(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        customer = await ws.customer()
        await ws.ticket(customer)
        await settle()
        [sent] = await deliveries(client, ws, recipient=customer.email)
        assert sent["status"] == "sent"
        url = f"/api/v1/notifications/deliveries/{sent['id']}/retry"
        assert (await client.post(url)).status_code == 401
        agent = await ws.staff()
        r = await client.post(url, headers=agent.headers)
        assert r.status_code == 403, r.text
        other = await make_workspace(client)
        r = await client.post(url, headers=other.admin.headers)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        r = await client.post(f"/api/v1/notifications/deliveries/{uuid.uuid4()}/retry", headers=ws.admin.headers)
        assert r.status_code == 404, r.text
        r = await client.post(url, headers=ws.admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "delivery_not_retryable", r.text
        for bulk in ("/api/v1/notifications/deliveries/retry-dead",):
            assert (await client.post(bulk, json={}, headers=agent.headers)).status_code == 403
        await settle()
        assert len(to(mail, customer.email)) == 1

    async def test_every_dead_delivery_of_a_period_or_kind_is_retried_at_once(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws, other = await make_workspace(client), await make_workspace(client)
        early = await ws.customer()
        refused = mail.rejected_recipients
        refused.add(early.email.lower())
        try:
            await ws.ticket(early)
            await settle()
            clock.advance(timedelta(hours=1))
            outage = runtime.clock.now()
            await ws.relogin()
            await other.relogin()
            late, elsewhere = await ws.customer(), await other.customer()
            refused |= {late.email.lower(), elsewhere.email.lower()}
            ticket = await ws.ticket(late)
            await other.ticket(elsewhere)
            await settle()
            await ws.reply(ws.admin, ticket["id"], "We are on it.")
            await settle()
        finally:
            refused.clear()
        dead = await deliveries(client, ws, status="dead")
        assert sorted((d["recipient"], d["kind"]) for d in dead) == sorted(
            [(early.email, "ticket_created"), (late.email, "ticket_created"), (late.email, "reply_to_customer")])
        bulk = "/api/v1/notifications/deliveries/retry-dead"
        r = await client.post(bulk, json={"since": outage.isoformat(), "kind": "reply_to_customer"},
                              headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"retried": 1, "more": False}
        await settle()
        [reply] = to(mail, late.email)
        assert "We are on it." in reply.message.get_body(("plain",)).get_content()
        r = await client.post(bulk, json={"since": outage.isoformat(), "channel": "email"}, headers=ws.admin.headers)
        assert r.json() == {"retried": 1, "more": False}, r.text
        await settle()
        assert len(to(mail, late.email)) == 2 and to(mail, early.email) == []
        r = await client.post(bulk, headers=ws.admin.headers)  # no body: every dead one of the workspace
        assert r.json() == {"retried": 1, "more": False}, r.text
        await settle()
        assert len(to(mail, early.email)) == 1
        assert to(mail, elsewhere.email) == []  # another workspace's stay as they are
        assert [d["status"] for d in await deliveries(client, other, recipient=elsewhere.email)] == ["dead"]
        assert (await client.post(bulk, json={}, headers=ws.admin.headers)).json() == {"retried": 0, "more": False}

    async def test_a_bulk_retry_refuses_filters_that_make_no_sense(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        bulk = "/api/v1/notifications/deliveries/retry-dead"
        for body, field in (({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
                            ({"since": "2026-01-01T09:00:00"}, "since"), ({"channel": "fax"}, "channel"),
                            ({"kind": "x" * 61}, "kind"), ({"kind": "bogus"}, "kind"), ({"status": "sent"}, "status")):
            r = await client.post(bulk, json=body, headers=ws.admin.headers)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (body, r.text)
            assert r.json()["errors"][0]["field"] == field, (body, r.text)


class TestTemplates:
    async def test_a_preview_shows_the_workspaces_own_name_and_links(self, client, runtime, monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setattr(runtime.settings, "app_url", "https://help.shop.example")
        ws = await make_workspace(client, name="Demo Outfitters")
        r = await client.post("/api/v1/notification-templates/ticket_created/en/preview", headers=ws.admin.headers,
                              json={})
        assert r.status_code == 200, r.text
        shown = r.json()["text"] + r.json()["html"]
        assert "Demo Outfitters" in shown and "Lotus Travel" not in shown
        assert "https://help.shop.example/portal/tickets/T-000123" in shown and "help.example.com" not in shown

    async def test_an_admin_customises_previews_and_resets_a_template(self, client, settle, mail) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.post("/api/v1/notification-templates/ticket_created/en/preview", headers=ws.admin.headers,
                              json={"template": {"subject": "Got it: {{ ticket.reference }}", "text": "Hi {{ recipient_name }}"}})
        assert r.status_code == 200, r.text
        assert r.json()["subject"].startswith("Got it: T-")
        r = await client.put("/api/v1/notification-templates/ticket_created/en", headers=ws.admin.headers,
                             json={"subject": "Got it: {{ ticket.reference }}", "text": "Hi {{ recipient_name }}, we are on it."})
        assert r.status_code == 200 and r.json()["customised"] is True
        customer = await ws.customer()
        await ws.ticket(customer)
        await settle()
        [email] = to(mail, customer.email)
        assert email["Subject"].startswith("Got it: T-")
        assert "we are on it." in email.message.get_body(("plain",)).get_content()
        r = await client.delete("/api/v1/notification-templates/ticket_created/en", headers=ws.admin.headers)
        assert r.status_code == 204
        r = await client.get("/api/v1/notification-templates/ticket_created/en", headers=ws.admin.headers)
        assert r.json()["customised"] is False

    async def test_a_broken_template_is_refused_naming_the_part(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        r = await client.put("/api/v1/notification-templates/assigned/vi", headers=ws.admin.headers,
                             json={"subject": "ok", "html": "<p>{% if %}</p>"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert "html" in r.text
        r = await client.put("/api/v1/notification-templates/assigned/en", headers=ws.admin.headers,
                             json={"subject": "{{ tikcet.reference }}", "text": "Hello"})
        assert r.status_code == 422 and "subject" in r.text
        r = await client.put("/api/v1/notification-templates/nonsense/en", headers=ws.admin.headers,
                             json={"subject": "x"})
        assert r.status_code == 404
        agent = await ws.staff()
        assert (await client.get("/api/v1/notification-templates", headers=agent.headers)).status_code == 403

    async def test_a_template_that_would_hold_the_server_is_refused_in_good_time(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        slow = ("{% set ns = namespace(c=0) %}{% for a in range(3000) %}{% for b in range(3000) %}"
                "{% set ns.c = ns.c + 1 %}{% endfor %}{% endfor %}{{ ns.c }}")
        for request in (client.put("/api/v1/notification-templates/ticket_created/en", headers=ws.admin.headers,
                                   json={"subject": "Hi", "text": slow}),
                        client.post("/api/v1/notification-templates/ticket_created/en/preview",
                                    headers=ws.admin.headers, json={"template": {"subject": "Hi", "text": slow}})):
            started = time.perf_counter()
            r = await request
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "text", r.text
            assert "takes too long" in r.text and time.perf_counter() - started < 2
        r = await client.get("/api/v1/notification-templates/ticket_created/en", headers=ws.admin.headers)
        assert r.json()["customised"] is False

    @pytest.mark.parametrize(("kind", "context", "status", "says"), [
        # Items that are not a list of updates read as none; an odd reference is shown as given.
        ("digest", {"items": 5}, 200, "0 new updates"),
        ("digest", {"items": [{"ticket": {"reference": ["a"]}}]}, 200, "1 new update"),
        # What the template cannot render at all is named, on the context.
        ("daily_summary", {"counts": "x", "oldest": 5}, 422, "Cannot be previewed with this context"),
    ])
    async def test_a_preview_with_a_context_of_the_wrong_shape_is_answered(  # noqa: ANN001
            self, client, kind: str, context: dict, status: int, says: str) -> None:
        ws = await make_workspace(client)
        r = await client.post(f"/api/v1/notification-templates/{kind}/en/preview", headers=ws.admin.headers,
                              json={"context": context})
        assert r.status_code == status and says in r.text, r.text
        if status == 422:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"] == "context"


class TestWebhooks:
    async def test_private_targets_need_an_admins_say_so(self, client, receiver) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        _, url = receiver
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={"url": url, "events": ["ticket.created"]})
        assert r.status_code == 422 and "url" in r.text and "private" in r.text
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                              json={"url": "ftp://example.com/x", "events": ["ticket.created"]})
        assert r.status_code == 422
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                              json={"url": url, "events": ["ticket.exploded"], "allow_private": True})
        assert r.status_code == 422 and "events" in r.text
        for bad in ("http://example.com:99999/", "http://example.com:abc/", "http://[::1/"):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                                  json={"url": bad, "events": ["ticket.created"]})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", (bad, r.text)

    async def test_private_targets_need_the_operator_as_well(self, client, settle, receiver, runtime, clock,
                                                            monkeypatch) -> None:  # noqa: ANN001
        """Anyone can make a workspace: unless the operator allows private targets, no
        admin's say-so lets a webhook reach the network around the server."""
        hooks, url = receiver
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"], "allow_private": True})
        assert r.status_code == 201, r.text  # this server's operator allows them (the test peers are local)
        hook = r.json()
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", r.text
        assert "set allow_private on this endpoint" in r.text  # the switch the admin has, not only the operator's
        monkeypatch.setattr(runtime.settings, "allow_private_targets", False)
        for target in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/"):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
                "url": target, "events": ["ticket.created"], "allow_private": True})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "allow_private", r.text
            assert "operator" in r.text and "RELAYDESK_ALLOW_PRIVATE_TARGETS" in r.text
        r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                               json={"allow_private": True})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "allow_private", r.text
        r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers, json={"active": False})
        assert r.status_code == 200, r.text  # changing something else is no reason to refuse
        r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers, json={"active": True})
        assert r.status_code == 200, r.text
        # The endpoint saved while it was allowed reaches nothing private once it is not.
        await ws.ticket(ws.admin)
        await settle()
        assert hooks.requests == []
        [call] = [d for d in await deliveries(client, ws) if d["channel"] == "webhook"]
        assert call["status"] == "dead" and "private" in call["last_error"], call

    @pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::ffff:127.0.0.1",
                                         "::127.0.0.1", "2002:7f00:1::1", "64:ff9b:1::a00:1"])
    async def test_an_ipv6_address_standing_for_a_private_ipv4_one_is_refused(
            self, client, runtime, monkeypatch, address: str) -> None:  # noqa: ANN001
        """NAT64 (64:ff9b::/96), IPv4-mapped, IPv4-compatible and 6to4 addresses lead to the
        IPv4 address inside them; a local NAT64 prefix to wherever that network says."""
        monkeypatch.setattr(runtime.settings, "allow_private_targets", False)
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": f"http://[{address}]/hook", "events": ["ticket.created"]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", r.text

    async def test_a_url_with_control_characters_or_spaces_is_refused(self, client, receiver) -> None:  # noqa: ANN001
        """Such a URL is no URL to the HTTP client: saved, it could never be sent."""
        ws = await make_workspace(client)
        _, url = receiver
        for bad in ("http://8.8.8.8/hook\r\nX: 1", "http://8.8.8.8/a hook", "http://8.8.8.8/\thook",
                    "http://8.8.8.8/ho\u2028ok"):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers,
                                  json={"url": bad, "events": ["ticket.created"]})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", (bad, r.text)
            assert "control characters" in r.text
        hook = (await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"], "allow_private": True})).json()
        r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                               json={"url": url + "\r\nX: 1"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", r.text

    async def test_a_webhook_that_cannot_be_sent_fails_alone_not_the_round(
            self, client, settle, mail, receiver, runtime, clock) -> None:  # noqa: ANN001
        """A target the HTTP client refuses outright (here a host name no IDNA encoder
        accepts) is that delivery's failure, for good; the customer emails of the same
        round, another workspace's too, go once each."""
        hooks, url = receiver
        ws, other = await make_workspace(client), await make_workspace(client)
        customer = await other.customer()
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"], "allow_private": True})
        assert r.status_code == 201, r.text
        hooks.fail_next, _ = 1, mail.fail_next(2)  # first attempts fail, so the retries meet in one round
        await ws.ticket(ws.admin)
        await other.ticket(customer)
        await settle()
        assert hooks.requests == [] and mail.messages == []
        r = await client.patch(f"/api/v1/webhooks/{r.json()['id']}", headers=ws.admin.headers,
                               json={"url": "http://xn--zz.example/hook"})
        assert r.status_code == 200, r.text
        await send_due(runtime, clock, after=timedelta(seconds=31))
        [ack] = await deliveries(client, other, recipient=customer.email)
        assert ack["status"] == "sent", ack
        [hook] = [d for d in await deliveries(client, ws) if d["channel"] == "webhook"]
        assert hook["status"] == "dead" and hook["next_attempt_at"] is None, hook
        assert hook["attempt_log"][-1]["outcome"] == "failed" and "IDNA" in hook["last_error"]
        for _ in range(2):
            await send_due(runtime, clock, after=timedelta(minutes=6))
        assert len(to(mail, customer.email)) == 1

    async def test_a_change_that_empties_a_field_is_refused_and_changes_nothing(self, client, receiver) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        _, url = receiver
        hook = (await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"], "allow_private": True})).json()
        for field in ("active", "events", "description", "allow_private", "url"):
            r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers,
                                   json={field: None, "active": False} if field != "active" else {field: None})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (field, r.text)
        [after] = (await client.get("/api/v1/webhooks", headers=ws.admin.headers)).json()
        assert after["active"] is True and after["events"] == ["ticket.created"] and after["url"] == url

    async def test_events_are_posted_signed_retried_and_never_carry_internal_notes(
            self, client, settle, receiver, runtime, clock) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created", "message.posted"], "allow_private": True})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert "secret" not in (await client.get("/api/v1/webhooks", headers=ws.admin.headers)).json()[0]
        hooks.fail_next = 1
        ticket = await ws.ticket(ws.admin)
        await settle()
        assert hooks.requests == []
        await send_due(runtime, clock, after=timedelta(seconds=31))
        [(headers, body)] = hooks.requests
        stamp, signature = (part.split("=", 1)[1] for part in headers["x-relaydesk-signature"].split(","))
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        event = orjson.loads(body)
        assert event["type"] == "ticket.created" and event["ticket"]["id"] == ticket["id"]

        await ws.reply(agent, ticket["id"], "internal only", internal=True)
        await ws.reply(agent, ticket["id"], "public words")
        await settle()
        posted = [orjson.loads(b) for _, b in hooks.requests[1:]]
        assert [p["data"]["body_text"] for p in posted] == ["public words"]

    async def test_a_workspace_has_at_most_twenty_webhooks(self, client, receiver) -> None:  # noqa: ANN001
        """Every event is posted to every endpoint: without a cap one workspace could make
        each of its events cost thousands of calls."""
        _, url = receiver
        ws, other = await make_workspace(client), await make_workspace(client)
        hook = {"url": url, "events": ["ticket.created"], "allow_private": True}
        made = []
        for _ in range(20):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json=hook)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json=hook)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json", r.text
        problem = r.json()
        assert problem["code"] == "webhook_limit" and problem["limit"] == 20, problem
        assert "20" in problem["detail"] and "remove" in problem["detail"], problem
        assert len((await client.get("/api/v1/webhooks", headers=ws.admin.headers)).json()) == 20
        r = await client.post("/api/v1/webhooks", headers=other.admin.headers, json=hook)
        assert r.status_code == 201, r.text  # the cap is each workspace's own
        assert (await client.delete(f"/api/v1/webhooks/{made[0]}", headers=ws.admin.headers)).status_code == 204
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json=hook)
        assert r.status_code == 201, r.text

    async def test_the_webhook_cap_holds_when_admins_add_at_once(self, client, receiver) -> None:  # noqa: ANN001
        _, url = receiver
        ws = await make_workspace(client)
        hook = {"url": url, "events": ["ticket.created"], "allow_private": True}
        for _ in range(16):
            assert (await client.post("/api/v1/webhooks", headers=ws.admin.headers, json=hook)).status_code == 201
        answers = await asyncio.gather(*(client.post("/api/v1/webhooks", headers=ws.admin.headers, json=hook)
                                         for _ in range(8)))
        assert sorted(r.status_code for r in answers) == [201] * 4 + [409] * 4, [r.text for r in answers]
        assert len((await client.get("/api/v1/webhooks", headers=ws.admin.headers)).json()) == 20

    async def test_an_admin_tests_a_webhook_with_a_signed_ping_logged_like_any_delivery(
            self, client, settle, receiver, runtime, clock) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws, other = await make_workspace(client), await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created", "message.posted"], "allow_private": True})
        assert r.status_code == 201, r.text
        hook = r.json()
        for who, status in ((None, 401), (agent, 403), (other.admin, 404)):
            r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=who.headers if who else {})
            assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text
        r = await client.post(f"/api/v1/webhooks/{uuid.uuid4()}/test", headers=ws.admin.headers)
        assert r.status_code == 404, r.text

        r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=ws.admin.headers)
        assert r.status_code == 202, r.text
        queued = r.json()
        assert queued["kind"] == "ping" and queued["target_id"] == hook["id"] and queued["status"] == "pending"
        await settle()
        [(headers, body)] = hooks.requests
        stamp, signature = (part.split("=", 1)[1] for part in headers["x-relaydesk-signature"].split(","))
        expected = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        assert headers["x-relaydesk-delivery"] == queued["id"]
        ping = orjson.loads(body)
        assert ping["type"] == "ping" and ping["webhook_id"] == hook["id"] and ping["workspace_id"] == ws.id
        assert ping["data"] == {"events": ["message.posted", "ticket.created"]} and ping["ticket"] is None
        [logged] = [d for d in await deliveries(client, ws) if d["id"] == queued["id"]]
        assert logged["status"] == "sent" and logged["attempt_log"][-1]["outcome"] == "sent", logged

        hooks.fail_next = 1  # a failing endpoint: the admin reads why in the log
        failing = (await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=ws.admin.headers)).json()
        await settle()
        [logged] = [d for d in await deliveries(client, ws) if d["id"] == failing["id"]]
        assert logged["status"] == "failed" and logged["last_error"] == "HTTP 503", logged

        r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=ws.admin.headers, json={"active": False})
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=ws.admin.headers)
        assert r.status_code == 409 and r.json()["code"] == "webhook_inactive", r.text

    async def test_a_rotated_secret_signs_everything_sent_from_then_on(self, client, settle, receiver, runtime,
                                                                      clock) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws, other = await make_workspace(client), await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "events": ["ticket.created"], "allow_private": True})
        assert r.status_code == 201, r.text
        hook = r.json()
        for who, status in ((None, 401), (agent, 403), (other.admin, 404)):
            r = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret",
                                  headers=who.headers if who else {})
            assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text

        hooks.fail_next = 1
        await ws.ticket(ws.admin)  # its call fails, to be retried after the rotation
        await settle()
        assert hooks.requests == []

        r = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["id"] == hook["id"] and rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != hook["secret"]
        assert "secret" not in (await client.get("/api/v1/webhooks", headers=ws.admin.headers)).json()[0]
        await send_due(runtime, clock, after=timedelta(seconds=31))
        await ws.ticket(ws.admin)
        await settle()
        assert len(hooks.requests) == 2  # the retry, and the new ticket's

        for headers, body in hooks.requests:
            stamp, signature = (part.split("=", 1)[1] for part in headers["x-relaydesk-signature"].split(","))
            expected = hmac.new(rotated["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(signature, expected), "signed with the old secret"

    async def test_a_slack_target_is_tested_with_a_message_in_the_channel(self, client, settle, receiver) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "kind": "slack", "events": ["ticket.escalated"], "allow_private": True})
        assert r.status_code == 201, r.text
        r = await client.post(f"/api/v1/webhooks/{r.json()['id']}/test", headers=ws.admin.headers)
        assert r.status_code == 202 and r.json()["channel"] == "slack", r.text
        await settle()
        [(headers, body)] = hooks.requests
        assert "Relaydesk" in orjson.loads(body)["text"] and "ticket.escalated" in orjson.loads(body)["text"]
        assert "x-relaydesk-signature" not in headers

    async def test_the_delivery_log_names_the_webhook_each_call_went_to(
            self, client, settle, receiver, runtime, clock) -> None:  # noqa: ANN001
        """Two endpoints at the same URL, one failing for good: the log tells which one."""
        hooks, url = receiver
        ws = await make_workspace(client)
        customer = await ws.customer()
        made = []
        for description in ("CRM", "Data warehouse"):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
                "url": url, "events": ["ticket.created"], "description": description, "allow_private": True})
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        crm, warehouse = made
        r = await client.patch(f"/api/v1/webhooks/{warehouse}", headers=ws.admin.headers,
                               json={"url": "http://xn--zz.example/hook"})
        assert r.status_code == 200, r.text
        await ws.ticket(customer)
        await settle()
        log = await deliveries(client, ws)
        calls = {d["target_id"]: d for d in log if d["channel"] == "webhook"}
        assert calls.keys() == {crm, warehouse}, log
        assert calls[crm]["status"] == "sent" and calls[warehouse]["status"] == "dead", log
        [email] = [d for d in log if d["channel"] == "email"]
        assert email["target_id"] is None

    async def test_slack_gets_escalations(self, client, settle, receiver) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "kind": "slack", "events": ["ticket.escalated"], "allow_private": True})
        assert r.status_code == 201, r.text
        ticket = await ws.ticket(ws.admin, subject="<!channel> urgent <http://evil.example/login|Reset your password>")
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalations",
                              json={"reason": "Outage for a VIP <!here> & <http://evil.example|click>"},
                              headers=ws.admin.headers)
        assert r.status_code in (200, 201), r.text
        await settle()
        [(headers, body)] = hooks.requests
        text = orjson.loads(body)["text"]
        assert ticket['number'] in text and "Outage for a VIP" in text
        # What people wrote shows as written: no @channel, no disguised link.
        assert "&lt;!channel&gt; urgent &lt;http://evil.example/login|Reset your password&gt;" in text
        assert "&lt;!here&gt; &amp; &lt;http://evil.example|click&gt;" in text
        assert "<!channel>" not in text and "<!here>" not in text and "<http://evil" not in text
        assert "x-relaydesk-signature" not in headers


    async def test_a_slack_message_links_the_ticket_only_where_there_is_a_web_app(
            self, client, settle, receiver, runtime, monkeypatch) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws = await make_workspace(client)
        r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
            "url": url, "kind": "slack", "events": ["ticket.escalated"], "allow_private": True})
        assert r.status_code == 201, r.text
        texts = []
        for app_url in (None, "https://help.shop.example"):
            monkeypatch.setattr(runtime.settings, "app_url", app_url)
            ticket = await ws.ticket(ws.admin, subject="Printer on fire")
            r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalations", json={"reason": "Smoke"},
                                  headers=ws.admin.headers)
            assert r.status_code in (200, 201), r.text
            await settle()
            texts.append((ticket["number"], orjson.loads(hooks.requests[-1][1])["text"]))
        (bare, without), (linked, with_link) = texts
        assert f" {bare} “Printer on fire”" in without and "<" not in without, without
        assert f"<https://help.shop.example/tickets/{linked}|{linked}> “Printer on fire”" in with_link, with_link


class TestDailySummary:
    async def test_team_leads_get_one_summary_a_day(self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        from relaydesk.notifications.notifier import send_daily_summaries

        ws = await make_workspace(client)
        lead = await ws.staff("supervisor")
        r = await client.post("/api/v1/teams", json={"name": "Returns desk", "lead_id": lead.id},
                              headers=ws.admin.headers)
        assert r.status_code == 201, r.text
        team = r.json()
        for subject in ("Return label missing", "Refund not received"):
            await ws.ticket(ws.admin, subject=subject, team_id=team["id"])
        await settle()
        at_eight = clock.now().replace(hour=runtime.settings.daily_summary_hour_utc, minute=5)
        if at_eight < clock.now():
            at_eight += timedelta(days=1)
        clock.set(at_eight)
        assert await send_daily_summaries(runtime, clock.now()) >= 1
        assert await send_daily_summaries(runtime, clock.now() + timedelta(minutes=30)) == 0
        assert await send_daily_summaries(runtime, clock.now().replace(hour=(at_eight.hour + 1) % 24)) == 0
        await deliver_everything_due(runtime)
        [summary] = to(mail, lead.email)
        text = summary.message.get_body(("plain",)).get_content()
        assert "Returns desk" in text and "Return label missing" in text

    async def test_the_day_is_named_as_the_leads_calendar_shows_it(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """Sent at 08:05 UTC, the summary covers the 24 hours before: in Los Angeles that is
        all of the day before, in Hanoi (the workspace's zone) most of that day itself."""
        from relaydesk.notifications.notifier import send_daily_summaries

        ws = await make_workspace(client)
        r = await client.patch("/api/v1/workspace/settings", json={"timezone": "Asia/Ho_Chi_Minh"},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        west, hanoi = await ws.staff("supervisor"), await ws.staff("supervisor")
        r = await client.patch(f"/api/v1/agents/{west.id}", json={"timezone": "America/Los_Angeles"},
                               headers=west.headers)
        assert r.status_code == 200, r.text
        for name, lead in (("Night shift", west), ("Day shift", hanoi)):
            r = await client.post("/api/v1/teams", json={"name": name, "lead_id": lead.id}, headers=ws.admin.headers)
            assert r.status_code == 201, r.text
        await settle()
        sent_at = clock.now().replace(hour=runtime.settings.daily_summary_hour_utc, minute=5) + timedelta(days=1)
        clock.set(sent_at)
        assert await send_daily_summaries(runtime, clock.now()) >= 2
        await deliver_everything_due(runtime)
        [for_west], [for_hanoi] = to(mail, west.email), to(mail, hanoi.email)
        day_before = f"{sent_at - timedelta(days=1):%Y-%m-%d}"
        assert for_west["Subject"] == f"Daily summary for Night shift: {day_before}"
        assert for_hanoi["Subject"] == f"Daily summary for Day shift: {sent_at:%Y-%m-%d}"


class TestSlaEmails:
    @staticmethod
    async def desk_with_a_late_ticket(client, settle, mail, runtime, clock, *, policy: dict[str, Any] | None = None,
                                      **agent_fields):  # noqa: ANN001, ANN205
        """A team (its lead away) whose one agent holds a new ticket, the mail sink emptied;
        returns the workspace, the lead, the agent, the ticket and when it was created.
        ``policy``: the workspace's default SLA policy, if not the built-in one."""
        ws = await make_workspace(client)
        if policy is not None:
            r = await client.post("/api/v1/sla-policies", headers=ws.admin.headers,
                                  json={"name": "Ours", "is_default": True, **policy})
            assert r.status_code == 201, r.text
        team = (await client.post("/api/v1/teams", json={"name": "Support"}, headers=ws.admin.headers)).json()
        lead = await ws.staff("supervisor", team_ids=[team["id"]], availability="away")
        await client.patch(f"/api/v1/teams/{team['id']}", json={"lead_id": lead.id}, headers=ws.admin.headers)
        agent = await ws.staff(team_ids=[team["id"]], **agent_fields)
        ticket = await ws.ticket(ws.admin, subject="Refund overdue", team_id=team["id"])
        await settle()
        got = (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ws.admin.headers)).json()
        assert got["assignee_id"] == agent.id, got
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        mail.clear()
        return ws, lead, agent, ticket, datetime.fromisoformat(ticket["created_at"])

    @staticmethod
    async def scan_at(runtime, settle, clock, at: datetime) -> None:  # noqa: ANN001
        clock.set(at)
        await runtime.jobs.enqueue("sla.scan_due")
        await runtime.jobs.wait_idle()
        await settle()
        await deliver_everything_due(runtime)

    async def test_webhooks_get_every_level_crossed_and_slack_only_the_one_told(
            self, client, settle, mail, runtime, clock, receiver) -> None:  # noqa: ANN001
        hooks, url = receiver
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(client, settle, mail, runtime, clock)
        for kind in ("generic", "slack"):
            r = await client.post("/api/v1/webhooks", headers=ws.admin.headers, json={
                "url": f"{url}?{kind}", "kind": kind, "events": ["sla.threshold_crossed"], "allow_private": True})
            assert r.status_code == 201, r.text
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=7, minutes=30))
        events = [orjson.loads(body) for _, body in hooks.requests if "data" in orjson.loads(body)]
        # Each event is its own delivery, so they may arrive in either order.
        assert sorted((e["data"]["level"], e["data"]["notify"]) for e in events) == [
            ("critical", True), ("warning", False)]
        [slack] = [orjson.loads(body)["text"] for _, body in hooks.requests if "text" in orjson.loads(body)]
        assert "critical" in slack and "warning" not in slack, slack

    async def test_a_scan_that_crosses_several_levels_tells_only_the_highest(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(client, settle, mail, runtime, clock)
        # MEDIUM: first response due in 8 h; warning at 6 h, critical at 7.2 h.
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=7, minutes=30))
        [critical] = to(mail, agent.email)
        assert "SLA critical" in critical.message["Subject"], critical.message["Subject"]
        mail.clear()
        # Down past the breach: the breach and the escalation it raises are one email.
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=8, minutes=30))
        for person in (agent, lead):
            [email] = to(mail, person.email)
            subject = email.message["Subject"]
            body = email.message.get_body(("plain",)).get_content()
            assert "Escalated to level 1" in subject and "first response SLA breached" in body, (subject, body)
        await ws.relogin(agent)
        notes = (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
        assert sorted(n["kind"] for n in notes if n["ticket_id"] == ticket["id"] and n["kind"] != "assigned") \
            == ["escalated", "sla_critical"]

    async def test_the_reason_of_an_automatic_escalation_is_in_the_recipients_language(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        """What the SLA monitor says is worded for each reader; what a person wrote when
        escalating by hand stays as they wrote it."""
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(
            client, settle, mail, runtime, clock, languages=["vi", "en"])

        def said(person) -> tuple[str, str]:  # noqa: ANN001
            [email] = to(mail, person.email)
            return email.message.get_body(("plain",)).get_content(), email.message.get_body(("html",)).get_content()

        await self.scan_at(runtime, settle, clock, created + timedelta(hours=8, minutes=30))
        text, html = said(agent)
        assert "đã được chuyển lên cấp 1" in text and "Lý do: SLA phản hồi đầu tiên đã bị vi phạm" in text, text
        assert "Lý do: SLA phản hồi đầu tiên đã bị vi phạm" in html and "breached" not in html, html
        assert "Reason: first response SLA breached" in said(lead)[0]  # the lead reads English
        mail.clear()

        await self.scan_at(runtime, settle, clock, created + timedelta(hours=9, minutes=31))
        text, _ = said(agent)
        assert "cấp 2" in text and "Lý do: vẫn chưa được giải quyết 60 phút sau khi lên cấp 1" in text, text
        assert "Reason: still unresolved 60 minutes after level 1" in said(lead)[0]
        mail.clear()

        await ws.relogin()  # the clock has moved past the admin's access token
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalations", headers=ws.admin.headers,
                              json={"kind": "incident", "reason": "Checkout is down for everyone"})
        assert r.status_code in (200, 201), r.text
        await settle()
        await deliver_everything_due(runtime)
        text, _ = said(agent)
        assert "cấp 3" in text and "Lý do: Checkout is down for everyone" in text, text

    @pytest.mark.parametrize("language", ["en", "vi"])
    async def test_a_warning_names_the_policys_own_threshold(self, client, settle, mail, runtime, clock,
                                                             language: str) -> None:  # noqa: ANN001
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(
            client, settle, mail, runtime, clock, policy={"warning_at": 0.5, "critical_at": 0.8},
            languages=[language, "en"])
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=4, minutes=30))  # of 8
        await ws.relogin(agent)
        [note] = [n for n in (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
                  if n["kind"] == "sla_warning"]
        assert "50 %" in note["title"] and "75 %" not in note["title"], note["title"]
        [email] = to(mail, agent.email)
        body = email.message.get_body(("plain",)).get_content()
        assert "50 %" in body and "75 %" not in body, body

    async def test_agents_set_their_own_time_zone_and_languages_but_not_their_workload(self, client) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await client.patch(f"/api/v1/agents/{agent.id}", headers=agent.headers,
                               json={"timezone": "Asia/Ho_Chi_Minh", "languages": ["vi", "en"],
                                     "availability": "away"})
        assert r.status_code == 200, r.text
        assert (r.json()["timezone"], r.json()["languages"]) == ("Asia/Ho_Chi_Minh", ["vi", "en"])
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"timezone": "Mars/Olympus_Mons"},
                               headers=agent.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "timezone", r.text
        for body in ({"max_concurrent": 500}, {"role": "admin"}, {"skills": [{"skill": "refunds", "level": 5}]},
                     {"timezone": "UTC", "is_senior": True}):
            r = await client.patch(f"/api/v1/agents/{agent.id}", json=body, headers=agent.headers)
            assert r.status_code == 403 and "time zone" in r.json()["detail"], (body, r.text)
        other = await ws.staff()
        r = await client.patch(f"/api/v1/agents/{other.id}", json={"timezone": "UTC"}, headers=agent.headers)
        assert r.status_code == 403, r.text

    async def test_sla_times_are_in_the_recipients_time_zone(self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(
            client, settle, mail, runtime, clock, timezone="Asia/Ho_Chi_Minh")
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=6, minutes=30))
        due = (created + timedelta(hours=8)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        local = f"{due:%Y-%m-%d %H:%M} (UTC+07:00)"
        [email] = to(mail, agent.email)
        assert local in email.message["Subject"], email.message["Subject"]
        for part in ("plain", "html"):
            assert local in email.message.get_body((part,)).get_content()
        await ws.relogin(agent)
        [note] = [n for n in (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
                  if n["kind"] == "sla_warning"]
        assert note["body"] == f"Due {local}", note

    async def test_without_a_time_zone_of_their_own_times_are_in_the_workspaces(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(client, settle, mail, runtime, clock)
        r = await client.get(f"/api/v1/agents/{agent.id}", headers=ws.admin.headers)
        assert r.json()["timezone"] is None, r.text  # none of their own
        r = await client.patch("/api/v1/workspace/settings", json={"timezone": "Asia/Ho_Chi_Minh"},
                               headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["timezone"] == "Asia/Ho_Chi_Minh", r.text
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=6, minutes=30))
        due = (created + timedelta(hours=8)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        local = f"{due:%Y-%m-%d %H:%M} (UTC+07:00)"
        [email] = to(mail, agent.email)
        assert local in email.message["Subject"], email.message["Subject"]
        await ws.relogin(agent)
        [note] = [n for n in (await client.get("/api/v1/notifications", headers=agent.headers)).json()["items"]
                  if n["kind"] == "sla_warning"]
        assert note["body"] == f"Due {local}", note

    async def test_a_time_zone_of_their_own_wins_over_the_workspaces(
            self, client, settle, mail, runtime, clock) -> None:  # noqa: ANN001
        ws, lead, agent, ticket, created = await self.desk_with_a_late_ticket(
            client, settle, mail, runtime, clock, timezone="UTC")
        r = await client.patch("/api/v1/workspace/settings", json={"timezone": "Asia/Ho_Chi_Minh"},
                               headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        await self.scan_at(runtime, settle, clock, created + timedelta(hours=6, minutes=30))
        due = (created + timedelta(hours=8)).astimezone(UTC)
        [email] = to(mail, agent.email)
        assert f"{due:%Y-%m-%d %H:%M} UTC" in email.message["Subject"], email.message["Subject"]


class TestQueueWaitAlerts:
    @pytest.mark.parametrize("language", ["en", "vi"])
    async def test_a_backlog_waiting_for_an_agent_is_one_email_per_manager(self, client, settle, mail, runtime,
                                                                          clock, language: str) -> None:  # noqa: ANN001
        ws = await make_workspace(client)
        await ws.staff(availability="offline")  # nobody to take them
        supervisor = await ws.staff("supervisor", availability="offline", languages=[language, "en"])
        customer = await ws.customer()
        made = [await ws.ticket(customer, subject=f"Order {n} missing") for n in range(5)]
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        mail.clear()
        clock.advance(timedelta(minutes=31))
        await runtime.jobs.enqueue("routing.sweep_queues")
        await settle()
        await settle()
        await send_due(runtime, clock, after=timedelta(seconds=runtime.settings.notification_batch_seconds + 1))
        for person in (supervisor, ws.admin):
            [digest] = to(mail, person.email)
            body = digest.message.get_body(("plain",)).get_content()
            assert all(t["number"] in body for t in made), body
            waited = "phút" if person is supervisor and language == "vi" else "minutes for an agent"
            assert body.count(waited) == len(made), body

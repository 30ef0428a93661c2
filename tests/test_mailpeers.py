"""The mail test peers themselves, over the real protocols: a private Dovecot spoken to
with imaplib, and the aiosmtpd sink spoken to with aiosmtplib.

The Dovecot tests are skipped with a one-line reason where dovecot-imapd is not
installed, unless RELAYDESK_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import pytest

from mailpeers import ImapServer, MailPeerError, SmtpSink, free_port, smtp_send

REQUIRE_SERVICES = os.environ.get("RELAYDESK_REQUIRE_SERVICES") == "1"


def raw_message(subject: str, *, sender: str = "customer@example.test", to: str = "support@acme.test",
                body: str = "Hello, my order never arrived.") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@example.test>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@pytest.fixture(scope="module")
def dovecot() -> Iterator[ImapServer]:
    reason = ImapServer.unavailable_reason()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (RELAYDESK_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    with ImapServer() as server:
        yield server


def uids(data: list[bytes]) -> list[bytes]:
    return data[0].split() if data and data[0] else []


# --------------------------------------------------------------------------- helpers


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- IMAP


def test_imap_session_search_fetch_store(dovecot: ImapServer) -> None:
    user, password = dovecot.make_user("support")
    first, second = raw_message("Where is my order?"), raw_message("Refund please", body="Second one.")
    assert dovecot.deliver(user, first) == 1
    assert dovecot.deliver(user, second) == 2

    conn = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    try:
        assert conn.login(user, password)[0] == "OK"
        typ, data = conn.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = conn.uid("SEARCH", None, "UNSEEN")
        assert typ == "OK" and uids(data) == [b"1", b"2"]

        typ, data = conn.uid("FETCH", "2", "(BODY.PEEK[] FLAGS)")
        assert typ == "OK" and data[0][1] == second  # byte for byte what was appended
        assert b"\\Seen" not in data[0][0]

        typ, data = conn.uid("FETCH", "1", "(RFC822)")  # RFC822 sets \Seen, like a real client
        assert typ == "OK" and data[0][1] == first
        typ, data = conn.uid("SEARCH", None, "UNSEEN")
        assert uids(data) == [b"2"]

        typ, _ = conn.uid("STORE", "2", "+FLAGS", "(\\Seen)")
        assert typ == "OK"
        assert uids(conn.uid("SEARCH", None, "UNSEEN")[1]) == []
        typ, _ = conn.uid("STORE", "1", "-FLAGS", "(\\Seen)")
        assert uids(conn.uid("SEARCH", None, "UNSEEN")[1]) == [b"1"]
        conn.close()
    finally:
        conn.logout()

    assert dovecot.count(user) == 2
    assert dovecot.count(user, unseen_only=True) == 1


def test_wrong_password_and_unknown_user_are_refused(dovecot: ImapServer) -> None:
    user, password = dovecot.make_user("agent")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.connect(user, password + "-wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.connect("nobody-" + user, password)
    # No penalty carried over from the failures: the right password works at once.
    with dovecot.session(user, password) as conn:
        assert conn.noop()[0] == "OK"


def test_plaintext_login_is_offered_without_tls(dovecot: ImapServer) -> None:
    conn = dovecot.connect()
    try:
        caps = conn.capabilities
        assert "AUTH=PLAIN" in caps and "AUTH=LOGIN" in caps and "LOGINDISABLED" not in caps
    finally:
        conn.logout()


def test_users_added_or_changed_after_start(dovecot: ImapServer) -> None:
    user = f"late-{os.getpid()}@acme.test"
    dovecot.add_user(user, "first secret")  # spaces are fine in passwords
    assert dovecot.count(user) == 0
    dovecot.add_user(user, "second-secret")
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.connect(user, "first secret")
    with dovecot.session(user, "second-secret") as conn:
        assert conn.select("INBOX")[0] == "OK"
    with pytest.raises(ValueError):
        dovecot.add_user("bad:name@acme.test", "x")


def test_mailboxes_are_per_user_and_per_folder(dovecot: ImapServer) -> None:
    alice, _ = dovecot.make_user("alice")
    bob, _ = dovecot.make_user("bob")
    dovecot.deliver(alice, raw_message("for alice"))
    dovecot.deliver(alice, raw_message("archived", body="old"), mailbox="Archive/2024", flags=["\\Seen"])
    assert (dovecot.count(alice), dovecot.count(bob)) == (1, 0)
    assert dovecot.count(alice, "Archive/2024") == 1
    assert dovecot.count(alice, "Archive/2024", unseen_only=True) == 0
    assert (dovecot.maildir(alice) / "cur").is_dir()


async def test_imap_from_async_code(dovecot: ImapServer) -> None:
    """imaplib blocks, so async code (the suite's session loop) runs it in a thread."""
    user, password = dovecot.make_user("async")
    await asyncio.to_thread(dovecot.deliver, user, raw_message("async hello"))

    def fetch_subjects() -> list[bytes]:
        with dovecot.session(user, password) as conn:
            conn.select("INBOX", readonly=True)
            _, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            return [part[1].strip() for part in data if isinstance(part, tuple)]

    assert await asyncio.to_thread(fetch_subjects) == [b"Subject: async hello"]


def test_second_instance_stops_cleanly(dovecot: ImapServer) -> None:
    """A second server beside the module's one: own port and directory, fully gone after stop()."""
    with ImapServer() as other:
        assert other.port != dovecot.port
        assert other.startup_seconds is not None and other.startup_seconds < ImapServer.START_TIMEOUT
        base, port, proc = other.base, other.port, other.process
        assert base is not None and proc is not None
        user, _ = other.make_user()
        other.deliver(user, raw_message("short-lived"))
    assert proc.poll() is not None
    assert not base.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert dovecot.count(dovecot.make_user()[0]) == 0  # the first one is untouched


def test_start_failure_raises_with_log_tail(dovecot: ImapServer, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ImapServer()
    original = ImapServer._write_config

    def write_bad_config(self: ImapServer) -> None:
        original(self)
        with open(self.config_path, "a") as conf:
            conf.write("no_such_setting_anywhere = 1\n")

    monkeypatch.setattr(ImapServer, "_write_config", write_bad_config)
    with pytest.raises(MailPeerError, match=r"(?s)did not come up.*no_such_setting_anywhere"):
        broken.start()
    assert broken.base is None and broken.process is None


# --------------------------------------------------------------------------- SMTP


async def test_sink_collects_envelope_and_message() -> None:
    with SmtpSink() as sink:
        raw = raw_message("Your ticket #42", sender="desk@acme.test", to="customer@example.test")
        refused = await smtp_send("127.0.0.1", sink.port, raw, "bounces@acme.test",
                                  ["customer@example.test", "cc@example.test"])
        assert refused == {}
        [got] = await sink.wait_for(1)
        assert got.mail_from == "bounces@acme.test"
        assert got.rcpt_tos == ["customer@example.test", "cc@example.test"]
        assert got.raw.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        assert got.message["Subject"] == "Your ticket #42"
        assert got["From"] == "desk@acme.test"
        assert got.message.get_content().strip() == "Hello, my order never arrived."
        assert got.auth_user is None

        sink.clear()
        assert sink.messages == []
        with pytest.raises(TimeoutError, match="got 0 message"):
            await sink.wait_for(1, timeout=0.2)


async def test_sink_with_auth() -> None:
    with SmtpSink(require_auth=("relay-user", "relay-pass")) as sink:
        raw = raw_message("authenticated")
        await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["a@example.test"],
                        username="relay-user", password="relay-pass")
        [got] = await sink.wait_for(1)
        assert (got.auth_user, got.mail_from, got.rcpt_tos) == ("relay-user", "desk@acme.test", ["a@example.test"])

        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as wrong:
            await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["a@example.test"],
                            username="relay-user", password="wrong")
        assert wrong.value.code == 535

        with pytest.raises(aiosmtplib.SMTPSenderRefused) as anonymous:
            await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["a@example.test"])
        assert anonymous.value.code == 530
        assert len(sink.messages) == 1


async def test_sink_auth_login_mechanism() -> None:
    with SmtpSink(require_auth=("u", "p")) as sink:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
        await client.connect()
        try:
            await client.ehlo()
            assert {"plain", "login"} <= {m.lower() for m in client.server_auth_methods}
            await client.auth_login("u", "p")
            await client.sendmail("x@acme.test", ["y@example.test"], raw_message("via LOGIN"))
        finally:
            await client.quit()
        assert (await sink.wait_for(1))[0].auth_user == "u"


async def test_sink_refusals() -> None:
    with SmtpSink(rejected_recipients=["gone@example.test"]) as sink:
        raw = raw_message("partly refused")
        refused = await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test",
                                  ["gone@example.test", "here@example.test"])
        assert list(refused) == ["gone@example.test"] and refused["gone@example.test"][0] == 550
        assert (await sink.wait_for(1))[0].rcpt_tos == ["here@example.test"]

        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["gone@example.test"])

        sink.fail_next(1)
        with pytest.raises(aiosmtplib.SMTPDataError) as temporary:
            await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["here@example.test"])
        assert temporary.value.code == 451
        await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["here@example.test"])
        assert len(await sink.wait_for(2)) == 2

        sink.deferred_recipients.add("later@example.test")
        refused = await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test",
                                  ["later@example.test", "here@example.test"])
        assert list(refused) == ["later@example.test"] and refused["later@example.test"][0] == 451
        sink.deferred_recipients.clear()
        await smtp_send("127.0.0.1", sink.port, raw, "desk@acme.test", ["later@example.test"])
        assert [m.rcpt_tos for m in (await sink.wait_for(4))[2:]] == [["here@example.test"], ["later@example.test"]]


def test_sink_stop_frees_the_port() -> None:
    sink = SmtpSink().start()
    port = sink.port
    assert port is not None
    sink.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert re.fullmatch(r"\d+", str(port))

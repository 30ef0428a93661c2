"""Real mail protocol peers on loopback, for the email channel's tests.

* ``ImapServer``: a private Dovecot instance (Debian's ``dovecot-imapd``) run as a child
  process, with its own config, users, maildirs, sockets and logs in a temp directory.
  It never touches the system Dovecot (``/etc/dovecot``, ``/run/dovecot``), so several
  can run at once, next to a system one.
* ``SmtpSink``: an aiosmtpd server that keeps every message it is given, optionally
  requiring AUTH PLAIN/LOGIN (allowed without TLS: it only listens on 127.0.0.1).
* ``smtp_send``: a real SMTP client session (aiosmtplib), to push mail into a listener.

Import it as the other helpers are imported: ``from mailpeers import ImapServer``.

Users may be added before or after ``start()``, without a reload: each user has a
passwd-file of their own (``etc/users/<user>``), which Dovecot reads on that user's
first login.  Changing the password of a user who already logged in waits up to a
second, since Dovecot looks at a passwd-file again at most once per second.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email
import email.policy
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "DOVECOT",
    "ImapServer",
    "MailPeerError",
    "ReceivedMessage",
    "SmtpSink",
    "free_port",
    "smtp_send",
]

LOOPBACK = "127.0.0.1"
# Debian's path; RELAYDESK_DOVECOT points elsewhere (another install, or a missing
# path to see the skip).
DOVECOT = os.environ.get("RELAYDESK_DOVECOT", "/usr/sbin/dovecot")


class MailPeerError(RuntimeError):
    """A mail peer could not be started or used."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- IMAP


_STATUS_RE = re.compile(rb"\((?P<items>[^)]*)\)")


class ImapServer:
    """A private Dovecot IMAP server on 127.0.0.1 and a free port.

    >>> with ImapServer() as imap:                       # doctest: +SKIP
    ...     imap.add_user("support@acme.test", "secret")
    ...     imap.deliver("support@acme.test", raw_bytes)
    ...     imap.count("support@acme.test", unseen_only=True)
    1
    """

    START_TIMEOUT = 10.0
    _PORT_ATTEMPTS = 3

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK, root_mail_user: str = "nobody") -> None:
        self.binary = binary or DOVECOT
        self.root_mail_user = root_mail_user
        self.host = host
        self.port: int | None = None
        self.base: Path | None = None
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._atexit_registered = False
        self._passwd_stamps: dict[str, int] = {}

    # ---- availability

    @classmethod
    def available(cls, binary: str | None = None) -> bool:
        """True when the dovecot binary is installed (Debian: ``dovecot-imapd``)."""
        binary = binary or DOVECOT
        return os.path.isfile(binary) and os.access(binary, os.X_OK)

    @classmethod
    def unavailable_reason(cls, binary: str | None = None) -> str | None:
        """None when available, else a one-line reason to skip (or fail) with."""
        binary = binary or DOVECOT
        if cls.available(binary):
            return None
        return f"{binary} not installed (apt-get install dovecot-imapd; `make test` does it as root)"

    @classmethod
    def version(cls, binary: str | None = None) -> str:
        out = subprocess.run([binary or DOVECOT, "--version"], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()

    # ---- paths

    def _path(self, *parts: str) -> Path:
        if self.base is None:
            raise MailPeerError("ImapServer has no directory yet: call start() first")
        return self.base.joinpath(*parts)

    @property
    def config_path(self) -> Path:
        return self._path("dovecot.conf")

    @property
    def log_path(self) -> Path:
        return self._path("log", "dovecot.log")

    def passwd_path(self, user: str) -> Path:
        return self._path("etc", "users", user)

    def maildir(self, user: str) -> Path:
        return self._path("mail", user)

    # ---- users

    def add_user(self, email_address: str, password: str) -> None:
        """Add (or change) a user. Works before and after start(): no reload needed."""
        if not email_address or email_address.startswith(".") or any(c in email_address for c in ":/\\%\r\n\t\0 "):
            raise ValueError(f"unsupported user name for a passwd-file: {email_address!r}")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("unsupported password for a passwd-file (empty, or has ':' or a line break)")
        known = email_address in self.users
        self.users[email_address] = password
        if self.base is not None:
            self._write_passwd(email_address)
            if known and self.process is not None:
                # Dovecot may have looked at this file during this very second, and
                # then looks again only once the second is over.
                time.sleep(max(0.0, int(time.time()) + 1.02 - time.time()))

    def make_user(self, local: str = "inbox", domain: str = "relaydesk.test") -> tuple[str, str]:
        """Add a user with a unique address and a random password; returns both.
        Handy on a session-wide server, where every test wants mailboxes of its own."""
        address = f"{local}-{secrets.token_hex(4)}@{domain}"
        password = secrets.token_urlsafe(12)
        self.add_user(address, password)
        return address, password

    def _write_passwd(self, user: str) -> None:
        path = self.passwd_path(user)
        tmp = path.with_name(f".{user}.tmp")
        tmp.write_text(f"{user}:{{PLAIN}}{self.users[user]}::::::\n")
        os.chmod(tmp, 0o644)  # the auth process runs as the `dovecot` user when we are root
        # Dovecot re-reads a passwd-file when its mtime (whole seconds) or size changed:
        # give every version a later mtime, even when written within the same second.
        stamp = max(int(time.time()), self._passwd_stamps.get(user, 0) + 1)
        os.utime(tmp, (stamp, stamp))
        self._passwd_stamps[user] = stamp
        os.replace(tmp, path)

    # ---- configuration

    def _service_users(self) -> tuple[str, str]:
        """(default_internal_user, default_login_user).

        As root Dovecot drops privileges to these; Debian's package creates `dovecot`
        and `dovenull`.  As anyone else it cannot switch users, so both are us."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() != 0:
            return me, me
        names = []
        for wanted in ("dovecot", "dovenull"):
            try:
                names.append(pwd.getpwnam(wanted).pw_name)
            except KeyError:
                names.append(me)
        return names[0], names[1]

    def _mail_owner(self) -> tuple[int, int]:
        """(uid, gid) the IMAP processes run as and own the maildirs.

        Dovecot refuses uid 0 for mail processes whatever first_valid_uid says
        ("userdb returned 0 as uid"), so as root mail belongs to `nobody`."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        try:
            entry = pwd.getpwnam(self.root_mail_user)
        except KeyError as exc:
            raise MailPeerError(f"running as root needs a user {self.root_mail_user!r} to own the mail") from exc
        return entry.pw_uid, entry.pw_gid

    def _write_config(self) -> None:
        assert self.base is not None and self.port is not None
        internal_user, login_user = self._service_users()
        uid, gid = self._mail_owner()
        group_line = ""
        if os.geteuid() != 0:  # cannot chown sockets to the `dovecot` group: use ours
            group_line = f"default_internal_group = {grp.getgrgid(os.getegid()).gr_name}\n"
        b = self.base
        conf = f"""\
# Generated by tests/mailpeers.py for one test session; nothing here is read from /etc/dovecot.
instance_name = relaydesk-test-{os.getpid()}-{self.port}
base_dir = {b}/run
state_dir = {b}/state
protocols = imap
listen = {self.host}
ssl = no
log_path = {b}/log/dovecot.log
info_log_path = {b}/log/dovecot.log
debug_log_path = {b}/log/dovecot.log
auth_verbose = yes

default_internal_user = {internal_user}
default_login_user = {login_user}
{group_line}# Mail is owned by whoever runs the tests (by `nobody` when that is root).
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

# Dovecot 2.3 spelling (2.4 calls it auth_allow_cleartext): LOGIN/PLAIN without TLS.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
# Tests try wrong passwords on purpose: answer at once (and see anvil below).
auth_failure_delay = 0

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {b}/etc/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={b}/home/%u
}}

mail_location = maildir:{b}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}

# No chroots: they need root, and buy nothing in a throwaway test instance.
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # Nobody may use the auth-penalty socket, so auth runs without anvil's penalty:
  # otherwise each failed login from 127.0.0.1 delays the next logins by 4-15 s.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        self.config_path.write_text(conf)

    # ---- lifecycle

    def start(self) -> ImapServer:
        if self.process is not None:
            raise MailPeerError("ImapServer already started")
        if not self.available(self.binary):
            raise MailPeerError(self.unavailable_reason(self.binary) or "dovecot unavailable")
        started = time.monotonic()
        self.base = Path(tempfile.mkdtemp(prefix="relaydesk-dovecot-"))
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._prepare_dirs()
            for attempt in range(self._PORT_ATTEMPTS):
                self.port = free_port(self.host)
                self._write_config()
                try:
                    self._launch()
                    break
                except MailPeerError as exc:
                    # Only a lost race for the port is worth another try.
                    if "in use" not in str(exc) or attempt == self._PORT_ATTEMPTS - 1:
                        raise
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _prepare_dirs(self) -> None:
        assert self.base is not None
        # Services that dropped privileges (auth as `dovecot`) must reach the passwd files.
        os.chmod(self.base, 0o755)
        uid, gid = self._mail_owner()
        for sub in ("etc", "etc/users", "log", "mail", "home", "state"):
            self._path(sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(self._path(sub), uid, gid)
        for user in self.users:
            self._write_passwd(user)

    def _command(self) -> list[str]:
        command = [self.binary, "-F", "-c", str(self.config_path)]
        # atexit cannot run when the test process is SIGKILLed (a CI timeout): have the
        # kernel send Dovecot SIGTERM then.  The "parent" is the starting thread, so only
        # when started from the main thread (as pytest's fixtures are).
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        return command

    def _launch(self) -> None:
        stderr_path = self._path("log", "stderr.log")
        with open(stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, close_fds=True,
            )
        deadline = time.monotonic() + self.START_TIMEOUT
        problem = "no IMAP greeting"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                problem = f"dovecot exited with status {self.process.returncode}"
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                    greeting = s.makefile("rb").readline()
                if greeting.startswith(b"* OK"):
                    return
                problem = f"unexpected greeting {greeting!r}"
            except OSError as exc:
                problem = f"cannot connect: {exc}"
            time.sleep(0.05)
        self._terminate()
        details = "\n".join(t for t in (_tail(stderr_path), _tail(self.log_path)) if t)
        raise MailPeerError(
            f"dovecot did not come up on {self.host}:{self.port} within {self.START_TIMEOUT:.0f}s "
            f"({problem}); config {self.config_path}; log tail:\n{details}"
        )

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop Dovecot (and its children) and remove the whole directory."""
        self._terminate()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def __enter__(self) -> ImapServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- protocol helpers (each a real IMAP session)

    def _require_running(self) -> None:
        if self.process is None or self.port is None:
            raise MailPeerError("ImapServer is not running")

    def connect(self, user: str | None = None, password: str | None = None,
                timeout: float = 10.0) -> imaplib.IMAP4:
        """An imaplib connection; logged in when a user is given (password defaults
        to the one given to add_user)."""
        self._require_running()
        assert self.port is not None
        conn = imaplib.IMAP4(self.host, self.port, timeout=timeout)
        if user is not None:
            try:
                conn.login(user, password if password is not None else self.users[user])
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.shutdown()
                raise
        return conn

    @contextlib.contextmanager
    def session(self, user: str, password: str | None = None) -> Iterator[imaplib.IMAP4]:
        conn = self.connect(user, password)
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def deliver(self, user: str, raw: bytes, *, mailbox: str = "INBOX",
                flags: Iterable[str] = (), when: float | None = None) -> int | None:
        """APPEND a message to the user's mailbox; returns its UID (from APPENDUID)."""
        if isinstance(raw, str):
            raw = raw.encode()
        flag_list = "(" + " ".join(flags) + ")" if flags else None
        date = imaplib.Time2Internaldate(when if when is not None else time.time())
        with self.session(user) as conn:
            if mailbox.upper() != "INBOX":
                conn.create(_quote(mailbox))  # NO when it exists: fine
            typ, data = conn.append(_quote(mailbox), flag_list, date, raw)
        if typ != "OK":
            raise MailPeerError(f"APPEND to {user}/{mailbox} failed: {typ} {data!r}")
        m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        return int(m.group(1)) if m else None

    def count(self, user: str, mailbox: str = "INBOX", unseen_only: bool = False) -> int:
        """How many (unseen) messages the mailbox holds, by IMAP STATUS."""
        with self.session(user) as conn:
            typ, data = conn.status(_quote(mailbox), "(MESSAGES UNSEEN)")
        if typ != "OK" or not data or not data[0]:
            raise MailPeerError(f"STATUS {user}/{mailbox} failed: {typ} {data!r}")
        m = _STATUS_RE.search(data[0])
        items = (m.group("items") if m else b"").split()
        values = {k.upper(): int(v) for k, v in zip(items[::2], items[1::2])}
        return values[b"UNSEEN" if unseen_only else b"MESSAGES"]


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    peer: Any = None
    auth_user: str | None = None
    mail_options: list[str] = field(default_factory=list)

    def __getitem__(self, header: str) -> Any:
        return self.message[header]


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns on every
        # connection when TLS is not required too.
        if self.sink.require_auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        limit = self.sink.messages_per_connection
        if limit is not None and getattr(session, "sink_accepted", 0) >= limit:
            # As relays with a per-connection limit do: refuse, and hang up.
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many messages on this connection, reconnect"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.sink.rejected_recipients:
            return "550 5.1.1 No such user here"
        if address.lower() in self.sink.deferred_recipients:
            return "451 4.3.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        failure = self.sink._take_failure()
        if failure is not None:
            return failure
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        auth = session.auth_data
        session.sink_accepted = getattr(session, "sink_accepted", 0) + 1  # type: ignore[attr-defined]
        self.sink._add(ReceivedMessage(
            mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=bytes(raw),
            message=parsed,  # type: ignore[arg-type]
            peer=session.peer, auth_user=auth if isinstance(auth, str) else None,
            mail_options=list(envelope.mail_options),
        ))
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 and a free port that keeps every message.

    ``require_auth=(user, password)`` makes it offer AUTH PLAIN/LOGIN without TLS and
    refuse MAIL FROM before a successful login (530); a wrong password gets 535.
    ``rejected_recipients`` get 550 at RCPT, ``deferred_recipients`` 451 (greylisting: a
    temporary refusal; take an address out to accept it again); ``fail_next(n)`` answers the next n DATA
    commands with a temporary failure (for retry tests). ``messages_per_connection``
    answers MAIL with 421 and closes the connection once it has carried that many.
    ``ReceivedMessage.peer`` tells which connection carried a message.

    aiosmtpd runs the server on its own thread and event loop, so the sink works the
    same from sync tests and from tests on the suite's session-scoped loop.
    """

    _PORT_ATTEMPTS = 3

    def __init__(self, *, host: str = LOOPBACK, require_auth: tuple[str, str] | None = None,
                 rejected_recipients: Iterable[str] = (), hostname: str = "sink.relaydesk.test",
                 messages_per_connection: int | None = None) -> None:
        self.host = host
        self.messages_per_connection = messages_per_connection
        self.port: int | None = None
        self.require_auth = require_auth
        self.rejected_recipients = {r.lower() for r in rejected_recipients}
        self.deferred_recipients: set[str] = set()
        self.hostname = hostname
        self._messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self._controller: Controller | None = None

    # ---- lifecycle

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise MailPeerError("SmtpSink already started")
        kwargs: dict[str, Any] = {"server_hostname": self.hostname}
        if self.require_auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        last_error: Exception | None = None
        for _ in range(self._PORT_ATTEMPTS):
            port = free_port(self.host)
            controller = Controller(_SinkHandler(self), hostname=self.host, port=port, **kwargs)
            try:
                controller.start()
            except OSError as exc:  # lost the race for the port
                last_error = exc
                continue
            self._controller, self.port = controller, port
            return self
        raise MailPeerError(f"SmtpSink could not bind a port on {self.host}: {last_error}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- auth

    def _authenticate(self, server: SMTPServer, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert self.require_auth is not None
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self.require_auth
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == user and auth_data.password.decode("utf-8", "replace") == password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    # ---- messages

    def _add(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def _take_failure(self) -> str | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def fail_next(self, n: int = 1, reply: str = "451 4.3.0 Temporary failure, try again later") -> None:
        with self._lock:
            self._failures.extend([reply] * n)

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of what arrived so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()

    def remove(self, message: ReceivedMessage) -> None:
        """Forget one message (a helper that used it up, so the test sees only its own)."""
        with self._lock:
            self._messages.remove(message)

    async def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least n messages arrived; returns them all. Raises
        TimeoutError naming how many did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                raise TimeoutError(f"SmtpSink got {len(got)} message(s) in {timeout}s, wanted {n}")
            await asyncio.sleep(0.02)


async def smtp_send(host: str, port: int, raw: bytes, mail_from: str, rcpt: list[str], *,
                    username: str | None = None, password: str | None = None,
                    timeout: float = 10.0) -> dict[str, Any]:
    """One real SMTP client session (aiosmtplib): EHLO, optional AUTH, MAIL/RCPT/DATA, QUIT.

    Returns the per-recipient refusals (empty when all were accepted); raises the
    aiosmtplib exception (SMTPAuthenticationError, SMTPRecipientsRefused, ...) on failure."""
    client = aiosmtplib.SMTP(hostname=host, port=port, use_tls=False, start_tls=False, timeout=timeout)
    await client.connect()
    try:
        if username is not None:
            await client.login(username, password or "")
        errors, _reply = await client.sendmail(mail_from, rcpt, raw)
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()
    return dict(errors)

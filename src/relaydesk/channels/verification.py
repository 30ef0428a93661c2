"""Verifying a support address: the code, and the email that carries it. Pure.

Relaydesk sends answers and notifications From a workspace's mailbox address through the
operator's relay, so a workspace must first show that the address is its own: mail to it
reaches the workspace (the verification email comes back in, forwarded or polled), or
someone who reads that mail types the code. The code is a secret as good as the address:
only its hash is stored (``code_hash``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from relaydesk.channels.mime import LOOP_HEADER, VERIFICATION_HEADER
from relaydesk.channels.threading import make_message_id

RESEND_AFTER = timedelta(minutes=1)
MAX_CODE = 200  # longer is not one of ours; not worth hashing
VERIFICATION_NOT_SENT = "The verification email could not be sent"  # begins the mailbox's last_error then

_QUOTED_PRINTABLE_UTF8 = Charset("utf-8")
_QUOTED_PRINTABLE_UTF8.body_encoding = QP


def new_code() -> str:
    return secrets.token_urlsafe(12)  # 96 random bits: guessing is hopeless, typing is not


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode("utf-8", "surrogateescape")).hexdigest()


def ascii_form(address: str) -> str:
    """Mailboxes and profiles keep an internationalised domain in Unicode; a header or an
    envelope needs its ASCII form (``xn--bcher-kva.example``), which every server can
    deliver to."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def verification_email(*, address: str, mailbox_id: uuid.UUID, code: str, workspace_id: uuid.UUID,
                       workspace_name: str, built_in: str, public_url: str, secret: str, mail_domain: str,
                       now: datetime) -> Message:
    """The email to ``address`` that proves, coming back in, that its mail reaches the
    workspace; its code also lets an admin who reads the address's mail elsewhere verify it."""
    verify_url = f"{public_url.rstrip('/')}/api/v1/mailboxes/{mailbox_id}/verify"
    text = (
        f"{workspace_name} added {address} as a support address on Relaydesk.\n\n"
        f"Until the address is verified, Relaydesk sends nothing from it: answers go from {built_in} instead.\n\n"
        "To verify it, do one of these:\n\n"
        f"* Forward mail to {address} to {built_in}, or connect the mailbox to Relaydesk over IMAP, then ask for "
        "another verification email: when it arrives at Relaydesk that way, the address is verified.\n"
        f"* Or give Relaydesk this code (a workspace admin: POST {{\"code\": \"...\"}} to {verify_url}):\n\n"
        f"    {code}\n\n"
        f"If you did not expect this email, someone else typed your address: ignore it. Nothing is sent from "
        f"{address} unless it is verified.\n")
    message = automatic_email(text, subject=f"Verify {address} for {workspace_name} on Relaydesk", to=address,
                              sender=built_in, workspace_id=workspace_id, workspace_name=workspace_name,
                              nonce_prefix="v", secret=secret, mail_domain=mail_domain, now=now)
    message[VERIFICATION_HEADER] = code
    return message


def automatic_email(text: str, *, subject: str, to: str, sender: str, workspace_id: uuid.UUID, workspace_name: str,
                    nonce_prefix: str, secret: str, mail_domain: str, now: datetime) -> Message:
    """A plain-text email a workspace sends by itself, about no one ticket (a verification,
    a password reset): marked automatic, so responders leave it be and ours never loop."""
    message = MIMEText(text, "plain", _QUOTED_PRINTABLE_UTF8)
    message["From"] = formataddr((workspace_name, sender), charset="utf-8")
    message["To"] = ascii_form(to)
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["Date"] = format_datetime(now)
    # Anchored on the workspace, as mail about no one ticket is: a bounce of it is ours.
    message["Message-ID"] = "<" + make_message_id(workspace_id, nonce_prefix + secrets.token_hex(8), secret=secret,
                                                  domain=mail_domain, recipient=to) + ">"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = str(workspace_id)
    return message

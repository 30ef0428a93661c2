"""Message-IDs we send, and finding a ticket again from a reply's references. Pure.

Every email Relaydesk sends about a ticket carries a Message-ID that names the ticket
and is signed with the deployment's secret: ``<rd.<ticket>.<nonce>.<tag>.<to>@<domain>>``.
A reply's In-Reply-To/References then leads back to the ticket without a lookup table,
and nobody can make up a reference that leads into someone else's ticket. Mail about no
one ticket (a digest of several tickets' updates, a daily summary, a mailbox's
verification) names the workspace in the ticket's place.

``<to>`` signs the address the email went to. A From header proves nothing, so a team
member's email reply is only taken as theirs when it answers an email sent to that very
address (see ``sent_to``): whoever merely knows the ticket's token or has seen the
customer's copy of the thread cannot write to the customer in an agent's name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

_OURS = re.compile(r"^rd\.([0-9a-f]{32})\.([0-9a-z]{1,40})\.([0-9a-f]{16})(?:\.([0-9a-f]{16}))?@", re.IGNORECASE)
TOKEN = re.compile(r"\[T-(\d{1,12})\]", re.IGNORECASE)


def _tag(secret: str, ticket_id: uuid.UUID, nonce: str) -> str:
    return hmac.new(secret.encode(), f"{ticket_id.hex}.{nonce}".encode(), hashlib.sha256).hexdigest()[:16]


def _recipient_tag(secret: str, ticket_id: uuid.UUID, nonce: str, recipient: str) -> str:
    message = f"{ticket_id.hex}.{nonce}.to.{recipient.strip().lower()}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:16]


def make_message_id(ticket_id: uuid.UUID, nonce: str, *, secret: str, domain: str,
                    recipient: str | None = None) -> str:
    """Without angle brackets. The same (ticket, nonce) always gives the same id, which
    is what makes a re-sent email the same email. ``recipient``: the one address the
    email goes to (none for ids shared by everyone on the thread, like its root)."""
    to = f".{_recipient_tag(secret, ticket_id, nonce, recipient)}" if recipient else ""
    return f"rd.{ticket_id.hex}.{nonce}.{_tag(secret, ticket_id, nonce)}{to}@{domain}"


def ticket_of(message_id: str, *, secret: str) -> uuid.UUID | None:
    """The ticket a Message-ID of ours names, or None (not ours, or the tag is wrong)."""
    match = _OURS.match(message_id.strip().strip("<>"))
    if match is None:
        return None
    ticket_hex, nonce, tag, _to = match.groups()
    ticket_id = uuid.UUID(ticket_hex)
    return ticket_id if hmac.compare_digest(tag.lower(), _tag(secret, ticket_id, nonce)) else None


def sent_to(message_id: str, address: str, *, secret: str) -> uuid.UUID | None:
    """The ticket, if ``message_id`` is ours and the email it names went to ``address``."""
    match = _OURS.match(message_id.strip().strip("<>"))
    if match is None or match.group(4) is None:
        return None
    ticket_hex, nonce, _tag_, to = match.groups()
    ticket_id = uuid.UUID(ticket_hex)
    if not hmac.compare_digest(to.lower(), _recipient_tag(secret, ticket_id, nonce, address)):
        return None
    return ticket_of(message_id, secret=secret)


def with_token(subject: str, reference: str) -> str:
    """The subject with the ticket token ([T-000123]) the customer's replies bring back."""
    return subject if f"[{reference}]".lower() in subject.lower() else f"{subject} [{reference}]"

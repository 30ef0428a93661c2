"""Message-IDs we send, and finding a ticket again from a reply's references. Pure.

Every email Relaydesk sends about a ticket carries a Message-ID that names the ticket
and is signed with the deployment's secret: ``<rd.<ticket>.<nonce>.<tag>@<domain>>``.
A reply's In-Reply-To/References then leads back to the ticket without a lookup table,
and nobody can make up a reference that leads into someone else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

_OURS = re.compile(r"^rd\.([0-9a-f]{32})\.([0-9a-z]{1,40})\.([0-9a-f]{16})@", re.IGNORECASE)
TOKEN = re.compile(r"\[T-(\d{1,12})\]", re.IGNORECASE)


def _tag(secret: str, ticket_id: uuid.UUID, nonce: str) -> str:
    return hmac.new(secret.encode(), f"{ticket_id.hex}.{nonce}".encode(), hashlib.sha256).hexdigest()[:16]


def make_message_id(ticket_id: uuid.UUID, nonce: str, *, secret: str, domain: str) -> str:
    """Without angle brackets. The same (ticket, nonce) always gives the same id, which
    is what makes a re-sent email the same email."""
    return f"rd.{ticket_id.hex}.{nonce}.{_tag(secret, ticket_id, nonce)}@{domain}"


def ticket_of(message_id: str, *, secret: str) -> uuid.UUID | None:
    """The ticket a Message-ID of ours names, or None (not ours, or the tag is wrong)."""
    match = _OURS.match(message_id.strip().strip("<>"))
    if match is None:
        return None
    ticket_hex, nonce, tag = match.groups()
    ticket_id = uuid.UUID(ticket_hex)
    return ticket_id if hmac.compare_digest(tag.lower(), _tag(secret, ticket_id, nonce)) else None


def with_token(subject: str, reference: str) -> str:
    """The subject with the ticket token ([T-000123]) the customer's replies bring back."""
    return subject if f"[{reference}]".lower() in subject.lower() else f"{subject} [{reference}]"

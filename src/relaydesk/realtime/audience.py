"""Who may see a live event, on which channel, and in what shape. Pure: no I/O.

Channels a socket can subscribe to (canonical names):
  ``ticket:<id>``        one ticket's changes and thread (customers: only their own)
  ``queue:user:<id>``    an agent's own queue (what is or was assigned to them)
  ``queue:team:<id>``    a team's queue
  ``dashboard``          everything in the workspace, for staff
  ``notifications``      the person's own in-app notifications (always on, never asked for)

A customer only ever sees the public side of their own tickets: never internal notes,
never agent-only events (assignment, priority, SLA, escalation, presence), never a
status they do not see (``customer_facing``: a move from IN_PROGRESS to ESCALATED does not
reach them at all), and never another customer's ticket. Staff see everything in their
workspace. The workspace check itself happens before this module is asked (sockets are
grouped by workspace).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from relaydesk.tickets.lifecycle import customer_facing

# The event types a customer may receive, and the payload keys they may see.
_CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "ticket.created": ("ticket_id", "number", "subject", "at"),
    "ticket.status_changed": ("ticket_id", "number", "before", "after", "at"),
    "message.posted": ("ticket_id", "number", "message_id", "author_kind", "channel", "body_html", "body_text",
                       "attachment_ids", "at"),
    "ticket.deleted": ("ticket_id", "number", "at"),
    "message.deleted": ("ticket_id", "number", "message_id", "at"),
    "typing": ("ticket_id", "number", "state", "author_kind", "name"),
}
DASHBOARD = "dashboard"
NOTIFICATIONS = "notifications"
# A person's own notifications: made, or marked read or unread (with the new unread count).
PERSONAL_EVENTS = frozenset({"notification.created", "notification.read", "notification.unread"})
TICKET_DELETED = "ticket.deleted"  # its watchers are told, then no longer watch it


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: uuid.UUID
    is_staff: bool
    # For customers: whose tickets they see (their own, and their organisation's when it shares).
    customer_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None


def channels_of(event_type: str, payload: dict[str, Any]) -> set[str]:
    """Every channel an event belongs on, before asking who may read it."""
    channels = {DASHBOARD}
    if payload.get("ticket_id"):
        channels.add(f"ticket:{payload['ticket_id']}")
    if payload.get("assignee_id"):
        channels.add(f"queue:user:{payload['assignee_id']}")
    if payload.get("team_id"):
        channels.add(f"queue:team:{payload['team_id']}")
    # A reassignment or team move shows on the queue it left as well as the one it joined.
    if event_type == "ticket.assigned":
        channels |= {f"queue:user:{v}" for v in (payload.get("before"), payload.get("after")) if v}
    if event_type == "ticket.team_changed":
        channels |= {f"queue:team:{v}" for v in (payload.get("before"), payload.get("after")) if v}
    if event_type.startswith("agent.") and payload.get("agent_id"):
        channels.add(f"queue:user:{payload['agent_id']}")
    return channels


def view(event_type: str, payload: dict[str, Any], viewer: Viewer, subscriptions: set[str]
         ) -> tuple[list[str], dict[str, Any]] | None:
    """The channels this viewer receives the event on and the payload they may see, or None."""
    if event_type in PERSONAL_EVENTS:
        # Every socket gets its own person's notifications, unasked, and nobody else's.
        mine = str(payload.get("user_id")) == str(viewer.user_id)
        return ([NOTIFICATIONS], payload) if mine else None
    if viewer.is_staff:
        channels = channels_of(event_type, payload) & subscriptions
        return (sorted(channels), payload) if channels else None
    fields = _CUSTOMER_FIELDS.get(event_type)
    if fields is None or payload.get("internal"):
        return None
    if not customer_owns(payload, viewer):
        return None
    channel = f"ticket:{payload.get('ticket_id')}"
    if channel not in subscriptions:
        return None
    shown = {key: payload[key] for key in fields if key in payload}
    if event_type == "ticket.status_changed":
        shown |= {key: customer_facing(payload[key]) for key in ("before", "after") if payload.get(key)}
        if shown.get("before") == shown.get("after"):
            return None  # a move inside the desk's workflow (IN_PROGRESS to ESCALATED) is no news to them
    return [channel], shown


def customer_owns(payload: dict[str, Any], viewer: Viewer) -> bool:
    """Whether a ticket (as an event, or its event scope, describes it) is one the customer sees."""
    requester, organisation = payload.get("requester_id"), payload.get("organisation_id")
    if requester is not None and str(requester) == str(viewer.customer_id):
        return True
    return viewer.organisation_id is not None and organisation is not None and \
        str(organisation) == str(viewer.organisation_id)

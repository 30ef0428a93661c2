"""The ticket state machine: pure data and decisions, no I/O.

Statuses and who may move a ticket between them.  Services ask this module; they never
compare statuses by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OPEN = "OPEN"
    ASSIGNED = "ASSIGNED"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_ON_CUSTOMER = "WAITING_ON_CUSTOMER"
    WAITING_INTERNAL = "WAITING_INTERNAL"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


class Channel(StrEnum):
    WEB = "web"
    EMAIL = "email"
    CHAT = "chat"
    API = "api"
    PHONE = "phone"
    SMS = "sms"
    SOCIAL = "social"


S = Status
_WORKING = {S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.WAITING_INTERNAL, S.ESCALATED, S.RESOLVED}

# What an agent may move a ticket to, by hand, from each status.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.OPEN: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.ESCALATED, S.RESOLVED, S.CLOSED}),
    S.ASSIGNED: frozenset({S.OPEN} | _WORKING | {S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.WAITING_ON_CUSTOMER, S.WAITING_INTERNAL, S.ESCALATED, S.RESOLVED}),
    S.WAITING_ON_CUSTOMER: frozenset({S.IN_PROGRESS, S.WAITING_INTERNAL, S.ESCALATED, S.RESOLVED, S.CLOSED}),
    S.WAITING_INTERNAL: frozenset({S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.ESCALATED, S.RESOLVED}),
    S.ESCALATED: frozenset({S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.WAITING_INTERNAL, S.RESOLVED}),
    S.RESOLVED: frozenset({S.IN_PROGRESS, S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}

# A customer may only confirm a resolution (RESOLVED -> CLOSED); their replies move
# tickets through ``after_customer_reply`` instead.
CUSTOMER_TRANSITIONS: dict[Status, frozenset[Status]] = {S.RESOLVED: frozenset({S.CLOSED})}

# An agent's open work: what counts against their concurrent-ticket cap.
OPEN_WORK = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED})
# A ticket whose work is done: resolved (it may still reopen) or closed.
FINISHED = frozenset({S.RESOLVED, S.CLOSED})
# Statuses that say somebody owns the ticket.
NEEDS_ASSIGNEE = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.WAITING_INTERNAL, S.ESCALATED})


# What a customer is told of each status. Who owns a ticket, and whether it waits on
# another team or was escalated, is how the desk works, not news to the customer: a
# ticket nobody has started on is OPEN to them, and one being worked on in any way is
# IN_PROGRESS (Zendesk's "open").
CUSTOMER_FACING: dict[Status, Status] = {
    S.OPEN: S.OPEN, S.ASSIGNED: S.OPEN,
    S.IN_PROGRESS: S.IN_PROGRESS, S.WAITING_INTERNAL: S.IN_PROGRESS, S.ESCALATED: S.IN_PROGRESS,
    S.WAITING_ON_CUSTOMER: S.WAITING_ON_CUSTOMER, S.RESOLVED: S.RESOLVED, S.CLOSED: S.CLOSED,
}
CUSTOMER_STATUSES = frozenset(CUSTOMER_FACING.values())


def customer_facing(status: Status | str) -> Status:
    return CUSTOMER_FACING[Status(status)]


def shown_as(customer_status: Status) -> frozenset[Status]:
    """Every status a customer sees as this one (what their status filter matches)."""
    return frozenset(s for s, shown in CUSTOMER_FACING.items() if shown is customer_status)


def allowed_next(current: Status, *, by_customer: bool = False) -> frozenset[Status]:
    table = CUSTOMER_TRANSITIONS if by_customer else TRANSITIONS
    return table.get(current, frozenset())


def can_move(current: Status, target: Status, *, by_customer: bool = False) -> bool:
    return target in allowed_next(current, by_customer=by_customer)


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What a reply does to its ticket."""

    new_status: Status | None = None  # None: the status stays
    follow_up: bool = False  # the ticket is closed; the reply starts a linked new one
    reopened: bool = False
    rejected: bool = False  # agents may not post public replies on closed tickets


# Work that is somebody's: nobody is told of a reply on one without an owner, and routing
# leaves it alone (an unowned ESCALATED ticket is routed as it is, so it is not here).
_OWNED_WORK = NEEDS_ASSIGNEE - {S.ESCALATED}


def after_customer_reply(current: Status, *, has_assignee: bool) -> ReplyOutcome:
    if current in _OWNED_WORK and not has_assignee:
        # Back to the pool, where routing finds it an owner who hears of the reply.
        return ReplyOutcome(new_status=S.OPEN)
    match current:
        case S.WAITING_ON_CUSTOMER:
            return ReplyOutcome(new_status=S.IN_PROGRESS)
        case S.RESOLVED:
            return ReplyOutcome(new_status=S.IN_PROGRESS if has_assignee else S.OPEN, reopened=True)
        case S.CLOSED:
            return ReplyOutcome(follow_up=True)
        case _:
            return ReplyOutcome()


def after_agent_reply(current: Status, *, internal: bool) -> ReplyOutcome:
    """A public reply from the owner means they are working it; a note changes nothing."""
    if current is S.CLOSED:
        return ReplyOutcome(rejected=True)
    if internal:
        return ReplyOutcome()
    match current:
        case S.OPEN | S.ASSIGNED:
            return ReplyOutcome(new_status=S.IN_PROGRESS)
        case _:
            return ReplyOutcome()


@dataclass(frozen=True, slots=True)
class Timestamps:
    resolved: bool = False  # set resolved_at to now
    clear_resolved: bool = False
    closed: bool = False


def timestamps_for(previous: Status, target: Status) -> Timestamps:
    if target is S.RESOLVED:
        return Timestamps(resolved=True)
    if target is S.CLOSED:
        return Timestamps(closed=True)
    if previous is S.RESOLVED:
        return Timestamps(clear_resolved=True)
    return Timestamps()


def status_after_assignment(current: Status, *, assigned: bool) -> Status | None:
    """Giving an OPEN ticket an owner makes it ASSIGNED; taking the owner away from
    a ticket that is the agents' to work puts it back in the pool. One waiting on the
    customer keeps waiting: their reply ends the wait and puts it back then
    (``after_customer_reply``). One waiting on an internal team has nothing that would end
    its wait without an owner, and its resolution clock runs, so it goes back at once."""
    if assigned and current is S.OPEN:
        return S.ASSIGNED
    if not assigned and current in (S.ASSIGNED, S.IN_PROGRESS, S.WAITING_INTERNAL):
        return S.OPEN
    return None

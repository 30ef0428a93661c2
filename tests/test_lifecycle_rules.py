"""The pure state machine: every pair of statuses, and random walks through it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaydesk.tickets import lifecycle
from relaydesk.tickets.lifecycle import Status as S

EXPECTED_LEGAL = {
    (S.OPEN, S.ASSIGNED), (S.OPEN, S.IN_PROGRESS), (S.OPEN, S.WAITING_ON_CUSTOMER), (S.OPEN, S.ESCALATED),
    (S.OPEN, S.RESOLVED), (S.OPEN, S.CLOSED),
    (S.ASSIGNED, S.OPEN), (S.ASSIGNED, S.IN_PROGRESS), (S.ASSIGNED, S.WAITING_ON_CUSTOMER),
    (S.ASSIGNED, S.WAITING_INTERNAL), (S.ASSIGNED, S.ESCALATED), (S.ASSIGNED, S.RESOLVED), (S.ASSIGNED, S.CLOSED),
    (S.IN_PROGRESS, S.OPEN), (S.IN_PROGRESS, S.WAITING_ON_CUSTOMER), (S.IN_PROGRESS, S.WAITING_INTERNAL),
    (S.IN_PROGRESS, S.ESCALATED), (S.IN_PROGRESS, S.RESOLVED),
    (S.WAITING_ON_CUSTOMER, S.IN_PROGRESS), (S.WAITING_ON_CUSTOMER, S.WAITING_INTERNAL),
    (S.WAITING_ON_CUSTOMER, S.ESCALATED), (S.WAITING_ON_CUSTOMER, S.RESOLVED), (S.WAITING_ON_CUSTOMER, S.CLOSED),
    (S.WAITING_INTERNAL, S.IN_PROGRESS), (S.WAITING_INTERNAL, S.WAITING_ON_CUSTOMER),
    (S.WAITING_INTERNAL, S.ESCALATED), (S.WAITING_INTERNAL, S.RESOLVED),
    (S.ESCALATED, S.IN_PROGRESS), (S.ESCALATED, S.WAITING_ON_CUSTOMER), (S.ESCALATED, S.WAITING_INTERNAL),
    (S.ESCALATED, S.RESOLVED),
    (S.RESOLVED, S.IN_PROGRESS), (S.RESOLVED, S.OPEN), (S.RESOLVED, S.CLOSED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_statuses(current, target):
    assert lifecycle.can_move(current, target) is ((current, target) in EXPECTED_LEGAL)


def test_closed_is_terminal_and_nothing_moves_to_itself():
    assert lifecycle.allowed_next(S.CLOSED) == frozenset()
    assert all(s not in lifecycle.allowed_next(s) for s in S)


def test_customers_may_only_confirm_a_resolution():
    for current, target in itertools.product(S, S):
        assert lifecycle.can_move(current, target, by_customer=True) is (
            (current, target) == (S.RESOLVED, S.CLOSED))


@pytest.mark.parametrize(("current", "has_assignee", "expected"), [
    (S.WAITING_ON_CUSTOMER, True, lifecycle.ReplyOutcome(new_status=S.IN_PROGRESS)),
    (S.WAITING_ON_CUSTOMER, False, lifecycle.ReplyOutcome(new_status=S.OPEN)),
    (S.WAITING_INTERNAL, True, lifecycle.ReplyOutcome()),
    (S.WAITING_INTERNAL, False, lifecycle.ReplyOutcome(new_status=S.OPEN)),
    (S.IN_PROGRESS, False, lifecycle.ReplyOutcome(new_status=S.OPEN)),
    (S.ESCALATED, False, lifecycle.ReplyOutcome()),
    (S.RESOLVED, True, lifecycle.ReplyOutcome(new_status=S.IN_PROGRESS, reopened=True)),
    (S.RESOLVED, False, lifecycle.ReplyOutcome(new_status=S.OPEN, reopened=True)),
    (S.CLOSED, True, lifecycle.ReplyOutcome(follow_up=True)),
    (S.IN_PROGRESS, True, lifecycle.ReplyOutcome()),
    (S.OPEN, False, lifecycle.ReplyOutcome()),
])
def test_customer_reply(current, has_assignee, expected):
    assert lifecycle.after_customer_reply(current, has_assignee=has_assignee) == expected


def test_agent_reply():
    assert lifecycle.after_agent_reply(S.OPEN, internal=False).new_status is S.IN_PROGRESS
    assert lifecycle.after_agent_reply(S.ASSIGNED, internal=False).new_status is S.IN_PROGRESS
    assert lifecycle.after_agent_reply(S.ASSIGNED, internal=True).new_status is None
    assert lifecycle.after_agent_reply(S.WAITING_ON_CUSTOMER, internal=False).new_status is None
    assert lifecycle.after_agent_reply(S.CLOSED, internal=True).rejected


@pytest.mark.parametrize(("current", "assigned", "expected"), [
    (S.OPEN, True, S.ASSIGNED), (S.WAITING_ON_CUSTOMER, True, None),
    (S.ASSIGNED, False, S.OPEN), (S.IN_PROGRESS, False, S.OPEN),
    # Its customer's reply ends this wait and routes it; nothing would end an internal
    # wait nobody owns, while its resolution clock runs.
    (S.WAITING_ON_CUSTOMER, False, None), (S.WAITING_INTERNAL, False, S.OPEN),
    (S.ESCALATED, False, None), (S.RESOLVED, False, None),
])
def test_status_after_assignment(current, assigned, expected):
    assert lifecycle.status_after_assignment(current, assigned=assigned) == expected


class Model:
    """A ticket's status and timestamps as the rules say they must evolve."""

    def __init__(self) -> None:
        self.status = S.OPEN
        self.resolved = False
        self.closed = False

    def apply(self, target: S) -> None:
        stamps = lifecycle.timestamps_for(self.status, target)
        self.status = target
        if stamps.resolved:
            self.resolved = True
        if stamps.clear_resolved:
            self.resolved = False
        if stamps.closed:
            self.closed = True


@given(st.lists(st.sampled_from(list(S)), max_size=40))
def test_random_walks_keep_the_invariants(targets):
    ticket = Model()
    for target in targets:
        if not lifecycle.can_move(ticket.status, target):
            continue
        ticket.apply(target)
        # resolved_at is set exactly while a ticket is RESOLVED (or was closed from RESOLVED)
        assert ticket.resolved == (ticket.status is S.RESOLVED) or ticket.status is S.CLOSED
        assert ticket.closed == (ticket.status is S.CLOSED)
    if ticket.status is S.CLOSED:
        assert all(not lifecycle.can_move(S.CLOSED, t) for t in S)

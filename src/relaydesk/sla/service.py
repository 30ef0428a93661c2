"""SLA policies, calendars and the per-ticket trackers; the monitor and escalations.

The pure engine (``sla.engine``) does the clock arithmetic; this module loads what it
needs, keeps each ticket's tracker in step with the ticket, and acts on crossings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import TeamService
from relaydesk.core.audit import AuditLog
from relaydesk.core.db import already_loaded, forget_read, new_id, note_locked, read_once
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal
from relaydesk.customers.service import CustomerService
from relaydesk.sla import engine
from relaydesk.sla.calendar import MAX_SEARCH_DAYS, BusinessCalendar
from relaydesk.sla.engine import ClockKind, ClockStatus, SlaClock, Thresholds
from relaydesk.sla.models import Escalation, SlaCalendar, SlaPolicy, SlaTracker
from relaydesk.sla.repository import DueTracker, TrackerRepository
from relaydesk.sla.schemas import (
    CalendarIn,
    CalendarPatch,
    EscalationIn,
    PolicyIn,
    PolicyPatch,
)
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.categories import CategoryService
from relaydesk.tickets.lifecycle import FINISHED, Status, can_move
from relaydesk.tickets.models import Category, Ticket
from relaydesk.tickets.service import TicketService, event_scope

HOUR = 3600
# Targets when a workspace has no policy of its own (seconds).
DEFAULT_TARGETS: dict[str, dict[str, int]] = {
    "URGENT": {"first_response": 1 * HOUR, "next_response": 2 * HOUR, "resolution": 8 * HOUR},
    "HIGH": {"first_response": 4 * HOUR, "next_response": 8 * HOUR, "resolution": 24 * HOUR},
    "MEDIUM": {"first_response": 8 * HOUR, "next_response": 16 * HOUR, "resolution": 72 * HOUR},
    "LOW": {"first_response": 24 * HOUR, "next_response": 48 * HOUR, "resolution": 168 * HOUR},
}
SEVERITY = {ClockStatus.OK: 0, ClockStatus.MET: 0, ClockStatus.PAUSED: 0, ClockStatus.WARNING: 1,
            ClockStatus.CRITICAL: 2, ClockStatus.BREACHED: 3}
DONE = FINISHED
# Not the agents' to work on: the timer towards the next escalation level stops.
OUT_OF_AGENTS_COURT = DONE | {Status.WAITING_ON_CUSTOMER.value}
ESCALATING = {ClockStatus.CRITICAL, ClockStatus.BREACHED}  # the crossings an automatic escalation can follow


def _business_calendar(row: SlaCalendar | None) -> BusinessCalendar:
    """A stored calendar as the engine uses it; none (or a removed one) is 24/7."""
    if row is None:
        return _ALWAYS_OPEN
    hours = orjson.dumps(row.weekly_hours, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return _calendar_of(row.timezone, hours, orjson.dumps(row.holidays))


# Calendars are immutable and building one validates every interval: built once per
# content and shared, not once per event (a new SlaService each time).
_ALWAYS_OPEN = BusinessCalendar.always_open()


@lru_cache(maxsize=256)
def _calendar_of(timezone: str, weekly_hours: bytes, holidays: bytes) -> BusinessCalendar:
    return BusinessCalendar.from_dict({"timezone": timezone, "weekly_hours": orjson.loads(weekly_hours),
                                       "holidays": orjson.loads(holidays)})


# Thresholds are immutable and few; one per pair instead of one per tracker and pass.
_thresholds = lru_cache(maxsize=256)(Thresholds)


# Hot statements, built once (docs/architecture.md, "Statements built once").
_TRACKER_LOCKED = select(SlaTracker).where(SlaTracker.ticket_id == bindparam("ticket_id")).with_for_update()
# In ticket order, so batches that share a ticket lock their trackers in the same order.
_TRACKERS_LOCKED = select(SlaTracker).where(SlaTracker.ticket_id.in_(bindparam("ticket_ids", expanding=True))) \
    .order_by(SlaTracker.ticket_id).with_for_update()
_INSERT_TRACKER = {dialect: insert(SlaTracker).on_conflict_do_nothing().returning(SlaTracker)
                   for dialect, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))}


class SlaService:
    def __init__(self, session: AsyncSession, *, tickets: TicketService, customers: CustomerService,
                 teams: TeamService) -> None:
        self.session = session
        self.tickets = tickets
        self.customers = customers
        self.categories = CategoryService(session, teams)
        self.workspaces = WorkspaceService(session)
        self.audit = AuditLog(session)
        self.outbox = Outbox(session)
        self.trackers = TrackerRepository(session)
        # Per service (one transaction): a monitor pass touches many trackers that share these.
        self._calendars: dict[uuid.UUID | None, BusinessCalendar] = {}
        self._policies: dict[uuid.UUID, SlaPolicy | None] = {}

    # -- policy resolution -------------------------------------------------------------------
    async def policy_for(self, ticket: Ticket) -> SlaPolicy | None:
        """Most specific matching policy: category and tier > category > tier; then the
        category's own policy (nearest first); then the workspace default."""
        async def workspace_policies() -> list[SlaPolicy]:
            return list(await self.session.scalars(select(SlaPolicy).where(
                SlaPolicy.workspace_id == ticket.workspace_id).order_by(SlaPolicy.created_at)))

        policies = await read_once(self.session, ("sla_policies", ticket.workspace_id), workspace_policies)
        if not policies:
            return None
        lineage = await self._lineage(ticket.workspace_id, ticket.category_id)
        requester = (await self.customers.get_many(ticket.workspace_id, {ticket.requester_id}))[ticket.requester_id]
        best: tuple[tuple[int, int], SlaPolicy] | None = None
        for policy in policies:
            c = policy.conditions or {}
            cats, tiers = set(c.get("category_ids") or []), set(c.get("customer_tiers") or [])
            if not cats and not tiers:
                continue
            depth = next((i for i, cid in enumerate(lineage) if cid in cats), None)
            if cats and depth is None or tiers and requester.tier not in tiers:
                continue
            score = (2 if cats else 0) + (1 if tiers else 0), -(depth or 0)
            if best is None or score > best[0]:
                best = (score, policy)
        if best is not None:
            return best[1]
        by_id = {str(p.id): p for p in policies}
        for category_id in lineage:
            category = await self.categories.find(ticket.workspace_id, uuid.UUID(category_id))
            if category is not None and category.sla_policy_id and str(category.sla_policy_id) in by_id:
                return by_id[str(category.sla_policy_id)]
        return next((p for p in policies if p.is_default), None)

    async def _lineage(self, workspace_id: uuid.UUID, category_id: uuid.UUID | None) -> list[str]:
        lineage: list[str] = []
        while category_id is not None and str(category_id) not in lineage:
            lineage.append(str(category_id))
            category = await self.categories.find(workspace_id, category_id)
            category_id = category.parent_id if category else None
        return lineage

    @staticmethod
    def _targets(policy: SlaPolicy | None, priority: str) -> dict[str, timedelta]:
        raw = {**DEFAULT_TARGETS[priority], **((policy.targets or {}).get(priority, {}) if policy else {})}
        return {kind: timedelta(seconds=raw[kind]) for kind in ("first_response", "next_response", "resolution")}

    @staticmethod
    def _thresholds(policy: SlaPolicy | None) -> Thresholds:
        return _thresholds(policy.warning_at, policy.critical_at) if policy else _thresholds()

    async def _policy(self, policy_id: uuid.UUID | None) -> SlaPolicy | None:
        if policy_id is None:
            return None
        if policy_id not in self._policies:
            self._policies[policy_id] = await self.session.get(SlaPolicy, policy_id)
        return self._policies[policy_id]

    async def _load_policies(self, policy_ids: set[uuid.UUID]) -> None:
        """Fill the policy and calendar caches for a whole pass: one query each."""
        missing = policy_ids - self._policies.keys()
        if missing:
            found = {p.id: p for p in await self.session.scalars(select(SlaPolicy).where(SlaPolicy.id.in_(missing)))}
            self._policies |= {policy_id: found.get(policy_id) for policy_id in missing}
        calendar_ids = {p.calendar_id for p in self._policies.values() if p is not None and p.calendar_id} \
            - self._calendars.keys()
        if calendar_ids:
            rows = {c.id: c for c in await self.session.scalars(select(SlaCalendar).where(
                SlaCalendar.id.in_(calendar_ids)))}
            for calendar_id in calendar_ids:
                self._calendars[calendar_id] = _business_calendar(rows.get(calendar_id))

    async def _calendar(self, policy: SlaPolicy | None) -> BusinessCalendar:
        key = policy.calendar_id if policy else None
        if key not in self._calendars:
            self._calendars[key] = _business_calendar(await self.session.get(SlaCalendar, key) if key else None)
        return self._calendars[key]

    # -- trackers ----------------------------------------------------------------------------
    async def load_ahead(self, tickets_by_workspace: dict[uuid.UUID, list[uuid.UUID]],
                         with_trackers: list[uuid.UUID]) -> None:
        """For a batch of events: their tickets in one query, and the trackers of
        ``with_trackers`` (tickets that have one by now) locked in another, so ``sync`` and
        the consumers after it find them loaded instead of reading each on its own."""
        if sum(map(len, tickets_by_workspace.values())) > 1:
            await self.tickets.get_many_for_system(tickets_by_workspace)
        if len(with_trackers) > 1:
            for tracker in await self.session.scalars(_TRACKERS_LOCKED, {"ticket_ids": with_trackers}):
                note_locked(self.session, SlaTracker, tracker.ticket_id)

    async def ensure_tracker(self, ticket: Ticket, now: datetime, *, probably_new: bool = False) -> SlaTracker:
        """The ticket's tracker, locked for this transaction; made on first need.
        ``probably_new``: the ticket was just created, so try the insert first.

        Locks are always taken tracker first, then ticket, so SLA work never deadlocks
        with itself; concurrent first uses both insert, and one insert quietly yields."""
        tracker = already_loaded(self.session, SlaTracker, ticket.id, for_update=True)
        if tracker is None and not probably_new:
            tracker = await self._locked_tracker(ticket.id)
        if tracker is not None:
            return tracker
        policy = await self.policy_for(ticket)
        targets = self._targets(policy, ticket.priority)
        clocks = {k: engine.start(k, targets[k.value], ticket.created_at)
                  for k in (ClockKind.FIRST_RESPONSE, ClockKind.RESOLUTION)}
        # Brought up to now as ``sync`` would leave them when that announces nothing (the
        # usual case for a new ticket): the row is then written once, not inserted and
        # updated straight after. A crossing is left to ``sync``, which acts on it.
        calendar, thresholds = await self._calendar(policy), self._thresholds(policy)
        advanced = {k: engine.advance(c, now, calendar, thresholds) for k, c in clocks.items()}
        next_check_at = None
        if not any(fired for _, fired in advanced.values()):
            clocks = {k: c for k, (c, _) in advanced.items()}
            next_check_at = engine.earliest([engine.next_check_at(c, calendar, thresholds) for c in clocks.values()])
        values = dict(
            workspace_id=ticket.workspace_id, ticket_id=ticket.id, policy_id=policy.id if policy else None,
            policy_name=policy.name if policy else "Default", priority=ticket.priority,
            clocks={k.value: c.to_dict() for k, c in clocks.items()}, state="ok", breached=False,
            escalation_level=0, next_check_at=next_check_at, created_at=now, updated_at=now,
        )
        tracker = await self.session.scalar(_INSERT_TRACKER[self.session.bind.dialect.name], values)
        self.tickets.note_sla_due(ticket, _soonest_due(clocks.values(), calendar))
        if tracker is None:  # another transaction made it meanwhile
            tracker = await self._locked_tracker(ticket.id)
        else:
            note_locked(self.session, SlaTracker, ticket.id)
        assert tracker is not None
        return tracker

    async def _locked_tracker(self, ticket_id: uuid.UUID) -> SlaTracker | None:
        tracker = already_loaded(self.session, SlaTracker, ticket_id, for_update=True) or await self.session.scalar(
            _TRACKER_LOCKED, {"ticket_id": ticket_id})
        if tracker is not None:
            note_locked(self.session, SlaTracker, ticket_id)
        return tracker

    async def sync(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, at: datetime, now: datetime, *,
                   message: str | None = None, priority_only: bool = False, rechoose_policy: bool = False,
                   new_ticket: bool = False) -> SlaTracker | None:
        """Bring the ticket's tracker in line with the ticket as it is now.

        ``message`` is "agent" or "customer" when a public message prompted the call:
        an agent's reply meets the response clocks, a customer's starts the next-response
        clock. Everything else is read off the ticket itself, so out-of-order or repeated
        events leave the same result. ``priority_only``: the call is for a priority
        change, which needs nothing when the tracker already follows the ticket's
        priority and policy (routing sets it before the tracker is first synced, so usually
        it does). ``rechoose_policy``: the call is for a category or priority change, after
        which another policy may apply (the ticket's category, its customer's tier or the
        workspace's policies may have changed since the tracker chose one).
        ``new_ticket``: the call is for the ticket's creation (its tracker is made now)."""
        try:
            ticket = await self.tickets.get(Principal.system(workspace_id), ticket_id)
        except NotFound:
            return None
        tracker = await self.ensure_tracker(ticket, now, probably_new=new_ticket)
        policy = await self._policy(tracker.policy_id)
        chosen = await self.policy_for(ticket) if rechoose_policy else policy
        switched = (chosen.id if chosen else None) != tracker.policy_id
        if priority_only and tracker.priority == ticket.priority and not switched:
            return tracker
        calendar = await self._calendar(policy)
        clocks = {ClockKind(k): SlaClock.from_dict(v) for k, v in tracker.clocks.items()}
        if switched:
            clocks, calendar = await self._switch_policy(tracker, ticket, clocks, calendar, chosen, at)
            policy = chosen
        elif ticket.priority != tracker.priority:
            targets = self._targets(policy, ticket.priority)
            clocks = {k: engine.retarget(c, targets[k.value], at, calendar) for k, c in clocks.items()}
            tracker.priority = ticket.priority
        first = clocks.get(ClockKind.FIRST_RESPONSE)
        if first is not None and ticket.first_response_at is not None and first.met_at is None:
            clocks[ClockKind.FIRST_RESPONSE] = engine.meet(first, ticket.first_response_at, calendar)
        nxt = clocks.get(ClockKind.NEXT_RESPONSE)
        if message == "agent" and nxt is not None and nxt.met_at is None:
            clocks[ClockKind.NEXT_RESPONSE] = engine.meet(nxt, at, calendar)
        elif message == "customer" and ticket.first_response_at is not None and (nxt is None or nxt.met_at):
            target = self._targets(policy, ticket.priority)["next_response"]
            clocks[ClockKind.NEXT_RESPONSE] = engine.start(ClockKind.NEXT_RESPONSE, target, at)
        resolution = clocks[ClockKind.RESOLUTION]
        if ticket.status in DONE:
            clocks = {k: engine.meet(c, at, calendar) if c.met_at is None else c for k, c in clocks.items()}
        elif resolution.met_at is not None:
            # Re-opened: the resolution clock carries on from where it stopped.
            clocks[ClockKind.RESOLUTION] = replace(resolution, met_at=None, paused=False, consumed_at=max(
                resolution.consumed_at, at), trail=())
        elif ticket.status == Status.WAITING_ON_CUSTOMER.value:
            clocks[ClockKind.RESOLUTION] = engine.pause(resolution, at, calendar)
        else:
            clocks[ClockKind.RESOLUTION] = engine.resume(resolution, at, calendar)
        await self._store(tracker, ticket, clocks, policy, calendar, now)
        return tracker

    async def _switch_policy(self, tracker: SlaTracker, ticket: Ticket, clocks: dict[ClockKind, SlaClock],
                             calendar: BusinessCalendar, policy: SlaPolicy | None,
                             at: datetime) -> tuple[dict[ClockKind, SlaClock], BusinessCalendar]:
        """Put the tracker on ``policy`` from ``at`` on: time used so far is kept as the old
        calendar counted it; the new policy's targets and hours apply from then."""
        targets = self._targets(policy, ticket.priority)
        clocks = {k: engine.retarget(c, targets[k.value], at, calendar) for k, c in clocks.items()}
        tracker.policy_id = policy.id if policy else None
        tracker.policy_name = policy.name if policy else "Default"
        tracker.priority = ticket.priority
        return clocks, await self._calendar(policy)

    async def _store(self, tracker: SlaTracker | DueTracker, ticket: Ticket, clocks: dict[ClockKind, SlaClock],
                     policy: SlaPolicy | None, calendar: BusinessCalendar, now: datetime) -> None:
        """Announce what was crossed, escalate, and save the clocks with the next check time."""
        thresholds = self._thresholds(policy)
        crossed: list[engine.ThresholdCrossed] = []
        for kind, clock in list(clocks.items()):
            clocks[kind], fired = engine.advance(clock, now, calendar, thresholds)
            crossed += fired
        tracker.breach_count += sum(1 for event in crossed if event.level is ClockStatus.BREACHED)
        tracker.clocks = {k.value: c.to_dict() for k, c in clocks.items()}
        tracker.state = _overall([engine.status(c, now, calendar, thresholds) for c in clocks.values()]).value
        await self._hold_or_restart_escalation_timer(tracker, ticket, now)
        escalations = await self._escalate_automatically(tracker, ticket, crossed, now)
        # Each level crossed is published (live views and webhooks follow every one), but
        # people are told only of the highest a pass reached on each clock, and of a
        # critical or breach not even that when the pass escalated: the escalation's own
        # email names it. After a monitor outage, "about to be missed, act now" for a target
        # already missed is noise.
        highest = {event.kind: event for event in sorted(crossed, key=lambda e: SEVERITY[e.level])}
        for event in sorted(crossed, key=lambda e: (e.at, SEVERITY[e.level])):
            told_by_escalation = bool(escalations) and event.level in ESCALATING
            self.outbox.publish(tracker.workspace_id, "sla.threshold_crossed", now, ticket_id=ticket.id,
                                clock=event.kind.value, level=event.level.value, crossed_at=event.at,
                                due_at=engine.due_at(clocks[event.kind], calendar),
                                share_of_target=_share_of_target(event.level, thresholds),
                                notify=highest[event.kind] is event and not told_by_escalation,
                                **event_scope(ticket))
        for escalation, system_reason in escalations:
            self._announce_escalation(escalation, ticket, now, system_reason)
        open_ticket = ticket.status not in DONE
        tracker.next_check_at = engine.earliest(
            [engine.next_check_at(c, calendar, thresholds) for c in clocks.values()]
            + [tracker.next_escalation_at if open_ticket else None])
        tracker.updated_at = now
        self.tickets.note_sla_due(ticket, _soonest_due(clocks.values(), calendar))

    # -- the monitor ---------------------------------------------------------------------------
    async def scan_due(self, now: datetime, limit: int = 200) -> int:
        """Advance every tracker whose next check has come. Reads only due rows (indexed
        ``next_check_at``); rows another scanner holds are skipped, so two scans at once
        never act twice."""
        due = await self.trackers.lock_due(now, limit)
        if not due:
            return 0
        # A bounded number of statements whatever the number of due trackers: their tickets
        # in one query, their policies and calendars in one each, the trackers written back
        # in one; workspace settings once per workspace, and only if an escalation may follow.
        wanted: dict[uuid.UUID, list[uuid.UUID]] = {}
        for tracker in due:
            wanted.setdefault(tracker.workspace_id, []).append(tracker.ticket_id)
        tickets = await self.tickets.get_many_for_system(wanted)
        await self._load_policies({t.policy_id for t in due if t.policy_id is not None})
        # What escalations add (escalation rows, notes, audit rows) is written together
        # later, not flushed piecemeal by the reads they make on the way.
        with self.session.no_autoflush:
            for tracker in due:
                ticket = tickets.get(tracker.ticket_id)
                if ticket is None:  # deleted meanwhile
                    tracker.next_check_at = None
                    continue
                policy = await self._policy(tracker.policy_id)
                calendar = await self._calendar(policy)
                clocks = {ClockKind(k): SlaClock.from_dict(v) for k, v in tracker.clocks.items()}
                await self._store(tracker, ticket, clocks, policy, calendar, now)
        await self.trackers.save(due)
        return len(due)

    # -- escalation ------------------------------------------------------------------------------
    async def _hold_or_restart_escalation_timer(self, tracker: SlaTracker | DueTracker, ticket: Ticket,
                                                now: datetime) -> None:
        """The next level follows time the ticket spent unresolved in the agents' hands: a
        ticket resolved or waiting on its customer is not overdue, and one that comes back
        (a re-open a day later) gets the full time again rather than the next level at once."""
        if ticket.status in OUT_OF_AGENTS_COURT:
            if tracker.next_escalation_at is not None:
                tracker.next_escalation_at, tracker.escalation_timer_held = None, True
        elif tracker.escalation_timer_held:
            settings = await self.workspaces.settings(ticket.workspace_id)
            minutes = settings.escalation_l2_after_minutes if tracker.escalation_level == 1 \
                else settings.escalation_l3_after_minutes
            tracker.next_escalation_at, tracker.escalation_timer_held = now + timedelta(minutes=minutes), False

    async def _escalate_automatically(self, tracker: SlaTracker | DueTracker, ticket: Ticket,
                                      crossed: list[engine.ThresholdCrossed], now: datetime
                                      ) -> list[tuple[Escalation, dict[str, Any]]]:
        """The escalations the crossings (or the escalation timer) raise, for the caller to
        announce after the crossings themselves, each with the parts of its reason (for the
        notifications to word it in each reader's language; the row keeps it in English)."""
        if ticket.status in DONE:
            return []
        raised: list[tuple[Escalation, dict[str, Any]]] = []
        breaches = [e for e in crossed if e.level is ClockStatus.BREACHED]
        if breaches and not tracker.breached:
            tracker.breached = True
            await self.tickets.flag_sla_breached(Principal.system(ticket.workspace_id), ticket.id, now)
        escalation_due = tracker.next_escalation_at is not None and tracker.next_escalation_at <= now
        if not escalation_due and not any(e.level in ESCALATING for e in crossed):
            return raised  # none of the steps below can apply, so the settings need not be read
        settings = await self.workspaces.settings(ticket.workspace_id)
        trigger = {ClockStatus.BREACHED} | ({ClockStatus.CRITICAL} if settings.escalation_l1_on == "critical" else set())
        # Level 1 by hand sets no timer; an automatic level 1 always does. So a ticket at
        # level 1 without one was escalated by hand, and its SLA trigger still owes the
        # team lead the news and starts the clock towards level 2.
        by_hand_only = tracker.escalation_level == 1 and tracker.next_escalation_at is None \
            and not tracker.escalation_timer_held
        if (tracker.escalation_level == 0 or by_hand_only) and any(e.level in trigger for e in crossed):
            # The worst crossing names the reason: a pass that crossed critical and then the
            # breach escalates for the breach.
            worst = max((e for e in crossed if e.level in trigger), key=lambda e: SEVERITY[e.level])
            kind = "sla_breach" if worst.level is ClockStatus.BREACHED else "sla_critical"
            reason = f"{worst.kind.value.replace('_', ' ')} SLA {worst.level.value}"
            raised.append((await self._raise(ticket, tracker, 1, kind, reason, None, now),
                           {"code": "sla_crossed", "clock": worst.kind.value, "level": worst.level.value}))
            tracker.next_escalation_at = now + timedelta(minutes=settings.escalation_l2_after_minutes)
        # Not an elif: two clocks breached in one pass make level 1 and then level 2.
        if tracker.escalation_level == 1 and breaches and tracker.breach_count >= 2:
            raised.append((await self._raise(ticket, tracker, 2, "sla_breach", "a second SLA breach", None, now),
                           {"code": "second_breach"}))
            tracker.next_escalation_at = now + timedelta(minutes=settings.escalation_l3_after_minutes)
        elif tracker.next_escalation_at is not None and tracker.next_escalation_at <= now:
            if tracker.escalation_level == 1:
                minutes = settings.escalation_l2_after_minutes
                raised.append((await self._raise(ticket, tracker, 2, "sla_breach",
                                                 f"still unresolved {_minutes(minutes)} after level 1", None, now),
                               {"code": "still_unresolved", "minutes": minutes, "after_level": 1}))
                tracker.next_escalation_at = now + timedelta(minutes=settings.escalation_l3_after_minutes)
            elif tracker.escalation_level == 2:
                minutes = settings.escalation_l3_after_minutes
                raised.append((await self._raise(ticket, tracker, 3, "sla_breach",
                                                 f"still unresolved {_minutes(minutes)} after level 2", None, now),
                               {"code": "still_unresolved", "minutes": minutes, "after_level": 2}))
                tracker.next_escalation_at = None
            else:  # already at the top (raised by hand meanwhile): nothing further to schedule
                tracker.next_escalation_at = None
        return raised

    async def _raise(self, ticket: Ticket, tracker: SlaTracker | DueTracker | None, level: int, kind: str,
                     reason: str, raised_by: uuid.UUID | None, now: datetime, *,
                     actor_kind: str = "system") -> Escalation:
        # The id is set here so the event can name it without a flush of its own: a pass
        # that escalates many tickets writes their escalations in one statement.
        escalation = Escalation(id=new_id(), workspace_id=ticket.workspace_id, ticket_id=ticket.id, level=level,
                                kind=kind, reason=reason, raised_by=raised_by, created_at=now)
        self.session.add(escalation)
        if tracker is not None:
            tracker.escalation_level = max(tracker.escalation_level, level)
        action = {1: "the team lead is notified", 2: "it goes to a senior agent or supervisor",
                  3: "the managers are notified"}[level]
        self.tickets.system_note(ticket, f"Escalated to level {level} ({kind.replace('_', ' ')}): {reason}; "
                                         f"{action}.", now, internal=True)
        # In the ticket's audit trail too, with who raised it (none: the SLA monitor).
        self.audit.record(workspace_id=ticket.workspace_id, entity_type="ticket", entity_id=ticket.id,
                          actor_id=raised_by, actor_kind=actor_kind, at=now,
                          changes={"escalation": (None, f"level {level} ({kind})")})
        return escalation

    def _announce_escalation(self, escalation: Escalation, ticket: Ticket, now: datetime,
                             system_reason: dict[str, Any] | None = None) -> None:
        # system_reason: what the monitor's English reason says, as parts; None for a
        # reason a person wrote, which is read as written.
        self.outbox.publish(ticket.workspace_id, "ticket.escalated", now, ticket_id=ticket.id,
                            level=escalation.level, kind=escalation.kind, reason=escalation.reason,
                            system_reason=system_reason, escalation_id=escalation.id,
                            actor_id=escalation.raised_by, **event_scope(ticket))

    async def escalate(self, principal: Principal, ticket_ref: str, data: EscalationIn, now: datetime) -> Escalation:
        """Raised by hand: by staff (manual, high_impact, incident) or by the customer (a customer request)."""
        if principal.is_customer and data.kind.value != "customer_request":
            raise Forbidden("Customers may only ask for their ticket to be escalated: "
                            "send kind 'customer_request'.", field="kind")
        if not principal.is_customer and data.kind.value == "customer_request":
            # Customers read their own requests: a staff reason would reach them too.
            raise ValidationFailed("Staff escalate as manual, high_impact or incident.", field="kind")
        ticket = await self.tickets.get(principal, ticket_ref)
        if ticket.status in DONE:
            raise Conflict("Resolved and closed tickets cannot be escalated; reply to re-open it.",
                           code="ticket_done")
        tracker = await self.ensure_tracker(ticket, now)  # locked: two requests at once are checked in turn
        if data.kind.value == "customer_request":
            # A customer asks for attention, which is level 1: the senior reassignment and
            # the managers' pages stay the staff's and the SLA's to decide. Asking again
            # would only page the team lead again.
            if await self._customer_request_on_record(ticket):
                raise Conflict("You have already asked for this ticket to be escalated; the team lead has been "
                               "told and will follow up. Reply to the ticket to add anything.",
                               code="already_escalated")
            level = 1
        elif data.kind.value in ("incident", "high_impact"):
            level = 3
        else:
            level = min(tracker.escalation_level + 1, 3)
        escalation = await self._raise(ticket, tracker, level, data.kind.value, data.reason, principal.user_id, now,
                                       actor_kind=principal.actor_kind)
        self._announce_escalation(escalation, ticket, now)
        if can_move(Status(ticket.status), Status.ESCALATED):
            # The status line is public: the customer reads that it was escalated, not the
            # staff's reason (that is in the internal note above, and on the escalation with
            # who raised it). Moved as Relaydesk: in the escalator's name it would become theirs.
            await self.tickets.change_status(Principal.system(ticket.workspace_id), str(ticket.id),
                                             Status.ESCALATED, None, now)
        return escalation

    async def _customer_request_on_record(self, ticket: Ticket) -> bool:
        return await self.session.scalar(select(Escalation.id).where(
            Escalation.workspace_id == ticket.workspace_id, Escalation.ticket_id == ticket.id,
            Escalation.kind == "customer_request").limit(1)) is not None

    async def escalations(self, principal: Principal, ticket_ref: str) -> list[Escalation]:
        ticket = await self.tickets.get(principal, ticket_ref)
        stmt = select(Escalation).where(Escalation.workspace_id == ticket.workspace_id,
                                        Escalation.ticket_id == ticket.id)
        if principal.is_customer:
            stmt = stmt.where(Escalation.kind == "customer_request")
        return list(await self.session.scalars(stmt.order_by(Escalation.created_at, Escalation.id)))

    # -- the view ---------------------------------------------------------------------------
    async def view(self, principal: Principal, ticket_ref: str, now: datetime) -> dict[str, Any]:
        ticket = await self.tickets.get(principal, ticket_ref)
        tracker = await self.session.get(SlaTracker, ticket.id)
        if tracker is None:
            raise NotFound("This ticket's SLA clocks start within seconds of its creation.", code="sla_not_started")
        policy = await self._policy(tracker.policy_id)
        calendar = await self._calendar(policy)
        thresholds = self._thresholds(policy)
        clocks, states = [], []
        for kind, raw in tracker.clocks.items():
            clock = SlaClock.from_dict(raw)
            v = engine.view(clock, now, calendar, thresholds)
            states.append(v.status)
            clocks.append({
                "kind": kind, "state": v.status.value, "due_at": v.due_at, "paused": clock.paused,
                "remaining_seconds": v.remaining.total_seconds() if v.remaining is not None else None,
                "percent_used": round(v.percent_used, 1), "target_seconds": clock.target.total_seconds(),
                "breached_at": v.breached_at, "met_at": v.met_at,
            })
        order = [k.value for k in ClockKind]
        clocks.sort(key=lambda c: order.index(c["kind"]))
        # The clocks as they stand now, not as the monitor last stored them (up to a scan
        # interval ago), so the view never contradicts itself; the scan still announces
        # and escalates. Breach is final: a breach stored stays one.
        state = _overall(states) if states else ClockStatus(tracker.state)
        # The policy's name as it is now; the one noted on the tracker once it is gone.
        return {"ticket_id": ticket.id, "policy": policy.name if policy else tracker.policy_name,
                "priority": tracker.priority, "state": state.value,
                "breached": tracker.breached or ClockStatus.BREACHED in states,
                "escalation_level": tracker.escalation_level,
                "business_hours": "24/7" if policy is None or policy.calendar_id is None else
                (await self.session.get(SlaCalendar, policy.calendar_id)).name,
                "clocks": clocks}

    # -- admin: calendars and policies -------------------------------------------------------------
    @staticmethod
    def _require_manager(principal: Principal) -> None:
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins manage SLA settings.")

    async def list_calendars(self, principal: Principal) -> list[SlaCalendar]:
        if not principal.is_staff:
            raise Forbidden("Only support staff may see SLA settings.")
        return list(await self.session.scalars(select(SlaCalendar).where(
            SlaCalendar.workspace_id == principal.workspace_id).order_by(SlaCalendar.name)))

    async def get_calendar(self, principal: Principal, calendar_id: uuid.UUID) -> SlaCalendar:
        row = await self.session.scalar(select(SlaCalendar).where(
            SlaCalendar.workspace_id == principal.workspace_id, SlaCalendar.id == calendar_id))
        if row is None or not principal.is_staff:
            raise NotFound("No such business-hours calendar.")
        return row

    @staticmethod
    def _validated_hours(timezone: str, hours: dict[str, list[list[str]]], holidays: list[str]) -> dict[str, Any]:
        try:
            calendar = BusinessCalendar.from_dict({"timezone": timezone, "weekly_hours": hours, "holidays": holidays})
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="weekly_hours") from None
        # Clocks on a calendar that is never open (or not for years) could never be given
        # a due time: every ticket under it would go without SLA.
        if not calendar.weekly_hours:
            raise ValidationFailed("A calendar needs opening hours on at least one day.", field="weekly_hours")
        if calendar.longest_closure() >= MAX_SEARCH_DAYS:
            raise ValidationFailed(f"These holidays close the calendar for {MAX_SEARCH_DAYS} days or more in a row.",
                                   field="holidays")
        return {"timezone": timezone, "weekly_hours": hours, "holidays": sorted(set(holidays))}

    @staticmethod
    def _hours(weekly_hours: dict[str, list[Any]]) -> dict[str, list[list[str]]]:
        return {day: [[i.start.isoformat("minutes"),
                       "24:00" if (i.end.hour, i.end.minute) == (0, 0) else i.end.isoformat("minutes")]
                      for i in intervals] for day, intervals in weekly_hours.items()}

    async def create_calendar(self, principal: Principal, data: CalendarIn, now: datetime) -> SlaCalendar:
        self._require_manager(principal)
        fields = self._validated_hours(data.timezone, self._hours(data.weekly_hours),
                                       [d.isoformat() for d in data.holidays])
        await self._check_name(SlaCalendar, principal.workspace_id, data.name)
        row = SlaCalendar(workspace_id=principal.workspace_id, name=data.name, created_at=now, updated_at=now,
                          **fields)
        self.session.add(row)
        await self.session.flush()
        return row

    async def update_calendar(self, principal: Principal, calendar_id: uuid.UUID, data: CalendarPatch,
                              now: datetime) -> SlaCalendar:
        self._require_manager(principal)
        row = await self.get_calendar(principal, calendar_id)
        self._refuse_emptying(data, ("name", "timezone", "weekly_hours", "holidays"))
        if data.name is not None and data.name != row.name:
            await self._check_name(SlaCalendar, row.workspace_id, data.name, renamed=row.id)
        fields = self._validated_hours(
            data.timezone or row.timezone,
            self._hours(data.weekly_hours) if data.weekly_hours is not None else row.weekly_hours,
            [d.isoformat() for d in data.holidays] if data.holidays is not None else row.holidays)
        hours = BusinessCalendar.from_dict(fields)
        changed = next((f for f in ("weekly_hours", "holidays", "timezone") if getattr(data, f) is not None), "name")
        users = [policy for policy in await self.list_policies(principal) if policy.calendar_id == row.id]
        if changed != "name":  # a rename leaves every due time where it was
            for policy in users:
                self._refuse_unreachable(policy.targets, hours, now, field=changed, policy=policy.name)
        for key, value in fields.items():
            setattr(row, key, value)
        self._calendars.pop(row.id, None)
        for policy in users:  # running clocks follow the new hours
            self.outbox.publish(row.workspace_id, "sla.policy_changed", now, policy_id=policy.id)
        if data.name is not None:
            row.name = data.name
        row.updated_at = now
        return row

    async def _check_reachable(self, workspace_id: uuid.UUID, targets: dict[str, dict[str, int]],
                               calendar_id: uuid.UUID | None, now: datetime) -> None:
        if calendar_id is None:
            return  # 24/7 reaches any target the schema allows
        row = await self.session.scalar(select(SlaCalendar).where(
            SlaCalendar.workspace_id == workspace_id, SlaCalendar.id == calendar_id))
        if row is not None:
            self._refuse_unreachable(targets, _business_calendar(row), now)

    @staticmethod
    def _refuse_unreachable(targets: dict[str, dict[str, int]], calendar: BusinessCalendar, now: datetime, *,
                            field: str | None = None, policy: str | None = None) -> None:
        """The engine looks ``MAX_SEARCH_DAYS`` ahead for a due time: a target its calendar
        does not open long enough to reach in that time would leave tickets without one."""
        horizon = timedelta(days=MAX_SEARCH_DAYS - 1)  # what the search covers whatever the start
        reach = calendar.business_time_between(now, now + horizon)
        for priority, kinds in targets.items():
            for kind, seconds in kinds.items():
                if timedelta(seconds=seconds) > reach:
                    whose = f" of the policy '{policy}'" if policy else ""
                    raise ValidationFailed(
                        f"The {priority} {kind.replace('_', ' ')} target{whose} ({_in_hours(seconds)}) cannot "
                        f"be reached: these business hours add up to {_in_hours(reach.total_seconds())} in the "
                        f"{MAX_SEARCH_DAYS} days the SLA engine looks ahead.",
                        field=field or f"targets.{priority}.{kind}")

    @staticmethod
    def _refuse_backwards(targets: dict[str, dict[str, int]]) -> None:
        """Resolving is also an answer: a resolution target shorter than first response
        would breach resolution first on every ticket nobody has answered yet."""
        for priority, kinds in targets.items():
            if kinds["resolution"] < kinds["first_response"]:
                raise ValidationFailed(
                    f"The {priority} resolution target ({kinds['resolution']} seconds) is shorter than its "
                    f"first response target ({kinds['first_response']} seconds); make it at least as long.",
                    field=f"targets.{priority}.resolution")

    async def _check_name(self, model: type[SlaCalendar] | type[SlaPolicy], workspace_id: uuid.UUID,
                          name: str, renamed: uuid.UUID | None = None) -> None:
        """Names differ in more than case ("VIP" and "vip" read as one in a picker); a
        ``renamed`` row may change the case of its own."""
        same = select(model.id).where(model.workspace_id == workspace_id, func.lower(model.name) == name.lower())
        if await self.session.scalar(same if renamed is None else same.where(model.id != renamed)):
            what = "calendar" if model is SlaCalendar else "policy"
            raise Conflict(f"A {what} with this name already exists.", field="name", code="name_taken")

    @staticmethod
    def _refuse_emptying(data: CalendarPatch | PolicyPatch, fields: tuple[str, ...]) -> None:
        for field in fields:
            if field in data.model_fields_set and getattr(data, field) is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)

    @staticmethod
    def _check_thresholds(warning_at: float, critical_at: float) -> None:
        if warning_at >= critical_at:
            raise ValidationFailed("warning_at must be below critical_at.", field="warning_at")

    async def list_policies(self, principal: Principal) -> list[SlaPolicy]:
        if not principal.is_staff:
            raise Forbidden("Only support staff may see SLA settings.")
        return list(await self.session.scalars(select(SlaPolicy).where(
            SlaPolicy.workspace_id == principal.workspace_id).order_by(SlaPolicy.name)))

    async def get_policy(self, principal: Principal, policy_id: uuid.UUID) -> SlaPolicy:
        row = await self.session.scalar(select(SlaPolicy).where(
            SlaPolicy.workspace_id == principal.workspace_id, SlaPolicy.id == policy_id))
        if row is None or not principal.is_staff:
            raise NotFound("No such SLA policy.")
        return row

    async def _check_policy_refs(self, principal: Principal, calendar_id: uuid.UUID | None,
                                 category_ids: list[uuid.UUID]) -> None:
        if calendar_id is not None:
            try:
                await self.get_calendar(principal, calendar_id)
            except NotFound:
                raise ValidationFailed("No such business-hours calendar.", field="calendar_id") from None
        for category_id in category_ids:
            if await self.categories.find(principal.workspace_id, category_id) is None:
                raise ValidationFailed("No such category in this workspace.", field="conditions.category_ids")

    async def _single_default(self, principal: Principal, keep: SlaPolicy) -> None:
        for other in await self.list_policies(principal):
            if other.id != keep.id and other.is_default:
                other.is_default = False

    async def create_policy(self, principal: Principal, data: PolicyIn, now: datetime) -> SlaPolicy:
        self._require_manager(principal)
        self._check_thresholds(data.warning_at, data.critical_at)
        await self._check_policy_refs(principal, data.calendar_id, data.conditions.category_ids)
        await self._check_name(SlaPolicy, principal.workspace_id, data.name)
        targets = {p: {**DEFAULT_TARGETS[p], **(data.targets[p].model_dump() if data.targets and p in data.targets
                                               else {})} for p in DEFAULT_TARGETS}
        await self._check_reachable(principal.workspace_id, targets, data.calendar_id, now)
        self._refuse_backwards(targets)
        policy = SlaPolicy(workspace_id=principal.workspace_id, name=data.name, is_default=data.is_default,
                           conditions=data.conditions.model_dump(mode="json"), targets=targets,
                           warning_at=data.warning_at, critical_at=data.critical_at, calendar_id=data.calendar_id,
                           created_at=now, updated_at=now)
        self.session.add(policy)
        await self.session.flush()
        if policy.is_default:
            await self._single_default(principal, policy)
        self.audit.record(workspace_id=policy.workspace_id, entity_type="sla_policy", entity_id=policy.id,
                          actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                          changes={"created": (None, policy.name)})
        return policy

    async def update_policy(self, principal: Principal, policy_id: uuid.UUID, data: PolicyPatch,
                            now: datetime) -> SlaPolicy:
        self._require_manager(principal)
        policy = await self.get_policy(principal, policy_id)
        fields = data.model_fields_set
        self._refuse_emptying(data, ("name", "is_default", "conditions", "targets", "warning_at", "critical_at"))
        await self._check_policy_refs(principal, data.calendar_id if "calendar_id" in fields else None,
                                      data.conditions.category_ids if data.conditions else [])
        warning = data.warning_at if data.warning_at is not None else policy.warning_at
        critical = data.critical_at if data.critical_at is not None else policy.critical_at
        self._check_thresholds(warning, critical)
        new: dict[str, Any] = {"warning_at": warning, "critical_at": critical}
        if data.name is not None and data.name != policy.name:
            await self._check_name(SlaPolicy, policy.workspace_id, data.name, renamed=policy.id)
            new["name"] = data.name
        if data.is_default is not None:
            new["is_default"] = data.is_default
        if data.conditions is not None:
            new["conditions"] = data.conditions.model_dump(mode="json")
        if data.targets is not None:
            new["targets"] = {p: {**(policy.targets.get(p) or DEFAULT_TARGETS[p]),
                                  **(data.targets[p].model_dump() if p in data.targets else {})}
                              for p in DEFAULT_TARGETS}
        if "calendar_id" in fields:
            new["calendar_id"] = data.calendar_id
        if {"targets", "calendar_id"} & new.keys():
            await self._check_reachable(policy.workspace_id, new.get("targets", policy.targets),
                                        new.get("calendar_id", policy.calendar_id), now)
        if "targets" in new:
            self._refuse_backwards(new["targets"])
        changes = {k: (getattr(policy, k), v) for k, v in new.items() if getattr(policy, k) != v}
        for k, (_, v) in changes.items():
            setattr(policy, k, v)
        if changes:
            policy.updated_at = now
            if policy.is_default:
                await self._single_default(principal, policy)
            self.audit.record(workspace_id=policy.workspace_id, entity_type="sla_policy", entity_id=policy.id,
                              actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now, changes=changes)
            if {"targets", "warning_at", "critical_at", "calendar_id"} & changes.keys():
                self.outbox.publish(policy.workspace_id, "sla.policy_changed", now, policy_id=policy.id)
        return policy

    async def delete_policy(self, principal: Principal, policy_id: uuid.UUID, now: datetime) -> None:
        """Retire a policy. Its categories lose it, and the open tickets on it move to the
        policy that applies without it (the built-ins when it was the only default), their
        clocks keeping the time used; closed tickets keep its name in their history."""
        self._require_manager(principal)
        policy = await self.get_policy(principal, policy_id)
        # Locked before the row goes, which would clear their policy_id on its own.
        trackers = list(await self.session.scalars(select(SlaTracker).where(
            SlaTracker.workspace_id == policy.workspace_id, SlaTracker.policy_id == policy.id)
            .order_by(SlaTracker.ticket_id).with_for_update()))
        for category in await self.categories.list(principal):
            if category.sla_policy_id == policy.id:
                await self.set_category_policy(principal, category.id, None, now)
        self.audit.record(workspace_id=policy.workspace_id, entity_type="sla_policy", entity_id=policy.id,
                          actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                          changes={"deleted": (policy.name, None)})
        calendar = await self._calendar(policy)
        await self.session.delete(policy)
        await self.session.flush()
        self._policies.pop(policy.id, None)
        forget_read(self.session, ("sla_policies", policy.workspace_id))
        tickets = await self.tickets.get_many_for_system({policy.workspace_id: [t.ticket_id for t in trackers]})
        for tracker in trackers:
            ticket = tickets.get(tracker.ticket_id)
            if ticket is None or ticket.status in DONE:
                tracker.policy_id = None
                continue
            chosen = await self.policy_for(ticket)
            clocks = {ClockKind(k): SlaClock.from_dict(v) for k, v in tracker.clocks.items()}
            clocks, new_calendar = await self._switch_policy(tracker, ticket, clocks, calendar, chosen, now)
            await self._store(tracker, ticket, clocks, chosen, new_calendar, now)

    async def delete_calendar(self, principal: Principal, calendar_id: uuid.UUID, now: datetime) -> None:
        """Only a calendar no policy uses: its policies' clocks would silently turn 24/7."""
        self._require_manager(principal)
        row = await self.get_calendar(principal, calendar_id)
        users = [policy.name for policy in await self.list_policies(principal) if policy.calendar_id == row.id]
        if users:
            raise Conflict(f"These SLA policies use this calendar: {', '.join(users)}. Give them other business "
                           f"hours (or 24/7) first.", code="calendar_in_use", extra={"policies": users})
        self.audit.record(workspace_id=row.workspace_id, entity_type="sla_calendar", entity_id=row.id,
                          actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                          changes={"deleted": (row.name, None)})
        await self.session.delete(row)
        self._calendars.pop(row.id, None)

    async def set_category_policy(self, principal: Principal, category_id: uuid.UUID, policy_id: uuid.UUID | None,
                                  now: datetime) -> Category:
        """The category's own policy, for new tickets in it and their sub-categories' (open
        tickets keep their clocks until their category or priority changes)."""
        self._require_manager(principal)
        category = await self.categories.get(principal, category_id)
        if policy_id is not None:
            try:
                await self.get_policy(principal, policy_id)
            except NotFound:
                raise ValidationFailed("No such SLA policy in this workspace.", field="policy_id") from None
        if category.sla_policy_id != policy_id:
            self.audit.record(workspace_id=category.workspace_id, entity_type="category", entity_id=category.id,
                              actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                              changes={"sla_policy_id": (category.sla_policy_id, policy_id)})
            category.sla_policy_id = policy_id
        return category

    async def retarget_policy(self, workspace_id: uuid.UUID, policy_id: uuid.UUID, now: datetime) -> int:
        """A policy's targets or hours changed: recompute the open trackers that use it."""
        trackers = list(await self.session.scalars(select(SlaTracker).where(
            SlaTracker.workspace_id == workspace_id, SlaTracker.policy_id == policy_id).with_for_update()))
        policy = await self.session.get(SlaPolicy, policy_id)
        if policy is None:
            return 0
        self._calendars.pop(policy.calendar_id, None)
        calendar = await self._calendar(policy)
        count = 0
        for tracker in trackers:
            try:
                ticket = await self.tickets.get(Principal.system(workspace_id), tracker.ticket_id)
            except NotFound:
                continue
            if ticket.status in DONE:
                continue
            targets = self._targets(policy, ticket.priority)
            clocks = {ClockKind(k): engine.retarget(SlaClock.from_dict(v), targets[k], now, calendar)
                      for k, v in tracker.clocks.items()}
            await self._store(tracker, ticket, clocks, policy, calendar, now)
            count += 1
        return count


def _share_of_target(level: ClockStatus, thresholds: Thresholds) -> float:
    """The part of the target used when ``level`` is reached, as the ticket's policy sets it."""
    return {ClockStatus.WARNING: thresholds.warning, ClockStatus.CRITICAL: thresholds.critical}.get(level, 1.0)


def _in_hours(seconds: float) -> str:
    hours = round(seconds / 3600, 2)
    return "1 hour" if hours == 1 else f"{hours:g} hours"


def _minutes(n: int) -> str:
    return "1 minute" if n == 1 else f"{n} minutes"


def _overall(states: list[ClockStatus]) -> ClockStatus:
    """A ticket's SLA state from its clocks': the worst threshold crossed; else paused only
    when nothing runs (waiting on the customer pauses resolution, but an unanswered
    ticket's first response still runs); met when every clock is."""
    worst = max(states, key=lambda s: SEVERITY[s])
    if SEVERITY[worst]:
        return worst
    if ClockStatus.PAUSED in states and ClockStatus.OK not in states:
        return ClockStatus.PAUSED
    return ClockStatus.MET if all(s is ClockStatus.MET for s in states) else ClockStatus.OK


def _soonest_due(clocks: Iterable[SlaClock], calendar: BusinessCalendar) -> datetime | None:
    """What a queue sorted by SLA is sorted by: the soonest due of the running clocks (a
    breached one's breach instant, so overdue tickets come first)."""
    return engine.earliest(engine.due_at(clock, calendar) for clock in clocks)

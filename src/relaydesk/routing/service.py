"""Routing: classify and prioritise new tickets, then give each to the best available
agent, or queue it until somebody can take it.

Decisions are taken under the workspace's routing lock (a PostgreSQL advisory lock;
SQLite's single writer does the same), and the ticket service re-checks the winner's cap
under a row lock, so concurrent routing never pushes an agent past their cap. One lock
per workspace, not per team: a consumer batch routes several tickets in one
transaction, and agents serve several teams, so per-team locks taken in different
orders by two batches deadlocked on each other's agent rows.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.audit import AuditLog
from relaydesk.core.db import already_loaded, hold_until_commit, note_locked, read_once
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal
from relaydesk.core.sanitize import html_to_text
from relaydesk.customers.models import Customer
from relaydesk.customers.service import CustomerService
from relaydesk.routing import classifier as category_model
from relaydesk.routing.models import AssignmentRule, TicketRouting, WorkspaceModel
from relaydesk.routing.priority import DEFAULT_KEYWORDS, decide_priority, keywords_in_effect
from relaydesk.routing.schemas import RuleConditions, RuleIn, RulePatch, WorkspaceSettingsOut
from relaydesk.routing.strategies import (
    Candidate,
    Decision,
    Requirement,
    Shift,
    Strategy,
    decide,
)
from relaydesk.tenancy.schemas import WorkspaceSettingsPatch
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.categories import CategoryService
from relaydesk.tickets.lifecycle import FINISHED, Priority, Status
from relaydesk.tickets.models import Ticket
from relaydesk.tickets.schemas import TicketPatch
from relaydesk.tickets.service import TicketService

log = structlog.get_logger("relaydesk.routing")
PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.URGENT: 3}
# An unowned ticket in these waits for an agent; an escalated one needs an owner even more.
NEEDS_ROUTING = frozenset({Status.OPEN.value, Status.ESCALATED.value})
# In a queued ticket's decision record: the agent who gave it back themselves, whom
# routing passes over (else the best scorer got it straight back) until somebody takes
# it or supervisors have been told it is waiting, so that it never waits for ever when
# they are the only one who can take it.
HANDED_BACK = "handed_back_by"
# In the record's decision: the person who last assigned the ticket by hand, whom to, when.
BY_HAND = "assigned_by_hand"
_PREDICTIONS = "category_predictions"  # session.info: ticket id -> (model, prediction) from classify_ahead
_UNROUTED = "tickets_unrouted"  # session.info: new tickets found without a routing record, ahead of intake
# Hot statements, built once (docs/architecture.md, "Statements built once").
_ROUTED_AMONG = select(TicketRouting.ticket_id).where(TicketRouting.ticket_id.in_(bindparam("ids", expanding=True)))


class ModelCache:
    """Category models per workspace, loaded once per process and replaced on retrain."""

    def __init__(self) -> None:
        self._models: dict[uuid.UUID, tuple[datetime, category_model.CategoryClassifier]] = {}

    async def for_workspace(self, session: AsyncSession, workspace_id: uuid.UUID) -> category_model.CategoryClassifier:
        trained_at = await read_once(session, ("model_trained_at", workspace_id), lambda: session.scalar(
            select(WorkspaceModel.trained_at).where(WorkspaceModel.workspace_id == workspace_id)))
        if trained_at is None:
            return category_model.CategoryClassifier.shipped()
        cached = self._models.get(workspace_id)
        if cached is None or cached[0] != trained_at:
            blob = await session.scalar(select(WorkspaceModel.model).where(WorkspaceModel.workspace_id == workspace_id))
            try:
                model = category_model.CategoryClassifier.loads(blob)
            except ValueError:
                # Saved by another scikit-learn (or format) version: use the shipped model
                # until `relaydesk retrain` runs again.
                log.warning("workspace_model_unusable", workspace_id=str(workspace_id))
                model = category_model.CategoryClassifier.shipped()
            cached = (trained_at, model)
            self._models[workspace_id] = cached
        return cached[1]


@dataclass(frozen=True, slots=True)
class RetrainResult:
    samples: int
    labels: list[str]
    accuracy: float  # the new model's, on held-out tickets
    current_accuracy: float  # the model in use, on the same held-out tickets
    kept_current: bool  # the new model did worse, so it was not switched to


# Enough resolved tickets, and of each category, for a held-out check (a fifth of them)
# to say something: with fewer a new model would be switched to blind.
MEASURABLE_SAMPLES = 50
MEASURABLE_PER_CATEGORY = 5


class RoutingService:
    def __init__(
        self, session: AsyncSession, *, tickets: TicketService, agents: AgentService, teams: TeamService,
        customers: CustomerService, models: ModelCache,
    ) -> None:
        self.session = session
        self.tickets = tickets
        self.agents = agents
        self.teams = teams
        self.customers = customers
        self.categories = CategoryService(session, teams)
        self.workspaces = WorkspaceService(session)
        self.models = models
        self.audit = AuditLog(session)
        self.outbox = Outbox(session)

    # -- intake ----------------------------------------------------------------------------
    async def classify_ahead(self, workspace_id: uuid.UUID, ticket_ids: list[uuid.UUID]) -> None:
        """Classify a batch's new tickets together (their rows in one read, the workspace's
        model looked up once); ``intake`` then uses the stored prediction."""
        if len(ticket_ids) < 2:
            return
        tickets = list((await self.tickets.get_many(Principal.system(workspace_id), ticket_ids)).values())
        model = await self.models.for_workspace(self.session, workspace_id)
        predictions = model.predict_many([(t.subject, html_to_text(t.description)) for t in tickets])
        self.session.info.setdefault(_PREDICTIONS, {}).update(
            (t.id, (model, p)) for t, p in zip(tickets, predictions))

    async def find_unrouted_ahead(self, ticket_ids: list[uuid.UUID]) -> None:
        """Which of a batch's new tickets have no routing record yet, in one query, so that
        ``intake`` need not look for each one's (only a re-delivery finds one)."""
        if len(ticket_ids) < 2:
            return
        routed = set(await self.session.scalars(_ROUTED_AMONG, {"ids": ticket_ids}))
        self.session.info.setdefault(_UNROUTED, set()).update(set(ticket_ids) - routed)

    async def intake(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, now: datetime, *,
                     category_given: bool, priority_given: bool, assigned: bool,
                     opened_with: dict[str, Any] | None = None) -> TicketRouting | None:
        """Classify and prioritise a new ticket, then route it. Safe to call twice.
        ``opened_with``: its priority and category when it was opened; a person who changed
        either before this ran has the last word, as they would have after it."""
        system = Principal.system(workspace_id)
        try:
            ticket = await self.tickets.get(system, ticket_id)
        except NotFound:
            return None  # deleted meanwhile
        unrouted = self.session.info.get(_UNROUTED, set())
        if ticket_id in unrouted:
            unrouted.discard(ticket_id)  # being routed now
        elif await self._record_of(ticket_id) is not None:
            return None  # a re-delivery
        settings = await self.workspaces.settings(workspace_id)
        requester = (await self.customers.get_many(workspace_id, {ticket.requester_id}))[ticket.requester_id]
        patch: dict[str, Any] = {}

        opened_with = opened_with or {}
        if "category_id" in opened_with and str(ticket.category_id or "") != str(opened_with["category_id"] or ""):
            source, label, confidence, reason = "agent", None, None, "changed by staff before routing"
        elif category_given:
            source, label, confidence, reason = "given", None, None, "chosen when the ticket was opened"
        else:
            model = await self.models.for_workspace(self.session, workspace_id)
            ahead_model, prediction = self.session.info.get(_PREDICTIONS, {}).get(ticket.id, (None, None))
            min_conf = settings.classifier_min_confidence
            label, confidence, reason = category_model.classify(
                model, ticket.subject, html_to_text(ticket.description),
                min_confidence=category_model.DEFAULT_MIN_CONFIDENCE if min_conf is None else min_conf,
                fallback=settings.fallback_category, prediction=prediction if ahead_model is model else None)
            source = "fallback" if label == settings.fallback_category and "fell back" in reason else "model"
            category_id = await self._category_named(workspace_id, label)
            if category_id is None:
                reason += f"; no category called '{label}' in this workspace, so none was set"
                source = "none"
            else:
                patch["category_id"] = category_id

        category_default = Priority.MEDIUM.value
        category = await self.categories.find(workspace_id, patch.get("category_id") or ticket.category_id) \
            if (patch.get("category_id") or ticket.category_id) else None
        if category is not None:
            category_default = category.default_priority
            if ticket.team_id is None and category.team_id is not None:
                patch["team_id"] = category.team_id
        if opened_with.get("priority", ticket.priority) != ticket.priority:
            priority_source, reasons = "agent", [f"changed by staff to {ticket.priority}"]
        elif priority_given:
            priority_source, reasons = "given", [f"chosen when the ticket was opened: {ticket.priority}"]
        else:
            decision = decide_priority(
                ticket.subject, html_to_text(ticket.description), category_default=category_default,
                customer_tier=requester.tier,
                keywords=keywords_in_effect(settings.priority_keywords) if settings.priority_keywords else None)
            priority_source, reasons = "rules", list(decision.reasons)
            if decision.priority != ticket.priority:
                patch["priority"] = Priority(decision.priority)
        if patch and ticket.status != Status.CLOSED.value:  # closed before we got to it: record only
            ticket = await self.tickets.update(system, str(ticket.id), TicketPatch(**patch), now)
        routing = TicketRouting(
            workspace_id=workspace_id, ticket_id=ticket.id, category_source=source, category_label=label,
            category_confidence=confidence, category_reason=reason, priority_source=priority_source,
            priority_reasons=reasons, state="manual" if assigned else "queued",
            priority_rank=PRIORITY_RANK[Priority(ticket.priority)], team_id=ticket.team_id, decided_at=now,
            queued_since=None if assigned else now,
        )
        self.session.add(routing)
        if not assigned:
            await self.route(workspace_id, ticket.id, now, routing=routing)
        # Not flushed here: the batch's records, tickets and messages are then written
        # together (one INSERT per table for the batch, and the SLA due time the next
        # consumer sets goes out with the ticket's UPDATE). Whatever looks records up by
        # query first writes those still pending (``_write_pending_records``).
        return routing

    async def _write_pending_records(self) -> None:
        """Flush routing records this transaction made, before a query that must find them."""
        if any(isinstance(obj, TicketRouting) for obj in self.session.new):
            await self.session.flush()

    async def _record_of(self, ticket_id: uuid.UUID, *, for_update: bool = False) -> TicketRouting | None:
        await self._write_pending_records()
        return await self.session.get(TicketRouting, ticket_id, with_for_update=for_update or None)

    async def _category_named(self, workspace_id: uuid.UUID, label: str) -> uuid.UUID | None:
        """The workspace category the label names, a top-level one first."""
        categories = await read_once(self.session, ("categories", workspace_id),
                                     lambda: self.categories.list(Principal.system(workspace_id)))
        named = [c for c in categories if c.name.casefold() == label.casefold()]
        named.sort(key=lambda c: c.parent_id is not None)
        return named[0].id if named else None

    # -- assignment ------------------------------------------------------------------------
    async def route(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, now: datetime, *,
                    exclude: set[uuid.UUID] = frozenset(),  # type: ignore[assignment]
                    routing: TicketRouting | None = None) -> TicketRouting | None:
        """Assign the ticket to the best candidate now, or leave it queued with the reason.
        ``routing``: the ticket's record when this transaction has just made it."""
        # The workspace's lock before any record's: two drains locking records first and
        # then waiting for each other's workspace lock deadlocked on PostgreSQL.
        await self._lock_routing(workspace_id)
        routing = routing or await self._locked_routing(ticket_id)
        system = Principal.system(workspace_id)
        try:
            ticket = await self.tickets.get(system, ticket_id)
        except NotFound:
            return None
        if routing is None:
            return None
        if ticket.assignee_id is not None or ticket.status not in NEEDS_ROUTING:
            if routing.state == "queued":  # a person took it, or moved it on, meanwhile
                routing.leave_queue("manual")
            return routing
        handed_back = (routing.decision or {}).get(HANDED_BACK) if routing.waiting_alerted_at is None else None
        requester = (await self.customers.get_many(workspace_id, {ticket.requester_id}))[ticket.requester_id]
        rule = await self._matching_rule(ticket, requester)
        team_id = rule.team_id if rule and rule.team_id else ticket.team_id
        strategy = Strategy(rule.strategy) if rule else Strategy.SKILL_WEIGHTED
        requirement = await self._requirement(ticket, requester)
        pool = [a for a in await self.agents.pool(workspace_id, team_id) if a["id"] not in exclude]
        loads = await self.tickets.open_load(workspace_id, [a["id"] for a in pool])
        zone = await self.workspaces.timezone(workspace_id)
        candidates = [_candidate(a, loads[a["id"]], zone) for a in pool]
        decision = decide(strategy, candidates, requirement, now, handed_back_by=handed_back)
        routing.team_id, routing.rule_id = team_id, rule.id if rule else None
        routing.decided_at = now
        routing.priority_rank = PRIORITY_RANK[Priority(ticket.priority)]
        if decision.winner is not None:
            winner = uuid.UUID(decision.winner)
            try:
                await self.tickets.update(system, str(ticket.id), TicketPatch(
                    assignee_id=winner, **({"team_id": team_id} if team_id != ticket.team_id else {})), now)
            except Conflict:
                # Someone else's routing filled this agent meanwhile: decide again without them.
                return await self.route(workspace_id, ticket_id, now, exclude={*exclude, winner}, routing=routing)
            await self.agents.note_assigned(workspace_id, winner, now)
            routing.leave_queue("assigned")
            routing.decision = _record(decision, rule)
            return routing
        if team_id != ticket.team_id and team_id is not None:
            await self.tickets.update(system, str(ticket.id), TicketPatch(team_id=team_id), now)
        routing.state = "queued"
        routing.queued_since = routing.queued_since or now
        routing.decision = {**_record(decision, rule), **({HANDED_BACK: handed_back} if handed_back else {})}
        return routing

    async def _locked_routing(self, ticket_id: uuid.UUID) -> TicketRouting | None:
        routing = already_loaded(self.session, TicketRouting, ticket_id, for_update=True) or \
            await self._record_of(ticket_id, for_update=True)
        if routing is not None:
            note_locked(self.session, TicketRouting, ticket_id)
        return routing

    async def _matching_rule(self, ticket: Ticket, requester: Customer) -> AssignmentRule | None:
        async def enabled() -> list[AssignmentRule]:
            return list(await self.session.scalars(select(AssignmentRule).where(
                AssignmentRule.workspace_id == ticket.workspace_id, AssignmentRule.enabled.is_(True),
            ).order_by(AssignmentRule.position, AssignmentRule.created_at)))

        rules = await read_once(self.session, ("assignment_rules", ticket.workspace_id), enabled)
        if not rules:
            return None
        lineage = await self._category_lineage(ticket.workspace_id, ticket.category_id)
        facts = {"channels": ticket.channel, "priorities": ticket.priority, "customer_tiers": requester.tier,
                 "languages": _primary_language(requester.language)}
        for rule in rules:
            c = rule.conditions or {}
            if c.get("category_ids") and not lineage & set(c["category_ids"]):
                continue
            wanted = {key: set(c.get(key) or ()) for key in facts}
            wanted["languages"] = {_primary_language(v) for v in wanted["languages"]}
            if any(values and facts[key] not in values for key, values in wanted.items()):
                continue
            return rule
        return None

    async def _category_lineage(self, workspace_id: uuid.UUID, category_id: uuid.UUID | None) -> set[str]:
        lineage: set[str] = set()
        while category_id is not None and str(category_id) not in lineage:
            lineage.add(str(category_id))
            category = await self.categories.find(workspace_id, category_id)
            category_id = category.parent_id if category else None
        return lineage

    async def _requirement(self, ticket: Ticket, requester: Customer) -> Requirement:
        category = await self.categories.find(ticket.workspace_id, ticket.category_id) if ticket.category_id else None
        return Requirement(skills=tuple(category.required_skills) if category else (), language=requester.language)

    async def _lock_routing(self, workspace_id: uuid.UUID) -> None:
        await hold_until_commit(self.session, f"route:{workspace_id}")  # once a batch

    async def drain(self, workspace_id: uuid.UUID, team_ids: list[uuid.UUID | None], now: datetime,
                    limit: int = 50) -> int:
        """Offer queued tickets of these teams (most urgent, then longest waiting first) to
        whoever has room now, a page of ``limit`` at a time while pages keep getting
        assigned (a big rise in capacity empties the queue, not just its first page).
        Returns how many were assigned."""
        await self._lock_routing(workspace_id)
        await self._write_pending_records()
        stmt = select(TicketRouting.ticket_id).where(
            TicketRouting.workspace_id == workspace_id, TicketRouting.state == "queued")
        named = [t for t in team_ids if t is not None]
        if None in team_ids:
            stmt = stmt.where((TicketRouting.team_id.in_(named)) | TicketRouting.team_id.is_(None))
        else:
            stmt = stmt.where(TicketRouting.team_id.in_(named))
        stmt = stmt.order_by(TicketRouting.priority_rank.desc(), TicketRouting.queued_since, TicketRouting.ticket_id)
        assigned, offered = 0, set()
        while True:
            page = [t for t in await self.session.scalars(stmt.limit(limit + len(offered))) if t not in offered]
            assigned_here = 0
            for ticket_id in page[:limit]:
                offered.add(ticket_id)
                routing = await self.route(workspace_id, ticket_id, now)
                assigned_here += routing is not None and routing.state == "assigned"
            assigned += assigned_here
            if len(page) < limit or assigned_here == 0:
                return assigned

    async def drain_for_agent(self, workspace_id: uuid.UUID, agent_id: uuid.UUID, now: datetime) -> int:
        teams: list[uuid.UUID | None] = [*await self.agents.teams_of(workspace_id, agent_id), None]
        return await self.drain(workspace_id, teams, now)

    async def sweep(self, now: datetime, limit: int = 200) -> tuple[int, int]:
        """The periodic safety net: retry queued tickets and tell supervisors about tickets
        waiting too long, at most ``limit`` of each per pass. Returns (assigned, alerted).

        Each workspace gets its turn whatever the others hold: the retries take every
        workspace's least recently tried ticket before any workspace's second, and the
        alerts have their own query (a backlog nobody can take, retried first by a plain
        oldest-first page, kept other workspaces' tickets from being retried or alerted)."""
        assigned = 0
        for workspace_id, ticket_id in await self._fair_page(
                TicketRouting.state == "queued", TicketRouting.decided_at, limit):
            result = await self.route(workspace_id, ticket_id, now)
            assigned += result is not None and result.state == "assigned"
        return assigned, await self._alert_long_waits(now, limit)

    async def _fair_page(self, condition: Any, oldest_first: Any, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Up to ``limit`` (workspace, ticket) pairs of routing records meeting ``condition``:
        each workspace's first by ``oldest_first``, then each one's second, and so on."""
        turn = func.row_number().over(partition_by=TicketRouting.workspace_id,
                                      order_by=(oldest_first, TicketRouting.ticket_id)).label("turn")
        ranked = select(TicketRouting.workspace_id, TicketRouting.ticket_id, oldest_first.label("since"), turn) \
            .where(condition).subquery()
        page = select(ranked.c.workspace_id, ranked.c.ticket_id) \
            .order_by(ranked.c.turn, ranked.c.since, ranked.c.ticket_id).limit(limit)
        return [(row.workspace_id, row.ticket_id) for row in await self.session.execute(page)]

    async def _alert_long_waits(self, now: datetime, limit: int) -> int:
        """Alert once per wait on queued tickets that waited past their workspace's limit."""
        await self.session.flush()  # the retries' assignments, so they are not alerted
        waiting = (TicketRouting.state == "queued") & TicketRouting.waiting_alerted_at.is_(None) \
            & TicketRouting.queued_since.is_not(None)
        oldest = await self.session.execute(select(TicketRouting.workspace_id, func.min(TicketRouting.queued_since))
                                            .where(waiting).group_by(TicketRouting.workspace_id))
        due_before: dict[uuid.UUID, datetime] = {}
        for workspace_id, since in oldest:
            wait_limit = timedelta(minutes=(await self.workspaces.settings(workspace_id)).queue_wait_alert_minutes)
            if now - since >= wait_limit:
                due_before[workspace_id] = now - wait_limit
        if not due_before:
            return 0
        due = waiting & or_(*(and_(TicketRouting.workspace_id == ws, TicketRouting.queued_since <= before)
                             for ws, before in due_before.items()))
        alerted = 0
        page = [ticket_id for _, ticket_id in await self._fair_page(due, TicketRouting.queued_since, limit)]
        for routing in await self.session.scalars(select(TicketRouting).where(TicketRouting.ticket_id.in_(page))):
            routing.waiting_alerted_at = now
            self.outbox.publish(routing.workspace_id, "routing.queue_waiting", now, ticket_id=routing.ticket_id,
                                team_id=routing.team_id,
                                waited_minutes=int((now - routing.queued_since).total_seconds() // 60),
                                reason=(routing.decision or {}).get("reason"))
            alerted += 1
        return alerted

    async def on_assignee_changed(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, before: uuid.UUID | None,
                                  after: uuid.UUID | None, by_system: bool, now: datetime, *,
                                  actor_id: uuid.UUID | None = None) -> None:
        """``actor_id``: who changed it; the agent who had it, when they gave it back themselves."""
        # A system's assignment (routing's own never gets here, see ``wants`` in tasks.py;
        # a senior reassignment does) leaves the record as it is.
        routing = None if by_system and after is not None else await self._record_of(ticket_id)
        if routing is not None and after is not None and not by_system:
            routing.leave_queue("manual")
            # The decision stays routing's own; the record says who overrode it, whom to, when.
            routing.decision = {**(routing.decision or {}), BY_HAND: {
                "by": str(actor_id) if actor_id else None, "assignee_id": str(after), "at": now.isoformat()}}
        if routing is not None and after is None:
            # Unassigned by a person: back into the pool; not straight back to an agent who
            # gave it back themselves, while one a supervisor took it from may get it again.
            routing.state, routing.queued_since = "queued", routing.queued_since or now
            kept = {k: v for k, v in (routing.decision or {}).items() if k != HANDED_BACK}
            handed_back = before is not None and actor_id == before
            routing.decision = {**kept, HANDED_BACK: str(before)} if handed_back else kept
            await self.route(workspace_id, ticket_id, now)
        if before is not None:
            await self.drain_for_agent(workspace_id, before, now)

    async def release_from_inactive(self, workspace_id: uuid.UUID, agent_id: uuid.UUID, now: datetime) -> int:
        """A deactivated agent's unfinished tickets are unassigned, so routing gives them to
        someone else (or queues them, where the sweep alerts supervisors) instead of them
        sitting with an account nobody uses; one waiting on the customer waits on without an
        owner, and their reply routes it (``lifecycle.after_customer_reply``). Returns how many."""
        if await self.agents.staff_ids(workspace_id, {agent_id}):
            return 0  # active again meanwhile
        system = Principal.system(workspace_id)
        open_ids = await self.tickets.unfinished_ids_of(workspace_id, agent_id)
        for ticket_id in open_ids:
            await self.tickets.update(system, str(ticket_id), TicketPatch(assignee_id=None), now)
        return len(open_ids)

    async def follow_priority(self, ticket_id: uuid.UUID) -> None:
        """A person changed the ticket's priority: the record says so, and a queued ticket
        takes its new place in the queue."""
        routing = await self._locked_routing(ticket_id)
        if routing is None:
            return  # intake, still to come, reads the priority then
        try:
            ticket = await self.tickets.get(Principal.system(routing.workspace_id), ticket_id)
        except NotFound:
            return
        routing.priority_source, routing.priority_reasons = "agent", [f"changed by staff to {ticket.priority}"]
        routing.priority_rank = PRIORITY_RANK[Priority(ticket.priority)]

    async def follow_category(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, before: uuid.UUID | None,
                              now: datetime) -> None:
        """A person changed the ticket's category: the record says so, and a ticket nobody
        owns is routed again with the new category's team and skills."""
        routing = await self._locked_routing(ticket_id)
        if routing is None:
            return  # intake, still to come, keeps what was chosen
        system = Principal.system(workspace_id)
        try:
            ticket = await self.tickets.get(system, ticket_id)
        except NotFound:
            return
        category = await self.categories.find(workspace_id, ticket.category_id) if ticket.category_id else None
        routing.category_source, routing.category_label = "agent", category.name if category else None
        routing.category_confidence, routing.category_reason = None, "changed by staff"
        if ticket.assignee_id is not None or ticket.status not in NEEDS_ROUTING:
            return
        previous = await self.categories.find(workspace_id, before) if before else None
        # The team follows the category, unless a person moved the ticket to another team.
        if category is not None and category.team_id is not None and \
                ticket.team_id in (None, previous.team_id if previous else None):
            await self.tickets.update(system, str(ticket.id), TicketPatch(team_id=category.team_id), now)
        await self.route(workspace_id, ticket_id, now, routing=routing)

    async def reassign_to_senior(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, now: datetime) -> str | None:
        """A level-2 escalation: hand the ticket to the least-loaded senior agent (or a
        supervisor) with room, other than its current owner. Returns the winner's id."""
        system = Principal.system(workspace_id)
        try:
            ticket = await self.tickets.get(system, ticket_id)
        except NotFound:
            return None
        if ticket.status in FINISHED:
            return None
        await self._lock_routing(workspace_id)
        pool = [a for a in await self.agents.senior_pool(workspace_id, ticket.team_id)
                if a["id"] != ticket.assignee_id]
        loads = await self.tickets.open_load(workspace_id, [a["id"] for a in pool])
        requester = (await self.customers.get_many(workspace_id, {ticket.requester_id}))[ticket.requester_id]
        zone = await self.workspaces.timezone(workspace_id)
        decision = decide(Strategy.LEAST_LOADED, [_candidate(a, loads[a["id"]], zone) for a in pool],
                          Requirement(language=requester.language), now)
        routing = await self._locked_routing(ticket_id)
        if routing is not None:
            routing.decision = {**_record(decision, None), "escalation": 2}
            routing.decided_at = now
        if decision.winner is None:
            self.tickets.system_note(ticket, f"Level 2 escalation: no senior agent or supervisor is free "
                                             f"({decision.reason}).", now, internal=True)
            return None
        await self.tickets.update(system, str(ticket.id), TicketPatch(assignee_id=uuid.UUID(decision.winner)), now)
        if routing is not None:
            routing.leave_queue("assigned")
        return decision.winner

    # -- workspace settings -----------------------------------------------------------------
    async def settings_shown(self, workspace_id: uuid.UUID) -> WorkspaceSettingsOut:
        """The workspace's settings, with the priority keywords that apply and the built-in ones."""
        settings = await self.workspaces.settings(workspace_id)
        return WorkspaceSettingsOut(**settings.model_dump(), built_in_priority_keywords=DEFAULT_KEYWORDS,
                                    priority_keywords_in_effect=keywords_in_effect(settings.priority_keywords))

    async def update_settings(self, workspace_id: uuid.UUID, patch: WorkspaceSettingsPatch, *,
                              allow_private: bool) -> WorkspaceSettingsOut:
        """A fallback category must name one of the workspace's categories, as routing matches
        it (case aside): else every ticket the model is unsure of loses its category, team and skills."""
        if patch.fallback_category is not None and await self._category_named(
                workspace_id, patch.fallback_category) is None:
            raise ValidationFailed(f"No category called '{patch.fallback_category}' in this workspace.",
                                   field="fallback_category")
        await self.workspaces.update_settings(workspace_id, patch, allow_private=allow_private)
        return await self.settings_shown(workspace_id)

    # -- explanation -----------------------------------------------------------------------
    async def explain(self, principal: Principal, ticket_ref: str) -> dict[str, Any]:
        if not principal.is_staff:
            raise NotFound("No such ticket.")
        ticket = await self.tickets.get(principal, ticket_ref)
        routing = await self.session.get(TicketRouting, ticket.id)
        if routing is None:
            raise NotFound("This ticket has not been routed yet; it will be within seconds.", code="not_routed_yet")
        rule = await self.session.get(AssignmentRule, routing.rule_id) if routing.rule_id else None
        return {
            "ticket_id": ticket.id, "state": routing.state, "team_id": routing.team_id,
            "category": {"source": routing.category_source, "label": routing.category_label,
                         "confidence": routing.category_confidence, "reason": routing.category_reason},
            "priority": {"source": routing.priority_source, "reasons": routing.priority_reasons},
            "rule": {"id": str(rule.id), "name": rule.name} if rule else None,
            "decision": routing.decision, "queued_since": routing.queued_since, "decided_at": routing.decided_at,
            "assignee_id": ticket.assignee_id,
        }

    # -- rules -----------------------------------------------------------------------------
    async def list_rules(self, principal: Principal) -> list[AssignmentRule]:
        if not principal.is_staff:
            raise Forbidden("Only support staff may see assignment rules.")
        return list(await self.session.scalars(select(AssignmentRule).where(
            AssignmentRule.workspace_id == principal.workspace_id
        ).order_by(AssignmentRule.position, AssignmentRule.created_at)))

    async def get_rule(self, principal: Principal, rule_id: uuid.UUID) -> AssignmentRule:
        rule = await self.session.scalar(select(AssignmentRule).where(
            AssignmentRule.workspace_id == principal.workspace_id, AssignmentRule.id == rule_id))
        if rule is None or not principal.is_staff:
            raise NotFound("No such assignment rule.")
        return rule

    async def create_rule(self, principal: Principal, data: RuleIn, now: datetime) -> AssignmentRule:
        self._require_manager(principal)
        await self._check_rule_refs(principal.workspace_id, data.team_id, data.conditions.category_ids)
        position = data.position
        if position is None:
            last = await self.session.scalar(select(func.max(AssignmentRule.position)).where(
                AssignmentRule.workspace_id == principal.workspace_id))
            position = 0 if last is None else last + 1
        else:
            await self._make_room_at(principal.workspace_id, position, None)
        rule = AssignmentRule(workspace_id=principal.workspace_id, name=data.name, position=position,
                              enabled=data.enabled, conditions=data.conditions.model_dump(mode="json"),
                              team_id=data.team_id, strategy=data.strategy.value, created_at=now, updated_at=now)
        self.session.add(rule)
        await self.session.flush()
        self.audit.record(workspace_id=rule.workspace_id, entity_type="assignment_rule", entity_id=rule.id,
                          actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                          changes={"created": (None, rule.name)})
        return rule

    async def update_rule(self, principal: Principal, rule_id: uuid.UUID, data: RulePatch, now: datetime) -> AssignmentRule:
        self._require_manager(principal)
        rule = await self.get_rule(principal, rule_id)
        fields = data.model_fields_set
        for field in ("name", "position", "enabled", "conditions", "strategy"):
            if field in fields and getattr(data, field) is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
        new: dict[str, Any] = {}
        if data.conditions is not None:
            given = data.conditions.model_dump(mode="json", include=data.conditions.model_fields_set)
            new["conditions"] = RuleConditions.model_validate(
                {**(rule.conditions or {}), **{k: v or [] for k, v in given.items()}}).model_dump(mode="json")
        if "team_id" in fields:
            new["team_id"] = data.team_id
        for field in ("name", "position", "enabled"):
            if getattr(data, field) is not None:
                new[field] = getattr(data, field)
        if data.strategy is not None:
            new["strategy"] = data.strategy.value
        await self._check_rule_refs(rule.workspace_id, new.get("team_id", rule.team_id),
                                    (data.conditions.category_ids or [] if data.conditions else []))
        changes = {k: (getattr(rule, k), v) for k, v in new.items() if getattr(rule, k) != v}
        if "position" in changes:
            await self._make_room_at(rule.workspace_id, changes["position"][1], rule.id)
        for k, (_, v) in changes.items():
            setattr(rule, k, v)
        if changes:
            rule.updated_at = now
            self.audit.record(workspace_id=rule.workspace_id, entity_type="assignment_rule", entity_id=rule.id,
                              actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now, changes=changes)
        return rule

    async def delete_rule(self, principal: Principal, rule_id: uuid.UUID, now: datetime) -> None:
        self._require_manager(principal)
        rule = await self.get_rule(principal, rule_id)
        self.audit.record(workspace_id=rule.workspace_id, entity_type="assignment_rule", entity_id=rule.id,
                          actor_id=principal.user_id, actor_kind=principal.actor_kind, at=now,
                          changes={"deleted": (rule.name, None)})
        await self.session.delete(rule)

    async def _make_room_at(self, workspace_id: uuid.UUID, position: int, rule_id: uuid.UUID | None) -> None:
        """A rule put at a taken position goes before the one there: those from it on move
        down one, so what the admin asked to run first does."""
        taken = await self.session.scalar(select(AssignmentRule.id).where(
            AssignmentRule.workspace_id == workspace_id, AssignmentRule.position == position,
            AssignmentRule.id != rule_id).limit(1))
        if taken is not None:
            await self.session.execute(update(AssignmentRule).where(
                AssignmentRule.workspace_id == workspace_id, AssignmentRule.position >= position,
                AssignmentRule.id != rule_id).values(position=AssignmentRule.position + 1))

    @staticmethod
    def _require_manager(principal: Principal) -> None:
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins manage assignment rules.")

    async def _check_rule_refs(self, workspace_id: uuid.UUID, team_id: uuid.UUID | None,
                               category_ids: list[uuid.UUID]) -> None:
        if team_id is not None and not await self.teams.exists(workspace_id, team_id):
            raise ValidationFailed("No such team in this workspace.", field="team_id")
        for category_id in category_ids:
            if await self.categories.find(workspace_id, category_id) is None:
                raise ValidationFailed("No such category in this workspace.", field="conditions.category_ids")

    # -- retraining ------------------------------------------------------------------------
    async def retrain(self, workspace_id: uuid.UUID, samples: list[tuple[str, str, str]], now: datetime,
                      progress: Callable[[int, int], None] | None = None, *, force: bool = False) -> RetrainResult:
        """Train the workspace's own category model from its resolved tickets' final
        categories and check it on held-out tickets against the one in use: one that does
        worse is not switched to, unless ``force``. Too few tickets to check it, overall or
        in a category, is a ``ValueError`` saying what is missing."""
        per_label = Counter(label.strip() for *_, label in samples)
        short = sorted((label, n) for label, n in per_label.items() if n < MEASURABLE_PER_CATEGORY)
        if len(samples) < MEASURABLE_SAMPLES or len(per_label) < 2 or short:
            raise ValueError(
                f"too few resolved tickets to check a new model against the one in use on held-out tickets: it "
                f"needs at least {MEASURABLE_SAMPLES} with a confirmed category, at least {MEASURABLE_PER_CATEGORY} "
                f"in each of at least 2 categories; this workspace has {len(samples)} in {len(per_label)}"
                + (f", too few in {', '.join(f'{label} ({n})' for label, n in short)}" if short else "")
                + ". The model in use stays.")
        labels = sorted(per_label)
        model = category_model.CategoryClassifier.train(samples, progress=progress)
        in_use = await self.models.for_workspace(self.session, workspace_id)
        report = category_model.evaluate(samples, baseline=in_use)
        accuracy, current = report["accuracy"], report["baseline_accuracy"]
        if accuracy < current and not force:
            return RetrainResult(len(samples), labels, accuracy, current, kept_current=True)
        row = await self.session.get(WorkspaceModel, workspace_id)
        if row is None:
            row = WorkspaceModel(workspace_id=workspace_id, model=b"", labels=[], samples=0, trained_at=now)
            self.session.add(row)
        row.model, row.labels, row.samples, row.accuracy, row.trained_at = (
            model.dumps(), labels, len(samples), accuracy, now)
        return RetrainResult(len(samples), labels, accuracy, current, kept_current=False)

    async def training_samples(self, workspace_id: uuid.UUID) -> list[tuple[str, str, str]]:
        """The resolved tickets a workspace's model learns from, without those that only
        carry the fallback category because the model was unsure and nobody corrected it
        (learning from them would teach it to be unsure)."""
        unconfirmed = set(await self.session.scalars(select(TicketRouting.ticket_id).where(
            TicketRouting.workspace_id == workspace_id, TicketRouting.category_source == "fallback")))
        return [(subject, description, category) for ticket_id, subject, description, category
                in await self.tickets.training_samples(workspace_id) if ticket_id not in unconfirmed]

    async def revert_model(self, workspace_id: uuid.UUID) -> bool:
        """Back to the shipped model; whether the workspace had a model of its own."""
        row = await self.session.get(WorkspaceModel, workspace_id)
        if row is None:
            return False
        await self.session.delete(row)
        return True


def _primary_language(tag: str) -> str:
    """"en-GB" and "en" are the same language for routing."""
    return tag.split("-")[0].lower()


def _candidate(agent: dict[str, Any], load: int, workspace_zone: str) -> Candidate:
    """``workspace_zone``: whose shifts are in, for an agent without a time zone of their own."""
    return Candidate(
        agent_id=str(agent["id"]), load=load, max_concurrent=agent["max_concurrent"],
        availability=agent["availability"], skills={s.skill: s.level for s in agent["skills"]},
        languages=tuple(agent["languages"]), timezone=agent["timezone"] or workspace_zone,
        shifts=tuple(Shift(weekday=s["weekday"], start=time.fromisoformat(s["start"]), end=time.fromisoformat(s["end"]))
                     for s in agent["shifts"]),
        last_assigned_at=agent["last_assigned_at"],
    )


def _record(decision: Decision, rule: AssignmentRule | None) -> dict[str, Any]:
    record = decision.to_dict()
    record["rule"] = {"id": str(rule.id), "name": rule.name} if rule else None
    return record

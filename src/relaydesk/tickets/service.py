"""Tickets: creation, changes, the status machine, and the thread.

Every change is audited field by field, and status, assignee, priority and team changes
also append a system message to the thread.  Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.audit import AuditEntry, AuditLog
from relaydesk.core.outbox import Outbox
from relaydesk.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from relaydesk.core.principal import Principal
from relaydesk.core.sanitize import html_to_text, looks_like_html, sanitize_html, text_to_html
from relaydesk.customers.service import CustomerService
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets import lifecycle
from relaydesk.tickets.categories import CategoryService
from relaydesk.tickets.lifecycle import Channel, Priority, Status
from relaydesk.tickets.models import Attachment, Category, Message, Ticket
from relaydesk.tickets.repository import TicketFilters, TicketRepository, Visibility
from relaydesk.tickets.schemas import MessageIn, TicketIn, TicketPatch, ticket_reference


@dataclass(frozen=True, slots=True)
class Body:
    html: str
    text: str


def render_body(raw: str, *, field: str) -> Body:
    """Accept plain text or HTML; keep a sanitised HTML and a plain-text form. What
    sanitising leaves nothing of (``<script>…</script>``) is as empty as an empty string."""
    if looks_like_html(raw):
        clean = sanitize_html(raw)
        body = Body(html=clean, text=html_to_text(clean))
        if not body.text.strip() and "<img" not in clean:
            raise ValidationFailed("Nothing is left of this once unsafe HTML is removed; write some text.",
                                   field=field)
        return body
    return Body(html=text_to_html(raw), text=raw.strip())


def _ticket_number(text: str) -> bool:
    # ASCII digits only ("²".isdigit() is true, and int() refuses it), and few enough to
    # fit the database's integer.
    return text.isascii() and text.isdigit() and len(text) <= 12


def ticket_number_in(text: str) -> int | None:
    """The number a search names: "T-000123", "t-123" or "123"."""
    text = text.strip()
    digits = text[2:] if text[:2].upper() == "T-" else text
    return int(digits) if _ticket_number(digits) else None


def normalise_tags(tags: list[str]) -> list[str]:
    return sorted({t.strip().lower() for t in tags if t.strip()})


@dataclass(frozen=True, slots=True)
class PostedMessage:
    message: Message
    attachments: list[Attachment]
    follow_up_created: bool = False


def event_scope(ticket: Ticket) -> dict[str, object]:
    """Who a ticket's events concern, carried in each so consumers (live sockets above
    all) can decide without reading the ticket again."""
    return {"number": ticket.number, "requester_id": ticket.requester_id,
            "organisation_id": ticket.organisation_id, "team_id": ticket.team_id,
            "assignee_id": ticket.assignee_id}


# Hot statements, built once (docs/architecture.md, "Statements built once").
_THREAD_IDS = select(Message.external_id).where(
    Message.workspace_id == bindparam("workspace_id"), Message.ticket_id == bindparam("ticket_id"),
    Message.external_id.is_not(None),
).order_by(Message.created_at.desc(), Message.id.desc()).limit(bindparam("limit"))


class TicketService:
    def __init__(
        self, session: AsyncSession, *, customers: CustomerService, agents: AgentService, teams: TeamService,
    ) -> None:
        self.session = session
        self.repo = TicketRepository(session)
        self.customers = customers
        self.agents = agents
        self.teams = teams
        self.categories = CategoryService(session, teams)
        self.workspaces = WorkspaceService(session)
        self.audit = AuditLog(session)
        self.outbox = Outbox(session)

    # -- who sees what ---------------------------------------------------------------
    async def visibility(self, principal: Principal) -> Visibility:
        if principal.is_staff:
            return Visibility(principal.workspace_id)
        customer = await self.customers.for_user(principal)
        shared = await self.customers.organisation_shares_tickets(principal.workspace_id, customer.organisation_id)
        return Visibility(principal.workspace_id, customer_id=customer.id,
                          organisation_id=customer.organisation_id if shared else None)

    async def get(self, principal: Principal, ticket_ref: str | uuid.UUID, *, for_update: bool = False) -> Ticket:
        vis = await self.visibility(principal)
        return await self._get(vis, ticket_ref, for_update=for_update)

    async def _get(self, vis: Visibility, ticket_ref: str | uuid.UUID, *, for_update: bool = False) -> Ticket:
        ticket = None
        if isinstance(ticket_ref, uuid.UUID):
            ticket = await self.repo.get(vis, ticket_ref, for_update=for_update)
        elif ticket_ref.upper().startswith("T-") and _ticket_number(ticket_ref[2:]):
            ticket = await self.repo.get_by_number(vis, int(ticket_ref[2:]))
        else:
            try:
                ticket = await self.repo.get(vis, uuid.UUID(ticket_ref), for_update=for_update)
            except ValueError:
                pass
        if ticket is None:
            raise NotFound("No such ticket.")
        return ticket

    async def get_many(self, principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Ticket]:
        """Several tickets in one query (missing or invisible ones are left out)."""
        return await self.repo.get_many(await self.visibility(principal), ids)

    async def get_many_for_system(
        self, ids_by_workspace: Mapping[uuid.UUID, Iterable[uuid.UUID]],
    ) -> dict[uuid.UUID, Ticket]:
        """For background work that spans workspaces (the SLA monitor): each workspace's
        tickets as the system sees them there, all in one query; missing, deleted or
        other-workspace ids are left out."""
        return await self.repo.get_many_across(ids_by_workspace)

    async def list(
        self, principal: Principal, filters: TicketFilters, *, sort: str, descending: bool,
        after: tuple[datetime, uuid.UUID] | None, limit: int,
    ) -> list[Ticket]:
        vis = await self.visibility(principal)
        if filters.text and not vis.is_customer:  # a customer's own tickets are all theirs anyway
            filters = replace(filters, requesters=self.customers.matching(vis.workspace_id, filters.text))
        return await self.repo.page(vis, filters, sort=sort, descending=descending, after=after, limit=limit)

    # -- create ------------------------------------------------------------------------
    async def create(self, principal: Principal, data: TicketIn, now: datetime, *,
                     external_id: str | None = None, acknowledge: bool = True,
                     author: Principal | None = None, channel: Channel | None = None) -> Ticket:
        """``channel``: the one the ticket came in on (email, chat, a text), as the channel
        that received it says; a customer cannot choose one in ``data``.
        ``external_id``: the Message-ID of the email the ticket arrived as.
        ``acknowledge``: whether the requester is told it arrived (not when an automatic
        answer could go to a whole mailing list, or answer automatic mail: a loop).
        ``author``: as for ``post_message``."""
        ws = principal.workspace_id
        writer = author or principal
        if principal.is_customer:
            # Channel too: assignment rules match on it, and a customer's own ticket is on the web.
            staff_only = {"requester_id", "assignee_id", "team_id", "priority", "tags", "channel"} \
                & data.model_fields_set
            if staff_only:
                field = sorted(staff_only)[0]
                raise ValidationFailed("Customers cannot set this when opening a ticket.", field=field)
            requester = await self.customers.for_user(principal)
            channel = channel or Channel.WEB
        else:
            if data.requester_id is None:
                raise ValidationFailed("Staff must name the customer the ticket is for.", field="requester_id")
            requester = (await self.customers.get_many(ws, {data.requester_id})).get(data.requester_id)
            if requester is None or requester.deleted_at is not None:
                raise ValidationFailed("No such customer in this workspace.", field="requester_id")
            channel = channel or data.channel or Channel.API
        category = await self.categories.find(ws, data.category_id) if data.category_id else None
        if data.category_id and category is None:
            raise ValidationFailed("No such category in this workspace.", field="category_id")
        team_id = data.team_id or (category.team_id if category else None)
        if data.team_id and not await self.teams.exists(ws, data.team_id):
            raise ValidationFailed("No such team in this workspace.", field="team_id")
        if data.assignee_id:
            await self._check_assignee(ws, data.assignee_id)
            await self._ensure_capacity(ws, data.assignee_id, None)
        priority = data.priority or (Priority(category.default_priority) if category else Priority.MEDIUM)
        body = render_body(data.description, field="description")
        ticket = Ticket(
            workspace_id=ws, number=await self.workspaces.next_ticket_number(ws), subject=data.subject,
            description=body.html, status=Status.ASSIGNED if data.assignee_id else Status.OPEN,
            priority=priority, channel=channel, category_id=data.category_id, requester_id=requester.id,
            organisation_id=requester.organisation_id, assignee_id=data.assignee_id, team_id=team_id,
            reopen_count=0, tags=normalise_tags(data.tags), created_at=now, updated_at=now,
        )
        self.session.add(ticket)
        await self.session.flush()
        self.repo.add_tags(ticket, ticket.tags)
        # The description opens the thread: the requester's words when they wrote in,
        # the agent's when staff opened it on their behalf (their notes of a phone call).
        first = Message(
            workspace_id=ws, ticket_id=ticket.id, author_id=writer.user_id,
            author_kind="customer" if principal.is_customer else "agent", internal=False,
            body_html=body.html, body_text=body.text, channel=channel, external_id=external_id, created_at=now,
        )
        self.session.add(first)
        await self.session.flush()
        await self._attach(writer, first, data.attachment_ids)
        self._audit(writer, ticket, now, {
            "created": (None, ticket_reference(ticket.number)), "status": (None, ticket.status),
            "priority": (None, ticket.priority), "assignee_id": (None, ticket.assignee_id),
            "team_id": (None, ticket.team_id), "category_id": (None, ticket.category_id),
            "tags": (None, ticket.tags or None),
        })
        self.outbox.publish(ws, "ticket.created", now, ticket_id=ticket.id, actor_id=writer.user_id,
                            actor_kind=writer.actor_kind, category_given=data.category_id is not None,
                            priority_given=data.priority is not None, assigned=data.assignee_id is not None,
                            opened_with={"priority": ticket.priority, "category_id": ticket.category_id},
                            subject=ticket.subject, channel=ticket.channel,
                            **({} if acknowledge else {"acknowledge": False}),
                            **event_scope(ticket))
        return ticket

    # -- change --------------------------------------------------------------------------
    async def update(self, principal: Principal, ticket_ref: str, data: TicketPatch, now: datetime) -> Ticket:
        if not principal.is_staff:
            raise Forbidden("Only support staff may change tickets.")
        ticket = await self.get(principal, ticket_ref, for_update=True)
        if ticket.status == Status.CLOSED:
            raise Conflict("Closed tickets cannot be changed; reply to start a follow-up.", code="ticket_closed")
        ws = ticket.workspace_id
        fields = data.model_fields_set
        for field in ("priority", "tags"):
            if field in fields and getattr(data, field) is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
        changes: dict[str, tuple[object, object]] = {}
        notes: list[str] = []
        if data.priority is not None and data.priority != ticket.priority:
            changes["priority"] = (ticket.priority, data.priority.value)
            notes.append(f"Priority changed from {ticket.priority} to {data.priority.value}.")
            ticket.priority = data.priority.value
        if "category_id" in fields and data.category_id != ticket.category_id:
            if data.category_id and await self.categories.find(ws, data.category_id) is None:
                raise ValidationFailed("No such category in this workspace.", field="category_id")
            changes["category_id"] = (ticket.category_id, data.category_id)
            ticket.category_id = data.category_id
        if data.tags is not None:
            tags = normalise_tags(data.tags)
            if tags != ticket.tags:
                changes["tags"] = (ticket.tags, tags)
                await self.repo.replace_tags(ticket, tags)
        if "team_id" in fields and data.team_id != ticket.team_id:
            if data.team_id and not await self.teams.exists(ws, data.team_id):
                raise ValidationFailed("No such team in this workspace.", field="team_id")
            changes["team_id"] = (ticket.team_id, data.team_id)
            notes.append("Team changed." if data.team_id else "Team removed.")
            ticket.team_id = data.team_id
        if "assignee_id" in fields and data.assignee_id != ticket.assignee_id:
            notes.extend(await self._assign(principal, ticket, data.assignee_id, changes))
        if changes:
            ticket.updated_at = now
            self._audit(principal, ticket, now, changes)
            for note in notes:
                self._system_message(ticket, note, now, internal=True)
        return ticket

    async def _assign(self, principal: Principal, ticket: Ticket, assignee_id: uuid.UUID | None,
                      changes: dict[str, tuple[object, object]]) -> list[str]:
        if assignee_id is not None:
            await self._check_assignee(ticket.workspace_id, assignee_id)
        new_status = lifecycle.status_after_assignment(Status(ticket.status), assigned=assignee_id is not None)
        if assignee_id is not None and (new_status or Status(ticket.status)) not in lifecycle.FINISHED:
            # A waiting ticket too: the customer's reply makes it open work without a check.
            # Before the ticket changes: a refusal (which routing catches and carries on
            # from) leaves it as it was, and the count has nothing of it to flush (its own
            # row is left out anyway), so the ticket is written once, not twice.
            await self._ensure_capacity(ticket.workspace_id, assignee_id, ticket.id)
        changes["assignee_id"] = (ticket.assignee_id, assignee_id)
        ticket.assignee_id = assignee_id
        notes = ["Assigned to an agent." if assignee_id else "Unassigned."]
        if new_status is not None:
            changes["status"] = (ticket.status, new_status.value)
            notes.append(f"Status changed from {ticket.status} to {new_status.value}.")
            ticket.status = new_status.value
        return notes

    async def _ensure_capacity(self, workspace_id: uuid.UUID, agent_id: uuid.UUID,
                               ticket_id: uuid.UUID | None) -> None:
        full = await self._over_capacity(workspace_id, agent_id, ticket_id)
        if full is not None:
            load, cap = full
            raise Conflict(f"This agent already has {load} open tickets and their cap is {cap}.",
                           field="assignee_id", code="agent_at_capacity", extra={"load": load, "cap": cap})

    async def _over_capacity(self, workspace_id: uuid.UUID, agent_id: uuid.UUID,
                             ticket_id: uuid.UUID | None) -> tuple[int, int] | None:
        """(load, cap) if one more ticket would pass the agent's cap. Locks the agent's
        capacity until commit, so two assignments cannot both see the last free slot."""
        cap = await self.agents.lock_capacity(workspace_id, agent_id)
        load = (await self.repo.open_load(workspace_id, [agent_id], exclude=ticket_id))[agent_id]
        return (load, cap) if load >= cap else None

    async def open_load(self, workspace_id: uuid.UUID, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        return await self.repo.open_load(workspace_id, agent_ids)

    async def _check_assignee(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
        if not await self.agents.staff_ids(workspace_id, {user_id}):
            raise ValidationFailed("Tickets can only be assigned to active staff of this workspace.",
                                   field="assignee_id")

    async def change_status(
        self, principal: Principal, ticket_ref: str, target: Status, reason: str | None, now: datetime,
    ) -> Ticket:
        ticket = await self.get(principal, ticket_ref, for_update=True)
        current = Status(ticket.status)
        by_customer = principal.is_customer
        if not lifecycle.can_move(current, target, by_customer=by_customer):
            allowed = sorted(lifecycle.allowed_next(current, by_customer=by_customer))
            if by_customer:  # the rule is theirs, not the ticket's: the team can still move it
                detail = ("You can close your request once it is resolved; until then your support team sets "
                          "its status. To add to it or reopen it, reply.")
            else:
                detail = f"A ticket that is {current} cannot move to {target}." + (
                    f" Allowed next: {', '.join(allowed)}." if allowed else " It accepts no further status changes.")
            told = lifecycle.customer_facing(current) if by_customer else current
            raise InvalidTransition(detail, field="status",
                                    extra={"current": told.value, "allowed": [s.value for s in allowed]})
        changes: dict[str, tuple[object, object]] = {}
        if target is Status.OPEN and ticket.assignee_id is not None:
            changes["assignee_id"] = (ticket.assignee_id, None)
            ticket.assignee_id = None
        if target in lifecycle.NEEDS_ASSIGNEE and ticket.assignee_id is None and principal.user_id is not None:
            # Whoever takes a ticket into work owns it, within their cap (a waiting ticket
            # too, as ``_assign`` says).
            await self._ensure_capacity(ticket.workspace_id, principal.user_id, ticket.id)
            changes["assignee_id"] = (None, principal.user_id)
            ticket.assignee_id = principal.user_id
        await self._move(ticket, target, now, changes)
        ticket.updated_at = now
        self._audit(principal, ticket, now, changes)
        confirmed = principal.is_customer and target is Status.CLOSED
        self._status_line(ticket, current, target, now, reason=reason,
                          prefix="The customer confirmed the ticket is resolved. " if confirmed else "")
        return ticket

    async def _move(self, ticket: Ticket, target: Status, now: datetime,
                    changes: dict[str, tuple[object, object]]) -> None:
        previous = Status(ticket.status)
        if target is Status.RESOLVED:
            hours = (await self.workspaces.settings(ticket.workspace_id)).auto_close_hours
            ticket.auto_close_at = now + timedelta(hours=hours)
        else:
            ticket.auto_close_at = None
        stamps = lifecycle.timestamps_for(previous, target)
        changes["status"] = (previous.value, target.value)
        ticket.status = target.value
        if target in lifecycle.FINISHED:
            # Finishing stops every SLA clock: no due time is left, as the SLA domain will
            # store after this commits. Written now, so the answer and a read right after
            # show what is stored, not the stopped clocks' due time.
            self.note_sla_due(ticket, None)
        if stamps.resolved:
            changes["resolved_at"] = (ticket.resolved_at, now)
            ticket.resolved_at = now
        if stamps.clear_resolved and ticket.resolved_at is not None:
            changes["resolved_at"] = (ticket.resolved_at, None)
            ticket.resolved_at = None
        if stamps.closed:
            changes["closed_at"] = (ticket.closed_at, now)
            ticket.closed_at = now

    async def delete(self, principal: Principal, ticket_ref: str, now: datetime) -> None:
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins may delete tickets.")
        ticket = await self.get(principal, ticket_ref, for_update=True)
        ticket.deleted_at = now
        ticket.updated_at = now
        self._audit(principal, ticket, now, {"deleted_at": (None, now)})
        self.outbox.publish(ticket.workspace_id, "ticket.deleted", now, ticket_id=ticket.id,
                            actor_id=principal.user_id, actor_kind=principal.actor_kind, **event_scope(ticket))

    async def auto_close_due(self, now: datetime, limit: int = 200) -> int:
        """Close RESOLVED tickets whose quiet period has run out; returns how many."""
        due = list(await self.session.scalars(
            select(Ticket).where(Ticket.auto_close_at <= now, Ticket.status == Status.RESOLVED.value,
                                 Ticket.deleted_at.is_(None))
            .order_by(Ticket.auto_close_at).limit(limit).with_for_update(skip_locked=True)
        ))
        for ticket in due:
            hours = round((now - ticket.resolved_at).total_seconds() / 3600) if ticket.resolved_at else None
            await self.change_status(Principal.system(ticket.workspace_id), str(ticket.id), Status.CLOSED,
                                     f"no reply from the customer for {hours} hours" if hours else None, now)
        return len(due)

    async def flag_sla_breached(self, principal: Principal, ticket_id: uuid.UUID, now: datetime) -> Ticket:
        ticket = await self.get(principal, ticket_id, for_update=True)
        if not ticket.sla_breached:
            ticket.sla_breached = True
            ticket.updated_at = now
            self._audit(principal, ticket, now, {"sla_breached": (False, True)})
        return ticket

    async def unfinished_ids_of(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> list[uuid.UUID]:
        """The tickets an agent holds that are not resolved or closed."""
        return list(await self.session.scalars(select(Ticket.id).where(
            Ticket.workspace_id == workspace_id, Ticket.assignee_id == agent_id, Ticket.deleted_at.is_(None),
            Ticket.status.not_in(lifecycle.FINISHED))))

    @staticmethod
    def note_sla_due(ticket: Ticket, due_at: datetime | None) -> None:
        """What the SLA domain works out: the soonest due time of the clocks still running.
        Derived, so neither audited nor announced, and it leaves ``updated_at`` alone (a
        clock starting or stopping is not an update anyone made)."""
        if ticket.sla_due_at != due_at:
            ticket.sla_due_at = due_at

    async def training_samples(self, workspace_id: uuid.UUID, limit: int = 50_000
                               ) -> list[tuple[uuid.UUID, str, str, str]]:
        """(ticket id, subject, description text, category name) of resolved and closed
        tickets, newest first: what a workspace's own category model learns from."""
        rows = await self.session.execute(
            select(Ticket.id, Ticket.subject, Ticket.description, Category.name)
            .join(Category, Category.id == Ticket.category_id)
            .where(Ticket.workspace_id == workspace_id, Ticket.deleted_at.is_(None),
                   Ticket.status.in_(lifecycle.FINISHED))
            .order_by(Ticket.created_at.desc()).limit(limit))
        return [(ticket_id, subject, html_to_text(description), name) for ticket_id, subject, description, name in rows]

    def system_note(self, ticket: Ticket, text: str, now: datetime, *, internal: bool) -> None:
        """For other domains' automatic steps (escalations, routing) to show in the thread."""
        self._system_message(ticket, text, now, internal=internal)

    async def team_summary(self, workspace_id: uuid.UUID, team_id: uuid.UUID, since: datetime,
                           oldest: int = 5) -> dict[str, Any]:
        """A team's day in numbers, for the team lead's daily summary."""
        mine = and_(Ticket.workspace_id == workspace_id, Ticket.team_id == team_id, Ticket.deleted_at.is_(None))
        still_open = Ticket.status.not_in(lifecycle.FINISHED)

        async def count(*where: Any) -> int:
            return await self.session.scalar(select(func.count()).select_from(Ticket).where(mine, *where)) or 0

        waiting = list(await self.session.scalars(select(Ticket).where(mine, still_open)
                                                  .order_by(Ticket.created_at).limit(oldest)))
        return {
            "counts": {"created": await count(Ticket.created_at >= since),
                       "resolved": await count(Ticket.resolved_at >= since),
                       "open": await count(still_open),
                       "breached": await count(still_open, Ticket.sla_breached.is_(True)),
                       "waiting_in_queue": await count(still_open, Ticket.assignee_id.is_(None))},
            "oldest": waiting,
        }

    async def count_opened_by(self, workspace_id: uuid.UUID, requester_id: uuid.UUID, channel: Channel,
                              since: datetime) -> int:
        """How many tickets this requester opened on this channel since then (the index on
        requester and creation time answers it)."""
        return await self.session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.workspace_id == workspace_id, Ticket.requester_id == requester_id, Ticket.created_at >= since,
            Ticket.channel == channel.value)) or 0

    async def tickets_of_messages(self, workspace_id: uuid.UUID, external_ids: list[str]) -> list[uuid.UUID]:
        """Tickets holding a message that arrived (or left) under one of these Message-IDs."""
        if not external_ids:
            return []
        return list(await self.session.scalars(select(Message.ticket_id).where(
            Message.workspace_id == workspace_id, Message.external_id.in_([e[:500] for e in external_ids]))))

    async def id_by_number(self, workspace_id: uuid.UUID, number: int) -> uuid.UUID | None:
        return await self.session.scalar(select(Ticket.id).where(
            Ticket.workspace_id == workspace_id, Ticket.number == number, Ticket.deleted_at.is_(None)))

    async def latest_on_channel(self, workspace_id: uuid.UUID, requester_id: uuid.UUID,
                                channel: Channel) -> Ticket | None:
        """The customer's latest conversation on a channel without threads (SMS, social):
        their next message is a reply to it, so a resolved one re-opens and a closed one
        gets a linked follow-up, as an email reply would."""
        return await self.session.scalar(select(Ticket).where(
            Ticket.workspace_id == workspace_id, Ticket.requester_id == requester_id,
            Ticket.channel == channel.value, Ticket.deleted_at.is_(None),
        ).order_by(Ticket.updated_at.desc()).limit(1))

    async def follow_up_on_channel(self, workspace_id: uuid.UUID, requester_id: uuid.UUID, closed_id: uuid.UUID,
                                   channel: Channel) -> Ticket | None:
        """The ticket the requester's conversation on a channel moved on to after this one
        closed (the latest, should there be several)."""
        return await self.session.scalar(select(Ticket).where(
            Ticket.workspace_id == workspace_id, Ticket.requester_id == requester_id,
            Ticket.follow_up_of_id == closed_id, Ticket.channel == channel.value, Ticket.deleted_at.is_(None),
        ).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(1))

    async def email_thread_ids(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, limit: int = 10) -> list[str]:
        """The Message-IDs of the emails that came in on this ticket, oldest first, so the
        emails we send thread under them in the customer's mail client."""
        rows = await self.session.scalars(_THREAD_IDS, {"workspace_id": workspace_id, "ticket_id": ticket_id,
                                                        "limit": limit})
        return [r for r in reversed(list(rows)) if r]

    # -- thread ----------------------------------------------------------------------------
    async def post_message(self, principal: Principal, ticket_ref: str | uuid.UUID, data: MessageIn, now: datetime, *,
                           channel: Channel | None = None, external_id: str | None = None,
                           author: Principal | None = None, acknowledge: bool = True) -> PostedMessage:
        """``channel``/``external_id``: set by the channel adapters (email, chat) for what they bring in.
        ``author``: the customer who wrote it when that is not ``principal``, the requester:
        one the email channel found copied on the ticket (a CC). The message, its files and
        the change are theirs; what the reply does to the ticket (a follow-up included,
        which stays the requester's) is decided as for the requester, since the CC may
        not see the ticket themselves. ``acknowledge``: whether a follow-up it opens is
        acknowledged (as ``create``)."""
        ticket = await self.get(principal, ticket_ref, for_update=True)
        writer = author or principal
        body = render_body(data.body, field="body")
        if principal.is_customer:
            if data.internal:
                raise Forbidden("Customers cannot post internal notes.", field="internal")
            outcome = lifecycle.after_customer_reply(Status(ticket.status), has_assignee=ticket.assignee_id is not None)
            if outcome.follow_up:
                return await self._follow_up(principal, ticket, body, data, now, channel=channel,
                                             external_id=external_id, author=author, acknowledge=acknowledge)
            author_kind = "customer"
        else:
            outcome = lifecycle.after_agent_reply(Status(ticket.status), internal=data.internal)
            if outcome.rejected:
                raise Conflict("This ticket is closed. The customer's next reply opens a follow-up.",
                               code="ticket_closed")
            author_kind = "agent"
        message = Message(
            workspace_id=ticket.workspace_id, ticket_id=ticket.id, author_id=writer.user_id,
            author_kind=author_kind, internal=data.internal, body_html=body.html, body_text=body.text,
            channel=channel or (Channel.WEB if principal.is_customer else Channel.API), external_id=external_id,
            created_at=now,
        )
        self.session.add(message)
        await self.session.flush()
        attachments = await self._attach(writer, message, data.attachment_ids)
        changes: dict[str, tuple[object, object]] = {
            "internal_note" if data.internal else "reply": (None, str(message.id)),
        }
        if author_kind == "agent" and not data.internal:
            if ticket.first_response_at is None:
                changes["first_response_at"] = (None, now)
                ticket.first_response_at = now
            if ticket.assignee_id is None and principal.user_id is not None:
                if await self._over_capacity(ticket.workspace_id, principal.user_id, ticket.id) is None:
                    changes["assignee_id"] = (None, principal.user_id)
                    ticket.assignee_id = principal.user_id
                else:
                    # At their cap the reply still goes out; the ticket stays unowned, and
                    # with routing, rather than pass the cap (docs/architecture.md).
                    outcome = lifecycle.ReplyOutcome()
        if outcome.new_status is not None and outcome.new_status.value != ticket.status:
            previous = ticket.status
            await self._move(ticket, outcome.new_status, now, changes)
            if outcome.reopened:
                ticket.reopen_count += 1
                changes["reopen_count"] = (ticket.reopen_count - 1, ticket.reopen_count)
            self._status_line(ticket, Status(previous), outcome.new_status, now,
                              prefix="Re-opened by the customer's reply. " if outcome.reopened else "")
        ticket.updated_at = now
        self._audit(writer, ticket, now, changes, message, attachments)
        return PostedMessage(message, attachments)

    async def _follow_up(self, principal: Principal, closed: Ticket, body: Body, data: MessageIn,
                         now: datetime, *, channel: Channel | None, external_id: str | None,
                         author: Principal | None, acknowledge: bool) -> PostedMessage:
        """A reply to a closed ticket starts a new one that points back to it."""
        subject = closed.subject if closed.subject.lower().startswith("re:") else f"Re: {closed.subject}"
        ticket = await self.create(principal, TicketIn(
            subject=subject[:500], description=data.body, category_id=closed.category_id,
            attachment_ids=data.attachment_ids,
        ), now, external_id=external_id, author=author, acknowledge=acknowledge, channel=channel)
        ticket.follow_up_of_id = closed.id
        ticket.team_id = ticket.team_id or closed.team_id
        changes: dict[str, tuple[object, object]] = {"follow_up_of_id": (None, closed.id)}
        if closed.tags:  # what staff (or Relaydesk: "chat", "unverified") said of the conversation still holds
            changes["tags"] = (list(ticket.tags or []), list(closed.tags))
            ticket.tags = list(closed.tags)
        self._audit(author or principal, ticket, now, changes)
        self._system_message(ticket, f"Follow-up to {ticket_reference(closed.number)}, which was closed.", now,
                             internal=False)
        self._system_message(closed, f"The customer replied after closing; follow-up "
                                     f"{ticket_reference(ticket.number)} was opened.", now, internal=False)
        first = await self.session.scalar(select(Message).where(
            Message.workspace_id == ticket.workspace_id, Message.ticket_id == ticket.id,
        ).order_by(Message.created_at, Message.id).limit(1))
        assert first is not None
        attachments = (await self.repo.attachments_of(ticket.workspace_id, [first.id])).get(first.id, [])
        return PostedMessage(first, attachments, follow_up_created=True)

    async def messages(self, principal: Principal, ticket_ref: str, *, after: tuple[datetime, uuid.UUID] | None,
                       limit: int, latest: bool = False) -> tuple[list[Message], dict[uuid.UUID, list[Attachment]]]:
        vis = await self.visibility(principal)
        ticket = await self._get(vis, ticket_ref)
        rows = await self.repo.messages(vis, ticket.id, after=after, limit=limit, latest=latest)
        return rows, await self.repo.attachments_of(ticket.workspace_id, [m.id for m in rows])

    async def delete_message(self, principal: Principal, ticket_ref: str, message_id: uuid.UUID, now: datetime) -> None:
        if not principal.is_staff:
            raise NotFound("No such message.")
        vis = await self.visibility(principal)
        ticket = await self._get(vis, ticket_ref)
        message = await self.session.scalar(self.repo.visible_messages(vis, ticket.id).where(Message.id == message_id))
        if message is None:
            raise NotFound("No such message.")
        if message.author_kind == "system":
            raise Conflict("System messages are part of the record and cannot be deleted.", code="system_message")
        if not principal.can_manage_team and message.author_id != principal.user_id:
            raise Forbidden("Agents may delete only their own messages.")
        message.deleted_at = now
        self._audit(principal, ticket, now, {"message_deleted": (str(message.id), None)})
        # Whoever could see the message hears it is gone (a note's deletion stays with staff).
        self.outbox.publish(ticket.workspace_id, "message.deleted", now, ticket_id=ticket.id, message_id=message.id,
                            internal=message.internal, actor_id=principal.user_id, actor_kind=principal.actor_kind,
                            **event_scope(ticket))

    async def messages_still_shown(self, workspace_id: uuid.UUID, message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these messages have not been deleted (a replay must not bring them back)."""
        return await self.repo.still_shown(workspace_id, message_ids)

    async def audit_trail(self, principal: Principal, ticket_ref: str) -> list[AuditEntry]:
        if not principal.is_staff:
            raise NotFound("No such ticket.")
        ticket = await self.get(principal, ticket_ref)
        return list(await self.session.scalars(select(AuditEntry).where(
            AuditEntry.workspace_id == ticket.workspace_id, AuditEntry.entity_type == "ticket",
            AuditEntry.entity_id == ticket.id,
        ).order_by(AuditEntry.at, AuditEntry.id)))

    # -- helpers ---------------------------------------------------------------------------
    async def _attach(self, principal: Principal, message: Message, attachment_ids: list[uuid.UUID]) -> list[Attachment]:
        """Bind the caller's own, still unattached uploads to the message."""
        if not attachment_ids:
            return []
        wanted = set(attachment_ids)
        rows = list(await self.session.scalars(select(Attachment).where(
            Attachment.workspace_id == principal.workspace_id, Attachment.id.in_(wanted),
            Attachment.uploader_id == principal.user_id, Attachment.message_id.is_(None),
        )))
        if {a.id for a in rows} != wanted:
            raise ValidationFailed("Attach only files you uploaded and have not attached yet.",
                                   field="attachment_ids")
        for a in rows:
            a.message_id = message.id
        return sorted(rows, key=lambda a: a.created_at)

    def _status_line(self, ticket: Ticket, before: Status, after: Status, now: datetime, *, prefix: str = "",
                     reason: str | None = None) -> None:
        """The thread's line for a status change. The customer reads it in the statuses they
        see; a change that is no change to them (IN_PROGRESS to ESCALATED) stays with staff,
        in the desk's own terms."""
        shown_before, shown_after = lifecycle.customer_facing(before), lifecycle.customer_facing(after)
        internal = shown_before is shown_after
        if not internal:
            before, after = shown_before, shown_after
        text = f"{prefix}Status changed from {before} to {after}." + (f" Reason: {reason}" if reason else "")
        self._system_message(ticket, text, now, internal=internal)

    def _system_message(self, ticket: Ticket, text: str, now: datetime, *, internal: bool) -> None:
        self.session.add(Message(
            workspace_id=ticket.workspace_id, ticket_id=ticket.id, author_id=None, author_kind="system",
            internal=internal, body_html=text_to_html(text), body_text=text, channel="system", created_at=now,
        ))

    def _audit(self, principal: Principal, ticket: Ticket, now: datetime,
               changes: dict[str, tuple[object, object]], message: Message | None = None,
               attachments: list[Attachment] | None = None) -> None:
        self.audit.record(
            workspace_id=ticket.workspace_id, entity_type="ticket", entity_id=ticket.id, actor_id=principal.user_id,
            actor_kind=principal.actor_kind, at=now, changes=changes,
        )
        self._publish_changes(ticket, now, changes, principal, message, attachments or [])

    def _publish_changes(self, ticket: Ticket, now: datetime, changes: dict[str, tuple[object, object]],
                         principal: Principal, message: Message | None, attachments: list[Attachment]) -> None:
        """One event per kind of change, for the domains that react (routing, SLA, live sockets, ...)."""
        by = {"actor_id": principal.user_id, "actor_kind": principal.actor_kind, **event_scope(ticket)}
        ws, tid = ticket.workspace_id, ticket.id
        if "created" in changes:
            return  # create() publishes ticket.created itself, with what the requester chose
        if message is not None:
            # The body travels with the event so live sockets can show it without a read.
            self.outbox.publish(ws, "message.posted", now, ticket_id=tid, message_id=message.id,
                                internal=message.internal, author_kind=message.author_kind,
                                author_id=message.author_id, channel=message.channel,
                                body_html=message.body_html, body_text=message.body_text,
                                attachment_ids=[str(a.id) for a in attachments], **by)
        if "status" in changes:
            before, after = changes["status"]
            # Whether the same change took the owner away (ticket.assigned says from whom).
            unassigned = "assignee_id" in changes and changes["assignee_id"][1] is None
            self.outbox.publish(ws, "ticket.status_changed", now, ticket_id=tid, before=before, after=after,
                                unassigned=unassigned, **by)
        if "assignee_id" in changes:
            before, after = changes["assignee_id"]
            self.outbox.publish(ws, "ticket.assigned", now, ticket_id=tid, before=before, after=after, **by)
        for field, event in (("priority", "ticket.priority_changed"), ("category_id", "ticket.category_changed"),
                             ("team_id", "ticket.team_changed")):
            if field in changes:
                before, after = changes[field]
                self.outbox.publish(ws, event, now, ticket_id=tid, before=before, after=after, **by)


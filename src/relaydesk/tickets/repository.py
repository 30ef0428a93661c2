"""Ticket queries, always starting from what the caller may see."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, delete, event, exists, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from relaydesk.core.db import already_loaded, contains_text, note_locked, on_sqlite
from relaydesk.tickets.lifecycle import OPEN_WORK, Priority
from relaydesk.tickets.models import Attachment, Message, Ticket, TicketTag


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which tickets a caller may read: a whole workspace for staff, or one customer's
    own tickets (plus their organisation's when it shares them)."""

    workspace_id: uuid.UUID
    customer_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None  # set only when the organisation shares tickets

    @property
    def is_customer(self) -> bool:
        return self.customer_id is not None


@dataclass(frozen=True, slots=True)
class TicketFilters:
    status: list[str] | None = None
    priority: list[str] | None = None
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    team_id: uuid.UUID | None = None
    category_id: uuid.UUID | None = None
    tag: str | None = None
    requester_id: uuid.UUID | None = None
    channel: list[str] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    text: str | None = None  # words to find in the subject or the thread
    number: int | None = None  # the ticket number ``text`` names, if it names one
    requesters: Select[tuple[uuid.UUID]] | None = None  # customers whose name or email holds ``text``


# Most urgent highest; the column holds names, whose alphabetical order means nothing.
PRIORITY_RANK = {p.value: rank for rank, p in enumerate(Priority, 1)}
SORTS = {"created_at": Ticket.created_at, "updated_at": Ticket.updated_at,
         "priority": case(PRIORITY_RANK, value=Ticket.priority, else_=0), "sla_due_at": Ticket.sla_due_at}
# Sorts that work a queue: ties (the same priority, the same due time) oldest first, and
# tickets with no clock running after all the others, whichever the direction.
QUEUE_SORTS = {"priority", "sla_due_at"}


def sort_value(ticket: Ticket, sort: str) -> object:
    """The value of ``ticket`` the list was sorted by, for the next page's cursor."""
    return PRIORITY_RANK.get(ticket.priority, 0) if sort == "priority" else getattr(ticket, sort)


# Hot statements, built once (docs/architecture.md, "Statements built once").
_STAFF_GET = select(Ticket).where(Ticket.workspace_id == bindparam("workspace_id"), Ticket.deleted_at.is_(None),
                                  Ticket.id == bindparam("ticket_id"))
_STAFF_GET_LOCKED = _STAFF_GET.with_for_update()
_NO_TICKET = uuid.UUID(int=0)
_OPEN_WORK_VALUES = frozenset(s.value for s in OPEN_WORK)
_OPEN_LOAD = (select(Ticket.assignee_id, func.count()).where(
    Ticket.workspace_id == bindparam("workspace_id"), Ticket.assignee_id.in_(bindparam("agent_ids", expanding=True)),
    Ticket.status.in_(sorted(_OPEN_WORK_VALUES)), Ticket.deleted_at.is_(None),
    Ticket.id != bindparam("exclude"),
).group_by(Ticket.assignee_id))


# session.info, SQLite only: (workspace, agent) -> tickets in open work, as this
# transaction counted them. SQLite's write transaction holds the only write lock (BEGIN
# IMMEDIATE) and a read one a fixed snapshot, so only this transaction's own changes can
# move the counts, and each flush carries those over (``_loads_follow_flush``): a batch of
# new tickets counts its pool once, not once per ticket, and the assignment's cap check
# reuses the count. Tickets change through the ORM; a statement run against the tickets
# table itself drops the counts.
_LOADS = "open_loads_counted"
_LOAD_FIELDS = ("assignee_id", "status", "deleted_at")
Slot = tuple[uuid.UUID, uuid.UUID] | None  # (workspace, agent) a ticket counts toward, if any
Move = tuple[Slot, Slot]
_UNKNOWN = object()


def _load_slot(workspace_id: uuid.UUID, assignee_id: uuid.UUID | None, status: str, deleted_at: object) -> Slot:
    if assignee_id is None or deleted_at is not None or status not in _OPEN_WORK_VALUES:
        return None
    return (workspace_id, assignee_id)


def _move_of(ticket: Ticket, pending: bool, gone: bool) -> Move | object:
    """Where a ticket counted before its unflushed changes and where it counts with them;
    ``_UNKNOWN`` when an old value was never loaded."""
    after = None if gone else _load_slot(ticket.workspace_id, ticket.assignee_id, ticket.status, ticket.deleted_at)
    if pending:
        return None, after
    attrs = inspect(ticket).attrs
    old = []
    for history in (attrs[name].history for name in _LOAD_FIELDS):
        if history.deleted:
            old.append(history.deleted[0])
        elif history.unchanged:
            old.append(history.unchanged[0])
        else:  # changed with its old value never loaded, or not loaded at all
            return _UNKNOWN
    return _load_slot(ticket.workspace_id, *old), after


def _moves(session: Session) -> list[Move] | None:
    """(slot before, slot after) of each ticket whose unflushed changes move its load;
    None when one's old value is not known."""
    changed = [(t, True, False) for t in session.new if isinstance(t, Ticket)]
    changed += [(t, False, False) for t in session.dirty if isinstance(t, Ticket)]
    changed += [(t, False, True) for t in session.deleted if isinstance(t, Ticket)]
    moves = []
    for ticket, pending, gone in changed:
        move = _move_of(ticket, pending, gone)
        if move is _UNKNOWN:
            return None
        before, after = move  # type: ignore[misc]
        if before != after:
            moves.append((before, after))
    return moves


def _apply(moves: list[Move], counts: dict[tuple[uuid.UUID, uuid.UUID], int]) -> None:
    """Moves the counts ``counts`` holds along with ``moves``."""
    for before, after in moves:
        for slot, step in ((before, -1), (after, 1)):
            if slot in counts:
                counts[slot] += step  # type: ignore[index]


@event.listens_for(Session, "after_flush")
def _loads_follow_flush(session: Session, _context: object) -> None:
    counted = session.info.get(_LOADS)
    if not counted:
        return
    moves = _moves(session)  # the flush's changes: their history is still there
    if moves is None:
        session.info.pop(_LOADS, None)
    else:
        _apply(moves, counted)


@event.listens_for(Session, "do_orm_execute")
def _loads_unknown_after_statement(state: ORMExecuteState) -> None:
    table = getattr(state.statement, "table", None)  # an annotated copy of the table: compared by origin
    if (state.is_update or state.is_delete or state.is_insert) and table is not None \
            and table.is_derived_from(Ticket.__table__):
        state.session.info.pop(_LOADS, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _loads_stale(session: Session, *_: object) -> None:
    session.info.pop(_LOADS, None)


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def visible(self, vis: Visibility) -> Select[tuple[Ticket]]:
        stmt = select(Ticket).where(Ticket.workspace_id == vis.workspace_id, Ticket.deleted_at.is_(None))
        if vis.is_customer:
            mine = Ticket.requester_id == vis.customer_id
            if vis.organisation_id is not None:
                mine = or_(mine, Ticket.organisation_id == vis.organisation_id)
            stmt = stmt.where(mine)
        return stmt

    async def get(self, vis: Visibility, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None:
        if vis.is_customer:
            stmt = self.visible(vis).where(Ticket.id == ticket_id)
            return await self.session.scalar(stmt.with_for_update() if for_update else stmt)
        known = already_loaded(self.session, Ticket, ticket_id, for_update=for_update)
        if known is not None and known.workspace_id == vis.workspace_id and known.deleted_at is None:
            return known
        ticket = await self.session.scalar(_STAFF_GET_LOCKED if for_update else _STAFF_GET,
                                           {"workspace_id": vis.workspace_id, "ticket_id": ticket_id})
        if ticket is not None and for_update:
            note_locked(self.session, Ticket, ticket.id)
        return ticket

    async def get_many(self, vis: Visibility, ids: list[uuid.UUID]) -> dict[uuid.UUID, Ticket]:
        if not ids:
            return {}
        if not vis.is_customer:  # by primary key, not by walking the workspace's index (below)
            return await self.get_many_across({vis.workspace_id: ids})
        return {t.id: t for t in await self.session.scalars(self.visible(vis).where(Ticket.id.in_(ids)))}

    async def get_many_across(
        self, ids_by_workspace: Mapping[uuid.UUID, Iterable[uuid.UUID]],
    ) -> dict[uuid.UUID, Ticket]:
        """Tickets of several workspaces in one query, each as its workspace's staff would
        see it: a ticket comes back only if it lives in the workspace it was asked under."""
        wanted = {(workspace_id, ticket_id) for workspace_id, ids in ids_by_workspace.items() for ticket_id in ids}
        if not wanted:
            return {}
        # The workspace test is wrapped in a no-op coalesce so that it filters but cannot pick
        # the index: SQLite (run without ANALYZE statistics) would otherwise walk the
        # workspace's whole (workspace_id, created_at, id) index, 21 ms at 100,000 tickets,
        # instead of looking up the primary keys, 2 ms.
        in_workspace = func.coalesce(Ticket.workspace_id, Ticket.workspace_id).in_({w for w, _ in wanted})
        stmt = select(Ticket).where(Ticket.id.in_({t for _, t in wanted}), in_workspace, Ticket.deleted_at.is_(None))
        return {t.id: t for t in await self.session.scalars(stmt) if (t.workspace_id, t.id) in wanted}

    async def get_by_number(self, vis: Visibility, number: int) -> Ticket | None:
        return await self.session.scalar(self.visible(vis).where(Ticket.number == number))

    async def page(
        self, vis: Visibility, f: TicketFilters, *, sort: str, descending: bool,
        after: tuple[datetime, uuid.UUID] | None, limit: int,
    ) -> list[Ticket]:
        stmt = self.visible(vis)
        if f.status:
            stmt = stmt.where(Ticket.status.in_(f.status))
        if f.priority:
            stmt = stmt.where(Ticket.priority.in_(f.priority))
        if f.channel:
            stmt = stmt.where(Ticket.channel.in_(f.channel))
        if f.unassigned:
            stmt = stmt.where(Ticket.assignee_id.is_(None))
        elif f.assignee_id:
            stmt = stmt.where(Ticket.assignee_id == f.assignee_id)
        for column, value in ((Ticket.team_id, f.team_id), (Ticket.category_id, f.category_id),
                              (Ticket.requester_id, f.requester_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        if f.tag:
            stmt = stmt.where(exists().where(
                TicketTag.workspace_id == vis.workspace_id, TicketTag.tag == f.tag, TicketTag.ticket_id == Ticket.id,
            ))
        if f.text:
            stmt = stmt.where(self._matching(vis, f.text, f.number, f.requesters, sqlite=on_sqlite(self.session)))
        for column, low, high in ((Ticket.created_at, f.created_from, f.created_to),
                                  (Ticket.updated_at, f.updated_from, f.updated_to)):
            if low is not None:
                stmt = stmt.where(column >= low)
            if high is not None:
                stmt = stmt.where(column < high)
        key = SORTS[sort]
        oldest_first = sort in QUEUE_SORTS or not descending
        if after is not None:
            value, last_id = after
            later_id = Ticket.id > last_id if oldest_first else Ticket.id < last_id
            if value is None:  # past the last ticket with a value: among those without one
                stmt = stmt.where(key.is_(None), later_id)
            else:
                beyond = or_(key < value if descending else key > value, and_(key == value, later_id))
                stmt = stmt.where(or_(beyond, key.is_(None)) if sort == "sla_due_at" else beyond)
        order = [key.desc() if descending else key.asc(), Ticket.id.asc() if oldest_first else Ticket.id.desc()]
        if sort == "sla_due_at":
            order[0] = order[0].nulls_last()
        return list(await self.session.scalars(stmt.order_by(*order).limit(limit)))

    @staticmethod
    def _matching(vis: Visibility, text: str, number: int | None,
                  requesters: Select[tuple[uuid.UUID]] | None, *, sqlite: bool) -> ColumnElement[bool]:
        """Tickets whose subject or thread (what this caller may read of it: customers not the
        internal notes) contains ``text``, case-insensitively, or whose number it is, or
        whose requester is one of ``requesters``. A scan of the workspace's tickets and
        messages, not an index: meant to be narrowed by the other filters on large workspaces."""
        said = select(Message.id).where(
            Message.workspace_id == vis.workspace_id, Message.ticket_id == Ticket.id, Message.deleted_at.is_(None),
            contains_text(Message.body_text, text, sqlite=sqlite))
        if vis.is_customer:
            said = said.where(Message.internal.is_(False))
        found = [contains_text(Ticket.subject, text, sqlite=sqlite), exists(said)]
        if requesters is not None:
            found.append(Ticket.requester_id.in_(requesters))
        if number is not None:
            found.append(Ticket.number == number)
        return or_(*found)

    async def open_load(self, workspace_id: uuid.UUID, agent_ids: list[uuid.UUID],
                        exclude: uuid.UUID | None = None) -> dict[uuid.UUID, int]:
        """How many tickets each agent has in open work (what counts against their cap),
        this transaction's own assignments included (a queue drain or a batch of new
        tickets makes several)."""
        known = self._counted(workspace_id, agent_ids, exclude)
        if known is not None:
            return known
        # Flushed first only when unflushed changes move a load (or might): flushing for
        # other changes would cost a second UPDATE of the same row when the transaction
        # changes it again.
        if _moves(self.session.sync_session) != []:
            await self.session.flush()
        # An id no ticket has stands for "exclude nothing": one statement for both uses.
        rows = await self.session.execute(_OPEN_LOAD, {"workspace_id": workspace_id, "agent_ids": agent_ids,
                                                       "exclude": exclude or _NO_TICKET})
        counts = {agent: n for agent, n in rows.all()}
        loads = {a: counts.get(a, 0) for a in agent_ids}
        if exclude is None and on_sqlite(self.session):
            self.session.info.setdefault(_LOADS, {}).update(((workspace_id, a), n) for a, n in loads.items())
        return loads

    def _counted(self, workspace_id: uuid.UUID, agent_ids: list[uuid.UUID],
                 exclude: uuid.UUID | None) -> dict[uuid.UUID, int] | None:
        """The loads as this transaction counted them (SQLite) with its unflushed changes
        applied, or None. With a ticket to leave out, only when this transaction holds it
        and it is none of these agents' (so the count never included it); otherwise the
        query decides."""
        counted = self.session.info.get(_LOADS)
        if not counted or any((workspace_id, a) not in counted for a in agent_ids):
            return None
        if exclude is not None:
            excluded = already_loaded(self.session, Ticket, exclude)
            if excluded is None or excluded.assignee_id in agent_ids:
                return None
        moves = _moves(self.session.sync_session)
        if moves is None:
            return None
        loads = {(workspace_id, a): counted[(workspace_id, a)] for a in agent_ids}
        _apply(moves, loads)
        return {a: n for (_, a), n in loads.items()}

    async def replace_tags(self, ticket: Ticket, tags: list[str]) -> None:
        await self.session.execute(delete(TicketTag).where(TicketTag.ticket_id == ticket.id))
        self.add_tags(ticket, tags)
        ticket.tags = tags

    def add_tags(self, ticket: Ticket, tags: list[str]) -> None:
        self.session.add_all(TicketTag(workspace_id=ticket.workspace_id, ticket_id=ticket.id, tag=t) for t in tags)

    # -- thread --------------------------------------------------------------------
    def visible_messages(self, vis: Visibility, ticket_id: uuid.UUID) -> Select[tuple[Message]]:
        stmt = select(Message).where(
            Message.workspace_id == vis.workspace_id, Message.ticket_id == ticket_id, Message.deleted_at.is_(None),
        )
        if vis.is_customer:
            stmt = stmt.where(Message.internal.is_(False))
        return stmt

    async def messages(
        self, vis: Visibility, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int,
        latest: bool = False,
    ) -> list[Message]:
        """Oldest first from ``after``; ``latest``: the last ``limit`` of them (still oldest first)."""
        stmt = self.visible_messages(vis, ticket_id)
        if after is not None:
            stmt = stmt.where(or_(Message.created_at > after[0],
                                  and_(Message.created_at == after[0], Message.id > after[1])))
        if latest:
            rows = await self.session.scalars(stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))
            return list(reversed(list(rows)))
        return list(await self.session.scalars(stmt.order_by(Message.created_at, Message.id).limit(limit)))

    async def still_shown(self, workspace_id: uuid.UUID, message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        if not message_ids:
            return set()
        return set(await self.session.scalars(select(Message.id).where(
            Message.workspace_id == workspace_id, Message.id.in_(message_ids), Message.deleted_at.is_(None))))

    async def attachments_of(self, workspace_id: uuid.UUID, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Attachment]]:
        out: dict[uuid.UUID, list[Attachment]] = {}
        if not message_ids:
            return out
        for a in await self.session.scalars(select(Attachment).where(
            Attachment.workspace_id == workspace_id, Attachment.message_id.in_(message_ids),
        ).order_by(Attachment.created_at)):
            out.setdefault(a.message_id, []).append(a)  # type: ignore[arg-type]
        return out

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.agents.service import AgentService, TeamService
from relaydesk.core.errors import ValidationFailed
from relaydesk.core.http import DOWNLOAD_HEADERS, Cursor, Limit, now
from relaydesk.core.pagination import decode_keyset, encode_keyset
from relaydesk.core.schemas import Page, RangeEnd, RangeStart
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import CurrentPrincipal
from relaydesk.identity.wiring import user_service
from relaydesk.tickets import lifecycle
from relaydesk.tickets.attachments import AttachmentService
from relaydesk.tickets.categories import CategoryService
from relaydesk.tickets.lifecycle import Channel, Priority, Status
from relaydesk.tickets.models import Attachment, Message
from relaydesk.tickets.repository import QUEUE_SORTS, TicketFilters, sort_value
from relaydesk.tickets.schemas import (
    AttachmentOut,
    AuditOut,
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    category_shown_to,
    MessageIn,
    MessageOut,
    MessagePostedOut,
    StatusChangeIn,
    TicketIn,
    TicketOut,
    shown_to,
    TicketPatch,
)
from relaydesk.tickets import tasks
from relaydesk.tickets.service import TicketService, ticket_number_in

router = APIRouter(prefix="/api/v1")

TicketRef = Annotated[str, Path(max_length=64, description="The ticket's id or its number, e.g. T-000123.")]
SortKey = Literal["created_at", "-created_at", "updated_at", "-updated_at", "priority", "-priority", "sla_due_at",
                  "-sla_due_at"]
SORT_HELP = ("Field to sort by; a leading '-' means descending (newest, most urgent or latest due first). "
             "`-priority` and `sla_due_at` work a queue: ties oldest first, and by SLA, tickets with no clock "
             "running come last. Staff only for priority and sla_due_at. A cursor pages only the sort it came "
             "from.")

DATE_HELP = ("A date and time with its time zone (2026-12-05T09:00:00Z), or a date (2026-12-05), meaning the whole "
             "day in UTC: `_from` from its start, `_to` to its end. `_from` is included, `_to` is not.")


def ticket_service(request: Request, session: AsyncSession) -> TicketService:
    return tasks.ticket_service(request.app.state.runtime, session)


def attachment_service(request: Request, session: AsyncSession) -> AttachmentService:
    runtime = request.app.state.runtime
    return AttachmentService(session, runtime.files, runtime.settings.max_upload_bytes)


def _attachment_out(a: Attachment) -> AttachmentOut:
    return AttachmentOut(id=a.id, filename=a.filename, content_type=a.content_type, size=a.size,
                         message_id=a.message_id, created_at=a.created_at,
                         download_url=f"/api/v1/attachments/{a.id}")


def _message_out(m: Message, attachments: list[Attachment], model: type[MessageOut] = MessageOut,
                 **extra: object) -> MessageOut:
    return model.model_validate({
        **{f: getattr(m, f) for f in ("id", "ticket_id", "author_id", "author_kind", "internal", "body_html",
                                      "body_text", "channel", "created_at")},
        "attachments": [_attachment_out(a) for a in attachments], **extra,
    })


# -- tickets -------------------------------------------------------------------------------
@router.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=TicketOut, tags=["tickets"],
             summary="Open a ticket (customers for themselves; staff on a customer's behalf)")
async def create_ticket(body: TicketIn, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    ticket = await ticket_service(request, session).create(principal, body, now(request))
    return shown_to(principal, ticket)


@router.get("/tickets", response_model=Page[TicketOut], tags=["tickets"],
            summary="List tickets with filters, sorted, cursor-paginated")
async def list_tickets(
    principal: CurrentPrincipal, request: Request, session: SessionDep,
    limit: Limit = 50, cursor: Cursor = None,
    sort: SortKey = Query(default="-created_at", description=SORT_HELP),
    status_: list[Status] | None = Query(default=None, alias="status", description=(
        "Repeat to match any of several. Customers filter by the statuses they see (OPEN, IN_PROGRESS, "
        "WAITING_ON_CUSTOMER, RESOLVED, CLOSED).")),
    priority: list[Priority] | None = Query(default=None),
    channel: list[Channel] | None = Query(default=None, description="Where tickets came from; repeat for several."),
    assignee_id: str | None = Query(default=None, description="An agent's id, or 'none' for unassigned tickets."),
    team_id: uuid.UUID | None = None, category_id: uuid.UUID | None = None,
    tag: str | None = Query(default=None, max_length=60), requester_id: uuid.UUID | None = None,
    created_from: RangeStart | None = Query(default=None, description=DATE_HELP),
    created_to: RangeEnd | None = Query(default=None, description=DATE_HELP),
    updated_from: RangeStart | None = Query(default=None, description=DATE_HELP),
    updated_to: RangeEnd | None = Query(default=None, description=DATE_HELP),
    q: str | None = Query(default=None, max_length=200, description=(
        "Words to find (two characters or more), case-insensitively, in the subject, the thread (customers: its "
        "public part) or the requester's name or email; a ticket number (T-000123 or 123) also finds that ticket.")),
) -> dict:
    for field, low, high in (("created_to", created_from, created_to), ("updated_to", updated_from, updated_to)):
        # (A day's end is the next day's start: created_to=12-04 with created_from=12-05 is refused too.)
        if low is not None and high is not None and high <= low:
            raise ValidationFailed("The end must come after the start.", field=field)
    if principal.is_customer:  # what staff say of tickets is not theirs to search by either
        for name, given in (("tag", tag), ("assignee_id", assignee_id), ("team_id", team_id), ("priority", priority)):
            if given:
                raise ValidationFailed("Customers cannot filter by this.", field=name)
        if status_ and not set(status_) <= lifecycle.CUSTOMER_STATUSES:
            raise ValidationFailed(f"Customers filter by {', '.join(sorted(lifecycle.CUSTOMER_STATUSES))}.",
                                   field="status")
        # The statuses they see stand for the desk's own (ESCALATED is IN_PROGRESS to them).
        status_ = [s for shown in status_ or () for s in sorted(lifecycle.shown_as(shown))] or None
    key = sort.lstrip("-")
    if principal.is_customer and key in QUEUE_SORTS:
        raise ValidationFailed("Customers cannot sort by this.", field="sort")
    q = (q or "").strip() or None  # an empty search box searches nothing
    number = ticket_number_in(q) if q else None
    if q is not None and len(q) < 2 and number is None:
        raise ValidationFailed("Search for two characters or more.", field="q")
    unassigned = assignee_id == "none"
    assignee: uuid.UUID | None = None
    if assignee_id and not unassigned:
        try:
            assignee = uuid.UUID(assignee_id)
        except ValueError:
            raise ValidationFailed("Give an agent's id or 'none'.", field="assignee_id") from None
    filters = TicketFilters(
        status=[s.value for s in status_] if status_ else None, priority=[p.value for p in priority] if priority else None,
        channel=[c.value for c in channel] if channel else None,
        assignee_id=assignee, unassigned=unassigned, team_id=team_id, category_id=category_id,
        tag=tag.lower() if tag else None, requester_id=requester_id, created_from=created_from,
        created_to=created_to, updated_from=updated_from, updated_to=updated_to,
        text=q, number=number,
    )
    after = decode_keyset(cursor, value="int" if key == "priority" else "datetime",
                          nullable=key == "sla_due_at", sort=sort) if cursor else None
    rows = await ticket_service(request, session).list(
        principal, filters, sort=key, descending=sort.startswith("-"), after=after, limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [shown_to(principal, t) for t in rows],
            "next_cursor": encode_keyset(sort_value(rows[-1], key), rows[-1].id, sort=sort) if more else None}


@router.get("/tickets/{ticket_ref}", response_model=TicketOut, tags=["tickets"], summary="One ticket")
async def get_ticket(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return shown_to(principal, await ticket_service(request, session).get(principal, ticket_ref))


@router.patch("/tickets/{ticket_ref}", response_model=TicketOut, tags=["tickets"],
              summary="Change priority, category, tags, assignee or team (staff)")
async def update_ticket(ticket_ref: TicketRef, body: TicketPatch, principal: CurrentPrincipal, request: Request,
                        session: SessionDep):  # noqa: ANN201
    return shown_to(principal, await ticket_service(request, session).update(principal, ticket_ref, body, now(request)))


@router.delete("/tickets/{ticket_ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["tickets"],
               summary="Soft-delete a ticket (supervisors, admins)")
async def delete_ticket(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request,
                        session: SessionDep) -> None:
    await ticket_service(request, session).delete(principal, ticket_ref, now(request))


@router.post("/tickets/{ticket_ref}/status", response_model=TicketOut, tags=["tickets"],
             summary="Move a ticket through its lifecycle; an illegal move answers 409 with the allowed ones")
async def change_status(ticket_ref: TicketRef, body: StatusChangeIn, principal: CurrentPrincipal, request: Request,
                        session: SessionDep):  # noqa: ANN201
    return shown_to(principal, await ticket_service(request, session).change_status(
        principal, ticket_ref, body.status, body.reason, now(request)))


@router.get("/tickets/{ticket_ref}/audit", response_model=list[AuditOut], tags=["tickets"],
            summary="Every change to the ticket: who, when, field, before, after (staff)")
async def ticket_audit(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await ticket_service(request, session).audit_trail(principal, ticket_ref)


# -- thread --------------------------------------------------------------------------------
@router.get("/tickets/{ticket_ref}/messages", response_model=Page[MessageOut], tags=["messages"],
            summary="The thread, oldest first (customers never see internal notes)")
async def list_messages(ticket_ref: TicketRef, principal: CurrentPrincipal, request: Request, session: SessionDep,
                        limit: Limit = 100, cursor: Cursor = None) -> dict:
    rows, attachments = await ticket_service(request, session).messages(
        principal, ticket_ref, after=decode_keyset(cursor) if cursor else None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_message_out(m, attachments.get(m.id, [])) for m in rows],
            "next_cursor": encode_keyset(rows[-1].created_at, rows[-1].id) if more else None}


@router.post("/tickets/{ticket_ref}/messages", status_code=status.HTTP_201_CREATED, response_model=MessagePostedOut,
             tags=["messages"], summary="Reply, or add an internal note (staff)")
async def post_message(ticket_ref: TicketRef, body: MessageIn, principal: CurrentPrincipal, request: Request,
                       session: SessionDep) -> MessageOut:
    posted = await ticket_service(request, session).post_message(principal, ticket_ref, body, now(request))
    return _message_out(posted.message, posted.attachments, MessagePostedOut,
                        follow_up_created=posted.follow_up_created)


@router.delete("/tickets/{ticket_ref}/messages/{message_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["messages"], summary="Soft-delete a message (its author, supervisors, admins)")
async def delete_message(ticket_ref: TicketRef, message_id: uuid.UUID, principal: CurrentPrincipal,
                         request: Request, session: SessionDep) -> None:
    await ticket_service(request, session).delete_message(principal, ticket_ref, message_id, now(request))


# -- attachments ---------------------------------------------------------------------------
@router.post("/uploads", status_code=status.HTTP_201_CREATED, response_model=AttachmentOut, tags=["attachments"],
             summary="Upload a file, then list its id in a message's attachment_ids")
async def upload(principal: CurrentPrincipal, request: Request, session: SessionDep,
                 file: UploadFile = File(description="The file (images, PDF, text, logs, CSV, JSON, XML, YAML, "
                                         "HAR, ZIP, Office files; never HTML or SVG).")) -> AttachmentOut:
    data = await file.read()
    attachment = await attachment_service(request, session).upload(principal, file.filename or "file", data,
                                                                    now(request))
    return _attachment_out(attachment)


@router.get("/attachments/{attachment_id}", tags=["attachments"], response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}},
            summary="Download a file (only for those who may see its message)")
async def download(attachment_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                   session: SessionDep) -> Response:
    vis = await ticket_service(request, session).visibility(principal)
    got = await attachment_service(request, session).download(principal, vis, attachment_id)
    a = got.attachment
    inline = a.content_type.startswith("image/") and a.content_type != "image/svg+xml"
    media_type = a.content_type
    if media_type.startswith("text/") and not _utf8(got.data):
        # Text is stored as it came; what is not UTF-8 is in a single-byte code page
        # (``detect_type``), most often Windows' Western one, which browsers also use for Latin-1.
        media_type += "; charset=windows-1252"
    return Response(got.data, media_type=media_type, headers={
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(a.filename)}",
        "Cache-Control": "private, max-age=0", **DOWNLOAD_HEADERS,
    })



def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

# -- categories ----------------------------------------------------------------------------
def category_service(request: Request, session: AsyncSession) -> CategoryService:
    agents = AgentService(session, user_service(request, session))
    return CategoryService(session, TeamService(session, agents))


@router.post("/categories", status_code=status.HTTP_201_CREATED, response_model=CategoryOut, tags=["categories"],
             summary="Create a category (supervisors, admins)")
async def create_category(body: CategoryIn, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await category_service(request, session).create(principal, body, now(request))


@router.get("/categories", response_model=Page[CategoryOut], tags=["categories"], summary="All categories")
async def list_categories(principal: CurrentPrincipal, request: Request, session: SessionDep) -> dict:
    categories = await category_service(request, session).list(principal)
    return {"items": [category_shown_to(principal, c) for c in categories], "next_cursor": None}


@router.get("/categories/{category_id}", response_model=CategoryOut, tags=["categories"], summary="One category")
async def get_category(category_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return category_shown_to(principal, await category_service(request, session).get(principal, category_id))


@router.patch("/categories/{category_id}", response_model=CategoryOut, tags=["categories"],
              summary="Change a category")
async def update_category(category_id: uuid.UUID, body: CategoryPatch, principal: CurrentPrincipal,
                          request: Request, session: SessionDep):  # noqa: ANN201
    return await category_service(request, session).update(principal, category_id, body, now(request))

"""Support addresses, the inbound mail log with its quarantine (admins), and tickets' CCs (staff)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.channels.ccs import CcService
from relaydesk.channels.schemas import (
    CcIn,
    CcOut,
    InboundEmailOut,
    InboundEmailPage,
    MailboxIn,
    MailboxOut,
    MailboxPatch,
    MailboxVerifyIn,
)
from relaydesk.channels.service import MailboxService
from relaydesk.channels.tasks import inbound_service
from relaydesk.core.http import DOWNLOAD_HEADERS, Cursor, Limit, now
from relaydesk.core.pagination import decode_keyset, encode_keyset
from relaydesk.core.uow import SessionDep
from relaydesk.identity.deps import AdminPrincipal, StaffPrincipal
from relaydesk.tickets.api import TicketRef, ticket_service

router = APIRouter(prefix="/api/v1")


def cc_service(request: Request, session: AsyncSession) -> CcService:
    return CcService(session, ticket_service(request, session), request.app.state.runtime.settings.mail_domain)


@router.post("/mailboxes", response_model=MailboxOut, status_code=status.HTTP_201_CREATED, tags=["email"],
             summary="Add a support address (forwarded to the SMTP listener, or polled over IMAP); a verification "
                     "email goes to it")
async def create_mailbox(data: MailboxIn, principal: AdminPrincipal, request: Request,
                         session: SessionDep):  # noqa: ANN201
    settings = request.app.state.runtime.settings
    return await MailboxService(session).create(principal, data.model_dump(), now(request),
                                                mail_domain=settings.mail_domain,
                                                allow_private=settings.allow_private_targets)


@router.get("/mailboxes", response_model=list[MailboxOut], tags=["email"], summary="The workspace's support addresses")
async def list_mailboxes(principal: AdminPrincipal, session: SessionDep):  # noqa: ANN201
    return await MailboxService(session).list(principal)


@router.patch("/mailboxes/{mailbox_id}", response_model=MailboxOut, tags=["email"], summary="Change a mailbox")
async def update_mailbox(mailbox_id: uuid.UUID, data: MailboxPatch, principal: AdminPrincipal,
                         session: SessionDep, request: Request):  # noqa: ANN201
    return await MailboxService(session).update(
        principal, mailbox_id, data.model_dump(exclude_unset=True),
        allow_private=request.app.state.runtime.settings.allow_private_targets)


@router.post("/mailboxes/{mailbox_id}/send-verification", response_model=MailboxOut,
             status_code=status.HTTP_202_ACCEPTED, tags=["email"],
             summary="Send the address another verification email, with a new code (at most one a minute)")
async def send_mailbox_verification(mailbox_id: uuid.UUID, principal: AdminPrincipal, request: Request,
                                    session: SessionDep):  # noqa: ANN201
    return await MailboxService(session).send_verification(principal, mailbox_id, now(request))


@router.post("/mailboxes/{mailbox_id}/verify", response_model=MailboxOut, tags=["email"],
             summary="Verify a support address with the code of its latest verification email")
async def verify_mailbox(mailbox_id: uuid.UUID, data: MailboxVerifyIn, principal: AdminPrincipal, request: Request,
                         session: SessionDep):  # noqa: ANN201
    return await MailboxService(session).verify(principal, mailbox_id, data.code, now(request))


@router.delete("/mailboxes/{mailbox_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["email"],
               summary="Remove a support address")
async def delete_mailbox(mailbox_id: uuid.UUID, principal: AdminPrincipal, session: SessionDep) -> None:
    await MailboxService(session).delete(principal, mailbox_id)


@router.get("/inbound-emails", response_model=InboundEmailPage, tags=["email"],
            summary="Every email that arrived, newest first; status=quarantined and status=spam list what "
                    "needs an admin")
async def list_inbound(principal: AdminPrincipal, request: Request, session: SessionDep, limit: Limit = 50,
                       cursor: Cursor = None,
                       status_: Annotated[Literal["received", "released", "processed", "ignored", "quarantined",
                                                  "spam", "discarded"] | None, Query(alias="status")] = None) -> dict:
    rows = await inbound_service(request.app.state.runtime, session).list(
        principal, status=status_, after=decode_keyset(cursor) if cursor else None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_keyset(rows[-1].received_at, rows[-1].id) if more else None}


@router.get("/inbound-emails/{inbound_id}/raw", tags=["email"], response_class=Response,
            summary="The email exactly as it arrived (message/rfc822)")
async def raw_inbound(inbound_id: uuid.UUID, principal: StaffPrincipal, request: Request,
                      session: SessionDep) -> Response:
    row = await inbound_service(request.app.state.runtime, session).get(principal, inbound_id)
    return Response(row.raw, media_type="message/rfc822",
                    headers={"Content-Disposition": f'attachment; filename="{row.id}.eml"', **DOWNLOAD_HEADERS})


@router.post("/inbound-emails/{inbound_id}/retry", response_model=InboundEmailOut, tags=["email"],
             summary="Process a quarantined email again, or release one held as spam (not spam after all)")
async def retry_inbound(inbound_id: uuid.UUID, principal: AdminPrincipal, request: Request,
                        session: SessionDep):  # noqa: ANN201
    return await inbound_service(request.app.state.runtime, session).retry(principal, inbound_id, now(request))


@router.post("/inbound-emails/{inbound_id}/discard", response_model=InboundEmailOut, tags=["email"],
             summary="Give up on a quarantined or spam email (its raw bytes stay on record)")
async def discard_inbound(inbound_id: uuid.UUID, principal: AdminPrincipal, request: Request,
                          session: SessionDep):  # noqa: ANN201
    return await inbound_service(request.app.state.runtime, session).discard(principal, inbound_id, now(request))


# Staff only: a customer never sees through this whom else a ticket's email goes to.
@router.get("/tickets/{ticket_ref}/ccs", response_model=list[CcOut], tags=["email"],
            summary="Who is copied (Cc) on the ticket's email: agents' public replies go to them too")
async def list_ccs(ticket_ref: TicketRef, principal: StaffPrincipal, request: Request,
                   session: SessionDep):  # noqa: ANN201
    return await cc_service(request, session).list(principal, ticket_ref)


@router.post("/tickets/{ticket_ref}/ccs", response_model=CcOut, status_code=status.HTTP_201_CREATED, tags=["email"],
             summary="Copy someone on the ticket's email (200 with the CC if they already are)")
async def add_cc(ticket_ref: TicketRef, data: CcIn, principal: StaffPrincipal, request: Request,
                 session: SessionDep, response: Response):  # noqa: ANN201
    cc, new = await cc_service(request, session).add(principal, ticket_ref, data.email, data.name, now(request))
    if not new:
        response.status_code = status.HTTP_200_OK
    return cc


@router.delete("/tickets/{ticket_ref}/ccs/{cc_ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["email"],
               summary="Stop copying someone on the ticket's email (by the CC's id or address)")
async def remove_cc(ticket_ref: TicketRef, cc_ref: Annotated[str, Path(max_length=320)], principal: StaffPrincipal,
                    request: Request, session: SessionDep) -> None:
    await cc_service(request, session).remove(principal, ticket_ref, cc_ref, now(request))

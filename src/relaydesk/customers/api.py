from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import ValidationFailed
from relaydesk.core.http import Cursor, Limit, now
from relaydesk.core.pagination import decode_keyset, encode_keyset
from relaydesk.core.schemas import Page
from relaydesk.core.uow import SessionDep
from relaydesk.customers.schemas import (
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    OrganisationIn,
    OrganisationOut,
    OrganisationPatch,
)
from relaydesk.customers.service import CustomerService, OrganisationService
from relaydesk.identity.deps import CurrentPrincipal
from relaydesk.identity.wiring import user_service

router = APIRouter(prefix="/api/v1")


def customer_service(request: Request, session: AsyncSession) -> CustomerService:
    return CustomerService(session, user_service(request, session))


@router.post("/customers", status_code=status.HTTP_201_CREATED, response_model=CustomerOut, tags=["customers"],
             summary="Add a customer (a password, set by admins only, lets them sign in to the portal)")
async def create_customer(body: CustomerIn, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await customer_service(request, session).create(principal, body, now(request))


@router.get("/customers", response_model=Page[CustomerOut], tags=["customers"], summary="List customers, newest first")
async def list_customers(
    principal: CurrentPrincipal, request: Request, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    email: str | None = Query(default=None, max_length=320), organisation_id: uuid.UUID | None = None,
    q: str | None = Query(default=None, max_length=200, description=(
        "Part of the name or email (two characters or more), whatever the case.")),
) -> dict:
    q = (q or "").strip() or None  # an empty search box lists everyone
    if q is not None and len(q) < 2:
        raise ValidationFailed("Search for two characters or more.", field="q")
    after = decode_keyset(cursor) if cursor else None
    rows = await customer_service(request, session).list(
        principal, email=email, organisation_id=organisation_id, text=q, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_keyset(rows[-1].created_at, rows[-1].id) if more else None
    return {"items": rows, "next_cursor": next_cursor}


@router.get("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"], summary="One customer")
async def get_customer(customer_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep):  # noqa: ANN201
    return await customer_service(request, session).get(principal, customer_id)


@router.patch("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"], summary="Change a customer")
async def update_customer(customer_id: uuid.UUID, body: CustomerPatch, principal: CurrentPrincipal,
                          request: Request, session: SessionDep):  # noqa: ANN201
    return await customer_service(request, session).update(principal, customer_id, body, now(request))


@router.delete("/customers/{customer_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["customers"],
               summary="Soft-delete a customer (supervisors, admins)")
async def delete_customer(customer_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                          session: SessionDep) -> None:
    await customer_service(request, session).delete(principal, customer_id, now(request))


@router.post("/customers/{customer_id}/restore", response_model=CustomerOut, tags=["customers"],
             summary="Restore a deleted customer, with their sign-in and tickets (supervisors, admins)")
async def restore_customer(customer_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                           session: SessionDep):  # noqa: ANN201
    return await customer_service(request, session).restore(principal, customer_id, now(request))


@router.post("/organisations", status_code=status.HTTP_201_CREATED, response_model=OrganisationOut,
             tags=["customers"], summary="Add an organisation")
async def create_organisation(body: OrganisationIn, principal: CurrentPrincipal, request: Request,
                              session: SessionDep):  # noqa: ANN201
    return await OrganisationService(session).create(principal, body, now(request))


@router.get("/organisations", response_model=Page[OrganisationOut], tags=["customers"], summary="List organisations")
async def list_organisations(principal: CurrentPrincipal, session: SessionDep) -> dict:
    return {"items": await OrganisationService(session).list(principal), "next_cursor": None}


@router.get("/organisations/{org_id}", response_model=OrganisationOut, tags=["customers"], summary="One organisation")
async def get_organisation(org_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep):  # noqa: ANN201
    return await OrganisationService(session).get(principal, org_id)


@router.patch("/organisations/{org_id}", response_model=OrganisationOut, tags=["customers"],
              summary="Change an organisation")
async def update_organisation(org_id: uuid.UUID, body: OrganisationPatch, principal: CurrentPrincipal,
                              request: Request, session: SessionDep):  # noqa: ANN201
    return await OrganisationService(session).update(principal, org_id, body, now(request))

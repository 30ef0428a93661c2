"""Customer profiles and organisations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, and_, event, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from relaydesk.core.audit import AuditLog
from relaydesk.core.db import contains_text, get_many_in_workspace, new_id, on_sqlite
from relaydesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal, Role
from relaydesk.customers.models import Customer, Organisation
from relaydesk.customers.schemas import (
    PHONE_SEPARATORS,
    CustomerIn,
    CustomerPatch,
    OrganisationIn,
    OrganisationPatch,
)
from relaydesk.identity.models import User
from relaydesk.identity.service import UserService, normalise_email

_PROFILE_OF_USER = "customer_profile_of_user"  # session.info, for this transaction only


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_over(session: Session) -> None:
    session.info.pop(_PROFILE_OF_USER, None)


def phone_digits(phone: str) -> str:
    """A number as its digits, with the leading + kept (a number without one is not
    assumed to be in any country)."""
    phone = phone.strip()
    return ("+" if phone.startswith("+") else "") + "".join(c for c in phone if c in "0123456789")


def _refuse_password_unless_admin(principal: Principal, password: str | None) -> None:
    """Whoever sets a customer's password can sign in as them: only admins may, and they
    should rather have the customer sent a password reset."""
    if password is not None and not principal.is_admin:
        raise Forbidden("Only workspace admins may set a customer's password; have the customer ask for a "
                        "password reset (POST /api/v1/auth/password-reset) instead.", field="password")


def _current(customer: Customer) -> bool:
    """Whether the object is still the session's (not deleted or expunged meanwhile)."""
    state = inspect(customer)
    return state.pending or state.persistent


class CustomerService:
    def __init__(self, session: AsyncSession, users: UserService) -> None:
        self.session = session
        self.users = users
        self.audit = AuditLog(session)

    def _visible(self, principal: Principal):  # noqa: ANN202 - a select statement
        stmt = select(Customer).where(Customer.workspace_id == principal.workspace_id, Customer.deleted_at.is_(None))
        if principal.is_customer:
            stmt = stmt.where(Customer.user_id == principal.user_id)
        return stmt

    async def create(self, principal: Principal, data: CustomerIn, now: datetime) -> Customer:
        if not principal.is_staff:
            raise Forbidden("Only support staff may add customers.")
        _refuse_password_unless_admin(principal, data.password)
        return await self.create_profile(principal.workspace_id, data, now, actor=principal)

    async def create_profile(
        self, workspace_id: uuid.UUID, data: CustomerIn, now: datetime, *, actor: Principal | None,
    ) -> Customer:
        found = await self.find_by_email(workspace_id, data.email)
        if found is not None and found.deleted_at is not None:
            raise Conflict(f"A deleted customer ({found.id}) has this email: restore them with "
                           f"POST /api/v1/customers/{found.id}/restore.", field="email", code="email_taken")
        if found is not None:
            raise Conflict("A customer with this email already exists.", field="email", code="email_taken")
        customer = await self._new_profile(workspace_id, data, now, actor=actor)
        await self.session.flush()
        return customer

    async def contact(self, workspace_id: uuid.UUID, data: CustomerIn, now: datetime) -> Customer:
        """The customer who writes in through a channel (email, chat), found by address or
        made on first contact together with the login they act as (``principal_for``)."""
        found = await self.find_by_email(workspace_id, data.email)
        if found is not None:
            if found.deleted_at is not None:  # they came back: their profile, and their history, with them
                await self._restore(found, now, actor=None)
            return found
        login = await self._login_for(workspace_id, data.email, data.name, now)
        return await self._new_profile(workspace_id, data, now, actor=None, user_id=login.id)

    async def _new_profile(
        self, workspace_id: uuid.UUID, data: CustomerIn, now: datetime, *, actor: Principal | None,
        user_id: uuid.UUID | None = None,
    ) -> Customer:
        email = normalise_email(data.email)
        await self._check_organisation(workspace_id, data.organisation_id)
        organisation_id = data.organisation_id or await self._organisation_of_domain(workspace_id, email)
        if data.password:
            user = await self.users.create(workspace_id=workspace_id, email=email, name=data.name,
                                           role=Role.CUSTOMER, password=data.password, now=now)
            user_id = user.id
        # The id is set here, not at a flush, so the row need not be written yet: it goes
        # out with the transaction's next statement.
        customer = Customer(
            id=new_id(), workspace_id=workspace_id, user_id=user_id, name=data.name, email=email, phone=data.phone,
            organisation_id=organisation_id, tier=data.tier.value, language=data.language.lower(),
            timezone=data.timezone, attributes=data.metadata, created_at=now, updated_at=now,
        )
        self.session.add(customer)
        self.audit.record(workspace_id=workspace_id, entity_type="customer", entity_id=customer.id,
                          actor_id=actor.user_id if actor else None, actor_kind="agent" if actor else "system",
                          at=now, changes={"created": (None, email)})
        return customer

    async def principal_for(self, customer: Customer, now: datetime) -> Principal:
        """The customer acting through a channel (email, chat, SMS): they need a user to act
        as, made without a password when they have none (they may set one later)."""
        if customer.user_id is None:
            customer.user_id = (await self._login_for(customer.workspace_id, customer.email, customer.name, now)).id
        # What the customer then does in this transaction (open a ticket, reply) asks for
        # their profile by user; this answers without a query (``for_user``).
        self.session.info.setdefault(_PROFILE_OF_USER, {})[customer.user_id] = customer
        return Principal(customer.user_id, customer.workspace_id, Role.CUSTOMER)

    async def _login_for(self, workspace_id: uuid.UUID, email: str, name: str, now: datetime) -> User:
        """The user with this address, or a new one without a password, written now: the
        profile that refers to it is written after it (the ORM knows no order between the
        two tables). A team member writing in from their own address is the requester, as
        in other helpdesks: their profile shares their user (see ``_sync_login``)."""
        user = await self.users.find_by_email(workspace_id, email)
        if user is None:
            user = self.users.add(workspace_id=workspace_id, email=email, name=name, role=Role.CUSTOMER,
                                  password_hash=None, now=now)
            await self.session.flush()
        return user

    async def mark_undeliverable(self, workspace_id: uuid.UUID, email: str, now: datetime) -> bool:
        customer = await self.find_by_email(workspace_id, email)
        if customer is None:
            return False
        customer.email_undeliverable_at = now
        self.audit.record(workspace_id=workspace_id, entity_type="customer", entity_id=customer.id, actor_id=None,
                          actor_kind="system", at=now, changes={"email_undeliverable_at": (None, now)})
        return True

    def wrote_in(self, customer: Customer, now: datetime) -> None:
        """Mail just came from the customer's address: it works, whatever bounced before."""
        if customer.email_undeliverable_at is not None:
            self.audit.record(workspace_id=customer.workspace_id, entity_type="customer", entity_id=customer.id,
                              actor_id=None, actor_kind="system", at=now,
                              changes={"email_undeliverable_at": (customer.email_undeliverable_at, None)})
            customer.email_undeliverable_at = None

    async def find_by_phone(self, workspace_id: uuid.UUID, phone: str) -> Customer | None:
        """The customer with this number however either side writes it: a profile saved as
        "+1 (555) 888-0000" is the texter "+15558880000". Numbers are kept as typed and
        compared as digits with their leading +."""
        wanted = phone_digits(phone)
        if not wanted.lstrip("+"):
            return None
        stored = Customer.phone
        for separator in PHONE_SEPARATORS:
            stored = func.replace(stored, separator, "")
        return await self.session.scalar(select(Customer).where(
            Customer.workspace_id == workspace_id, stored == wanted, Customer.deleted_at.is_(None),
        ).order_by(Customer.created_at).limit(1))

    async def find_by_channel_user_id(self, workspace_id: uuid.UUID, handle: str) -> Customer | None:
        """The customer a connected channel knows by this exact user id (the oldest, should
        staff have given two the same)."""
        return await self.session.scalar(select(Customer).where(
            Customer.workspace_id == workspace_id, Customer.channel_user_id == handle, Customer.deleted_at.is_(None),
        ).order_by(Customer.created_at, Customer.id).limit(1))

    def note_channel_user_id(self, customer: Customer, handle: str, now: datetime) -> None:
        """A connected channel met this customer under ``handle``: it is where answers to
        them go on the platform and how their next message finds them. The first handle
        recorded stays."""
        attributes = dict(customer.attributes or {})
        if attributes.get("channel_user_id"):
            return
        attributes["channel_user_id"] = handle
        self.audit.record(workspace_id=customer.workspace_id, entity_type="customer", entity_id=customer.id,
                          actor_id=None, actor_kind="system", at=now,
                          changes={"metadata": (customer.attributes, attributes)})
        customer.attributes = attributes
        customer.updated_at = now

    async def find_by_email(self, workspace_id: uuid.UUID, email: str) -> Customer | None:
        return await self.session.scalar(select(Customer).where(
            Customer.workspace_id == workspace_id, Customer.email == normalise_email(email),
        ))

    async def reach_of(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]]:
        """For each of these customer sign-ins with a live profile: the profile, and the
        organisation whose tickets they also see (None unless it shares its tickets)."""
        return {row.user_id: (row.id, row.organisation_id if row.shared_tickets else None)
                for row in await self.session.execute(
                    select(Customer.user_id, Customer.id, Customer.organisation_id, Organisation.shared_tickets)
                    .outerjoin(Organisation, Organisation.id == Customer.organisation_id)
                    .where(Customer.user_id.in_(user_ids), Customer.deleted_at.is_(None)))}

    async def get(self, principal: Principal, customer_id: uuid.UUID) -> Customer:
        customer = await self.session.scalar(self._visible(principal).where(Customer.id == customer_id))
        if customer is None:
            raise NotFound("No such customer.")
        return customer

    async def for_user(self, principal: Principal) -> Customer:
        """The signed-in customer's own profile."""
        known = self.session.info.get(_PROFILE_OF_USER, {}).get(principal.user_id)
        if known is not None and _current(known) and known.user_id == principal.user_id \
                and known.workspace_id == principal.workspace_id and known.deleted_at is None:
            return known
        customer = await self.session.scalar(self._visible(principal).where(Customer.user_id == principal.user_id))
        if customer is None:
            raise NotFound("This sign-in has no customer profile.")
        return customer

    async def get_many(self, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, Customer]:
        return await get_many_in_workspace(self.session, Customer, workspace_id, ids)

    def matching(self, workspace_id: uuid.UUID, text: str) -> Select[tuple[uuid.UUID]]:
        """The ids of customers whose name or email contains ``text``, whatever the case, as
        a query a ticket search runs inside its own, so however many match, none is left out."""
        sqlite = on_sqlite(self.session)
        return select(Customer.id).where(
            Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None),
            or_(contains_text(Customer.name, text, sqlite=sqlite), contains_text(Customer.email, text, sqlite=sqlite)))

    async def list(
        self, principal: Principal, *, email: str | None, organisation_id: uuid.UUID | None,
        after: tuple[datetime, uuid.UUID] | None, limit: int, text: str | None = None,
    ) -> list[Customer]:
        if not principal.is_staff:
            raise Forbidden("Only support staff may list customers.")
        stmt = self._visible(principal)
        if email:
            stmt = stmt.where(Customer.email == normalise_email(email))
        if text:
            stmt = stmt.where(Customer.id.in_(self.matching(principal.workspace_id, text)))
        if organisation_id:
            stmt = stmt.where(Customer.organisation_id == organisation_id)
        if after:
            stmt = stmt.where(or_(Customer.created_at < after[0],
                                  and_(Customer.created_at == after[0], Customer.id < after[1])))
        stmt = stmt.order_by(Customer.created_at.desc(), Customer.id.desc()).limit(limit)
        return list(await self.session.scalars(stmt))

    async def update(self, principal: Principal, customer_id: uuid.UUID, data: CustomerPatch, now: datetime) -> Customer:
        customer = await self.get(principal, customer_id)
        if not principal.is_staff:
            raise Forbidden("Ask support to change your profile.")
        _refuse_password_unless_admin(principal, data.password)
        changes: dict[str, tuple[object, object]] = {}
        fields = data.model_fields_set
        if data.email is not None and normalise_email(data.email) != customer.email:
            if await self.find_by_email(customer.workspace_id, data.email):
                raise Conflict("A customer with this email already exists.", field="email", code="email_taken")
        if "organisation_id" in fields:
            await self._check_organisation(customer.workspace_id, data.organisation_id)
        for field, attr in (("name", "name"), ("phone", "phone"), ("organisation_id", "organisation_id"),
                            ("language", "language"), ("timezone", "timezone"), ("metadata", "attributes")):
            if field not in fields:
                continue
            value = getattr(data, field)
            if value is None and field not in ("phone", "organisation_id", "timezone"):
                raise ValidationFailed("This field cannot be emptied.", field=field)
            if getattr(customer, attr) != value:
                changes[field] = (getattr(customer, attr), value)
                setattr(customer, attr, value)
        if data.tier is not None and data.tier.value != customer.tier:
            changes["tier"] = (customer.tier, data.tier.value)
            customer.tier = data.tier.value
        if data.email is not None and normalise_email(data.email) != customer.email:
            changes["email"] = (customer.email, normalise_email(data.email))
            customer.email = normalise_email(data.email)
            customer.email_undeliverable_at = None  # a new address gets a fresh chance
        await self._sync_login(customer, data, now, changes)
        if "email" in changes:
            # Told at both addresses, the old one above all: if it was not their wish, the
            # address they still read is where they learn that their account moved.
            old_email, new_email = changes["email"]
            Outbox(self.session).publish(customer.workspace_id, "customer.email_changed", now,
                                         customer_id=customer.id, old_email=old_email, new_email=new_email)
        if changes:
            customer.updated_at = now
            self.audit.record(workspace_id=customer.workspace_id, entity_type="customer", entity_id=customer.id,
                              actor_id=principal.user_id, actor_kind="agent", at=now, changes=changes)
        return customer

    async def _sync_login(self, customer: Customer, data: CustomerPatch, now: datetime,
                          changes: dict[str, tuple[object, object]]) -> None:
        """Keep the portal sign-in in step with the profile; a password creates one."""
        if customer.user_id is None:
            if data.password:
                user = await self.users.create(workspace_id=customer.workspace_id, email=customer.email,
                                               name=customer.name, role=Role.CUSTOMER, password=data.password, now=now)
                customer.user_id = user.id
                changes["can_sign_in"] = (False, True)
            return
        user = await self.users.get(customer.workspace_id, customer.user_id)
        if user.role != Role.CUSTOMER.value:
            # A team member who wrote in from their own address acts as this profile, but
            # their sign-in stays theirs: whoever manages customers must not be able to set
            # a supervisor's password, rename them or change the address they sign in with.
            if data.password:
                raise ValidationFailed("This customer is a member of the support team: they change their own "
                                       "password.", field="password")
            if customer.email != user.email:  # no longer their address: no longer them
                changes["user_id"] = (customer.user_id, None)
                customer.user_id = None
            return
        changes.update({f"login_{k}": v for k, v in (await self.users.update(
            user, now=now, name=customer.name, email=customer.email, password=data.password,
        )).items()})

    async def delete(self, principal: Principal, customer_id: uuid.UUID, now: datetime) -> None:
        """Soft delete: the profile disappears from lists but its tickets keep their requester."""
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins may delete customers.")
        customer = await self.get(principal, customer_id)
        customer.deleted_at = now
        if (user := await self._own_sign_in(customer)) is not None:
            await self.users.update(user, now=now, is_active=False)
        self.audit.record(workspace_id=customer.workspace_id, entity_type="customer", entity_id=customer.id,
                          actor_id=principal.user_id, actor_kind="agent", at=now, changes={"deleted_at": (None, now)})

    async def restore(self, principal: Principal, customer_id: uuid.UUID, now: datetime) -> Customer:
        """Undo a delete: the profile, its sign-in and its tickets are theirs again."""
        if not principal.can_manage_team:
            raise Forbidden("Only supervisors and admins may restore customers.")
        customer = await self.session.scalar(select(Customer).where(
            Customer.workspace_id == principal.workspace_id, Customer.id == customer_id,
            Customer.deleted_at.is_not(None)))
        if customer is None:
            raise NotFound("No such deleted customer.")
        await self._restore(customer, now, actor=principal)
        return customer

    async def _own_sign_in(self, customer: Customer) -> User | None:
        """The profile's sign-in, if it is the customer's own: a team member who wrote in
        shares their user with the profile, and it is not the customer service's to close."""
        if customer.user_id is None:
            return None
        user = await self.users.get(customer.workspace_id, customer.user_id)
        return user if user.role == Role.CUSTOMER.value else None

    async def _restore(self, customer: Customer, now: datetime, *, actor: Principal | None) -> None:
        if (user := await self._own_sign_in(customer)) is not None:  # closed by the delete, so opened again
            await self.users.update(user, now=now, is_active=True)
        self.audit.record(workspace_id=customer.workspace_id, entity_type="customer", entity_id=customer.id,
                          actor_id=actor.user_id if actor else None, actor_kind="agent" if actor else "system",
                          at=now, changes={"deleted_at": (customer.deleted_at, None)})
        customer.deleted_at = None
        customer.updated_at = now

    async def _organisation_of_domain(self, workspace_id: uuid.UUID, email: str) -> uuid.UUID | None:
        """The organisation whose domain the address is at (the oldest, should two claim it)."""
        domain = email.rpartition("@")[2]
        return await self.session.scalar(select(Organisation.id).where(
            Organisation.workspace_id == workspace_id, Organisation.domain == domain,
        ).order_by(Organisation.created_at).limit(1)) if domain else None

    async def _check_organisation(self, workspace_id: uuid.UUID, organisation_id: uuid.UUID | None) -> None:
        if organisation_id is None:
            return
        found = await self.session.scalar(select(Organisation.id).where(
            Organisation.workspace_id == workspace_id, Organisation.id == organisation_id,
        ))
        if found is None:
            raise ValidationFailed("No such organisation in this workspace.", field="organisation_id")

    async def organisation_shares_tickets(self, workspace_id: uuid.UUID, organisation_id: uuid.UUID | None) -> bool:
        if organisation_id is None:
            return False
        return bool(await self.session.scalar(select(Organisation.shared_tickets).where(
            Organisation.workspace_id == workspace_id, Organisation.id == organisation_id,
        )))


class OrganisationService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.audit = AuditLog(session)

    async def create(self, principal: Principal, data: OrganisationIn, now: datetime) -> Organisation:
        if not principal.is_staff:
            raise Forbidden("Only support staff may add organisations.")
        ws = principal.workspace_id
        if await self.session.scalar(select(Organisation.id).where(
            Organisation.workspace_id == ws, Organisation.name == data.name)):
            raise Conflict("An organisation with this name already exists.", field="name", code="name_taken")
        org = Organisation(workspace_id=ws, name=data.name, domain=data.domain, shared_tickets=data.shared_tickets,
                           created_at=now, updated_at=now)
        self.session.add(org)
        await self.session.flush()
        self.audit.record(workspace_id=ws, entity_type="organisation", entity_id=org.id, actor_id=principal.user_id,
                          actor_kind=principal.actor_kind, at=now, changes={"created": (None, data.name)})
        return org

    async def get(self, principal: Principal, org_id: uuid.UUID) -> Organisation:
        if not principal.is_staff:
            raise NotFound("No such organisation.")
        org = await self.session.scalar(select(Organisation).where(
            Organisation.workspace_id == principal.workspace_id, Organisation.id == org_id))
        if org is None:
            raise NotFound("No such organisation.")
        return org

    async def list(self, principal: Principal) -> list[Organisation]:
        if not principal.is_staff:
            raise Forbidden("Only support staff may list organisations.")
        return list(await self.session.scalars(select(Organisation).where(
            Organisation.workspace_id == principal.workspace_id).order_by(Organisation.name)))

    async def update(self, principal: Principal, org_id: uuid.UUID, data: OrganisationPatch,
                     now: datetime) -> Organisation:
        org = await self.get(principal, org_id)
        changes: dict[str, tuple[object, object]] = {}
        if data.name is not None and data.name != org.name and await self.session.scalar(select(Organisation.id).where(
                Organisation.workspace_id == org.workspace_id, Organisation.name == data.name)):
            raise Conflict("An organisation with this name already exists.", field="name", code="name_taken")
        for field in data.model_fields_set:
            value = getattr(data, field)
            if field != "domain" and value is None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
            if getattr(org, field) != value:
                changes[field] = (getattr(org, field), value)
                setattr(org, field, value)
        if changes:
            org.updated_at = now
            self.audit.record(workspace_id=org.workspace_id, entity_type="organisation", entity_id=org.id,
                              actor_id=principal.user_id, actor_kind="agent", at=now, changes=changes)
        return org

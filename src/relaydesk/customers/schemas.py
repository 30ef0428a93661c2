from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from relaydesk.core.schemas import Email, Input, Language, Name, Output, Password, TimeZone

PHONE_SEPARATORS = " ()./-"  # what a number may hold besides digits and a leading +
Phone = Annotated[str, StringConstraints(min_length=3, max_length=40,
                                         pattern=rf"^\+?[0-9{re.escape(PHONE_SEPARATORS)}]{{3,40}}$")]


class Tier(StrEnum):
    STANDARD = "standard"
    VIP = "vip"


def _small_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(str(value)) > 8000:
        raise ValueError("metadata is limited to about 8 KB")
    return value



class CustomerIn(Input):
    name: Name
    email: Email
    phone: Phone | None = None
    organisation_id: uuid.UUID | None = None
    tier: Tier = Tier.STANDARD
    language: Language = "en"
    timezone: TimeZone | None = Field(
        default=None, description="Their own time zone; null: the workspace's (its settings), else UTC.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free facts such as order numbers.")
    password: Password | None = Field(default=None, description="Lets the customer sign in to the portal.")

    _meta = field_validator("metadata")(_small_metadata)

    model_config = {"json_schema_extra": {"examples": [{
        "name": "Lan Nguyen", "email": "lan@example.com", "tier": "vip", "language": "vi",
        "timezone": "Asia/Ho_Chi_Minh", "metadata": {"orders": ["A-1001"]},
    }]}}


class CustomerPatch(Input):
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    organisation_id: uuid.UUID | None = None
    tier: Tier | None = None
    language: Language | None = None
    timezone: TimeZone | None = Field(default=None, description="null: the workspace's time zone from now on.")
    metadata: dict[str, Any] | None = None
    password: Password | None = None

    _meta = field_validator("metadata")(_small_metadata)

    model_config = {"json_schema_extra": {"examples": [{"tier": "vip", "metadata": {"orders": ["A-1001", "A-1002"]}}]}}


class CustomerOut(Output):
    id: uuid.UUID
    name: str
    email: str
    phone: str | None
    organisation_id: uuid.UUID | None
    tier: Tier
    language: str
    timezone: str | None = Field(description="null: none of their own; times are written in the workspace's.")
    metadata: dict[str, Any] = Field(validation_alias="attributes")
    can_sign_in: bool
    email_undeliverable_at: datetime | None = Field(
        default=None, description="When mail to this address bounced for good; nothing is emailed there since.")
    created_at: datetime
    updated_at: datetime


def _domain_as_kept(value: object) -> object:
    return value.strip().lower().rstrip(".") if isinstance(value, str) else value


# An email domain (unicode letters allowed): new customers whose address is at it join the
# organisation.
Domain = Annotated[str, BeforeValidator(_domain_as_kept), StringConstraints(
    max_length=253, pattern=r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$")]


class OrganisationIn(Input):
    name: Name
    domain: Domain | None = Field(default=None, description="New customers with an email at this domain join.")
    shared_tickets: bool = False

    model_config = {"json_schema_extra": {"examples": [{"name": "Northwind Traders", "domain": "northwind.example.com", "shared_tickets": True}]}}


class OrganisationPatch(Input):
    name: Name | None = None
    domain: Domain | None = None
    shared_tickets: bool | None = None

    model_config = {"json_schema_extra": {"examples": [{"shared_tickets": False}]}}


class OrganisationOut(Output):
    id: uuid.UUID
    name: str
    domain: str | None
    shared_tickets: bool
    created_at: datetime

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from relaydesk.core.principal import Principal
from relaydesk.core.schemas import Input, Output
from relaydesk.tickets import lifecycle
from relaydesk.tickets.lifecycle import Channel, Priority, Status

Subject = Annotated[str, StringConstraints(min_length=1, max_length=500)]
MAX_BODY = 100_000  # characters of a message, its markup included
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[\w.:/+-]+$")]
Tags = Annotated[list[Tag], Field(max_length=30)]


def ticket_reference(number: int) -> str:
    return f"T-{number:06d}"


class TicketIn(Input):
    subject: Subject
    description: Body = Field(description="Plain text or HTML; HTML is sanitised before it is stored.")
    requester_id: uuid.UUID | None = Field(
        default=None, description="Required when staff open a ticket on a customer's behalf; customers omit it."
    )
    priority: Priority | None = Field(default=None, description="Defaults to the category's, else MEDIUM.")
    category_id: uuid.UUID | None = None
    channel: Channel | None = Field(default=None,
                                    description="Staff only (a customer's own ticket is web); defaults to api.")
    tags: Tags = Field(default_factory=list)
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)

    model_config = {"json_schema_extra": {"examples": [{
        "subject": "Order A-1001 arrived damaged",
        "description": "The box was crushed and the lamp inside is cracked. Can I get a replacement?",
        "priority": "HIGH", "tags": ["damaged", "order-a-1001"],
    }]}}


class TicketPatch(Input):
    priority: Priority | None = None
    category_id: uuid.UUID | None = None
    tags: Tags | None = None
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None

    model_config = {"json_schema_extra": {"examples": [{"priority": "URGENT", "tags": ["outage"]}]}}


class StatusChangeIn(Input):
    status: Status
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None,
        description="Shown in the thread with the change, to the customer too when the change is one they see.")

    model_config = {"json_schema_extra": {"examples": [{"status": "RESOLVED", "reason": "Replacement shipped"}]}}


class TicketOut(Output):
    id: uuid.UUID
    number: str = Field(description="Human-readable, per workspace, e.g. T-000123.")
    subject: str
    description: str
    status: Status = Field(description="Customers see only OPEN, IN_PROGRESS, WAITING_ON_CUSTOMER, RESOLVED and "
                                       "CLOSED: ASSIGNED shows to them as OPEN, WAITING_INTERNAL and ESCALATED as "
                                       "IN_PROGRESS.")
    priority: Priority | None = Field(description="Staff only: null for customers, as are the tags, the assignee, "
                                                  "the team and the SLA flag.")
    channel: Channel
    category_id: uuid.UUID | None
    tags: list[str] | None
    requester_id: uuid.UUID
    organisation_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    follow_up_of_id: uuid.UUID | None
    reopen_count: int
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    auto_close_at: datetime | None = Field(description="When a RESOLVED ticket will close itself if nobody replies.")
    sla_breached: bool | None
    sla_due_at: datetime | None = Field(
        description="The soonest due time of the SLA clocks still running; null when none runs (all met or "
                    "paused, or no SLA applies). Staff only.")

    @field_validator("number", mode="before")
    @classmethod
    def _reference(cls, value: Any) -> str:
        return ticket_reference(value) if isinstance(value, int) else value


# What customers are not shown of their tickets (live events leave the same out).
STAFF_ONLY_FIELDS = {"priority": None, "tags": None, "assignee_id": None, "team_id": None, "sla_breached": None,
                     "sla_due_at": None}


def shown_to(principal: Principal, ticket: Any) -> Any:
    """The ticket as this caller may see it: whole for staff, without what staff say of it
    (priority, tags such as "fraud-suspect", who has it) and with its customer-facing
    status for customers."""
    if not principal.is_customer:
        return ticket
    return TicketOut.model_validate(ticket).model_copy(
        update={**STAFF_ONLY_FIELDS, "status": lifecycle.customer_facing(ticket.status)})


class MessageIn(Input):
    body: Body = Field(description="Plain text or HTML; HTML is sanitised before it is stored.")
    internal: bool = Field(default=False, description="An internal note, visible to staff only.")
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)

    model_config = {"json_schema_extra": {"examples": [
        {"body": "Thanks, a replacement is on its way.", "internal": False},
        {"body": "Courier confirmed the damage claim.", "internal": True},
    ]}}


class AttachmentOut(Output):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    message_id: uuid.UUID | None
    created_at: datetime
    download_url: str


class MessageOut(Output):
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID | None
    author_kind: Literal["customer", "agent", "system"]
    internal: bool
    body_html: str
    body_text: str
    channel: str
    created_at: datetime
    attachments: list[AttachmentOut] = Field(default_factory=list)


class MessagePostedOut(MessageOut):
    """A reply to a closed ticket starts a follow-up; ``ticket_id`` then names the new ticket."""

    follow_up_created: bool = False


class AuditOut(Output):
    id: uuid.UUID
    actor_id: uuid.UUID | None
    actor_kind: str
    field: str
    before: Any
    after: Any
    at: datetime


class CategoryIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    parent_id: uuid.UUID | None = None
    default_priority: Priority = Priority.MEDIUM
    required_skills: list[Annotated[str, StringConstraints(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=20)
    team_id: uuid.UUID | None = None

    model_config = {"json_schema_extra": {"examples": [{"name": "Refunds", "default_priority": "HIGH", "required_skills": ["billing"]}]}}


class CategoryPatch(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    parent_id: uuid.UUID | None = None
    default_priority: Priority | None = None
    required_skills: list[Annotated[str, StringConstraints(min_length=1, max_length=60)]] | None = Field(
        default=None, max_length=20)
    team_id: uuid.UUID | None = None

    model_config = {"json_schema_extra": {"examples": [{"default_priority": "URGENT"}]}}


class CategoryOut(Output):
    id: uuid.UUID
    name: str
    description: str
    parent_id: uuid.UUID | None
    default_priority: Priority | None = Field(description="Staff only: null for customers, as are the required "
                                                          "skills, the team and the SLA policy.")
    required_skills: list[str] | None
    team_id: uuid.UUID | None
    sla_policy_id: uuid.UUID | None
    created_at: datetime


# How tickets in a category are routed: the support team's own business.
STAFF_ONLY_CATEGORY_FIELDS = {"default_priority": None, "required_skills": None, "team_id": None,
                              "sla_policy_id": None}


def category_shown_to(principal: Principal, category: Any) -> Any:
    """Whole for staff; for customers, what they choose a category by (its name,
    description and place), not where it routes their ticket."""
    if not principal.is_customer:
        return category
    return CategoryOut.model_validate(category).model_copy(update=STAFF_ONLY_CATEGORY_FIELDS)

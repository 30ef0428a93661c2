from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from relaydesk.core.schemas import Input, Moment, Output
from relaydesk.notifications.delivery import SMS_REPLY, STATUSES, WEBHOOK_PING
from relaydesk.notifications.templates import KINDS
from relaydesk.notifications.webhooks import WEBHOOK_EVENTS

NotificationKind = Literal[KINDS]  # type: ignore[valid-type]
DeliveryStatus = Literal[STATUSES]  # type: ignore[valid-type]
DeliveryKind = Literal[(*KINDS, *WEBHOOK_EVENTS, SMS_REPLY, WEBHOOK_PING)]  # type: ignore[valid-type]


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    ticket_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Output):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class PreferenceOut(Output):
    kind: str
    channel: Literal["in_app", "email"]
    enabled: bool
    default: bool = Field(description="True while the person has not changed this one.")


class PreferenceIn(Input):
    kind: NotificationKind
    channel: Literal["in_app", "email"]
    enabled: bool


class PreferencesIn(Input):
    preferences: list[PreferenceIn] = Field(min_length=1, max_length=100)

    model_config = {"json_schema_extra": {"examples": [{"preferences": [
        {"kind": "reply_to_agent", "channel": "email", "enabled": False},
        {"kind": "sla_warning", "channel": "in_app", "enabled": True}]}]}}


class TemplateIn(Input):
    subject: str = Field(max_length=64_000)
    text: str = Field(default="", max_length=64_000)
    html: str = Field(default="", max_length=64_000)

    model_config = {"json_schema_extra": {"examples": [{
        "subject": "[{{ ticket.reference }}] We got your message",
        "text": "Hi {{ recipient_name }},\n\nThanks for writing to {{ workspace_name }}.",
        "html": "<p>Hi {{ recipient_name }},</p><p>Thanks for writing to {{ workspace_name }}.</p>"}]}}


class PreviewIn(Input):
    template: TemplateIn | None = Field(default=None, description="Unsaved wording to try; null: what is in use.")
    context: dict[str, Any] | None = Field(default=None, description="Values to render with; null: sample values.")

    model_config = {"json_schema_extra": {"examples": [{"template": {"subject": "Re: {{ ticket.subject }}",
                                                                     "text": "Hello {{ recipient_name }}"}}]}}


class TemplateOut(Output):
    kind: str
    locale: str
    subject: str
    text: str
    html: str
    customised: bool
    variables: list[str]


class RenderedOut(Output):
    subject: str
    text: str
    html: str


class DeliveryOut(Output):
    id: uuid.UUID
    channel: str
    kind: str
    recipient: str
    user_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    target_id: uuid.UUID | None = Field(description="The webhook (or Slack target) it went to; null for email and "
                                        "SMS.")
    status: str
    attempts: int
    attempt_log: list[dict[str, Any]]
    last_error: str | None
    message_id: str | None = None
    batched_into_id: uuid.UUID | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryPage(Output):
    items: list[DeliveryOut]
    next_cursor: str | None


class RetryDeadIn(Input):
    """Which dead deliveries to send again; every filter is optional (none: all of them)."""

    since: Moment | None = Field(default=None, description="Queued at or after this moment.")
    until: Moment | None = Field(default=None, description="Queued before this moment.")
    kind: DeliveryKind | None = Field(default=None, description="Only this kind: a notification email's "
                                      "(reply_to_customer), a webhook event (ticket.created), reply_sms or ping.")
    channel: Literal["email", "webhook", "slack", "sms"] | None = None

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError("must be after since")
        return until

    model_config = {"json_schema_extra": {"examples": [
        {"since": "2026-03-02T08:00:00Z", "until": "2026-03-02T11:30:00Z"}, {"kind": "reply_to_customer"}]}}


class RetriedOut(Output):
    retried: int = Field(description="How many were put back to be sent at once.")
    more: bool = Field(description="More dead deliveries match than one call retries: call again for the next.")


class WebhookIn(Input):
    url: str = Field(min_length=8, max_length=2000)
    kind: Literal["generic", "slack"] = "generic"
    events: list[str] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=300)
    allow_private: bool = Field(default=False, description="Allow loopback/private-network targets; only where the "
                                "operator allows them (RELAYDESK_ALLOW_PRIVATE_TARGETS).")

    model_config = {"json_schema_extra": {"examples": [
        {"url": "https://hooks.example.com/relaydesk", "events": ["ticket.created", "message.posted"]},
        {"url": "https://hooks.slack.com/services/T000/B000/XXXX", "kind": "slack", "events": ["ticket.escalated"]}]}}


class WebhookPatch(Input):
    url: str | None = Field(default=None, min_length=8, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=300)
    active: bool | None = None
    allow_private: bool | None = None

    model_config = {"json_schema_extra": {"examples": [{"active": False}]}}


class WebhookOut(Output):
    id: uuid.UUID
    url: str
    kind: str
    events: list[str]
    description: str
    active: bool
    allow_private: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Verifies X-Relaydesk-Signature; shown only now.")

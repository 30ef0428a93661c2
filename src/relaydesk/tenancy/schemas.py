from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from relaydesk.core.schemas import TimeZone

Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)]


def _matchable(keyword: str) -> str:
    # Keywords match word by word (routing/priority.py): one without a word would make
    # every new ticket's routing fail, long after the setting was accepted.
    if not re.search(r"\w", keyword):
        raise ValueError("A keyword needs a letter or a digit to match.")
    return keyword


PRIORITY_KEYWORDS_HELP = (
    "This workspace's changes to the built-in priority keywords (built_in_priority_keywords), which "
    "always apply: a keyword listed here raises a new ticket's priority to the level given, over a "
    "built-in keyword's own level; a built-in keyword mapped to null no longer applies. Matched as whole "
    "words, case-insensitively. A PATCH replaces the whole map; null or {}: the built-ins as they are. "
    "What applies: priority_keywords_in_effect.")

TIMEZONE_HELP = (
    "The time zone (IANA name, e.g. Europe/Berlin) that times sent to people are written in when they "
    "have none of their own (agent or customer profile), and that agents' shifts are in then; null: UTC.")


class WorkspaceSettings(BaseModel):
    """Per-workspace behaviour, stored as JSON on the workspace; unset keys take these defaults."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"auto_close_hours": 72, "queue_wait_alert_minutes": 20, "escalation_l1_on": "critical"}]})

    auto_close_hours: int = Field(default=48, ge=1, le=24 * 90,
                                  description="A RESOLVED ticket with no customer reply closes after this long.")
    queue_wait_alert_minutes: int = Field(default=30, ge=1, le=24 * 60,
                                          description="Tell supervisors when a ticket waits this long for an agent.")
    escalation_l1_on: Literal["breach", "critical"] = Field(
        default="breach", description="Raise the first escalation level on an SLA breach, or already at critical.")
    escalation_l2_after_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60,
                                             description="Level 2 (reassign to a senior) this long after level 1.")
    escalation_l3_after_minutes: int = Field(default=120, ge=1, le=14 * 24 * 60,
                                             description="Level 3 (tell the managers) this long after level 2.")
    # Room for the built-ins a stored list left out (migration 0011) besides the 500 a PATCH may set.
    priority_keywords: dict[Keyword, Literal["LOW", "MEDIUM", "HIGH", "URGENT"] | None] | None = Field(
        default=None, max_length=1000, description=PRIORITY_KEYWORDS_HELP)
    classifier_min_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Below this the category falls back to the default; null: built-in.")
    fallback_category: str = Field(default="GENERAL", max_length=120,
                                   description="Category name used when the classifier is unsure: one of "
                                               "the workspace's categories, any case.")
    timezone: str | None = Field(default=None, max_length=64, description=TIMEZONE_HELP)
    # SMS through Twilio (or anything speaking its API): the workspace's number, and the
    # account that sends from it. None: SMS is off.
    sms_number: str | None = Field(default=None, max_length=20, description="The number customers text (E.164).")
    sms_account_sid: str | None = Field(default=None, max_length=64)
    sms_api_url: str | None = Field(
        default=None, max_length=500,
        description="Where replies are sent (form POST To/From/Body); null: Twilio's Messages API for the account.")
    # Secrets: kept with the settings but never shown back (exclude=True).
    chat_identity_secret: str | None = Field(default=None, max_length=200, exclude=True)
    sms_auth_token: str | None = Field(default=None, max_length=200, exclude=True)
    channel_webhook_secret: str | None = Field(default=None, max_length=200, exclude=True)


class WorkspaceSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"auto_close_hours": 24}]})

    auto_close_hours: int | None = Field(default=None, ge=1, le=24 * 90)
    queue_wait_alert_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    escalation_l1_on: Literal["breach", "critical"] | None = None
    escalation_l2_after_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    escalation_l3_after_minutes: int | None = Field(default=None, ge=1, le=14 * 24 * 60)
    priority_keywords: dict[Annotated[Keyword, AfterValidator(_matchable)],
                            Literal["LOW", "MEDIUM", "HIGH", "URGENT"] | None] | None = Field(
        default=None, max_length=500, description=PRIORITY_KEYWORDS_HELP)
    classifier_min_confidence: float | None = Field(default=None, ge=0, le=1)
    # Not blank: routing falls back to it for every ticket the model is unsure of.
    fallback_category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                        max_length=120)] | None = None
    timezone: TimeZone | None = Field(default=None, description=TIMEZONE_HELP)
    sms_number: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    sms_account_sid: str | None = Field(default=None, max_length=64)
    sms_api_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    sms_auth_token: str | None = Field(default=None, min_length=8, max_length=200,
                                       description="Checks X-Twilio-Signature and authenticates replies.")
    channel_webhook_secret: str | None = Field(default=None, min_length=16, max_length=200,
                                               description="Signs posts to the generic channel webhook.")


SECRET_SETTINGS = ("chat_identity_secret", "sms_auth_token", "channel_webhook_secret")

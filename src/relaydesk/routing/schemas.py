from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from relaydesk.core.schemas import Input, Language, Output
from relaydesk.customers.schemas import Tier
from relaydesk.routing.strategies import Strategy
from relaydesk.tenancy.schemas import WorkspaceSettings
from relaydesk.tickets.lifecycle import Channel, Priority


class RuleConditions(Input):
    """Every list given must contain the ticket's value; an empty or missing list matches anything.
    A category matches its sub-categories too."""

    category_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    channels: list[Channel] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    customer_tiers: list[Tier] = Field(default_factory=list)
    languages: list[Language] = Field(default_factory=list, max_length=30)


class RuleConditionsPatch(Input):
    """A JSON merge patch over the stored conditions: a list given replaces that list, null or
    [] clears it (it then matches anything), a key left out keeps what is stored."""

    category_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)
    channels: list[Channel] | None = None
    priorities: list[Priority] | None = None
    customer_tiers: list[Tier] | None = None
    languages: list[Language] | None = Field(default=None, max_length=30)


class RuleIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    position: int | None = Field(default=None, ge=0, le=10_000, description="Lower runs first; default: last.")
    enabled: bool = True
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    team_id: uuid.UUID | None = Field(default=None, description="Null: the ticket's own team, else every agent.")
    strategy: Strategy = Strategy.SKILL_WEIGHTED

    model_config = {"json_schema_extra": {"examples": [{
        "name": "VIP billing to senior billing team", "position": 0,
        "conditions": {"customer_tiers": ["vip"], "priorities": ["HIGH", "URGENT"]},
        "team_id": "01a21043-07a2-7c62-b8f9-2e944366261c", "strategy": "least_loaded",
    }]}}


class RulePatch(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    enabled: bool | None = None
    conditions: RuleConditionsPatch | None = Field(
        default=None, description="Merged over the stored conditions: a list given replaces that list, null "
                                  "or [] clears it, a list left out is kept. {\"priorities\": [\"URGENT\"]} "
                                  "changes the priorities and keeps, say, the customer tiers.")
    team_id: uuid.UUID | None = None
    strategy: Strategy | None = None

    model_config = {"json_schema_extra": {"examples": [
        {"enabled": False}, {"strategy": "round_robin"}, {"conditions": {"priorities": ["URGENT"], "channels": None}}]}}


class RuleOut(Output):
    id: uuid.UUID
    name: str
    position: int
    enabled: bool
    conditions: dict[str, Any]
    team_id: uuid.UUID | None
    strategy: Strategy
    created_at: datetime
    updated_at: datetime


class CategoryDecisionOut(Output):
    source: str = Field(description="given (chosen when the ticket was opened), agent (changed by staff "
                                    "since), model, fallback or none")
    label: str | None
    confidence: float | None
    reason: str


class PriorityDecisionOut(Output):
    source: str = Field(description="given (chosen when the ticket was opened), agent (changed by staff "
                                    "since) or rules")
    reasons: list[str]


class RoutingOut(Output):
    ticket_id: uuid.UUID
    state: str = Field(description="assigned (by routing), queued (waiting for capacity) or manual")
    category: CategoryDecisionOut
    priority: PriorityDecisionOut
    team_id: uuid.UUID | None
    rule: dict[str, Any] | None = Field(description="The assignment rule that matched, if any.")
    decision: dict[str, Any] | None = Field(
        description="Routing's last assignment decision: strategy, winner, candidates with score parts, "
                    "who was excluded and why, and the reason; after a person assigned the ticket (state "
                    "manual), `assigned_by_hand` says who, to whom and when.")
    queued_since: datetime | None
    decided_at: datetime = Field(description="When routing last decided (a person's assignment is not one).")
    assignee_id: uuid.UUID | None = Field(description="Who has the ticket now, however it came to them.")


class WorkspaceSettingsOut(WorkspaceSettings):
    built_in_priority_keywords: dict[str, str] = Field(
        description="Read-only: the priority keywords every workspace starts with (see priority_keywords).")
    priority_keywords_in_effect: dict[str, str] = Field(
        description="Read-only: the keywords that raise a new ticket's priority here, and to what: the "
                    "built-in ones with this workspace's priority_keywords applied.")

"""priority keywords extend the built-ins: a workspace's list used to replace them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

workspaces = sa.table("workspaces", sa.column("id"), sa.column("settings", sa.JSON()))

# The built-in keywords as they were at this revision, copied rather than imported: the
# live list will change, and this migration must keep doing what it did when it was written.
_HIGH_THEN = (
    "asap", "as soon as possible", "immediately", "double charged", "charged twice", "charged me twice",
    "billed twice", "locked out", "cant log in", "cannot log in", "cant sign in", "cannot sign in",
    "third time", "escalate", "unacceptable", "never arrived", "lost parcel", "lost package",
    "cancel my order", "nothing works",
)
_URGENT_THEN = (
    "outage", "site down", "website down", "app down", "site is down", "website is down", "app is down",
    "service is down", "system is down", "server is down", "servers are down", "site went down",
    "website went down", "everything is down", "not working at all", "fraud", "fraudulent", "chargeback",
    "chargebacks", "stolen card", "unauthorised charge", "unauthorized charge", "unauthorised payment",
    "unauthorized payment", "unauthorised transaction", "unauthorized transaction", "identity theft",
    "hacked", "data breach", "legal action", "lawyer", "solicitor", "lawsuit", "sue you",
    "small claims court", "trading standards", "urgent", "urgently", "emergency", "critical",
)
DEFAULT_KEYWORDS = {**{k: "HIGH" for k in _HIGH_THEN}, **{k: "URGENT" for k in _URGENT_THEN}}


def _words(keyword: str) -> str:
    """A keyword's identity at this revision: its words, casefolded, apostrophes dropped."""
    return " ".join(re.findall(r"\w+", re.sub(r"['\u2019\u2018`\u00b4]", "", keyword.casefold())))


def keywords_in_effect(changes: dict[str, str | None]) -> dict[str, str]:
    """The built-ins with a workspace's changes, as this revision's code read them."""
    by_words = {_words(keyword): (keyword, priority) for keyword, priority in DEFAULT_KEYWORDS.items()}
    for keyword, priority in changes.items():
        if priority is None:
            by_words.pop(_words(keyword), None)
        else:
            by_words[_words(keyword)] = (keyword, priority)
    return dict(by_words.values())


def _rewrite_priority_keywords(rewrite) -> None:  # noqa: ANN001 - old keywords -> new keywords
    bind = op.get_bind()
    for workspace_id, settings in bind.execute(sa.select(workspaces.c.id, workspaces.c.settings)).all():
        if (settings or {}).get("priority_keywords") is None:
            continue  # the built-ins alone, under either meaning
        bind.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(
            settings={**settings, "priority_keywords": rewrite(settings["priority_keywords"])}))


def upgrade() -> None:
    # A stored list replaced the built-in keywords; it now changes them. So that every
    # workspace keeps the keywords it had, the built-ins it left out are removed (null).
    _rewrite_priority_keywords(lambda kept: {**{k: None for k in DEFAULT_KEYWORDS if k not in kept}, **kept})


def downgrade() -> None:
    _rewrite_priority_keywords(keywords_in_effect)

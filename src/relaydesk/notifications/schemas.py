from __future__ import annotations

import uuid
from datetime import datetime

from relaydesk.core.schemas import Output


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

"""The notification jobs: deciding who hears about each event, and sending what is due."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from relaydesk.core.outbox import first_time
from relaydesk.core.scheduler import Periodic
from relaydesk.notifications.notifier import EVENTS, Notifier, send_daily_summaries
from relaydesk.notifications.sender import deliver_due

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime


def install(runtime: Runtime) -> list[Periodic]:
    async def on_event(event_id: int, workspace_id: str, type: str, payload: dict[str, Any]) -> None:
        """notifications.on_event: in-app rows, emails and webhooks for one event."""
        async with runtime.transaction() as session:
            now = runtime.clock.now()
            if not await first_time(session, "notifications.on_event", event_id, now):
                return
            notifier = Notifier(runtime, session, uuid.UUID(workspace_id), event_id, now)
            await notifier.handle(type, payload)
        if notifier.queued:
            await runtime.jobs.enqueue("notifications.deliver")

    async def deliver() -> int:
        """notifications.deliver: send what is due, round after round while rounds are full."""
        sent = 0
        for _ in range(20):  # bounded: the next run picks up what is left
            batch = await deliver_due(runtime, limit=100)
            sent += batch
            if batch < 100:
                break
        return sent

    async def daily_summary() -> int:
        """notifications.daily_summary: run hourly; at the configured hour each team lead's summary."""
        queued = await send_daily_summaries(runtime, runtime.clock.now())
        if queued:
            await runtime.jobs.enqueue("notifications.deliver")
        return queued

    runtime.jobs.register("notifications.on_event", on_event)
    runtime.jobs.register("notifications.daily_summary", daily_summary)
    runtime.jobs.register("notifications.deliver", deliver)
    runtime.dispatcher.subscribe({event: ["notifications.on_event"] for event in EVENTS})
    return [Periodic("notifications.deliver", runtime.settings.delivery_scan_seconds),
            Periodic("notifications.daily_summary", 3600)]

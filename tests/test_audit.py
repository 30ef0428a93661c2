"""The audit trail is written with its change, and only if the change commits."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from factories import make_workspace
from relaydesk.core.audit import AuditEntry, AuditLog


async def test_audit_rows_are_written_only_when_their_change_commits(client, runtime):
    ws = await make_workspace(client)
    workspace_id = uuid.UUID(ws.id)
    entity = uuid.uuid4()
    now = runtime.clock.now()

    def record(session, field: str, before: object, after: object) -> None:  # noqa: ANN001
        AuditLog(session).record(workspace_id=workspace_id, entity_type="ticket", entity_id=entity,
                                 actor_id=uuid.UUID(ws.admin.id), actor_kind="agent", at=now,
                                 changes={field: (before, after)})

    with pytest.raises(RuntimeError):
        async with runtime.transaction() as session:
            record(session, "priority", "LOW", "HIGH")
            raise RuntimeError("the change failed half-way")
    async with runtime.transaction() as session:
        record(session, "status", "OPEN", "RESOLVED")
        record(session, "tags", ["a"], ["a"])  # no change: no row
        record(session, "assignee_id", None, uuid.UUID(ws.admin.id))

    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.entity_id == entity)
                                          .order_by(AuditEntry.field)))
    assert [(r.field, r.before, r.after) for r in rows] == [
        ("assignee_id", None, ws.admin.id), ("status", "OPEN", "RESOLVED")]
    assert all(r.actor_kind == "agent" and str(r.actor_id) == ws.admin.id for r in rows)

"""Malformed requests get a 4xx problem+json naming the field; nothing is half-written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import make_workspace
from relaydesk.tenancy.models import Workspace
from relaydesk.tickets.models import Message, Ticket

GOOD_TICKET = {"subject": "Order late", "description": "Where is it?"}

# (name, method, path template, body or raw bytes, expected status, code, field or None)
CASES = [
    ("malformed JSON", "POST", "/api/v1/tickets", b'{"subject": "x", ', 400, "malformed_json", "body"),
    ("not an object", "POST", "/api/v1/tickets", b'["a list"]', 422, "validation_failed", None),
    ("unknown field", "POST", "/api/v1/tickets", {**GOOD_TICKET, "sla_hack": True}, 422, "validation_failed",
     "sla_hack"),
    ("wrong type", "POST", "/api/v1/tickets", {**GOOD_TICKET, "subject": 42}, 422, "validation_failed", "subject"),
    ("subject too long", "POST", "/api/v1/tickets", {**GOOD_TICKET, "subject": "x" * 501}, 422,
     "validation_failed", "subject"),
    ("empty subject", "POST", "/api/v1/tickets", {**GOOD_TICKET, "subject": "   "}, 422, "validation_failed",
     "subject"),
    ("missing description", "POST", "/api/v1/tickets", {"subject": "x"}, 422, "validation_failed", "description"),
    ("invalid priority", "POST", "/api/v1/tickets", {**GOOD_TICKET, "priority": "CRITICAL"}, 422,
     "validation_failed", "priority"),
    ("invalid channel", "POST", "/api/v1/tickets", {**GOOD_TICKET, "channel": "pigeon"}, 422,
     "validation_failed", "channel"),
    ("bad tag", "POST", "/api/v1/tickets", {**GOOD_TICKET, "tags": ["has space"]}, 422, "validation_failed",
     "tags.0"),
    ("unknown category", "POST", "/api/v1/tickets", {**GOOD_TICKET, "category_id": str(uuid.uuid4())}, 422,
     "validation_failed", "category_id"),
    ("foreign upload", "POST", "/api/v1/tickets", {**GOOD_TICKET, "attachment_ids": [str(uuid.uuid4())]}, 422,
     "validation_failed", "attachment_ids"),
    ("oversized body", "POST", "/api/v1/tickets", {**GOOD_TICKET, "description": "x" * (2 * 1024 * 1024)}, 413,
     "payload_too_large", "body"),
    ("invalid status", "POST", "/api/v1/tickets/{ticket}/status", {"status": "DONE"}, 422, "validation_failed",
     "status"),
    ("status with extra", "POST", "/api/v1/tickets/{ticket}/status", {"status": "RESOLVED", "x": 1}, 422,
     "validation_failed", "x"),
    ("empty reply", "POST", "/api/v1/tickets/{ticket}/messages", {"body": ""}, 422, "validation_failed", "body"),
    ("reply that is only a script", "POST", "/api/v1/tickets/{ticket}/messages", {"body": "<script>x</script>"},
     422, "validation_failed", "body"),
    ("description that is only a script", "POST", "/api/v1/tickets", {**GOOD_TICKET,
     "description": "<p><script>alert(1)</script></p>"}, 422, "validation_failed", "description"),
    ("internal not bool", "POST", "/api/v1/tickets/{ticket}/messages", {"body": "hi", "internal": "maybe"}, 422,
     "validation_failed", "internal"),
    ("bad page size", "GET", "/api/v1/tickets?limit=0", None, 422, "validation_failed", "limit"),
    ("page too big", "GET", "/api/v1/tickets?limit=1000", None, 422, "validation_failed", "limit"),
    ("bad cursor", "GET", "/api/v1/tickets?cursor=not-a-cursor", None, 422, "validation_failed", "cursor"),
    ("cursor with a number for an id", "GET", "/api/v1/tickets?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxMjMsIi1jcmVhdGVkX2F0Il0", None, 422,
     "validation_failed", "cursor"),
    ("cursor with a list for an id", "GET", "/api/v1/customers?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIixbImEiXV0", None, 422,
     "validation_failed", "cursor"),
    ("thread cursor with a number for an id", "GET", "/api/v1/tickets/{ticket}/messages?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxMjNd", None,
     422, "validation_failed", "cursor"),
    ("bad status filter", "GET", "/api/v1/tickets?status=NOPE", None, 422, "validation_failed", "status.0"),
    ("bad date", "GET", "/api/v1/tickets?created_from=yesterday", None, 422, "validation_failed", "created_from"),
    ("naive date", "GET", "/api/v1/tickets?created_from=2026-01-01T00:00:00", None, 422, "validation_failed",
     "created_from"),
    ("date past the last moment", "GET", "/api/v1/tickets?created_from=9999-12-31T23:59:59-12:00", None, 422,
     "validation_failed", "created_from"),
    ("token expiry without a time zone", "POST", "/api/v1/me/api-tokens", {"name": "x",
     "expires_at": "2030-01-01T00:00:00"}, 422, "validation_failed", "expires_at"),
    # PostgreSQL can neither store nor compare a NUL in text.
    ("NUL in the ticket search", "GET", "/api/v1/tickets?q=a%00b", None, 422, "validation_failed", "q"),
    ("NUL in a tag filter", "GET", "/api/v1/tickets?tag=a%00b", None, 422, "validation_failed", "tag"),
    ("NUL in the customer search", "GET", "/api/v1/customers?q=a%00b", None, 422, "validation_failed", "q"),
    ("NUL in an email filter", "GET", "/api/v1/customers?email=a%00b@x.com", None, 422, "validation_failed",
     "email"),
    ("NUL in a recipient filter", "GET", "/api/v1/notifications/deliveries?recipient=a%00b", None, 422,
     "validation_failed", "recipient"),
    ("NUL in a workspace's name in the path", "GET", "/api/v1/chat/a%00b/status", None, 404, "not_found", None),
    ("bad sort", "GET", "/api/v1/tickets?sort=subject", None, 422, "validation_failed", "sort"),
    ("bad assignee filter", "GET", "/api/v1/tickets?assignee_id=bob", None, 422, "validation_failed",
     "assignee_id"),
    ("bad id in path", "GET", "/api/v1/customers/not-a-uuid", None, 422, "validation_failed", "customer_id"),
    ("unknown ticket", "GET", "/api/v1/tickets/T-999999", None, 404, "not_found", None),
    ("ticket number in superscript digits", "GET", "/api/v1/tickets/T-²", None, 404, "not_found", None),
    ("ticket number past any integer", "GET", "/api/v1/tickets/T-99999999999999999999999", None, 404,
     "not_found", None),
    ("bad email", "POST", "/api/v1/customers", {"name": "X", "email": "not-an-email"}, 422, "validation_failed",
     "email"),
    ("bad tier", "POST", "/api/v1/customers", {"name": "X", "email": "x@example.com", "tier": "gold"}, 422,
     "validation_failed", "tier"),
    ("bad timezone", "POST", "/api/v1/customers", {"name": "X", "email": "x@example.com", "timezone": "Mars/Base"},
     422, "validation_failed", "timezone"),
    ("bad workspace time zone", "PATCH", "/api/v1/workspace/settings", {"timezone": "Mars/Base"}, 422,
     "validation_failed", "timezone"),
    ("short password", "POST", "/api/v1/customers", {"name": "X", "email": "x@example.com", "password": "short"},
     422, "validation_failed", "password"),
    ("skill level out of range", "POST", "/api/v1/agents", {"name": "A", "email": "a@example.com",
     "password": "long enough password", "skills": [{"skill": "billing", "level": 9}]}, 422, "validation_failed",
     "skills.0.level"),
    ("negative cap", "POST", "/api/v1/agents", {"name": "A", "email": "a@example.com",
     "password": "long enough password", "max_concurrent": -1}, 422, "validation_failed", "max_concurrent"),
    ("unknown team member", "POST", "/api/v1/teams", {"name": "T", "member_ids": [str(uuid.uuid4())]}, 422,
     "validation_failed", "member_ids"),
    ("category under unknown parent", "POST", "/api/v1/categories", {"name": "C", "parent_id": str(uuid.uuid4())},
     422, "validation_failed", "parent_id"),
    ("wrong method", "PUT", "/api/v1/tickets", {}, 405, "method_not_allowed", None),
    ("no such route", "GET", "/api/v1/nothing-here", None, 404, "not_found", None),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "status", "code", "field"), CASES,
                         ids=[c[0] for c in CASES])
async def test_bad_requests_get_problem_json(client, name, method, path, body, status, code, field):
    ws = await make_workspace(client)
    cust = await ws.customer()
    ticket = await ws.ticket(cust)
    path = path.format(ticket=ticket["id"])
    actor = cust if (method, path) == ("POST", "/api/v1/tickets") else ws.admin  # customers open tickets
    kwargs = {"headers": {**actor.headers}}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"]["content-type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    r = await client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert {"type", "title", "status", "detail", "code"} <= problem.keys()
    assert problem["status"] == status and problem["code"] == code
    assert problem["type"].endswith(code.replace("_", "-"))
    if field:
        assert field in [e["field"] for e in problem["errors"]], problem


async def test_a_wrong_method_names_every_method_the_path_takes(client):
    ws = await make_workspace(client)
    for path in ("/api/v1/mailboxes", "/api/v1/tickets"):
        allowed = {"GET", "HEAD", "POST"}  # HEAD wherever GET
        r = await client.put(path, json={}, headers=ws.admin.headers)
        assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json", r.text
        assert set(r.headers["allow"].split(", ")) == allowed, r.headers["allow"]


async def test_failed_create_leaves_nothing_behind(client, runtime):
    """A ticket that fails late (after its number was reserved) rolls back completely."""
    ws = await make_workspace(client)
    cust = await ws.customer()
    await ws.ticket(cust)
    r = await client.post("/api/v1/tickets", headers=cust.headers,
                          json={**GOOD_TICKET, "attachment_ids": [str(uuid.uuid4())]})
    assert r.status_code == 422
    wid = uuid.UUID(ws.id)
    async with runtime.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(Ticket).where(Ticket.workspace_id == wid)) == 1
        assert await s.scalar(select(func.count()).select_from(Message).where(Message.workspace_id == wid)) == 1
        assert await s.scalar(select(Workspace.ticket_seq).where(Workspace.id == wid)) == 1
    assert (await ws.ticket(cust))["number"] == "T-000002"


async def test_failed_patch_changes_nothing(client):
    ws = await make_workspace(client)
    agent, cust = await ws.staff(), await ws.customer()
    t = await ws.ticket(cust)
    r = await client.patch(f"/api/v1/tickets/{t['id']}", headers=agent.headers,
                           json={"priority": "HIGH", "tags": ["a"], "team_id": str(uuid.uuid4())})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "team_id"
    after = (await client.get(f"/api/v1/tickets/{t['id']}", headers=agent.headers)).json()
    assert (after["priority"], after["tags"]) == ("MEDIUM", [])
    trail = (await client.get(f"/api/v1/tickets/{t['id']}/audit", headers=agent.headers)).json()
    assert not [a for a in trail if a["actor_id"] == agent.id]


async def test_duplicate_email_is_a_conflict_naming_the_field(client):
    ws = await make_workspace(client)
    body = {"name": "Same", "email": "same@example.com"}
    assert (await client.post("/api/v1/customers", json=body, headers=ws.admin.headers)).status_code == 201
    r = await client.post("/api/v1/customers", json={**body, "email": "SAME@example.com"}, headers=ws.admin.headers)
    assert r.status_code == 409 and r.json()["code"] == "email_taken" and r.json()["errors"][0]["field"] == "email"


@pytest.mark.parametrize("field", ["auto_close_hours", "queue_wait_alert_minutes", "escalation_l1_on",
                                   "escalation_l2_after_minutes", "escalation_l3_after_minutes",
                                   "fallback_category"])
async def test_settings_with_a_default_cannot_be_emptied(client, field):
    ws = await make_workspace(client)
    before = (await client.get("/api/v1/workspace/settings", headers=ws.admin.headers)).json()
    r = await client.patch("/api/v1/workspace/settings", json={"auto_close_hours": 5, field: None},
                           headers=ws.admin.headers)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0] == {"field": field, "message": "This field cannot be emptied."}
    assert (await client.get("/api/v1/workspace/settings", headers=ws.admin.headers)).json() == before
    r = await client.patch("/api/v1/workspace/settings", json={"classifier_min_confidence": None},
                           headers=ws.admin.headers)
    assert r.status_code == 200  # an optional setting: null turns it back to the built-in


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(("method", "path", "raw", "field"), [
    # A lone UTF-16 surrogate: valid JSON, but no text; it can be neither stored nor rendered.
    ("POST", "/api/v1/customers", rb'{"name":"s","email":"sur2@x.example.com","metadata":{"k":"x\ud800y"}}',
     "metadata.k"),
    ("POST", "/api/v1/customers", rb'{"name":"s","email":"sur2@x.example.com","metadata":{"o":[1,{"k":"\udfff"}]}}',
     "metadata.o.1.k"),
    ("POST", "/api/v1/customers", rb'{"name":"s","email":"sur2@x.example.com","metadata":{"o":{"k\ud800":1}}}',
     "metadata.o.k\ufffd.[key]"),
    ("PATCH", "/api/v1/customers/{customer}", rb'{"metadata":{"k":"x\ud800"}}', "metadata.k"),
    ("POST", "/api/v1/notification-templates/reply_to_customer/en/preview",
     rb'{"context":{"recipient_name":"x\ud800y"}}', "context.recipient_name"),
    # Nested past 32 levels (orjson stops at 255): named where it first goes too deep.
    ("POST", "/api/v1/customers", b'{"name":"d","email":"dp254@a.example.com","metadata":{"k":' + _nested(254) + b"}}",
     "metadata.k" + ".0" * 31),
    ("POST", "/api/v1/customers", b'{"name":"d","email":"dp900@a.example.com","metadata":{"k":' + _nested(900)
     + b"}}", "metadata.k" + ".0" * 31),
    ("POST", "/api/v1/customers", b'{"name":"d","email":"dp33@a.example.com","metadata":{"o":[1,{"k":'
     + _nested(30) + b"}]}}", "metadata.o.1.k" + ".0" * 29),
    ("PATCH", "/api/v1/customers/{customer}", b'{"metadata":{"k":' + _nested(254) + b"}}", "metadata.k" + ".0" * 31),
    ("POST", "/api/v1/notification-templates/reply_to_customer/en/preview",
     b'{"context":{"k":' + _nested(100) + b"}}", "context.k" + ".0" * 31),
])
async def test_free_form_json_that_cannot_be_stored_is_refused_where_it_is(client, method, path, raw, field):
    """Free-form JSON is stored and sent on as it is: what no store or renderer takes is a
    422 naming the place, not a 500 when it is written, and nothing is changed."""
    ws = await make_workspace(client)
    cust = await ws.customer(login=False, metadata={"k": "kept"})
    r = await client.request(method, path.format(customer=cust.customer_id), content=raw,
                             headers={**ws.admin.headers, "content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    customers = (await client.get("/api/v1/customers", headers=ws.admin.headers)).json()["items"]
    assert [(c["email"], c["metadata"]) for c in customers] == [(cust.email, {"k": "kept"})]


async def test_free_form_json_at_the_depth_limit_is_kept(client):
    ws = await make_workspace(client)
    metadata: dict[str, Any] = {"k": "deep"}
    for _ in range(31):  # with "k", 32 levels below metadata
        metadata = {"k": [metadata["k"]]}
    r = await client.post("/api/v1/customers", json={"name": "d", "email": "dp32@a.example.com", "metadata": metadata},
                          headers=ws.admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == metadata


async def test_a_body_nested_past_what_the_parser_takes_is_malformed_json(client):
    ws = await make_workspace(client)
    raw = b'{"name":"d","email":"dp1k@a.example.com","metadata":{"k":' + _nested(5000) + b"}}"
    r = await client.post("/api/v1/customers", content=raw,
                          headers={**ws.admin.headers, "content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["code"] == "malformed_json" and r.json()["errors"][0]["field"] == "body", r.text

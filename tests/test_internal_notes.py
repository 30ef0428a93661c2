"""Internal notes, and anything else marked internal, never reach the customer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from factories import Actor, Workspace, make_workspace, random_id

API = "/api/v1"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["code"] == code
    return body


async def thread(client: httpx.AsyncClient, actor: Actor, ticket_ref: str, **params: Any) -> list[dict[str, Any]]:
    r = await client.get(f"{API}/tickets/{ticket_ref}/messages", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def upload(client: httpx.AsyncClient, actor: Actor, name: str, data: bytes) -> dict[str, Any]:
    r = await client.post(f"{API}/uploads", files={"file": (name, data)}, headers=actor.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def setup(client: httpx.AsyncClient) -> tuple[Workspace, Actor, Actor, dict[str, Any]]:
    ws = await make_workspace(client)
    customer = await ws.customer()
    agent = await ws.staff("agent")
    ticket = await ws.ticket(customer, subject="Refund for order A-1001")
    return ws, customer, agent, ticket


async def test_customer_never_sees_internal_notes_in_the_thread(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    r = await ws.reply(agent, ticket["id"], "We have refunded you.")
    assert r.status_code == 201, r.text
    note = await ws.reply(agent, ticket["id"], "Customer has asked for refunds 4 times this year.", internal=True)
    assert note.status_code == 201, note.text
    assert note.json()["internal"] is True
    r = await ws.reply(customer, ticket["id"], "Thanks!")
    assert r.status_code == 201, r.text

    staff_view = await thread(client, agent, ticket["id"])
    assert [m["internal"] for m in staff_view if m["author_kind"] != "system"] == [False, False, True, False]
    assert note.json()["id"] in {m["id"] for m in staff_view}

    for ref in (ticket["id"], ticket["number"]):
        customer_view = await thread(client, customer, ref)
        assert note.json()["id"] not in {m["id"] for m in customer_view}
        assert all(m["internal"] is False for m in customer_view)
        assert not any("refunds 4 times" in m["body_text"] or "refunds 4 times" in m["body_html"]
                       for m in customer_view)
        assert [m["body_text"] for m in customer_view if m["author_kind"] != "system"] == [
            "The box was crushed in transit.", "We have refunded you.", "Thanks!"]

    # Page by page, the note never slips in either.
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/tickets/{ticket['id']}/messages", params=params, headers=customer.headers)
        assert r.status_code == 200, r.text
        seen += [m["id"] for m in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["id"] for m in await thread(client, customer, ticket["id"])]
    assert note.json()["id"] not in seen


async def test_file_on_an_internal_note_is_hidden_from_the_customer(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    data = b"Chargeback history: 3 disputes " + random_id().encode()
    up = await upload(client, agent, "chargebacks.txt", data)
    note = await ws.reply(agent, ticket["id"], "See the attached history.", internal=True,
                          attachment_ids=[up["id"]])
    assert note.status_code == 201, note.text
    assert [a["id"] for a in note.json()["attachments"]] == [up["id"]]

    assert_problem(await client.get(f"{API}/attachments/{up['id']}", headers=customer.headers), 404, "not_found")
    for staff in (agent, ws.admin):
        got = await client.get(f"{API}/attachments/{up['id']}", headers=staff.headers)
        assert got.status_code == 200, got.text
        assert got.content == data
    customer_view = await thread(client, customer, ticket["id"])
    assert all(m["attachments"] == [] for m in customer_view)


async def test_customer_cannot_read_the_audit_trail(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    note = await ws.reply(agent, ticket["id"], "Escalate if they call again.", internal=True)
    assert note.status_code == 201, note.text
    for ref in (ticket["id"], ticket["number"]):
        assert_problem(await client.get(f"{API}/tickets/{ref}/audit", headers=customer.headers), 404, "not_found")
    r = await client.get(f"{API}/tickets/{ticket['id']}/audit", headers=agent.headers)
    assert r.status_code == 200, r.text
    notes = [e for e in r.json() if e["field"] == "internal_note"]
    assert [e["after"] for e in notes] == [note.json()["id"]]


@pytest.mark.parametrize("ref_kind", ["id", "number"])
async def test_customer_cannot_post_an_internal_note(client: httpx.AsyncClient, ref_kind: str) -> None:
    ws, customer, agent, ticket = await setup(client)
    data = b"attempted internal file " + random_id().encode()
    up = await upload(client, customer, "mine.txt", data)
    before = await thread(client, agent, ticket["id"])
    r = await ws.reply(customer, ticket[ref_kind], "Pretend to be staff", internal=True, attachment_ids=[up["id"]])
    assert 400 <= r.status_code < 500, r.text
    assert r.status_code in (403, 422)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await thread(client, agent, ticket["id"]) == before
    audit = (await client.get(f"{API}/tickets/{ticket['id']}/audit", headers=agent.headers)).json()
    assert not any(e["field"] == "internal_note" for e in audit)
    # The upload stayed unattached: still the customer's to use on a real reply.
    r = await ws.reply(customer, ticket["id"], "Here is the file.", attachment_ids=[up["id"]])
    assert r.status_code == 201, r.text
    assert r.json()["internal"] is False


async def test_assignment_notes_are_internal_but_status_changes_are_public(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    r = await client.patch(f"{API}/tickets/{ticket['id']}", json={"assignee_id": agent.id, "priority": "HIGH"},
                           headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ASSIGNED"

    staff_system = [m for m in await thread(client, agent, ticket["id"]) if m["author_kind"] == "system"]
    assert {m["body_text"] for m in staff_system} >= {"Assigned to an agent.", "Priority changed from MEDIUM to HIGH."}
    assert all(m["internal"] for m in staff_system)
    assert [m for m in await thread(client, customer, ticket["id"]) if m["author_kind"] == "system"] == []

    r = await ws.move(agent, ticket["id"], "IN_PROGRESS")
    assert r.status_code == 200, r.text
    r = await ws.move(agent, ticket["id"], "RESOLVED", reason="Refund issued")
    assert r.status_code == 200, r.text

    customer_view = await thread(client, customer, ticket["number"])
    system = [m["body_text"] for m in customer_view if m["author_kind"] == "system"]
    assert system == ["Status changed from OPEN to IN_PROGRESS.",  # ASSIGNED is OPEN to the customer
                      "Status changed from IN_PROGRESS to RESOLVED. Reason: Refund issued"]
    assert all(m["internal"] is False for m in customer_view)
    assert not any("Assigned to an agent" in m["body_text"] for m in customer_view)

    # Unassigning is internal too.
    r = await ws.move(agent, ticket["id"], "IN_PROGRESS")
    assert r.status_code == 200, r.text
    r = await client.patch(f"{API}/tickets/{ticket['id']}", json={"assignee_id": None}, headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "OPEN"
    texts = [m["body_text"] for m in await thread(client, customer, ticket["id"])]
    assert "Unassigned." not in texts
    assert "Unassigned." in [m["body_text"] for m in await thread(client, agent, ticket["id"])]


async def test_a_soft_deleted_message_disappears_from_the_thread(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    data = b"wrong customer's invoice " + random_id().encode()
    up = await upload(client, agent, "invoice.txt", data)
    oops = await ws.reply(agent, ticket["id"], "Oops, sent to the wrong ticket.", attachment_ids=[up["id"]])
    assert oops.status_code == 201, oops.text
    keep = await ws.reply(agent, ticket["id"], "Sorry about that.")
    assert keep.status_code == 201, keep.text
    assert (await client.get(f"{API}/attachments/{up['id']}", headers=customer.headers)).status_code == 200

    r = await client.delete(f"{API}/tickets/{ticket['number']}/messages/{oops.json()['id']}", headers=agent.headers)
    assert r.status_code == 204, r.text

    for who in (customer, agent, ws.admin):
        ids = [m["id"] for m in await thread(client, who, ticket["id"])]
        assert oops.json()["id"] not in ids
        assert keep.json()["id"] in ids
    assert_problem(await client.get(f"{API}/attachments/{up['id']}", headers=customer.headers), 404, "not_found")
    assert_problem(await client.delete(f"{API}/tickets/{ticket['id']}/messages/{oops.json()['id']}",
                                       headers=agent.headers), 404, "not_found")
    audit = (await client.get(f"{API}/tickets/{ticket['id']}/audit", headers=agent.headers)).json()
    assert [e["before"] for e in audit if e["field"] == "message_deleted"] == [oops.json()["id"]]


async def test_a_deleted_internal_note_is_gone_for_staff_too(client: httpx.AsyncClient) -> None:
    ws, customer, agent, ticket = await setup(client)
    note = await ws.reply(agent, ticket["id"], "Draft note", internal=True)
    assert note.status_code == 201, note.text
    r = await client.delete(f"{API}/tickets/{ticket['id']}/messages/{note.json()['id']}", headers=agent.headers)
    assert r.status_code == 204, r.text
    assert note.json()["id"] not in [m["id"] for m in await thread(client, agent, ticket["id"])]
    # A customer cannot delete messages at all, nor learn an internal one exists.
    own = await ws.reply(customer, ticket["id"], "My message")
    assert own.status_code == 201, own.text
    other_note = await ws.reply(agent, ticket["id"], "Another note", internal=True)
    r = await client.delete(f"{API}/tickets/{ticket['id']}/messages/{other_note.json()['id']}",
                            headers=customer.headers)
    assert_problem(r, 404, "not_found")
    assert other_note.json()["id"] in [m["id"] for m in await thread(client, agent, ticket["id"])]

"""Tenant isolation and access control, seen from the API.

Callers without a token get 401, callers with the wrong role get 403, and a record of
another workspace (or one the caller may not read) answers 404 as if it did not exist,
and stays exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from factories import PASSWORD, Actor, Workspace, make_workspace, random_id, unique

API = "/api/v1"
PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"]
    assert body["type"].startswith("https://")
    return body


def ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


async def upload(client: httpx.AsyncClient, actor: Actor, name: str, data: bytes) -> dict[str, Any]:
    r = await client.post(f"{API}/uploads", files={"file": (name, data)}, headers=actor.headers)
    assert r.status_code == 201, r.text
    return r.json()


# -- anonymous callers -----------------------------------------------------------------
ANONYMOUS = [
    ("GET", "/me", None),
    ("GET", "/tickets", None),
    ("POST", "/tickets", {"subject": "Hello", "description": "Anyone there?"}),
    ("GET", "/tickets/{id}", None),
    ("GET", "/tickets/T-000001", None),
    ("PATCH", "/tickets/{id}", {"priority": "URGENT"}),
    ("DELETE", "/tickets/{id}", None),
    ("POST", "/tickets/{id}/status", {"status": "RESOLVED"}),
    ("GET", "/tickets/{id}/audit", None),
    ("GET", "/tickets/{id}/messages", None),
    ("POST", "/tickets/{id}/messages", {"body": "hello"}),
    ("GET", "/attachments/{id}", None),
    ("GET", "/customers", None),
    ("POST", "/customers", {"name": "Eve", "email": "eve@customers.example.com"}),
    ("GET", "/customers/{id}", None),
    ("GET", "/organisations", None),
    ("GET", "/agents", None),
    ("POST", "/agents", {"name": "Eve", "email": "eve@staff.example.com", "password": PASSWORD}),
    ("GET", "/teams", None),
    ("GET", "/categories", None),
    ("GET", "/me/api-tokens", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ANONYMOUS, ids=[f"{m} {p}" for m, p, _ in ANONYMOUS])
async def test_anonymous_caller_gets_401(client: httpx.AsyncClient, method: str, path: str, body: Any) -> None:
    r = await client.request(method, API + path.format(id=random_id()), json=body)
    assert_problem(r, 401, "unauthenticated")


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-token", "Bearer rdk_notarealtoken", "Basic YWRtaW46YWRtaW4=", "Bearer ",
])
async def test_bad_credentials_get_401(client: httpx.AsyncClient, authorization: str) -> None:
    r = await client.get(f"{API}/tickets", headers={"Authorization": authorization})
    assert_problem(r, 401, "unauthenticated")


async def test_anonymous_upload_gets_401_and_stores_nothing(client: httpx.AsyncClient, runtime) -> None:
    before = sorted(p for p in runtime.settings.resolved_upload_dir.rglob("*") if p.is_file()) \
        if runtime.settings.resolved_upload_dir.exists() else []
    r = await client.post(f"{API}/uploads", files={"file": ("note.txt", b"anonymous upload " + random_id().encode())})
    assert_problem(r, 401, "unauthenticated")
    after = sorted(p for p in runtime.settings.resolved_upload_dir.rglob("*") if p.is_file()) \
        if runtime.settings.resolved_upload_dir.exists() else []
    assert after == before


# -- wrong role ------------------------------------------------------------------------
def _agent_body() -> dict[str, Any]:
    return {"name": "Mallory", "email": f"{unique('mallory')}@staff.example.com", "password": PASSWORD,
            "role": "admin"}


# (caller role, method, path, body).  {ticket}, {customer}, {agent}, {admin}, {self} are
# filled in from a fresh workspace; the caller owns {ticket} when a customer.
WRONG_ROLE = [
    ("customer", "POST", "/agents", _agent_body),
    ("customer", "GET", "/agents", None),
    ("customer", "POST", "/teams", lambda: {"name": unique("Team")}),
    ("customer", "GET", "/teams", None),
    ("customer", "GET", "/customers", None),
    ("customer", "POST", "/customers", lambda: {"name": "Other", "email": f"{unique('c')}@customers.example.com"}),
    ("customer", "PATCH", "/customers/{self}", lambda: {"name": "Renamed by myself"}),
    ("customer", "POST", "/organisations", lambda: {"name": unique("Org"), "shared_tickets": True}),
    ("customer", "GET", "/organisations", None),
    ("customer", "POST", "/categories", lambda: {"name": unique("Cat")}),
    ("customer", "PATCH", "/tickets/{ticket}", lambda: {"priority": "URGENT", "tags": ["vip"]}),
    ("customer", "DELETE", "/tickets/{ticket}", None),
    ("agent", "POST", "/agents", _agent_body),
    ("agent", "PATCH", "/agents/{admin}", lambda: {"name": "Renamed by an agent"}),
    ("agent", "POST", "/teams", lambda: {"name": unique("Team")}),
    ("agent", "POST", "/categories", lambda: {"name": unique("Cat")}),
    ("agent", "DELETE", "/tickets/{ticket}", None),
    ("agent", "DELETE", "/customers/{customer}", None),
    ("supervisor", "POST", "/agents", _agent_body),
    ("supervisor", "PATCH", "/agents/{agent}", lambda: {"role": "admin"}),
]

# A customer may not even learn that an organisation exists.
WRONG_ROLE_404 = [
    ("customer", "GET", "/organisations/{org}", None),
    ("customer", "PATCH", "/organisations/{org}", lambda: {"shared_tickets": True}),
    ("customer", "GET", "/customers/{customer}", None),
    ("customer", "GET", "/tickets/{ticket}/audit", None),
]


async def _snapshot(client: httpx.AsyncClient, ws: Workspace, refs: dict[str, str]) -> dict[str, Any]:
    """Everything the admin of the workspace can see that the cases above could touch."""
    h = ws.admin.headers
    out: dict[str, Any] = {}
    for name, path in [
        ("agents", "/agents?limit=200"), ("teams", "/teams"), ("customers", "/customers?limit=200"),
        ("organisations", "/organisations"), ("categories", "/categories"),
        ("ticket", f"/tickets/{refs['ticket']}"), ("messages", f"/tickets/{refs['ticket']}/messages"),
        ("audit", f"/tickets/{refs['ticket']}/audit"),
    ]:
        r = await client.get(API + path, headers=h)
        assert r.status_code == 200, r.text
        out[name] = r.json()
    return out


async def _role_case(client: httpx.AsyncClient, role: str) -> tuple[Workspace, Actor, dict[str, str]]:
    ws = await make_workspace(client)
    r = await client.post(f"{API}/organisations", json={"name": unique("Org")}, headers=ws.admin.headers)
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    customer = await ws.customer(login=True, organisation_id=org)
    other = await ws.customer(login=False)
    agent = await ws.staff("agent")
    caller = {"customer": customer, "agent": agent}.get(role) or await ws.staff(role)
    ticket = await ws.ticket(customer)
    refs = {"ticket": ticket["id"], "customer": other.customer_id, "self": customer.customer_id,
            "agent": agent.id, "admin": ws.admin.id, "org": org}
    return ws, caller, refs


@pytest.mark.parametrize(("role", "method", "path", "body"), WRONG_ROLE,
                         ids=[f"{r}-{m} {p}" for r, m, p, _ in WRONG_ROLE])
async def test_wrong_role_gets_403_and_changes_nothing(client: httpx.AsyncClient, role: str, method: str,
                                                       path: str, body: Any) -> None:
    ws, caller, refs = await _role_case(client, role)
    before = await _snapshot(client, ws, refs)
    r = await client.request(method, API + path.format(**refs), json=body() if body else None,
                             headers=caller.headers)
    assert_problem(r, 403, "forbidden")
    assert await _snapshot(client, ws, refs) == before


@pytest.mark.parametrize(("role", "method", "path", "body"), WRONG_ROLE_404,
                         ids=[f"{r}-{m} {p}" for r, m, p, _ in WRONG_ROLE_404])
async def test_customer_cannot_see_staff_records(client: httpx.AsyncClient, role: str, method: str,
                                                 path: str, body: Any) -> None:
    ws, caller, refs = await _role_case(client, role)
    before = await _snapshot(client, ws, refs)
    r = await client.request(method, API + path.format(**refs), json=body() if body else None,
                             headers=caller.headers)
    assert_problem(r, 404, "not_found")
    assert await _snapshot(client, ws, refs) == before


# -- another workspace -----------------------------------------------------------------
@dataclass
class World:
    a: Workspace
    b: Workspace
    agent: Actor
    customer: Actor
    refs: dict[str, str]
    attachment_bytes: bytes


async def build_world(client: httpx.AsyncClient) -> World:
    """Workspace A with one of everything; workspace B with nothing but its admin."""
    a = await make_workspace(client)
    b = await make_workspace(client)
    h = a.admin.headers
    org = (await client.post(f"{API}/organisations", json={"name": unique("Org"), "shared_tickets": True},
                             headers=h)).json()
    agent = await a.staff("agent")
    team = (await client.post(f"{API}/teams", json={"name": unique("Team"), "member_ids": [agent.id]},
                              headers=h)).json()
    category = (await client.post(f"{API}/categories", json={"name": unique("Cat"), "team_id": team["id"]},
                                  headers=h)).json()
    customer = await a.customer(login=True, organisation_id=org["id"])
    ticket = await a.ticket(customer, category_id=category["id"])
    data = b"Tracking number: " + random_id().encode()
    up = await upload(client, agent, "tracking.txt", data)
    reply = await a.reply(agent, ticket["id"], "Here is the tracking number.", attachment_ids=[up["id"]])
    assert reply.status_code == 201, reply.text
    token = await client.post(f"{API}/me/api-tokens", json={"name": "integration"}, headers=h)
    assert token.status_code == 201, token.text
    hook = await client.post(f"{API}/webhooks", headers=h, json={
        "url": "http://127.0.0.1:9/hook", "events": ["ticket.created"], "allow_private": True})
    mailbox = await client.post(f"{API}/mailboxes", headers=h, json={"address": f"{unique('help')}@acme.example.com"})
    assert hook.status_code == 201 and mailbox.status_code == 201, (hook.text, mailbox.text)
    refs = {"ticket": ticket["id"], "number": ticket["number"], "message": reply.json()["id"],
            "attachment": up["id"], "customer": customer.customer_id, "org": org["id"], "agent": agent.id,
            "team": team["id"], "category": category["id"], "token": token.json()["id"],
            "webhook": hook.json()["id"], "mailbox": mailbox.json()["id"]}
    assert all(refs.values())
    return World(a, b, agent, customer, refs, data)


async def snapshot_a(client: httpx.AsyncClient, w: World) -> dict[str, Any]:
    """What workspace A's own admin sees of every record the cases aim at."""
    h = w.a.admin.headers
    r = w.refs
    out: dict[str, Any] = {}
    for path in [f"/tickets/{r['ticket']}", f"/tickets/{r['ticket']}/messages", f"/tickets/{r['ticket']}/audit",
                 f"/customers/{r['customer']}", f"/organisations/{r['org']}", f"/agents/{r['agent']}",
                 f"/teams/{r['team']}", f"/categories/{r['category']}", "/me/api-tokens", "/webhooks", "/mailboxes"]:
        got = await client.get(API + path, headers=h)
        assert got.status_code == 200, (path, got.text)
        out[path] = got.json()
    download = await client.get(f"{API}/attachments/{r['attachment']}", headers=h)
    assert download.status_code == 200, download.text
    out["attachment"] = download.content
    return out


# (method, path, body) aimed by B's admin at A's records.
CROSS_TENANT = [
    ("GET", "/tickets/{ticket}", None),
    ("GET", "/tickets/{number}", None),
    ("PATCH", "/tickets/{ticket}", {"priority": "URGENT", "tags": ["leaked"]}),
    ("PATCH", "/tickets/{number}", {"priority": "URGENT", "tags": ["leaked"]}),
    ("DELETE", "/tickets/{ticket}", None),
    ("DELETE", "/tickets/{number}", None),
    ("POST", "/tickets/{ticket}/status", {"status": "RESOLVED", "reason": "not yours"}),
    ("POST", "/tickets/{number}/status", {"status": "RESOLVED", "reason": "not yours"}),
    ("GET", "/tickets/{ticket}/audit", None),
    ("GET", "/tickets/{number}/audit", None),
    ("GET", "/tickets/{ticket}/messages", None),
    ("GET", "/tickets/{number}/messages", None),
    ("POST", "/tickets/{ticket}/messages", {"body": "Injected reply"}),
    ("POST", "/tickets/{number}/messages", {"body": "Injected note", "internal": True}),
    ("DELETE", "/tickets/{ticket}/messages/{message}", None),
    ("DELETE", "/tickets/{number}/messages/{message}", None),
    ("GET", "/attachments/{attachment}", None),
    ("GET", "/customers/{customer}", None),
    ("PATCH", "/customers/{customer}", {"name": "Renamed from B", "password": "a brand new password"}),
    ("DELETE", "/customers/{customer}", None),
    ("GET", "/organisations/{org}", None),
    ("PATCH", "/organisations/{org}", {"name": "Renamed from B", "shared_tickets": False}),
    ("GET", "/agents/{agent}", None),
    ("PATCH", "/agents/{agent}", {"name": "Renamed from B", "role": "admin"}),
    ("GET", "/teams/{team}", None),
    ("PATCH", "/teams/{team}", {"name": "Renamed from B", "member_ids": []}),
    ("GET", "/categories/{category}", None),
    ("PATCH", "/categories/{category}", {"name": "Renamed from B", "default_priority": "URGENT"}),
    ("DELETE", "/me/api-tokens/{token}", None),
    ("PATCH", "/webhooks/{webhook}", {"url": "http://127.0.0.1:9/stolen", "allow_private": True}),
    ("DELETE", "/webhooks/{webhook}", None),
    ("PATCH", "/mailboxes/{mailbox}", {"active": False}),
    ("POST", "/mailboxes/{mailbox}/send-verification", None),
    ("POST", "/mailboxes/{mailbox}/verify", {"code": "guessed"}),
    ("DELETE", "/mailboxes/{mailbox}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CROSS_TENANT, ids=[f"{m} {p}" for m, p, _ in CROSS_TENANT])
async def test_other_workspace_record_is_404_and_unchanged(client: httpx.AsyncClient, method: str, path: str,
                                                           body: Any) -> None:
    w = await build_world(client)
    before = await snapshot_a(client, w)
    r = await client.request(method, API + path.format(**w.refs), json=body, headers=w.b.admin.headers)
    assert_problem(r, 404, "not_found")
    assert await snapshot_a(client, w) == before
    # A's API token and A's customer still work.
    assert (await client.get(f"{API}/me", headers=w.customer.headers)).status_code == 200


async def test_other_workspace_records_cannot_be_referenced(client: httpx.AsyncClient) -> None:
    w = await build_world(client)
    b = w.b
    r = await client.post(f"{API}/tickets", json={"subject": "x", "description": "y",
                                                  "requester_id": w.refs["customer"]}, headers=b.admin.headers)
    assert_problem(r, 422, "validation_failed")
    assert r.json()["errors"][0]["field"] == "requester_id"

    own = await b.ticket(b.admin)
    for field, ref in [("assignee_id", "agent"), ("team_id", "team"), ("category_id", "category")]:
        r = await client.patch(f"{API}/tickets/{own['id']}", json={field: w.refs[ref]}, headers=b.admin.headers)
        assert_problem(r, 422, "validation_failed")
        assert r.json()["errors"][0]["field"] == field
    r = await client.post(f"{API}/customers", json={"name": "X", "email": f"{unique('x')}@customers.example.com",
                                                    "organisation_id": w.refs["org"]}, headers=b.admin.headers)
    assert_problem(r, 422, "validation_failed")
    r = await client.post(f"{API}/teams", json={"name": unique("Team"), "member_ids": [w.refs["agent"]]},
                          headers=b.admin.headers)
    assert_problem(r, 422, "validation_failed")

    # A's agent cannot attach an upload of theirs to B's ticket, nor B's admin A's upload.
    fresh = await upload(client, w.agent, "fresh.txt", b"fresh upload")
    r = await b.reply(b.admin, own["id"], "With a file from A", attachment_ids=[fresh["id"]])
    assert_problem(r, 422, "validation_failed")
    assert r.json()["errors"][0]["field"] == "attachment_ids"
    messages = (await client.get(f"{API}/tickets/{own['id']}/messages", headers=b.admin.headers)).json()["items"]
    assert len(messages) == 1
    assert all(m["attachments"] == [] and "file from A" not in m["body_text"] for m in messages)
    assert (await client.get(f"{API}/tickets/{own['id']}", headers=b.admin.headers)).json()["status"] == "OPEN"


async def test_a_token_of_one_workspace_never_acts_in_another(client: httpx.AsyncClient) -> None:
    """The same email may exist in two workspaces; each sign-in only sees its own."""
    a = await make_workspace(client)
    b = await make_workspace(client)
    email = f"{unique('twin')}@customers.example.com"
    for ws in (a, b):
        r = await client.post(f"{API}/customers", json={"name": "Twin", "email": email, "password": PASSWORD},
                              headers=ws.admin.headers)
        assert r.status_code == 201, r.text
    twin_a = Actor("", email, "customer", (await a.login(email))["access_token"])
    twin_b = Actor("", email, "customer", (await b.login(email))["access_token"])
    ticket_a = await a.ticket(twin_a, subject="Ticket in A")
    ticket_b = await b.ticket(twin_b, subject="Ticket in B")
    assert_problem(await client.get(f"{API}/tickets/{ticket_a['id']}", headers=twin_b.headers), 404, "not_found")
    assert_problem(await client.get(f"{API}/tickets/{ticket_b['id']}", headers=twin_a.headers), 404, "not_found")
    assert [t["id"] for t in (await client.get(f"{API}/tickets", headers=twin_a.headers)).json()["items"]] == \
        [ticket_a["id"]]
    assert [t["id"] for t in (await client.get(f"{API}/tickets", headers=twin_b.headers)).json()["items"]] == \
        [ticket_b["id"]]


async def test_lists_never_include_another_workspaces_records(client: httpx.AsyncClient) -> None:
    w = await build_world(client)
    b = w.b
    h = b.admin.headers
    # B has records of its own, so an empty list would not pass by accident.
    b_org = (await client.post(f"{API}/organisations", json={"name": unique("Org")}, headers=h)).json()
    b_agent = await b.staff("agent")
    b_team = (await client.post(f"{API}/teams", json={"name": unique("Team")}, headers=h)).json()
    b_cat = (await client.post(f"{API}/categories", json={"name": unique("Cat")}, headers=h)).json()
    b_customer = await b.customer(login=False, organisation_id=b_org["id"])
    b_ticket = await b.ticket(b.admin, requester_id=b_customer.customer_id, assignee_id=b_agent.id)

    a_side = await client.get(f"{API}/tickets", headers=w.a.admin.headers)
    assert w.refs["ticket"] in ids(a_side.json())

    expected = {
        "/tickets?limit=200": {b_ticket["id"]},
        "/customers?limit=200": {b_customer.customer_id},
        "/agents?limit=200": {b.admin.id, b_agent.id},
        "/teams": {b_team["id"]},
        "/categories": {b_cat["id"]},
        "/organisations": {b_org["id"]},
    }
    for path, want in expected.items():
        r = await client.get(API + path, headers=h)
        assert r.status_code == 200, r.text
        assert ids(r.json()) == want, path

    r = await client.get(f"{API}/customers", params={"email": w.customer.email}, headers=h)
    assert r.json()["items"] == []
    r = await client.get(f"{API}/customers", params={"organisation_id": w.refs["org"]}, headers=h)
    assert r.json()["items"] == []


@pytest.mark.parametrize(("param", "ref"), [
    ("requester_id", "customer"), ("assignee_id", "agent"), ("team_id", "team"), ("category_id", "category"),
])
async def test_filtering_by_another_workspaces_ids_finds_nothing(client: httpx.AsyncClient, param: str,
                                                                 ref: str) -> None:
    w = await build_world(client)
    a_h = w.a.admin.headers
    # Give A's ticket an assignee and team so every filter matches it in A.
    r = await client.patch(f"{API}/tickets/{w.refs['ticket']}",
                           json={"assignee_id": w.refs["agent"], "team_id": w.refs["team"]}, headers=a_h)
    assert r.status_code == 200, r.text
    in_a = await client.get(f"{API}/tickets", params={param: w.refs[ref]}, headers=a_h)
    assert ids(in_a.json()) == {w.refs["ticket"]}
    await w.b.ticket(w.b.admin)
    in_b = await client.get(f"{API}/tickets", params={param: w.refs[ref]}, headers=w.b.admin.headers)
    assert in_b.status_code == 200, in_b.text
    assert in_b.json() == {"items": [], "next_cursor": None}


# -- customers of the same workspace ---------------------------------------------------
async def test_a_customer_cannot_reach_another_customers_ticket(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    alice = await ws.customer()
    bob = await ws.customer()
    agent = await ws.staff("agent")
    ticket = await ws.ticket(alice, subject="Alice's order")
    own = await ws.ticket(bob, subject="Bob's order")
    data = b"Alice's invoice " + random_id().encode()
    up = await upload(client, agent, "invoice.txt", data)
    assert (await ws.reply(agent, ticket["id"], "Your invoice.", attachment_ids=[up["id"]])).status_code == 201
    # RESOLVED is the one status from which a customer may move a ticket (to CLOSED),
    # so a leak in the status route would show.
    assert (await ws.move(agent, ticket["id"], "RESOLVED")).status_code == 200
    before = (await client.get(f"{API}/tickets/{ticket['id']}", headers=ws.admin.headers)).json()
    thread_before = (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=ws.admin.headers)).json()

    for ref in (ticket["id"], ticket["number"]):
        assert_problem(await client.get(f"{API}/tickets/{ref}", headers=bob.headers), 404, "not_found")
        assert_problem(await client.get(f"{API}/tickets/{ref}/messages", headers=bob.headers), 404, "not_found")
        assert_problem(await client.get(f"{API}/tickets/{ref}/audit", headers=bob.headers), 404, "not_found")
        assert_problem(await ws.move(bob, ref, "CLOSED"), 404, "not_found")
        assert_problem(await ws.reply(bob, ref, "Bob writing on Alice's ticket"), 404, "not_found")
    assert_problem(await client.get(f"{API}/attachments/{up['id']}", headers=bob.headers), 404, "not_found")
    assert_problem(await client.get(f"{API}/customers/{alice.customer_id}", headers=bob.headers), 404, "not_found")

    after = (await client.get(f"{API}/tickets/{ticket['id']}", headers=ws.admin.headers)).json()
    assert after == before
    assert after["status"] == "RESOLVED"
    thread_after = (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=ws.admin.headers)).json()
    assert thread_after == thread_before
    # Bob's reply to a closed ticket of Alice's must not have opened a follow-up either.
    r = await client.get(f"{API}/tickets", params={"requester_id": alice.customer_id}, headers=bob.headers)
    assert r.json() == {"items": [], "next_cursor": None}
    bobs = (await client.get(f"{API}/tickets", headers=bob.headers)).json()
    assert [t["id"] for t in bobs["items"]] == [own["id"]]
    alices = (await client.get(f"{API}/tickets", headers=alice.headers)).json()
    assert [t["id"] for t in alices["items"]] == [ticket["id"]]
    # Alice herself still has full access.
    got = await client.get(f"{API}/attachments/{up['id']}", headers=alice.headers)
    assert got.status_code == 200 and got.content == data
    assert (await ws.move(alice, ticket["number"], "CLOSED")).status_code == 200


@pytest.mark.parametrize("shared", [True, False])
async def test_organisation_sharing_decides_who_sees_tickets(client: httpx.AsyncClient, shared: bool) -> None:
    ws = await make_workspace(client)
    r = await client.post(f"{API}/organisations", json={"name": unique("Org"), "shared_tickets": shared},
                          headers=ws.admin.headers)
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    carol = await ws.customer(organisation_id=org)
    dave = await ws.customer(organisation_id=org)
    outsider = await ws.customer()
    t_carol = await ws.ticket(carol, subject="Carol's printer")
    t_dave = await ws.ticket(dave, subject="Dave's laptop")
    t_out = await ws.ticket(outsider, subject="Outsider's phone")
    assert t_carol["organisation_id"] == org

    for me, mine, theirs in ((carol, t_carol, t_dave), (dave, t_dave, t_carol)):
        listed = ids((await client.get(f"{API}/tickets", headers=me.headers)).json())
        got = await client.get(f"{API}/tickets/{theirs['id']}", headers=me.headers)
        thread = await client.get(f"{API}/tickets/{theirs['number']}/messages", headers=me.headers)
        if shared:
            assert listed == {mine["id"], theirs["id"]}
            assert got.status_code == 200 and got.json()["id"] == theirs["id"]
            assert thread.status_code == 200 and len(thread.json()["items"]) == 1
        else:
            assert listed == {mine["id"]}
            assert_problem(got, 404, "not_found")
            assert_problem(thread, 404, "not_found")
        assert_problem(await client.get(f"{API}/tickets/{t_out['id']}", headers=me.headers), 404, "not_found")
    assert ids((await client.get(f"{API}/tickets", headers=outsider.headers)).json()) == {t_out["id"]}

    # Flipping the switch takes effect at once.
    r = await client.patch(f"{API}/organisations/{org}", json={"shared_tickets": not shared}, headers=ws.admin.headers)
    assert r.status_code == 200 and r.json()["shared_tickets"] is (not shared)
    got = await client.get(f"{API}/tickets/{t_dave['id']}", headers=carol.headers)
    if shared:
        assert_problem(got, 404, "not_found")
    else:
        assert got.status_code == 200


async def test_leaving_a_sharing_organisation_ends_access(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    org = (await client.post(f"{API}/organisations", json={"name": unique("Org"), "shared_tickets": True},
                             headers=ws.admin.headers)).json()["id"]
    erin = await ws.customer(organisation_id=org)
    frank = await ws.customer(organisation_id=org)
    t_frank = await ws.ticket(frank)
    assert (await client.get(f"{API}/tickets/{t_frank['id']}", headers=erin.headers)).status_code == 200
    r = await client.patch(f"{API}/customers/{erin.customer_id}", json={"organisation_id": None},
                           headers=ws.admin.headers)
    assert r.status_code == 200, r.text
    assert_problem(await client.get(f"{API}/tickets/{t_frank['id']}", headers=erin.headers), 404, "not_found")
    assert ids((await client.get(f"{API}/tickets", headers=erin.headers)).json()) == set()

"""Test data made through the public API, the way a user would make it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from relaydesk.channels.verification import ascii_form

PASSWORD = "correct horse battery staple"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Actor:
    """Someone signed in: their id, their token, and (for customers) their profile id."""

    id: str
    email: str
    role: str
    token: str
    customer_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Workspace:
    client: httpx.AsyncClient
    id: str
    slug: str
    admin: Actor
    extra: dict[str, Any] = field(default_factory=dict)

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        r = await self.client.post("/api/v1/auth/login",
                                   json={"email": email, "password": password, "workspace": self.slug})
        assert r.status_code == 200, r.text
        return r.json()

    async def relogin(self, *actors: Actor) -> None:
        """After a test moves the clock past the access-token lifetime."""
        for actor in (self.admin, *actors):
            actor.token = (await self.login(actor.email))["access_token"]

    async def staff(self, role: str = "agent", **fields: Any) -> Actor:
        email = f"{unique(role)}@staff.example.com"
        body = {"name": f"{role.title()} {email[:8]}", "email": email, "password": PASSWORD, "role": role,
                "availability": "online", "max_concurrent": 50, **fields}
        r = await self.client.post("/api/v1/agents", json=body, headers=self.admin.headers)
        assert r.status_code == 201, r.text
        tokens = await self.login(email)
        return Actor(r.json()["id"], email, role, tokens["access_token"])

    async def customer(self, *, login: bool = True, **fields: Any) -> Actor:
        email = f"{unique('cust')}@customers.example.com"
        body = {"name": f"Customer {email[:9]}", "email": email, **fields}
        if login:
            body["password"] = PASSWORD
        r = await self.client.post("/api/v1/customers", json=body, headers=self.admin.headers)
        assert r.status_code == 201, r.text
        if not login:
            return Actor("", email, "customer", "", customer_id=r.json()["id"])
        tokens = await self.login(email)
        return Actor(tokens["user"]["id"], email, "customer", tokens["access_token"], customer_id=r.json()["id"])

    async def mailbox(self, address: str, *, sink: Any = None, settle: Callable[[], Awaitable[None]] | None = None,
                      **fields: Any) -> dict[str, Any]:
        """Adds a support address. Given the outbound mail sink (``mailpeers.SmtpSink``) and
        ``settle``, verifies it as its owner would, with the code of the verification email
        it received; that email is then taken out of the sink, so a test sees its own mail."""
        r = await self.client.post("/api/v1/mailboxes", json={"address": address, **fields},
                                   headers=self.admin.headers)
        assert r.status_code == 201, r.text
        if sink is None:
            return r.json()
        assert settle is not None, "the verification email is sent by a job: give settle too"
        await settle()
        message = verification_email(sink, r.json()["address"])
        r = await self.client.post(f"/api/v1/mailboxes/{r.json()['id']}/verify", headers=self.admin.headers,
                                   json={"code": message["X-Relaydesk-Verification"]})
        assert r.status_code == 200 and r.json()["verified"] is True, r.text
        sink.remove(message)
        return r.json()

    async def ticket(self, by: Actor, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": fields.pop("subject", "Parcel arrived damaged"),
                                "description": fields.pop("description", "The box was crushed in transit."),
                                **fields}
        if by.role != "customer" and "requester_id" not in body:
            body["requester_id"] = (await self.customer(login=False)).customer_id
        r = await self.client.post("/api/v1/tickets", json=body, headers=by.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def reply(self, by: Actor, ticket_id: str, body: str = "Thanks for your patience.", **fields: Any) -> httpx.Response:
        return await self.client.post(f"/api/v1/tickets/{ticket_id}/messages", json={"body": body, **fields},
                                      headers=by.headers)

    async def move(self, by: Actor, ticket_id: str, status: str, reason: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"status": status}
        if reason:
            body["reason"] = reason
        return await self.client.post(f"/api/v1/tickets/{ticket_id}/status", json=body, headers=by.headers)


async def make_workspace(client: httpx.AsyncClient, name: str | None = None) -> Workspace:
    name = name or unique("Acme")
    email = f"admin-{secrets.token_hex(4)}@acme.example.com"
    r = await client.post("/api/v1/workspaces", json={
        "name": name, "admin_name": "Ada Admin", "admin_email": email, "admin_password": PASSWORD,
    })
    assert r.status_code == 201, r.text
    data = r.json()
    ws = Workspace(client, data["workspace"]["id"], data["workspace"]["slug"],
                   Actor(data["admin"]["id"], email, "admin", ""))
    ws.admin.token = (await ws.login(email))["access_token"]
    return ws


def verification_email(sink: Any, address: str) -> Any:
    """The latest verification email the sink got for ``address`` (as a mailbox keeps it:
    an internationalised domain in Unicode; the email went to its ASCII form)."""
    to = ascii_form(address).lower()
    found = [m for m in sink.messages if m["X-Relaydesk-Verification"] and to in map(str.lower, m.rcpt_tos)]
    assert found, f"no verification email to {to}"
    return found[-1]


def random_id() -> str:
    return str(uuid.uuid4())

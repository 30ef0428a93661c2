"""Many writers at once: no "database is locked", no duplicate numbers."""

from __future__ import annotations

import asyncio

from factories import make_workspace


async def test_fifty_concurrent_ticket_creations(client):
    ws = await make_workspace(client)
    customers = [await ws.customer() for _ in range(5)]

    async def create(i):
        return await client.post("/api/v1/tickets", headers=customers[i % 5].headers,
                                 json={"subject": f"Concurrent {i}", "description": "at the same time"})

    responses = await asyncio.gather(*(create(i) for i in range(50)))
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
    numbers = sorted(int(r.json()["number"][2:]) for r in responses)
    assert numbers == list(range(1, 51))


async def test_concurrent_reads_and_writes_on_one_ticket(client):
    ws = await make_workspace(client)
    agent, cust = await ws.staff(), await ws.customer()
    t = await ws.ticket(cust)

    async def reply(i):
        who = agent if i % 2 else cust
        return await ws.reply(who, t["id"], f"message {i}")

    async def read(_):
        return await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=agent.headers)

    results = await asyncio.gather(*(reply(i) for i in range(20)), *(read(i) for i in range(20)))
    assert all(r.status_code in (200, 201) for r in results), [r.text for r in results if r.status_code >= 300]
    msgs = (await client.get(f"/api/v1/tickets/{t['id']}/messages", headers=agent.headers)).json()["items"]
    assert len([m for m in msgs if m["author_kind"] != "system"]) == 21

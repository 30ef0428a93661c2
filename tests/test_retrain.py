"""`relaydesk retrain` teaches a workspace's own categories to its classifier."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from factories import make_workspace

WHOLESALE = ["Quote for {n} units at wholesale price", "Bulk order of {n} jackets for our shop, trade discount?",
             "Reseller account: can we buy {n} pieces wholesale", "Distributor pricing for {n} units please"]
RETAIL = ["Is your store in town open on Sunday", "Opening hours of the shop near the station",
          "Can I try the boots on in your store", "Where is your nearest retail shop"]


async def test_retrain_learns_the_workspace_categories(client, runtime, settle):
    ws = await make_workspace(client)
    cats = {}
    for name in ("Wholesale", "Retail"):
        cats[name] = (await client.post("/api/v1/categories", json={"name": name}, headers=ws.admin.headers)).json()
    cust = await ws.customer(login=False)
    for i in range(24):
        name, texts = ("Wholesale", WHOLESALE) if i % 2 else ("Retail", RETAIL)
        text = texts[i % 4].format(n=50 + i)
        r = await client.post("/api/v1/tickets", headers=ws.admin.headers, json={
            "subject": text, "description": text + " thanks", "requester_id": cust.customer_id,
            "category_id": cats[name]["id"]})
        await ws.move(ws.admin, r.json()["id"], "RESOLVED")
    await settle()
    env = {**os.environ, "RELAYDESK_DATABASE_URL": runtime.settings.resolved_database_url,
           "RELAYDESK_DATA_DIR": str(runtime.settings.data_dir)}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.prefix) / "bin" / "relaydesk"), "retrain", "--workspace", ws.slug, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "Retrained on 24 tickets over 2 categories (Retail, Wholesale)" in out.decode()
    customer = await ws.customer()
    t = await ws.ticket(customer, subject="Wholesale quote", description="We need 300 units for our reseller shop")
    await settle()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["category_id"] == cats["Wholesale"]["id"]
    why = (await client.get(f"/api/v1/tickets/{t['id']}/routing", headers=ws.admin.headers)).json()
    assert why["category"]["label"] == "Wholesale" and why["category"]["source"] == "model"

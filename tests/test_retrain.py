"""`relaydesk retrain` teaches a workspace's own categories to its classifier."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from factories import make_workspace
from relaydesk.routing.classifier import load_shipped_samples
from relaydesk.routing.models import WorkspaceModel

WHOLESALE = ["Quote for {n} units at wholesale price", "Bulk order of {n} jackets for our shop, trade discount?",
             "Reseller account: can we buy {n} pieces wholesale", "Distributor pricing for {n} units please"]
RETAIL = ["Is your store in town open on Sunday", "Opening hours of the shop near the station",
          "Can I try the boots on in your store", "Where is your nearest retail shop"]
RETURNS = ["I want to send back the {n} boots, they do not fit", "Return label for order {n} please",
           "How do I return a jacket from order {n}", "Refund for the returned parcel {n}"]


async def test_retrain_learns_the_workspace_categories_once_there_are_enough_to_check_it(client, runtime, settle):
    """Too few resolved tickets, overall or in one category, to check a new model on held-out
    ones: refused, saying what is missing, and the model in use stays. With enough it learns
    the workspace's own categories and says how it did against the one it replaces."""
    ws = await make_workspace(client)
    cats = {}
    for name in ("Wholesale", "Retail", "Returns"):
        cats[name] = (await client.post("/api/v1/categories", json={"name": name}, headers=ws.admin.headers)).json()
    cust = await ws.customer(login=False)
    made = 0

    async def resolved(name: str, texts: list[str], count: int) -> None:
        nonlocal made
        for _ in range(count):
            text = texts[made % 4].format(n=50 + made)
            made += 1
            r = await client.post("/api/v1/tickets", headers=ws.admin.headers, json={
                "subject": text, "description": text + " thanks", "requester_id": cust.customer_id,
                "category_id": cats[name]["id"]})
            await ws.move(ws.admin, r.json()["id"], "RESOLVED")
        await settle()

    async def model_of_its_own() -> bool:
        async with runtime.db.read_session() as session:
            return await session.get(WorkspaceModel, uuid.UUID(ws.id)) is not None

    await resolved("Wholesale", WHOLESALE, 12)
    await resolved("Retail", RETAIL, 12)
    code, out, err = await _retrain(runtime, "--workspace", ws.slug)
    assert code == 1, out + err
    assert "Cannot retrain: too few resolved tickets to check a new model" in err, err
    assert "needs at least 50 with a confirmed category, at least 5 in each of at least 2 categories; " \
           "this workspace has 24 in 2. The model in use stays." in " ".join(err.split()), err
    assert not await model_of_its_own()

    await resolved("Wholesale", WHOLESALE, 14)
    await resolved("Retail", RETAIL, 14)
    await resolved("Returns", RETURNS, 2)
    code, out, err = await _retrain(runtime, "--workspace", ws.slug)
    assert code == 1 and "this workspace has 54 in 3, too few in Returns (2)." in " ".join(err.split()), out + err
    assert not await model_of_its_own()

    await resolved("Returns", RETURNS, 3)
    code, out, err = await _retrain(runtime, "--workspace", ws.slug)
    assert code == 0, out + err
    assert "Retrained on 57 tickets over 3 categories (Retail, Returns, Wholesale); held-out accuracy " in out, out
    assert "(the model it replaces: " in out and await model_of_its_own()
    customer = await ws.customer()
    t = await ws.ticket(customer, subject="Wholesale quote", description="We need 300 units for our reseller shop")
    await settle()
    got = (await client.get(f"/api/v1/tickets/{t['id']}", headers=ws.admin.headers)).json()
    assert got["category_id"] == cats["Wholesale"]["id"]
    why = (await client.get(f"/api/v1/tickets/{t['id']}/routing", headers=ws.admin.headers)).json()
    assert why["category"]["label"] == "Wholesale" and why["category"]["source"] == "model"


async def _retrain(runtime, *args):  # noqa: ANN001, ANN202
    env = {**os.environ, "RELAYDESK_DATABASE_URL": runtime.settings.resolved_database_url,
           "RELAYDESK_DATA_DIR": str(runtime.settings.data_dir)}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.prefix) / "bin" / "relaydesk"), "retrain", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_a_model_that_does_worse_is_not_switched_to_and_one_can_go_back(client, runtime, settle):
    """Sixty tickets, ten of each shipped category: too few for a model of their own to beat
    the shipped one, which retrain measures on held-out tickets and refuses; --force switches
    anyway and --revert goes back."""
    ws = await make_workspace(client)
    rows = load_shipped_samples()
    cats = {}
    for label in ("BILLING", "TECHNICAL", "RETURNS", "SHIPPING", "ACCOUNT", "GENERAL"):
        cats[label] = (await client.post("/api/v1/categories", json={"name": label.title()},
                                         headers=ws.admin.headers)).json()["id"]
    cust = await ws.customer(login=False)
    for label in cats:
        for subject, description, _ in [r for r in rows if r[2] == label and r[0].strip()][:10]:
            r = await client.post("/api/v1/tickets", headers=ws.admin.headers, json={
                "subject": subject, "description": description, "requester_id": cust.customer_id,
                "category_id": cats[label]})
            assert r.status_code == 201, r.text
            await ws.move(ws.admin, r.json()["id"], "RESOLVED")
    await settle()
    code, out, err = await _retrain(runtime, "--workspace", ws.slug)
    assert code == 3, out + err
    assert "Not switched: the new model scored" in out and "Use --force" in out
    async with runtime.db.read_session() as session:
        assert await session.get(WorkspaceModel, uuid.UUID(ws.id)) is None
    code, out, _ = await _retrain(runtime, "--workspace", ws.slug, "--force")
    assert code == 0 and "held-out accuracy" in out and "the model it replaces" in out, out
    async with runtime.db.read_session() as session:
        assert await session.get(WorkspaceModel, uuid.UUID(ws.id)) is not None
    code, out, _ = await _retrain(runtime, "--workspace", ws.slug, "--revert")
    assert (code, out.strip().splitlines()[-1]) == (0, "Back to the shipped model."), out
    async with runtime.db.read_session() as session:
        assert await session.get(WorkspaceModel, uuid.UUID(ws.id)) is None

"""Health, readiness, metrics, request ids, the OpenAPI document and the schema."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from factories import make_workspace
from relaydesk.migrate import current_revision, head_revision
from relaydesk.models import metadata


async def downgrade(db, revision: str) -> None:  # noqa: ANN001
    """Takes ``db`` back to ``revision``, as ``alembic downgrade`` would."""
    from alembic import command

    from relaydesk.migrate import alembic_config

    def down(connection) -> None:  # noqa: ANN001
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    async with db.write_engine.begin() as conn:
        await conn.run_sync(down)


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/widget.js", "/api/v1/openapi.json"])
async def test_head_is_answered_wherever_get_is(client, path):
    """Uptime checks and load balancers probe with HEAD: the GET's status and headers, no body."""
    got = await client.get(path)
    r = await client.head(path)
    assert r.status_code == got.status_code == 200, r.text
    assert r.content == b"" and r.headers["content-type"] == got.headers["content-type"]
    assert r.headers["content-length"] == str(len(got.content))


async def test_head_on_a_path_without_get_is_405_naming_what_it_takes(client):
    r = await client.head("/api/v1/auth/login")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    ws = await make_workspace(client)
    r = await client.head("/api/v1/tickets", headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == b""
    r = await client.put("/api/v1/tickets", headers=ws.admin.headers)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"


async def test_readiness_fails_when_the_database_is_unreachable(tmp_path):
    import httpx

    from conftest import test_settings
    from relaydesk.app import create_app
    from relaydesk.runtime import build_runtime

    missing = tmp_path / "no-such-dir" / "db.sqlite"
    rt = build_runtime(test_settings(tmp_path, f"sqlite:///{missing}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://x") as c:
        r = await c.get("/readyz")
        assert (await c.get("/healthz")).status_code == 200
    await rt.close()
    assert r.status_code == 503 and r.json()["code"] == "not_ready"


async def test_readiness_fails_while_the_schema_is_behind_the_code(tmp_path):
    """A server started before `relaydesk migrate` is not ready: it says which revision the
    database is at and which one the code needs. Once the schema is current a probe costs
    no more than before, since the schema cannot move back under a running server."""
    import httpx
    from sqlalchemy import event

    from conftest import test_settings
    from relaydesk.app import create_app
    from relaydesk.migrate import upgrade
    from relaydesk.runtime import build_runtime

    rt = build_runtime(test_settings(tmp_path, f"sqlite:///{tmp_path / 'behind.sqlite'}"))
    seen: list[str] = []
    event.listen(rt.db.read_engine.sync_engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: seen.append(statement))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://x") as c:
            empty = await c.get("/readyz")
            await upgrade(rt.db, "0014")
            behind = await c.get("/readyz")
            await upgrade(rt.db)
            current = await c.get("/readyz")
            seen.clear()
            again = await c.get("/readyz")
    finally:
        await rt.close()
    assert empty.status_code == 503 and empty.json()["code"] == "schema_behind", empty.text
    assert "none (an empty database)" in empty.json()["detail"]
    assert behind.status_code == 503 and behind.headers["content-type"] == "application/problem+json"
    assert behind.json()["detail"] == (f"The database schema is at revision 0014, the code needs {head_revision()}: "
                                       "run `relaydesk migrate`.")
    assert (behind.json()["schema_revision"], behind.json()["required_revision"]) == ("0014", head_revision())
    assert current.status_code == 200 and again.status_code == 200
    assert [s for s in seen if s not in ("BEGIN", "ROLLBACK")] == ["SELECT 1"], seen


async def test_the_data_dir_and_a_new_database_are_for_their_owner_only(tmp_path):
    """The SQLite file holds every workspace's data: other users on the machine may not read
    it, nor its WAL, nor anything else in the data dir."""
    import stat

    from relaydesk.config import Settings
    from relaydesk.migrate import upgrade
    from relaydesk.runtime import build_runtime

    data = tmp_path / "data"
    runtime = build_runtime(Settings(data_dir=data, database_url=None, password_hash_time_cost=1,
                                     password_hash_memory_kib=1024))
    try:
        await upgrade(runtime.db)  # its connection stays in the pool: the -wal and -shm files stay
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (data, *data.iterdir())}
    finally:
        await runtime.close()
    assert modes == {"data": 0o700, "relaydesk.db": 0o600, "relaydesk.db-wal": 0o600, "relaydesk.db-shm": 0o600,
                     "secret_key": 0o600}, {name: oct(mode) for name, mode in modes.items()}


async def test_metrics_count_requests_by_route_and_tickets_created(client):
    ws = await make_workspace(client)
    cust = await ws.customer()
    t = await ws.ticket(cust)
    await client.get(f"/api/v1/tickets/{t['id']}", headers=cust.headers)
    text = (await client.get("/metrics")).text
    assert 'relaydesk_http_requests_total{method="GET",route="/api/v1/tickets/{ticket_ref}",status="200"}' in text
    assert 'relaydesk_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/tickets"}' in text
    assert 'relaydesk_tickets_created_total{channel="web"}' in text
    assert t["id"] not in text  # ids never become label values

    def created(channel: str, metrics: str) -> float:
        line = next((x for x in metrics.splitlines() if x.startswith(f'relaydesk_tickets_created_total{{channel="{channel}"}}')), None)
        return float(line.split()[-1]) if line else 0.0

    # Tickets from the other channels count too, not only those made through POST /tickets.
    before = created("chat", text)
    r = await client.post(f"/api/v1/chat/{ws.slug}/conversations",
                          json={"name": "Lan", "email": "lan@visitors.example.com", "message": "Hello?"})
    assert r.status_code == 201, r.text
    assert created("chat", (await client.get("/metrics")).text) == before + 1


async def test_request_id_is_returned_and_honoured(client):
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/healthz", headers={"X-Request-ID": "lb-abc-123"})
    assert r.headers["x-request-id"] == "lb-abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert r.headers["x-request-id"] != "bad id\nwith newline"


async def test_a_500_carries_its_request_id_in_the_header_and_the_log(app, client, capsys):
    """Whoever reports an error quotes its id; the operator finds the traceback by it."""
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/test-boom", boom)
    capsys.readouterr()
    r = await client.get("/api/v1/test-boom", headers={"X-Request-ID": "qa-req-500"})
    assert r.status_code == 500 and r.json()["code"] == "internal_error", r.text
    assert r.headers["x-request-id"] == "qa-req-500"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [error] = [line for line in logged if line["event"] == "unhandled_error"]
    assert error["request_id"] == "qa-req-500" and "RuntimeError: a bug" in error["exception"], error


async def test_openapi_describes_every_route_with_examples(client, app):
    spec = (await client.get("/api/v1/openapi.json")).json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for route in app.routes:
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            if route.path.startswith("/api/v1/") and "openapi" not in route.path and "docs" not in route.path:
                assert (method, route.path) in routes
    json_bodies = [op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                   for ops in spec["paths"].values() for op in ops.values()
                   if "application/json" in op.get("requestBody", {}).get("content", {})]
    assert len(json_bodies) > 15
    for name in json_bodies:
        assert spec["components"]["schemas"][name].get("examples"), f"{name} has no example"
    assert all(op.get("summary") for ops in spec["paths"].values() for op in ops.values())


async def test_the_api_docs_page_loads_nothing_from_other_sites(client):
    """Offline, or behind a firewall, a page that loads Swagger UI from a CDN is blank."""
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', page.text)
    assert {a.rsplit(".", 1)[-1] for a in assets} >= {"js", "css"}, assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), f"{asset} is not on this site"
        got = await client.get(asset)
        assert got.status_code == 200 and got.content, asset
    assert "SwaggerUIBundle(" in page.text and "/api/v1/openapi.json" in page.text


async def test_migrations_are_at_head_and_match_the_models(runtime):
    assert await current_revision(runtime.db) == head_revision()
    async with runtime.db.read_engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(
            MigrationContext.configure(c, opts={"compare_type": True}), metadata))
    assert diff == [], f"models and migrations disagree; write a migration: {diff}"


@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)  # SQLite has no server to close them
async def test_connections_the_database_server_closed_are_replaced_without_a_failed_request(client, runtime):
    ws = await make_workspace(client)
    for _ in range(3):  # a few requests, so the pool holds idle connections
        assert (await client.get("/api/v1/me", headers=ws.admin.headers)).status_code == 200
    # As when PostgreSQL restarts: every other connection to this database is closed.
    admin = await asyncpg.connect(runtime.db.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        closed = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await admin.close()
    assert closed >= 1
    await asyncio.sleep(0.1)  # the event loop reads the closed sockets
    for _ in range(3):
        r = await client.get("/api/v1/me", headers=ws.admin.headers)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("RELAYDESK_JOBS_AHEAD", "0", "RELAYDESK_JOBS_AHEAD: Input should be greater than or equal to 1"),
    ("DATABASE_URL", "mysql://app:hunter2@db/helpdesk", "DATABASE_URL: must be a PostgreSQL URL"),
    ("RELAYDESK_ENV", "production", "RELAYDESK_SECRET_KEY must be set when RELAYDESK_ENV=production"),
    ("RELAYDESK_LOG_LEVEL", "LOUD", "RELAYDESK_LOG_LEVEL: Input should be 'DEBUG', 'INFO'"),
    ("REDIS_URL", "http://cache:6379", "REDIS_URL: must be a Redis URL"),
    ("RELAYDESK_PASSWORD_HASH_MEMORY_KIB", "1", "RELAYDESK_PASSWORD_HASH_MEMORY_KIB: Input should be greater than"),
    ("RELAYDESK_SLA_SCAN_SECONDS", "0", "RELAYDESK_SLA_SCAN_SECONDS: Input should be greater than 0"),
])
def test_a_bad_setting_is_named_without_a_traceback(tmp_path, variable, value, says):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300", variable: value})
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "relaydesk"), "migrate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"Configuration error: {says}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize(("files", "says"), [
    ({"CERT": "cert.pem"}, "RELAYDESK_SMTP_LISTEN_TLS_KEY must be set too"),
    ({"KEY": "key.pem"}, "RELAYDESK_SMTP_LISTEN_TLS_CERT must be set too"),
    ({"CERT": "missing.pem", "KEY": "key.pem"}, "RELAYDESK_SMTP_LISTEN_TLS_CERT: cannot read"),
    ({"CERT": "cert.pem", "KEY": "garbage.pem"}, "RELAYDESK_SMTP_LISTEN_TLS_CERT / _KEY: not a certificate"),
], ids=["cert-alone", "key-alone", "unreadable", "invalid"])
def test_a_listener_certificate_that_cannot_be_used_is_named_without_a_traceback(tmp_path, files, says):
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n")
    (tmp_path / "garbage.pem").write_text("garbage")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300"})
    env.update({f"RELAYDESK_SMTP_LISTEN_TLS_{which}": str(tmp_path / name) for which, name in files.items()})
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "relaydesk"), "migrate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"Configuration error: {says}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [
    ["migrate"], ["seed-demo"], ["create-workspace", "--name", "Acme", "--admin-email", "admin@acme.example"],
    ["create-user", "--workspace", "acme", "--email", "a@acme.example", "--name", "A"],
    ["retrain", "--workspace", "acme"], ["failed-events"], ["seed-load", "--tickets", "1"],
])
def test_a_database_that_cannot_be_reached_is_named_without_a_traceback(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300",
                "DATABASE_URL": "postgresql://relaydesk:hunter2@127.0.0.1:1/helpdesk",
                "RELAYDESK_ADMIN_PASSWORD": "a long passphrase", "RELAYDESK_USER_PASSWORD": "a long passphrase"})
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "relaydesk"), *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Cannot reach the database (DATABASE_URL)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [["failed-events"],
                                     ["create-workspace", "--name", "Acme", "--admin-email", "admin@acme.example"]])
def test_a_command_run_before_migrate_says_to_migrate(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300",
                "RELAYDESK_ADMIN_PASSWORD": "a long passphrase"})
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "relaydesk"), *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no schema yet" in done.stderr and "relaydesk migrate" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


async def test_an_unexpected_error_is_answered_and_the_connection_stays_usable(app):
    """A 500 is a problem+json answer, logged once; the client's keep-alive connection
    then carries its next request as usual (uvicorn used to drop it after a 500)."""
    import http.client

    from httppeers import served

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/test-boom", boom)

    def two_requests_on_one_connection(port: int) -> list[tuple[int, str, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answers = []
        for path in ("/api/v1/test-boom", "/healthz"):
            conn.request("GET", path)
            response = conn.getresponse()
            answers.append((response.status, response.getheader("content-type"), response.read()))
        conn.close()
        return answers

    async with served(app) as port:
        failed, healthy = await asyncio.to_thread(two_requests_on_one_connection, port)
    assert failed[0] == 500 and failed[1] == "application/problem+json" and b"internal_error" in failed[2]
    assert healthy == (200, "application/json", b'{"status":"ok"}')


async def test_an_operator_lists_and_retries_the_reactions_that_failed_every_try(tmp_path):
    """`relaydesk failed-events` shows what the job queue gave up on; `--retry` runs it now."""
    import uuid
    from datetime import UTC, datetime

    from relaydesk.config import Settings
    from relaydesk.core.outbox import FailedConsumption
    from relaydesk.runtime import build_runtime

    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300", "RELAYDESK_ADMIN_PASSWORD": "a long passphrase"})
    relaydesk = str(Path(sys.prefix) / "bin" / "relaydesk")

    def run(*args: str) -> str:
        done = subprocess.run([relaydesk, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    run("migrate")
    workspaces = {}
    for name in ("Acme", "Globex"):
        created = run("create-workspace", "--name", name, "--admin-email", f"admin@{name.lower()}.example")
        workspaces[name.lower()] = uuid.UUID(created.rsplit("id ", 1)[1].split(")")[0])

    # What the job queue keeps when routing a new ticket failed on every try (the ticket
    # was deleted since, so the retry has nothing left to do but finish).
    runtime = build_runtime(Settings(data_dir=tmp_path))
    try:
        async with runtime.db.write_session() as session:
            for event_id, workspace_id in ((7, workspaces["acme"]), (8, workspaces["globex"])):
                session.add(FailedConsumption(
                    consumer="routing.on_ticket_created", event_id=event_id, workspace_id=workspace_id,
                    event={"id": event_id, "workspace_id": str(workspace_id), "type": "ticket.created",
                           "payload": {"ticket_id": str(uuid.uuid4())}},
                    attempts=6, error="RuntimeError: routing settings unreadable\n[SQL: SELECT a long statement]",
                    failed_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC), next_attempt_at=None))
            await session.commit()
    finally:
        await runtime.close()

    listed = run("failed-events")
    assert "routing.on_ticket_created" in listed and "ticket.created #7" in listed
    assert "RuntimeError: routing settings unreadable" in listed and "by hand" in listed
    assert "[SQL:" not in listed  # the first line says it; the log has the rest
    # Each names its workspace, and the list can be narrowed to one.
    rows = {line.split("│")[4].strip(): line.split("│")[2].strip() for line in listed.splitlines()
            if "ticket.created #" in line}
    assert rows == {"ticket.created #7": "acme", "ticket.created #8": "globex"}, listed
    only = run("failed-events", "--workspace", "globex")
    assert "ticket.created #8" in only and "ticket.created #7" not in only
    assert "1 done, 0 failed again." in run("failed-events", "--workspace", "acme", "--retry")
    assert "No failed reactions in workspace 'acme'." in run("failed-events", "--workspace", "acme")
    done = subprocess.run([relaydesk, "failed-events", "--workspace", "initech"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "No workspace 'initech'." in done.stderr, done.stderr
    assert "1 done, 0 failed again." in run("failed-events", "--retry")
    assert "No failed reactions." in run("failed-events")


async def test_the_priority_keyword_migration_keeps_what_each_workspace_had(tmp_path):
    """Revision 0011 changed what a workspace's stored keyword list means (it replaced the
    built-in keywords; it now changes them). Upgrading and downgrading both keep the
    keywords in effect: none of the built-ins the list left out comes back. (Built-ins
    added since, the Vietnamese ones, apply there as in every workspace.)"""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from relaydesk.core.db import Database
    from relaydesk.migrate import upgrade
    from relaydesk.routing.priority import DEFAULT_KEYWORDS, keywords_in_effect
    from relaydesk.tenancy.models import Workspace

    db = Database(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
    table = Workspace.__table__
    had = {"refund": "HIGH", "Urgent": "URGENT", "website down": "HIGH"}  # the built-ins left out

    async def stored() -> dict:
        async with db.read_engine.connect() as conn:
            return (await conn.scalar(select(table.c.settings)))["priority_keywords"]

    try:
        await upgrade(db, "0010")
        async with db.write_engine.begin() as conn:
            await conn.execute(insert(table).values(
                id=uuid.uuid4(), name="Old desk", slug="old-desk", ticket_seq=0,
                settings={"priority_keywords": had}, created_at=datetime.now(UTC)))
        await upgrade(db, "0011")
        added_since = {k for k in DEFAULT_KEYWORDS if not k.isascii()}
        assert {k: v for k, v in keywords_in_effect(await stored()).items() if k not in added_since} == had
        assert "outage" not in keywords_in_effect(await stored())

        await downgrade(db, "0010")
        assert await stored() == had
    finally:
        await db.dispose()


async def test_the_channel_user_id_migration_indexes_the_handles_customers_had(tmp_path):
    """Revision 0016 moved the platform id a social message is matched by out of the
    customers' metadata into an indexed column: the handles already stored come along."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from relaydesk.core.db import Database
    from relaydesk.customers.models import Customer
    from relaydesk.migrate import upgrade
    from relaydesk.tenancy.models import Workspace

    db = Database(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
    workspace_id, at = uuid.uuid4(), datetime.now(UTC)
    metadata = {"with": {"channel_user_id": "wa:4477", "order": 12}, "without": {"order": 13}, "empty": {}}
    try:
        await upgrade(db, "0015")
        async with db.write_engine.begin() as conn:
            await conn.execute(insert(Workspace.__table__).values(
                id=workspace_id, name="Old desk", slug="old-desk", ticket_seq=0, settings={}, created_at=at))
            for name, attributes in metadata.items():
                await conn.execute(insert(Customer.__table__).values(
                    id=uuid.uuid4(), workspace_id=workspace_id, name=name, email=f"{name}@example.com",
                    tier="standard", language="en", timezone="UTC", metadata=attributes,
                    created_at=at, updated_at=at))
        await upgrade(db)
        async with db.read_engine.connect() as conn:
            rows = dict((await conn.execute(select(Customer.__table__.c.name, Customer.__table__.c.channel_user_id))).all())
        assert rows == {"with": "wa:4477", "without": None, "empty": None}
    finally:
        await db.dispose()


async def test_the_own_time_zone_migration_lets_those_given_utc_take_the_workspaces(tmp_path):
    """Revision 0020: UTC was what a profile without a time zone was given, so it becomes
    none (the workspace's zone, UTC until one is set); a zone someone chose stays."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from relaydesk.core.db import Database
    from relaydesk.customers.models import Customer
    from relaydesk.migrate import upgrade
    from relaydesk.tenancy.models import Workspace

    db = Database(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
    workspace_id, at = uuid.uuid4(), datetime.now(UTC)
    customers = Customer.__table__

    async def zones() -> dict:
        async with db.read_engine.connect() as conn:
            return dict((await conn.execute(select(customers.c.name, customers.c.timezone))).all())

    try:
        await upgrade(db, "0019")
        async with db.write_engine.begin() as conn:
            await conn.execute(insert(Workspace.__table__).values(
                id=workspace_id, name="Old desk", slug="old-desk", ticket_seq=0, settings={}, created_at=at))
            for name, zone in (("given", "UTC"), ("chose", "Europe/Berlin")):
                await conn.execute(insert(customers).values(
                    id=uuid.uuid4(), workspace_id=workspace_id, name=name, email=f"{name}@example.com",
                    tier="standard", language="en", timezone=zone, metadata={}, created_at=at, updated_at=at))
        await upgrade(db)
        assert await zones() == {"given": None, "chose": "Europe/Berlin"}

        await downgrade(db, "0019")
        assert await zones() == {"given": "UTC", "chose": "Europe/Berlin"}
    finally:
        await db.dispose()


async def test_the_mailbox_verification_migration_leaves_every_address_unverified_and_claimable(tmp_path):
    """Revision 0017: nothing ever proved a workspace owns its mailbox addresses, so the
    existing ones start unverified, and another workspace may claim them too; an address
    stays one verified workspace's. Going back keeps one claim per address: the verified one."""
    import uuid
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from sqlalchemy import insert, select, update
    from sqlalchemy.exc import IntegrityError

    from relaydesk.core.db import Database
    from relaydesk.migrate import upgrade
    from relaydesk.tenancy.models import Workspace

    db = Database(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
    # The columns of revision 0016/0017, not the model's: later revisions add more.
    boxes = sa.table("mailboxes", sa.column("id", sa.Uuid()), sa.column("workspace_id", sa.Uuid()),
                     sa.column("address", sa.String()), sa.column("imap_tls", sa.Boolean()),
                     sa.column("imap_folder", sa.String()), sa.column("active", sa.Boolean()),
                     sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("verified_at", sa.DateTime(timezone=True)))
    at = datetime.now(UTC)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def mailbox(workspace_id: uuid.UUID) -> dict:
        return {"id": uuid.uuid4(), "workspace_id": workspace_id, "address": "support@bigshop.example",
                "imap_tls": True, "imap_folder": "INBOX", "active": True, "created_at": at}

    try:
        await upgrade(db, "0016")
        async with db.write_engine.begin() as conn:
            for workspace_id in (first, second, third):
                await conn.execute(insert(Workspace.__table__).values(
                    id=workspace_id, name="Desk", slug=workspace_id.hex, ticket_seq=0, settings={}, created_at=at))
            await conn.execute(insert(boxes).values(mailbox(first)))
        await upgrade(db)
        async with db.write_engine.begin() as conn:
            assert (await conn.execute(select(boxes.c.verified_at))).scalars().all() == [None]
            claim = mailbox(second)
            await conn.execute(insert(boxes).values(claim))
            await conn.execute(update(boxes).where(boxes.c.id == claim["id"]).values(verified_at=at))
        with pytest.raises(IntegrityError):  # a second verified holder of the address
            async with db.write_engine.begin() as conn:
                await conn.execute(insert(boxes).values({**mailbox(third), "verified_at": at}))

        await downgrade(db, "0016")
        async with db.read_engine.connect() as conn:
            assert (await conn.execute(select(boxes.c.workspace_id))).scalars().all() == [second]
    finally:
        await db.dispose()


async def test_migrations_started_at_once_on_postgresql_all_succeed(tmp_path):
    """Replicas that each migrate on start: the first upgrades, the others wait and find
    the schema up to date."""
    from conftest import _create_pg_database, _drop_pg_database

    pg_url = await _create_pg_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300", "DATABASE_URL": pg_url})
    try:
        running = [subprocess.Popen([str(Path(sys.prefix) / "bin" / "relaydesk"), "migrate"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in running]
        for p in running:
            p.stdout.close()
            p.stderr.close()
    finally:
        await _drop_pg_database(pg_url)
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert all(f"Database schema at revision {head_revision()}" in err for _, err in outcomes), outcomes


@pytest.mark.parametrize(("command", "says"), [
    (["create-workspace", "--name", "", "--admin-email", "admin@acme.example"], "--name: String should have at least 1"),
    (["create-workspace", "--name", "A" * 500, "--admin-email", "admin@acme.example"], "--name: String should have at most 200"),
    (["create-workspace", "--name", "Acme", "--admin-email", "admin@acme.example", "--admin-name", " "],
     "--admin-name: String should have at least 1"),
    (["create-user", "--workspace", "acme", "--email", "a@acme.example", "--name", ""], "--name: String should have at least 1"),
    (["create-user", "--workspace", "acme", "--email", "a@acme.example", "--name", "B" * 300, "--role", "customer"],
     "--name: String should have at most 200"),
    (["create-user", "--workspace", "acme", "--email", "not-an-address", "--name", "B"], "--email: value is not a valid email"),
])
def test_the_command_line_checks_what_it_is_given_as_the_api_does(tmp_path, command, says):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_") and k != "DATABASE_URL"}
    env.update({"RELAYDESK_DATA_DIR": str(tmp_path), "COLUMNS": "300",
                "RELAYDESK_ADMIN_PASSWORD": "a long passphrase", "RELAYDESK_USER_PASSWORD": "a long passphrase"})
    relaydesk = str(Path(sys.prefix) / "bin" / "relaydesk")
    subprocess.run([relaydesk, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run([relaydesk, *command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert "Created" not in done.stdout


async def test_a_database_that_is_down_is_answered_503_with_when_to_retry(tmp_path):
    import httpx

    from conftest import test_settings
    from relaydesk.app import create_app
    from relaydesk.runtime import build_runtime

    rt = build_runtime(test_settings(tmp_path, "postgresql://relaydesk:hunter2@127.0.0.1:1/helpdesk"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://x") as c:
            r = await c.post("/api/v1/auth/login", json={"email": "a@acme.example", "password": "a long passphrase",
                                                         "workspace": "acme"})
    finally:
        await rt.close()
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.headers["retry-after"] == "5"
    assert r.json()["code"] == "database_unavailable" and "hunter2" not in r.text


@pytest.mark.parametrize(("error", "is_outage"), [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (OSError(113, "No route to host"), True),  # a host that is down, as asyncpg's connect raises it
    (TimeoutError(), True),  # one that swallows packets until the connect gives up
    (OSError(28, "No space left on device"), False),  # a fault of this machine, not an outage: stays a 500
    (ValueError("not a database matter"), False),
])
def test_what_counts_as_the_database_being_away(error: BaseException, is_outage: bool) -> None:
    from relaydesk.core.db import unreachable

    assert unreachable(error) is is_outage


@pytest.mark.parametrize(("host", "port", "address"), [
    ("127.0.0.1", 8000, "http://127.0.0.1:8000"), ("0.0.0.0", 9123, "http://0.0.0.0:9123"),
    ("::1", 9123, "http://[::1]:9123"), ("helpdesk.internal", 80, "http://helpdesk.internal:80"),
])
def test_the_demo_logins_give_the_address_serve_listens_at(tmp_path, capsys, host, port, address):
    """`seed-demo` (and `make run`'s first start) say where to sign in: RELAYDESK_HOST and
    RELAYDESK_PORT, written as a URL."""
    from relaydesk.config import Settings
    from relaydesk.seeding.demo import Login, print_logins

    print_logins([Login("admin", "Ada", "admin@demo.example.com", "pw")], Settings(data_dir=tmp_path, host=host,
                                                                                  port=port))
    out = capsys.readouterr().out
    assert f"POST {address}/api/v1/auth/login" in out and f"API docs at {address}/api/v1/docs" in out, out

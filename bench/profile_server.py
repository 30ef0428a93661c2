"""Where does the server's time go?  Runs one load (ticket creation or a list page) against a
fresh ``relaydesk serve`` while py-spy samples the server, then sums the samples by library
and by function.

Needs py-spy in the venv (``.venv/bin/pip install py-spy``; it is not a project dependency).

    .venv/bin/python bench/profile_server.py create [--postgres] [--clients 16] [--seconds 15]
    .venv/bin/python bench/profile_server.py list [--tickets 100000] [--filtered]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    VENV_BIN,
    ScratchDatabase,
    ScratchDir,
    Server,
    base_env,
    closed_loop,
    run_cli,
    wait_idle,
)

from relaydesk.config import Settings  # noqa: E402
from relaydesk.seeding.load import issue_access_token  # noqa: E402

# (label, substring of a frame's file path); the first match wins, so order matters.
BUCKETS = [
    ("argon2 (password hashing)", "argon2"),
    ("SQLAlchemy ORM (session, flush, identity map)", "sqlalchemy/orm"),
    ("SQLAlchemy Core (compile, execute, types)", "sqlalchemy/"),
    ("aiosqlite / sqlite3", "aiosqlite"),
    ("asyncpg", "asyncpg"),
    ("pydantic", "pydantic"),
    ("FastAPI", "fastapi"),
    ("Starlette", "starlette"),
    ("uvicorn / httptools", "uvicorn"),
    ("structlog", "structlog"),
    ("prometheus_client", "prometheus_client"),
    ("PyJWT", "jwt/"),
    ("nh3 / sanitising", "sanitize"),
    ("relaydesk (own code)", "relaydesk/"),
    ("asyncio / uvloop", "asyncio"),
    ("asyncio / uvloop", "uvloop"),
    ("json / orjson", "json"),
    ("taskiq", "taskiq"),
    ("scikit-learn / scipy / numpy", "sklearn"),
    ("scikit-learn / scipy / numpy", "scipy"),
    ("scikit-learn / scipy / numpy", "numpy"),
    ("vaderSentiment", "vader"),
]


def bucket_of(frame: str) -> str:
    for label, needle in BUCKETS:
        if needle in frame:
            return label
    return "other (stdlib, C code)"


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw format: one 'frame;frame;...;leaf count' line per distinct stack, root first."""
    by_bucket: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = (frames[0], frames[1:]) if frames[0].startswith("thread") else ("?", frames)
        if not frames:
            continue
        total += count
        by_thread[thread.split(" ")[0] + (" (main)" if "MainThread" in thread else "")] += count
        # Attribute each sample to the innermost frame that belongs to a known library.
        leaf_bucket = next((bucket_of(f) for f in reversed(frames) if bucket_of(f) != "other (stdlib, C code)"),
                           "other (stdlib, C code)")
        by_bucket[leaf_bucket] += count
        self_time[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "By library (innermost library frame of each sample):"]
    lines += [f"  {100 * n / total:5.1f}%  {label}" for label, n in by_bucket.most_common()]
    lines += ["", "By thread:"] + [f"  {100 * n / total:5.1f}%  {t}" for t, n in by_thread.most_common(6)]
    lines += ["", f"Top {top} functions by own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    relaydesk = [(f, n) for f, n in inclusive.most_common() if "relaydesk/" in f or "fastapi/routing" in f]
    lines += ["", f"Top {top} relaydesk/FastAPI functions, including what they call:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in relaydesk[:top]]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    pyspy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if not pyspy:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    scratch = ScratchDir("rd_profile_")
    db = ScratchDatabase(args.postgres_admin_url) if args.postgres else None
    server = None
    try:
        if db:
            await db.create()
        secret = secrets.token_urlsafe(32)
        data_dir = scratch.path / "data"
        env = base_env(data_dir, db.url if db else None, secret)
        log = scratch.path / "relaydesk.log"
        run_cli(["migrate"], env, log)
        server = Server(env, scratch.path / "server.log")
        await server.start()
        await wait_idle(server.pid)
        if args.what == "create":
            token, make, expect = await _create_setup(server, args.clients)
        else:
            slug = "profile-list"
            run_cli(["seed-load", "--tickets", str(args.tickets), "--workspace", slug], env, log)
            settings = Settings(data_dir=data_dir, database_url=db.url if db else None, secret_key=secret,
                                access_token_ttl_seconds=7200)
            token = await issue_access_token(settings, slug)
            params: dict[str, object] = {"limit": 50}
            if args.filtered:
                async with httpx.AsyncClient(base_url=server.base_url,
                                             headers={"Authorization": f"Bearer {token}"}) as c:
                    items = (await c.get("/api/v1/tickets", params={"limit": 200, "status": "IN_PROGRESS"})).json()
                counts = Counter(t["assignee_id"] for t in items["items"] if t["assignee_id"])
                params |= {"status": "IN_PROGRESS", "assignee_id": counts.most_common(1)[0][0]}

            async def make(c: httpx.AsyncClient, _i: int) -> httpx.Response:
                return await c.get("/api/v1/tickets", params=params)

            expect = 200
        raw = scratch.path / "profile.txt"
        spy = subprocess.Popen(
            [pyspy, "record", "--pid", str(server.pid), "--format", "raw", "--output", str(raw), "--threads",
             "--rate", "250", "--duration", str(int(args.seconds) + 2), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.0)
            result = await closed_loop(args.what, server.base_url, token, make, clients=args.clients,
                                       max_requests=10**9, max_seconds=args.seconds, expect=expect,
                                       warmup=2 * args.clients, server_pid=server.pid)
            spy.wait(timeout=60)
        finally:
            if spy.poll() is None:
                spy.terminate()
                spy.wait(timeout=10)
        d = result.as_dict()
        print(f"{args.what} on {'PostgreSQL' if db else 'SQLite'}, {args.clients} clients: {d['ok']} ok, "
              f"{d['errors']} errors, {d['per_s']}/s, p50 {d['p50_ms']} ms, p95 {d['p95_ms']} ms; "
              f"server CPU {1000 * d['cpu']['server_cpu_s'] / max(d['ok'], 1):.2f} ms/request, "
              f"machine {d['cpu']['machine_busy_pct']:.0f}% busy (py-spy adds some overhead)")
        print(summarise(raw, args.top))
        if args.keep_profile:
            shutil.copy(raw, args.keep_profile)
            print(f"raw profile kept in {args.keep_profile}")
    finally:
        if server:
            server.stop()
        if db:
            await db.drop()
        scratch.remove()


async def _create_setup(server: Server, clients: int):  # noqa: ANN202
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        password = secrets.token_urlsafe(16)
        email = "admin@profile.example.com"
        r = await client.post("/api/v1/workspaces", json={"name": "Profile", "admin_name": "Admin",
                                                         "admin_email": email, "admin_password": password})
        r.raise_for_status()
        slug = r.json()["workspace"]["slug"]
        r = await client.post("/api/v1/auth/login", json={"email": email, "password": password, "workspace": slug})
        r.raise_for_status()
        token = r.json()["access_token"]
        for i in range(8):  # online agents, as in run_all.py, so routing assigns
            r = await client.post("/api/v1/agents", headers={"Authorization": f"Bearer {token}"}, json={
                "name": f"Load Agent {i}", "email": f"agent{i}@profile.example.com",
                "password": secrets.token_urlsafe(16), "role": "agent", "max_concurrent": 500,
                "availability": "online"})
            r.raise_for_status()
        r = await client.post("/api/v1/customers", headers={"Authorization": f"Bearer {token}"},
                              json={"name": "Load Customer", "email": "load.customer@example.com"})
        r.raise_for_status()
        customer = r.json()["id"]

    async def make(c: httpx.AsyncClient, i: int) -> httpx.Response:
        return await c.post("/api/v1/tickets", json={
            "subject": f"Order A-{i} arrived damaged", "requester_id": customer, "tags": ["damaged"],
            "description": f"The box for order A-{i} was crushed and the lamp inside is cracked."})

    return token, make, 201


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["create", "list"])
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--tickets", type=int, default=100_000, help="workspace size for 'list'")
    p.add_argument("--filtered", action="store_true", help="'list' filtered by status + assignee")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--keep-profile", type=Path, help="copy py-spy's raw output here")
    from harness import CLEANUP

    CLEANUP.install_signal_handlers(lambda done: print("interrupted; cleaned up: " + "; ".join(done)))
    try:
        asyncio.run(run(p.parse_args()))
    finally:
        CLEANUP.run_all()


if __name__ == "__main__":
    main()

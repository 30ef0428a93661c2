"""The README's quick start on a clean clone: `make run` migrates, seeds the demo,
prints its logins and serves; the printed admin can sign in."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)$", quick, re.M)
    assert commands == ["make run", "make test"]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "relaydesk"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def start_make_run(clone: Path, data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    # The clone shares this test run's virtualenv (-o: take its install as done), so
    # the test exercises the Makefile's steps without a second download of every package.
    env = {**os.environ, "RELAYDESK_DATA_DIR": str(data_dir), "RELAYDESK_PORT": str(port),
           "RELAYDESK_ENV": "development"}
    env.pop("DATABASE_URL", None)
    env.pop("RELAYDESK_DATABASE_URL", None)
    return subprocess.Popen(
        ["make", "run", f"VENV={VENV}", "-o", f"{VENV}/.installed-run"], cwd=clone, env=env,
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server never became ready:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_make_run_on_a_clean_clone_serves_the_demo(clone: Path, tmp_path: Path):
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "run.log"
    proc = start_make_run(clone, data_dir, port, log)
    try:
        wait_ready(port, proc, log)
        output = log.read_text()
        logins = dict(re.findall(r"^\s+admin\s+(\S+@\S+)\s+password: (\S+)$", output, re.M))
        assert len(logins) == 1, output
        # Every member of staff can be signed in as (routing and presence need more than one).
        agents = re.findall(r"^\s+agent\s+(\S+@\S+)\s+password: \S+$", output, re.M)
        assert sorted(a.split("@")[0] for a in agents) == ["alice", "bob", "chi", "dan"], output
        (email, password), = logins.items()
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password, "workspace": "demo"})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        tickets = httpx.get(f"{base}/api/v1/tickets", params={"limit": 100}, headers=headers).json()["items"]
        assert 25 <= len(tickets) <= 40
        assert {"OPEN", "IN_PROGRESS", "WAITING_ON_CUSTOMER", "RESOLVED", "CLOSED", "ESCALATED"} <= {
            t["status"] for t in tickets}
        # A ticket that came in by email opens with the customer's own words, not an admin's.
        by_email = next(t for t in tickets if t["channel"] == "email")
        thread = httpx.get(f"{base}/api/v1/tickets/{by_email['id']}/messages", headers=headers).json()["items"]
        assert thread[0]["author_kind"] == "customer", thread[0]
        agents = httpx.get(f"{base}/api/v1/agents", headers=headers).json()["items"]
        assert len(agents) >= 4 and any(a["skills"] for a in agents)
        teams = httpx.get(f"{base}/api/v1/teams", headers=headers).json()["items"]
        assert len(teams) == 2
        vip = httpx.get(f"{base}/api/v1/customers", headers=headers).json()["items"]
        assert any(c["tier"] == "vip" for c in vip)
        # Live frames are not compressed unless the operator turns it on, though the client
        # offers permessage-deflate (as browsers do).
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws?token={r.json()['access_token']}") as live:
            assert json.loads(live.recv(timeout=10))["type"] == "hello"
            assert "Sec-WebSocket-Extensions" not in live.response.headers
        # Logs are JSON lines carrying the request id.
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any(entry.get("event") == "request" and entry.get("request_id") for entry in lines)
    finally:
        stop(proc)
    # A second start keeps the data and prints the same logins again.
    log2 = tmp_path / "run2.log"
    proc = start_make_run(clone, data_dir, port, log2)
    try:
        wait_ready(port, proc, log2)
        assert "left as it is" in log2.read_text() and password in log2.read_text()
    finally:
        stop(proc)


def start_serve(data_dir: Path, port: int, *args: str, **env_extra: str) -> tuple[subprocess.Popen, Path]:
    """``relaydesk migrate`` then ``relaydesk serve`` in the embedded mode, with ``data_dir``."""
    env = {**os.environ, "RELAYDESK_DATA_DIR": str(data_dir), "RELAYDESK_PORT": str(port), **env_extra}
    for scaled_only in ("DATABASE_URL", "RELAYDESK_DATABASE_URL", "REDIS_URL", "RELAYDESK_REDIS_URL"):
        env.pop(scaled_only, None)
    relaydesk = str(VENV / "bin" / "relaydesk")
    subprocess.run([relaydesk, "migrate"], env=env, check=True, capture_output=True)
    log = data_dir / "serve.log"
    proc = subprocess.Popen([relaydesk, "serve", *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def test_serve_refuses_several_processes_without_redis(tmp_path: Path):
    """In the embedded mode live events and jobs stay in the process that made them, so a
    second server process would leave its sockets deaf to the first one's changes: the
    operator is told to use the scaled mode instead, and nothing starts listening."""
    port = free_port()
    proc, log = start_serve(tmp_path, port, "--workers", "2")
    try:
        assert proc.wait(timeout=30) == 2
    finally:
        if proc.poll() is None:
            stop(proc)
    assert "--workers needs REDIS_URL" in log.read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_serve_keeps_an_idle_connection_open_longer_than_a_load_balancer_would(tmp_path: Path):
    """A proxy reuses its idle connections to the app for up to a minute (60 s on the
    common load balancers); if the app closed them sooner, a request sent just as it did
    would fail. So an idle keep-alive connection outlives uvicorn's 5 s default."""
    port = free_port()
    proc, log = start_serve(tmp_path, port)
    try:
        wait_ready(port, proc, log)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status":"ok"}'
            first = conn.sock.getsockname()
            time.sleep(6.5)
            # On a connection the server has closed this raises RemoteDisconnected.
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status":"ok"}'
            assert conn.sock.getsockname() == first  # the same connection, not a new one
        finally:
            conn.close()
    finally:
        stop(proc)


def test_tokens_in_a_socket_address_stay_out_of_the_log(tmp_path: Path):
    """Browsers put the access token in the WebSocket's address; the server logs every
    handshake at INFO, and the log must not hand out sign-ins."""
    port = free_port()
    proc, log = start_serve(tmp_path, port, RELAYDESK_LOG_LEVEL="INFO", RELAYDESK_PASSWORD_HASH_TIME_COST="1",
                            RELAYDESK_PASSWORD_HASH_MEMORY_KIB="1024")
    try:
        wait_ready(port, proc, log)
        base = f"http://127.0.0.1:{port}"
        pw = "correct horse battery staple"
        slug = httpx.post(f"{base}/api/v1/workspaces", json={"name": "Logs", "admin_name": "A",
                          "admin_email": "a@logs.example.com", "admin_password": pw}).json()["workspace"]["slug"]
        token = httpx.post(f"{base}/api/v1/auth/login", json={"email": "a@logs.example.com", "password": pw,
                                                              "workspace": slug}).json()["access_token"]
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws?token={token}") as live:
            assert json.loads(live.recv(timeout=10))["type"] == "hello"
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws?access_token={token}&token={token}x") as refused:
            assert json.loads(refused.recv(timeout=10))["type"] == "error"  # a bad token is logged too
        # The app reads parameter names decoded, so a name spelt in escapes is a token too.
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws?subscribe=dashboard&tok%65n={token}") as escaped:
            assert json.loads(escaped.recv(timeout=10))["type"] == "hello"
    finally:
        stop(proc)
    text = log.read_text()
    assert "WebSocket /api/v1/ws?token=[redacted]" in text, text[-2000:]
    assert "WebSocket /api/v1/ws?subscribe=dashboard&tok%65n=[redacted]" in text, text[-2000:]
    assert token not in text
    # The server's own lines and uvicorn's are alike: one JSON object each, for a log shipper.
    events = [json.loads(line)["event"] for line in text.splitlines() if line.strip()]
    assert any("Uvicorn running on" in e for e in events) and any("WebSocket /api/v1/ws" in e for e in events)


def test_serve_warns_once_when_the_database_file_is_readable_by_others(tmp_path: Path):
    """A database made before Relaydesk made them private (or copied in) is left as it is,
    but the operator hears of it at start."""
    port = free_port()
    env = {**os.environ, "RELAYDESK_DATA_DIR": str(tmp_path)}
    for scaled_only in ("DATABASE_URL", "RELAYDESK_DATABASE_URL", "REDIS_URL", "RELAYDESK_REDIS_URL"):
        env.pop(scaled_only, None)
    subprocess.run([str(VENV / "bin" / "relaydesk"), "migrate"], env=env, check=True, capture_output=True)
    database = tmp_path / "relaydesk.db"
    database.chmod(0o644)
    proc, log = start_serve(tmp_path, port)
    try:
        wait_ready(port, proc, log)
    finally:
        stop(proc)
    warnings = [json.loads(line) for line in log.read_text().splitlines()
                if line.startswith("{") and "database_file_readable_by_others" in line]
    assert len(warnings) == 1, log.read_text()[-2000:]
    assert warnings[0]["path"] == str(database) and warnings[0]["mode"] == "0644"
    assert warnings[0]["advice"] == f"chmod 600 {database}" and warnings[0]["level"] == "warning"
    assert database.stat().st_mode & 0o777 == 0o644  # said, not changed


def test_a_huge_websocket_frame_is_refused_before_it_is_read(tmp_path: Path):
    """Anyone can open the live socket before signing in: a frame far over what the
    protocol uses is refused by size (1009) instead of being read into memory whole."""
    from websockets.exceptions import ConnectionClosed

    port = free_port()
    proc, log = start_serve(tmp_path, port)
    try:
        wait_ready(port, proc, log)
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws", max_size=None) as sock:
            sock.send(json.dumps({"type": "auth", "token": "a" * 1_000_000}))
            with pytest.raises(ConnectionClosed) as closed:
                sock.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws") as sock:  # one a little over the app's limit:
            sock.send(json.dumps({"type": "auth", "token": "a" * 20_000}))  # told why, by name
            assert json.loads(sock.recv(timeout=10))["code"] in ("frame_too_large", "unauthenticated")
    finally:
        stop(proc)

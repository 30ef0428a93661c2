"""Pieces of the benchmark: the machine, a server subprocess, a scratch PostgreSQL database,
closed-loop HTTP load and latency statistics.  ``run_all.py`` puts them together."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

VENV_BIN = Path(sys.executable).parent
RELAYDESK = str(VENV_BIN / "relaydesk")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- cleaning up, also when interrupted ----------------------------------------------------------
class Cleanup:
    """What this run started and must undo: servers, child commands, temporary dirs, scratch
    databases.  Steps run last-in first-out, each at most once; the normal path runs a step when
    its work is done, and :meth:`install_signal_handlers` runs all that are left on SIGTERM or
    Ctrl-C, synchronously, before exiting (no reliance on the event loop unwinding)."""

    def __init__(self) -> None:
        self._steps: dict[int, tuple[str, Callable[[], None]]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def add(self, what: str, step: Callable[[], None]) -> int:
        with self._lock:
            self._next += 1
            self._steps[self._next] = (what, step)
            return self._next

    def run(self, key: int) -> None:
        with self._lock:
            item = self._steps.pop(key, None)
        if item is not None:
            item[1]()

    def run_all(self) -> list[str]:
        done = []
        while True:
            with self._lock:
                if not self._steps:
                    return done
                key = max(self._steps)
                what, step = self._steps.pop(key)
            try:
                step()
                done.append(what)
            except Exception as exc:  # keep cleaning up the rest
                done.append(f"{what} (failed: {exc})")

    def install_signal_handlers(self, on_exit: Callable[[list[str]], None] | None = None) -> None:
        def handler(signum: int, _frame: object) -> None:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
            done = self.run_all()
            if on_exit:
                on_exit(done)
            os._exit(128 + signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


CLEANUP = Cleanup()


# -- the machine ------------------------------------------------------------------------------
def machine_info(postgres_version: str | None) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    info = {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres_version or "not measured",
    }
    try:
        import uvloop  # noqa: F401

        info["event loop"] = "uvloop (server and load generator)"
    except ImportError:
        info["event loop"] = "asyncio"
    return info


# -- CPU accounting --------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU used by the server, by this process, and by the whole machine over a stretch of time."""

    server_pid: int
    _start: tuple[float, float, float, float, float] = (0, 0, 0, 0, 0)
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> CpuMeter:
        busy, total = machine_busy_seconds()
        self._start = (time.perf_counter(), process_cpu_seconds(self.server_pid), time.process_time(), busy, total)
        return self

    def __exit__(self, *_exc: object) -> None:
        wall0, server0, client0, busy0, total0 = self._start
        busy, total = machine_busy_seconds()
        wall = time.perf_counter() - wall0
        cores = os.cpu_count() or 1
        self.result = {
            "wall_s": wall,
            "server_cpu_s": process_cpu_seconds(self.server_pid) - server0,
            "client_cpu_s": time.process_time() - client0,
            "machine_busy_pct": 100 * (busy - busy0) / max(total - total0, 1e-9),
            "cores": cores,
        }


async def wait_idle(pid: int, *, below: float = 0.1, window: float = 0.5, timeout: float = 180.0,
                    step: float = 0.05) -> float:
    """Wait until the process uses under ``below`` of a core over ``window`` seconds (its
    background jobs are done); returns the seconds until the end of the last ``step`` in
    which it still used more than that, not until the quiet was confirmed, so the figure
    does not carry the confirming window with it."""
    started = time.perf_counter()
    samples = deque([(started, process_cpu_seconds(pid))])
    last_busy = started
    while samples[-1][0] - started < timeout:
        await asyncio.sleep(step)
        now, cpu = time.perf_counter(), process_cpu_seconds(pid)
        then, cpu_then = samples[-1]
        if cpu - cpu_then > below * (now - then):
            last_busy = now
        samples.append((now, cpu))
        while now - samples[0][0] > window + step / 2:
            samples.popleft()
        first, cpu_first = samples[0]
        if now - first >= window and cpu - cpu_first < below * (now - first):
            break
    return last_busy - started


async def background_load(seconds: float = 2.0) -> float:
    """How busy the machine is before we start, in % of all cores (other people's work skews results)."""
    busy0, total0 = machine_busy_seconds()
    await asyncio.sleep(seconds)
    busy, total = machine_busy_seconds()
    return 100 * (busy - busy0) / max(total - total0, 1e-9)


# -- latency statistics --------------------------------------------------------------------------
def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class LoadResult:
    name: str
    concurrency: int
    ok: int
    errors: int
    wall_s: float
    latencies_ms: list[float]
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    drain_s: float | None = None  # how long the server stayed busy after the last response

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def pct(self, p: float) -> float:
        return percentile(sorted(self.latencies_ms), p)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "concurrency": self.concurrency, "ok": self.ok, "errors": self.errors,
            "wall_s": round(self.wall_s, 3), "per_s": round(self.rate, 1),
            "p50_ms": round(self.pct(50), 2), "p95_ms": round(self.pct(95), 2), "p99_ms": round(self.pct(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
            "error_samples": self.error_samples[:5], "cpu": {k: round(v, 3) for k, v in self.cpu.items()},
            "drain_s": None if self.drain_s is None else round(self.drain_s, 2),
            "sustained_per_s": None if self.drain_s is None else round(self.ok / (self.wall_s + self.drain_s), 1),
        }


RequestMaker = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def closed_loop(
    name: str, base_url: str, token: str, make_request: RequestMaker, *, clients: int, max_requests: int,
    max_seconds: float, expect: int, warmup: int = 0, server_pid: int | None = None,
) -> LoadResult:
    """``clients`` workers, each with its own keep-alive connection, send requests back to back
    until ``max_requests`` were sent or ``max_seconds`` passed.  ``warmup`` requests go first and
    are not counted."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0)
            for _ in range(clients)]
    try:
        for i in range(warmup):
            await make_request(pool[i % clients], i)
        latencies: list[float] = []
        errors: list[str] = []
        issued = 0
        deadline = 0.0

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                seq = issued
                issued += 1
                started = time.perf_counter()
                try:
                    response = await make_request(client, warmup + seq)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == expect:
                    latencies.append(elapsed)
                else:
                    errors.append(f"{response.status_code}: {response.text[:200]}")

        meter = CpuMeter(server_pid) if server_pid else None
        if meter:
            meter.__enter__()
        started = time.perf_counter()
        deadline = started + max_seconds
        await asyncio.gather(*(worker(c) for c in pool))
        wall = time.perf_counter() - started
        if meter:
            meter.__exit__()
        return LoadResult(name, clients, len(latencies), len(errors), wall, latencies, errors,
                          meter.result if meter else {})
    finally:
        await asyncio.gather(*(c.aclose() for c in pool), return_exceptions=True)


class LightHttp:
    """A pool of plain HTTP/1.1 keep-alive connections, for load that the load generator
    itself must not limit: httpx spends ~6 ms of CPU per request here, so a poster at 200
    requests/s took a whole core of this 2-core machine and became the bottleneck before
    the server did. This writes the request bytes itself and reads a response by its
    Content-Length: a tenth of that CPU. Only for the bench's own requests to its own server."""

    def __init__(self, base_url: str, connections: int) -> None:
        parsed = httpx.URL(base_url)
        self.host, self.port = parsed.host, parsed.port or 80
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # opened on first use
        self._open: list[asyncio.StreamWriter] = []

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body); waits for a free connection, as a pool does."""
        conn = await self._idle.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
                self._open.append(conn[1])
            reader, writer = conn
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                         .encode() + body)
            status_line = await reader.readuntil(b"\r\n")
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            self._idle.put_nowait(conn)
            return int(status_line.split()[1]), payload
        except BaseException:
            self._idle.put_nowait(None)  # this connection is in an unknown state: a new one next time
            if conn is not None:
                conn[1].close()
            raise

    async def aclose(self) -> None:
        for writer in self._open:
            writer.close()


# -- processes -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``relaydesk serve`` in a subprocess with its logs in a file; stopped by its pid."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._cleanup: int | None = None

    async def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [RELAYDESK, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            self._cleanup = CLEANUP.add(f"stopped server pid {self.proc.pid}", self._stop)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the server did not become ready in {timeout} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self._cleanup is not None:
            CLEANUP.run(self._cleanup)
        else:
            self._stop()

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def run_cli(args: list[str], env: dict[str, str], log_path: Path, *, timeout: float = 900.0) -> float:
    """Run ``relaydesk <args>`` to completion with its output appended to ``log_path``; returns seconds."""
    started = time.perf_counter()
    with log_path.open("ab") as log:
        log.write(f"\n$ relaydesk {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen([RELAYDESK, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        key = CLEANUP.add(f"stopped relaydesk {args[0]} pid {proc.pid}", stop)
        try:
            code = proc.wait(timeout=timeout)
        finally:
            CLEANUP.run(key)
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"relaydesk {' '.join(args)} failed with {code}:\n{tail}")
    return time.perf_counter() - started


# -- environments ------------------------------------------------------------------------------------
def base_env(data_dir: Path, database_url: str | None, secret_key: str) -> dict[str, str]:
    """The server's and CLI's environment: this run's data dir and database, quiet logs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYDESK_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "RELAYDESK_ENV": "development",
        "RELAYDESK_DATA_DIR": str(data_dir),
        "RELAYDESK_SECRET_KEY": secret_key,
        "RELAYDESK_LOG_LEVEL": "WARNING",
        "RELAYDESK_ACCESS_TOKEN_TTL_SECONDS": "7200",
        # Rich would otherwise draw progress bars into the log files.
        "TERM": "dumb",
        "COLUMNS": "100",
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    if os.environ.get("BENCH_SERVER_SRC"):
        # Measure another version of the server (a `git worktree` of an older commit, say)
        # with this version's benchmark code: only the server's processes import it.
        env["PYTHONPATH"] = os.environ["BENCH_SERVER_SRC"]
    return env


class ScratchDir:
    def __init__(self, prefix: str, *, keep: bool = False) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._cleanup = None if keep else CLEANUP.add(f"removed {self.path}", self._remove)

    def _remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def remove(self) -> None:
        if self._cleanup is not None:
            CLEANUP.run(self._cleanup)


# -- PostgreSQL ------------------------------------------------------------------------------------
async def postgres_version(admin_url: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return None
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


class ScratchDatabase:
    """A fresh ``rd_bench_<random>`` database, dropped (even with open connections) at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"rd_bench_{secrets.token_hex(5)}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"
        self.created = False

    async def create(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
            self._cleanup = CLEANUP.add(f"dropped database {self.name}", self._drop_blocking)
        finally:
            await conn.close()

    async def _drop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        finally:
            await conn.close()

    def _drop_blocking(self) -> None:
        """Drop from a thread with its own event loop: callable from a signal handler too."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._drop())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=run, name="drop-scratch-db")
        thread.start()
        thread.join(timeout=60)
        if errors:
            raise errors[0]

    async def drop(self) -> None:
        if self.created:
            await asyncio.to_thread(CLEANUP.run, self._cleanup)

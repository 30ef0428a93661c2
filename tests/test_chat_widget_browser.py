"""The chat widget for real: headless Chromium loads ``/widget.js`` into a shop's page
(another origin), and a visitor talks to an agent on a live ``relaydesk serve``.

The agent's side is a plain WebSocket plus the REST API, as the agent dashboard uses them.
Needs Debian's Chromium at /usr/bin/chromium (never a downloaded browser build).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from playwright.async_api import Browser, Error as PlaywrightError, Page, WebSocket, async_playwright, expect
from websockets.asyncio.client import ClientConnection, connect

from conftest import service_unavailable
from test_quickstart import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
BIN = Path(sys.prefix) / "bin" / "relaydesk"
PASSWORD = "correct horse battery staple"
SHOP = "https://shop.example"  # the merchant's site: never the API's origin
WAIT_MS = 8_000  # generous: the suite shares a small machine


# -- a real server ---------------------------------------------------------------------------


class Server:
    def __init__(self, base: str, log: Path) -> None:
        self.base = base
        self.ws = base.replace("http://", "ws://") + "/api/v1/ws"
        self.log = log
        self.http = httpx.AsyncClient(base_url=base, timeout=10)
        self.admins: dict[str, str] = {}  # slug: the admin's access token

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    async def call(self, method: str, path: str, token: str | None = None, expect_status: int = 200,
                   **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.http.request(method, path, headers=headers, **kwargs)
        assert r.status_code == expect_status, f"{method} {path}: {r.status_code} {r.text}\n{self.tail()}"
        return r.json() if r.content else None

    async def login(self, email: str, slug: str) -> str:
        body = {"email": email, "password": PASSWORD, "workspace": slug}
        return (await self.call("POST", "/api/v1/auth/login", json=body))["access_token"]

    async def workspace(self, *, agent_availability: str) -> tuple[str, str]:
        """A fresh workspace with one agent; its slug and the agent's access token."""
        tag = secrets.token_hex(4)
        admin_email, agent_email = f"admin-{tag}@shop.example", f"agent-{tag}@shop.example"
        made = await self.call("POST", "/api/v1/workspaces", expect_status=201, json={
            "name": f"Shop {tag}", "admin_name": "Ada Admin", "admin_email": admin_email,
            "admin_password": PASSWORD})
        slug = made["workspace"]["slug"]
        admin = self.admins[slug] = await self.login(admin_email, slug)
        await self.call("POST", "/api/v1/agents", admin, expect_status=201, json={
            "name": "Sam Support", "email": agent_email, "password": PASSWORD, "role": "agent",
            "availability": agent_availability, "max_concurrent": 50})
        return slug, await self.login(agent_email, slug)


@asynccontextmanager
async def serving(data_dir: Path, port: int, secret_key: str) -> AsyncIterator[Server]:
    """``relaydesk serve`` in the embedded mode on ``data_dir``, until the block ends."""
    env = {**os.environ, "RELAYDESK_DATA_DIR": str(data_dir), "RELAYDESK_PORT": str(port),
           "RELAYDESK_SMTP_LISTEN_PORT": "0", "RELAYDESK_LOG_LEVEL": "WARNING",
           "RELAYDESK_PASSWORD_HASH_TIME_COST": "1", "RELAYDESK_PASSWORD_HASH_MEMORY_KIB": "1024",
           "RELAYDESK_SECRET_KEY": secret_key, "RELAYDESK_OUTBOX_POLL_SECONDS": "0.5"}
    env.pop("DATABASE_URL", None)
    env.pop("RELAYDESK_DATABASE_URL", None)
    env.pop("RELAYDESK_REDIS_URL", None)
    subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
    log = data_dir / "serve.log"
    proc = subprocess.Popen([str(BIN), "serve"], env=env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    srv = Server(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"relaydesk serve exited early:\n{srv.tail()}")
            try:
                if (await srv.http.get("/readyz", timeout=1)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"relaydesk serve never became ready:\n{srv.tail()}")
            await asyncio.sleep(0.2)
        yield srv
    finally:
        await srv.http.aclose()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    async with serving(tmp_path_factory.mktemp("widget-server"), free_port(), secrets.token_hex(16)) as srv:
        yield srv


# -- a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        service_unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Visitor:
    """One shop page with the widget on it, and what its chat socket has heard."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.frames: list[dict[str, Any]] = []
        self.errors: list[str] = []
        page.on("websocket", self._watch)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _watch(self, socket: WebSocket) -> None:
        def heard(payload: str | bytes) -> None:
            try:
                self.frames.append(orjson.loads(payload))
            except orjson.JSONDecodeError:
                pass
        socket.on("framereceived", heard)

    def el(self, selector: str):  # noqa: ANN201 - a Locator; CSS locators pierce the open shadow root
        return self.page.locator(f"div[data-relaydesk-widget] {selector}")

    async def open_shop(self) -> None:
        self.frames.clear()
        await self.page.goto(f"{SHOP}/", wait_until="load")
        await expect(self.el("button.launch")).to_have_text("Chat with us", timeout=WAIT_MS)
        await self.el("button.launch").click()
        await expect(self.el(".panel")).to_be_visible()
        await expect(self.el("button.close")).to_have_text("×")  # the script arrives as UTF-8

    async def live(self) -> None:
        """Until the widget's socket is subscribed, nothing it would hear is on its way yet."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while not any(f.get("type") == "subscribed" for f in self.frames):
            assert time.monotonic() < deadline, f"the widget never subscribed; it heard {self.frames}"
            await asyncio.sleep(0.05)

    async def bubbles(self) -> list[tuple[str, str]]:
        return [(kind, text) for kind, text in await self.el(".log .msg").evaluate_all(
            "els => els.map(e => [e.classList.contains('customer') ? 'customer' : 'agent', e.textContent])")]

    async def shows(self, *lines: tuple[str, str], besides: Collection[str] = ()) -> None:
        """Exactly these bubbles, in order: no duplicates, nothing extra (but texts in `besides`)."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            shown = [b for b in await self.bubbles() if b[1] not in besides]
            if shown == list(lines):
                return
            assert time.monotonic() < deadline, f"the widget shows {shown}, not {list(lines)}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def visitor_on_shop(browser: Browser, server: Server, slug: str,
                          signed_in: dict[str, str | None] | None = None, *, html_lang: str | None = None,
                          script_attrs: str = "", locale: str | None = None) -> AsyncIterator[Visitor]:
    """``signed_in``: the shop's page carries ``signed_in["token"]`` as the widget's identity
    token whenever it is loaded (change it between loads to switch users). ``html_lang``: the
    page's ``<html lang>``; ``script_attrs``: more attributes on the widget's script tag;
    ``locale``: the browser's language."""
    context = await browser.new_context(**({"locale": locale} if locale else {}))
    # In production the support host is on the internet; here it is on loopback, which
    # Chromium's Local Network Access shields from public sites unless the visitor allows it.
    try:
        await context.grant_permissions(["local-network-access"])
    except PlaywrightError:
        pass  # a Chromium without Local Network Access checks
    def page_html() -> str:
        token = (signed_in or {}).get("token")
        identity = f' data-identity-token="{token}"' if token else ""
        lang = f' lang="{html_lang}"' if html_lang else ""
        return (f'<!doctype html><html{lang}><head><meta charset="utf-8"><title>Shop</title></head>'
                f'<body><h1>Our shop</h1><p>Buy things.</p><script src="{server.base}/widget.js" '
                f'data-workspace="{slug}"{identity} {script_attrs} async></script></body></html>')

    await context.route(f"{SHOP}/**", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                  body=page_html()))
    try:
        visitor = Visitor(await context.new_page())
        yield visitor
        assert visitor.errors == [], visitor.errors
    finally:
        await context.close()


# -- the agent's socket ---------------------------------------------------------------------------


class AgentSocket:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            self.frames.append(orjson.loads(raw))

    async def send(self, **frame: Any) -> None:
        await self.socket.send(orjson.dumps(frame).decode())

    async def heard(self, match: Callable[[dict[str, Any]], bool], timeout: float = WAIT_MS / 1000) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames:
                if match(frame):
                    return frame
            assert time.monotonic() < deadline, f"never heard it; heard {self.frames}"
            assert not self.reader.done(), f"the agent's socket closed; heard {self.frames}"
            await asyncio.sleep(0.05)

    async def event(self, name: str, **data: Any) -> dict[str, Any]:
        return await self.heard(lambda f: f.get("type") == "event" and f.get("event") == name and all(
            f["data"].get(k) == v for k, v in data.items()))

    async def close(self) -> None:
        await self.socket.close()
        await self.reader


async def agent_socket(server: Server, token: str, ticket_id: str) -> AgentSocket:
    agent = AgentSocket(await connect(f"{server.ws}?token={token}&subscribe=ticket:{ticket_id}"))
    await agent.heard(lambda f: f.get("type") == "subscribed" and f.get("channel") == f"ticket:{ticket_id}")
    return agent


async def start_chat(visitor: Visitor, name: str, email: str, message: str) -> None:
    await visitor.el("form.start input[name=name]").fill(name)
    await visitor.el("form.start input[name=email]").fill(email)
    await visitor.el("form.start textarea[name=message]").fill(message)
    await visitor.el("form.start button[type=submit]").click()
    await expect(visitor.el("form.say")).to_have_js_property("hidden", False, timeout=WAIT_MS)
    await expect(visitor.el("form.start")).to_have_js_property("hidden", True)
    await expect(visitor.el("form.start .error")).to_have_text("")


async def the_chat_ticket(server: Server, agent: str) -> dict[str, Any]:
    items = (await server.call("GET", "/api/v1/tickets", agent, params={"limit": 100}))["items"]
    chats = [t for t in items if t["channel"] == "chat"]
    assert len(chats) == 1, items
    return await server.call("GET", f"/api/v1/tickets/{chats[0]['id']}", agent)


async def public_system_lines(server: Server, agent: str, ticket_id: str) -> set[str]:
    thread = await server.call("GET", f"/api/v1/tickets/{ticket_id}/messages", agent, params={"limit": 100})
    return {m["body_text"] for m in thread["items"] if m["author_kind"] == "system" and not m["internal"]}


# -- the scenarios --------------------------------------------------------------------------------


async def test_a_visitor_and_an_agent_chat_live_and_the_chat_survives_a_reload(browser, server) -> None:  # noqa: ANN001
    slug, agent = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug) as visitor:
        await visitor.open_shop()
        await expect(visitor.el(".status")).to_have_text("We're online — we'll answer here.", timeout=WAIT_MS)
        await expect(visitor.el("form.start")).to_have_js_property("hidden", False)
        await expect(visitor.el("form.say")).to_have_js_property("hidden", True)

        # The visitor starts a chat: it is a ticket on the chat channel, tagged as unverified.
        await start_chat(visitor, "Lan Nguyen", "lan@visitors.example", "Hi, where is my order 5521?")
        await visitor.shows(("customer", "Hi, where is my order 5521?"))
        await expect(visitor.el(".status")).to_have_text("We're online — we'll answer here.")
        ticket = await the_chat_ticket(server, agent)
        assert ticket["channel"] == "chat" and set(ticket["tags"]) == {"chat", "unverified"}, ticket
        stored = await visitor.page.evaluate(
            "key => JSON.parse(localStorage.getItem(key))", f"relaydesk-chat:{server.base}:{slug}")
        assert stored["ticketId"] == ticket["id"] and stored["token"].startswith("rdc_")
        await visitor.live()

        agent_ws = await agent_socket(server, agent, ticket["id"])
        try:
            # The agent sees the visitor typing, then what they sent, live.
            said = visitor.el("form.say textarea[name=body]")
            await said.press_sequentially("It was sent to my old address.", delay=5)
            await agent_ws.event("typing", state="started", author_kind="customer", ticket_id=ticket["id"])
            await visitor.el("form.say button[type=submit]").click()
            posted = await agent_ws.event("message.posted", author_kind="customer",
                                          body_text="It was sent to my old address.")
            assert posted["data"]["ticket_id"] == ticket["id"] and posted["data"]["channel"] == "chat"
            await agent_ws.event("typing", state="stopped", author_kind="customer")
            await expect(said).to_have_value("")
            await visitor.shows(("customer", "Hi, where is my order 5521?"),
                                ("customer", "It was sent to my old address."))

            # The visitor sees support typing, then the reply, without reloading; an internal
            # note posted in between never reaches them.
            await expect(visitor.el(".typing")).to_have_text("")
            await agent_ws.send(type="typing", ticket_id=ticket["id"], state="started")
            await expect(visitor.el(".typing")).to_have_text("Sam Support is typing…", timeout=WAIT_MS)
            await server.call("POST", f"/api/v1/tickets/{ticket['id']}/messages", agent, expect_status=201,
                              json={"body": "Staff only: the courier lost it.", "internal": True})
            await server.call("POST", f"/api/v1/tickets/{ticket['id']}/messages", agent, expect_status=201,
                              json={"body": "Sorry! We are sending a new one today."})
            await visitor.shows(("customer", "Hi, where is my order 5521?"),
                                ("customer", "It was sent to my old address."),
                                ("agent", "Sorry! We are sending a new one today."))
            await expect(visitor.el(".typing")).to_have_text("")
            await agent_ws.event("message.posted", internal=True)  # the note was sent out: the widget skipped it
            await expect(visitor.el(".log")).not_to_contain_text("Staff only")

            # A reload brings the conversation back and keeps it live. (The transcript also holds
            # the public "Status changed" lines, which the widget shows after a reload though it
            # never showed them live: see test_a_reloaded_chat_shows_what_was_said_and_nothing_else.)
            system = await public_system_lines(server, agent, ticket["id"])
            visitor.frames.clear()
            await visitor.page.reload(wait_until="load")
            await expect(visitor.el("form.say")).to_be_attached(timeout=WAIT_MS)
            await visitor.el("button.launch").click()
            await expect(visitor.el("form.say")).to_have_js_property("hidden", False, timeout=WAIT_MS)
            await expect(visitor.el("form.start")).to_have_js_property("hidden", True)
            await visitor.shows(("customer", "Hi, where is my order 5521?"),
                                ("customer", "It was sent to my old address."),
                                ("agent", "Sorry! We are sending a new one today."), besides=system)
            await expect(visitor.el(".log")).not_to_contain_text("Staff only")
            await visitor.live()
            await server.call("POST", f"/api/v1/tickets/{ticket['id']}/messages", agent, expect_status=201,
                              json={"body": "It's on its way: tracking 1Z999."})
            await visitor.shows(("customer", "Hi, where is my order 5521?"),
                                ("customer", "It was sent to my old address."),
                                ("agent", "Sorry! We are sending a new one today."),
                                ("agent", "It's on its way: tracking 1Z999."), besides=system)
        finally:
            await agent_ws.close()

    thread = await server.call("GET", f"/api/v1/tickets/{ticket['id']}/messages", agent, params={"limit": 100})
    lines = [(m["author_kind"], m["body_text"], m["internal"]) for m in thread["items"] if m["author_kind"] != "system"]
    assert lines == [("customer", "Hi, where is my order 5521?", False),
                     ("customer", "It was sent to my old address.", False),
                     ("agent", "Staff only: the courier lost it.", True),
                     ("agent", "Sorry! We are sending a new one today.", False),
                     ("agent", "It's on its way: tracking 1Z999.", False)]


async def test_with_no_one_online_the_widget_promises_an_email_reply_and_still_starts_the_chat(
        browser, server) -> None:  # noqa: ANN001
    slug, agent = await server.workspace(agent_availability="offline")
    async with visitor_on_shop(browser, server, slug) as visitor:
        await visitor.open_shop()
        status = visitor.el(".status")
        await expect(status).to_contain_text("No one is online right now", timeout=WAIT_MS)
        await expect(status).to_contain_text("we'll reply by email")
        await start_chat(visitor, "Mo Khan", "mo@visitors.example", "Do you ship to Norway?")
        await visitor.shows(("customer", "Do you ship to Norway?"))
        await expect(status).to_have_text(
            "No one is online right now. Leave a message: we'll reply by email to mo@visitors.example.")
        ticket = await the_chat_ticket(server, agent)
        assert ticket["channel"] == "chat" and "chat" in ticket["tags"], ticket


# -- regressions the first version of the widget had -------------------------------------------------


async def test_only_the_form_in_use_is_on_screen(browser, server) -> None:  # noqa: ANN001
    slug, _ = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug) as visitor:
        await visitor.open_shop()
        assert await visitor.el("form.start").is_visible()
        assert not await visitor.el("form.say").is_visible(), "the message box shows before the chat starts"
        await start_chat(visitor, "Ines Ortiz", "ines@visitors.example", "Hello?")
        assert await visitor.el("form.say").is_visible()
        assert not await visitor.el("form.start").is_visible(), "the start form still shows in the chat"


async def test_a_reloaded_chat_shows_what_was_said_and_nothing_else(browser, server) -> None:  # noqa: ANN001
    slug, agent = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug) as visitor:
        await visitor.open_shop()
        await start_chat(visitor, "Oli Berg", "oli@visitors.example", "Is the blue one in stock?")
        await visitor.live()
        ticket = await the_chat_ticket(server, agent)
        await server.call("POST", f"/api/v1/tickets/{ticket['id']}/messages", agent, expect_status=201,
                          json={"body": "Yes, three left."})
        said = [("customer", "Is the blue one in stock?"), ("agent", "Yes, three left.")]
        await visitor.shows(*said)
        await visitor.page.reload(wait_until="load")
        await visitor.el("button.launch").click()
        await expect(visitor.el(".log .msg.agent").first).to_be_attached(timeout=WAIT_MS)
        assert await visitor.bubbles() == said  # the transcript is drawn in one go


async def test_on_a_shared_browser_the_next_person_starts_afresh(browser, server) -> None:  # noqa: ANN001
    """Signed-in users of the shop, one after the other in the same browser: the second
    never sees, nor writes into, the first one's conversation."""
    slug, agent = await server.workspace(agent_availability="online")
    secret = (await server.call("POST", "/api/v1/chat-identity-secret", server.admins[slug]))["secret"]

    def identity(email: str) -> str:
        return jwt.encode({"email": email, "name": email.split("@")[0], "exp": int(time.time()) + 600}, secret,
                          algorithm="HS256")

    signed_in: dict[str, str | None] = {"token": identity("minh@members.example")}
    async with visitor_on_shop(browser, server, slug, signed_in) as visitor:
        await visitor.open_shop()
        await visitor.el("form.start textarea[name=message]").fill("About order 777, card ending 4242")
        await visitor.el("form.start button[type=submit]").click()
        await expect(visitor.el("form.say")).to_have_js_property("hidden", False, timeout=WAIT_MS)
        await visitor.shows(("customer", "About order 777, card ending 4242"))

        signed_in["token"] = identity("kate@members.example")  # Minh signs out, Kate signs in
        await visitor.open_shop()
        await expect(visitor.el("form.start")).to_have_js_property("hidden", False, timeout=WAIT_MS)
        assert await visitor.bubbles() == []
        signed_in["token"] = None  # and then somebody not signed in
        await visitor.open_shop()
        await expect(visitor.el("form.start")).to_have_js_property("hidden", False, timeout=WAIT_MS)
        assert await visitor.bubbles() == []
    [minhs] = [t for t in (await server.call("GET", "/api/v1/tickets", agent))["items"] if t["channel"] == "chat"]
    thread = await server.call("GET", f"/api/v1/tickets/{minhs['id']}/messages", agent)
    assert [m["body_text"] for m in thread["items"] if m["author_kind"] == "customer"] == [
        "About order 777, card ending 4242"]


async def test_lines_stay_in_the_order_they_were_said_however_they_arrive(browser, server) -> None:  # noqa: ANN001
    """The agent answers while the widget is still fetching the transcript: the live
    answer arrives first, and must still be drawn after the question."""
    slug, agent = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug) as visitor:
        async def slow_transcript(route) -> None:  # noqa: ANN001
            if route.request.method == "GET":
                await asyncio.sleep(1.5)
            await route.continue_()

        await visitor.page.context.route(f"{server.base}/api/v1/chat/*/conversations/*/messages", slow_transcript)
        await visitor.open_shop()
        await start_chat(visitor, "Oli Berg", "oli@visitors.example", "Is the red one in stock?")
        await visitor.live()
        ticket = await the_chat_ticket(server, agent)
        await server.call("POST", f"/api/v1/tickets/{ticket['id']}/messages", agent, expect_status=201,
                          json={"body": "Two left."})
        await visitor.shows(("customer", "Is the red one in stock?"), ("agent", "Two left."))


async def test_a_chat_the_server_no_longer_takes_starts_afresh_instead_of_retrying(browser, tmp_path) -> None:  # noqa: ANN001
    """The operator restarts the support site with a new secret key: every chat token out
    there is refused. The widget says the chat cannot go on and offers a new one, rather
    than reconnecting every 30 seconds for as long as the page stays open."""
    port = free_port()
    first = serving(tmp_path, port, secrets.token_hex(16))
    srv: Server | None = await first.__aenter__()
    try:
        slug, _ = await srv.workspace(agent_availability="online")
        async with visitor_on_shop(browser, srv, slug) as visitor:
            await visitor.open_shop()
            await start_chat(visitor, "Lan Nguyen", "lan@visitors.example", "Is the blue one in stock?")
            await visitor.live()
            srv = None
            await first.__aexit__(None, None, None)
            async with serving(tmp_path, port, secrets.token_hex(16)):
                await expect(visitor.el("form.start .error")).to_contain_text(
                    "This chat can't be continued here any more", timeout=40_000)  # after the widget's back-off
                await expect(visitor.el("form.say")).to_have_js_property("hidden", True)
                opened: list[str] = []
                visitor.page.on("websocket", lambda socket: opened.append(socket.url))
                await asyncio.sleep(3)
                assert opened == []  # it gave up on that token
                assert visitor.errors == []
    finally:
        if srv is not None:
            await first.__aexit__(None, None, None)


async def test_enter_sends_and_shift_enter_starts_a_new_line(browser, server) -> None:  # noqa: ANN001
    slug, agent = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug) as visitor:
        await visitor.open_shop()
        await visitor.el("form.start input[name=name]").fill("Lan Nguyen")
        await visitor.el("form.start input[name=email]").fill("lan@visitors.example")
        await visitor.el("form.start textarea[name=message]").fill("My parcel came damaged.")
        await visitor.el("form.start textarea[name=message]").press("Enter")
        await expect(visitor.el("form.say")).to_have_js_property("hidden", False, timeout=WAIT_MS)
        await visitor.shows(("customer", "My parcel came damaged."))

        said = visitor.el("form.say textarea[name=body]")
        await said.press_sequentially("The box was open,", delay=5)
        await said.press("Shift+Enter")
        await said.press_sequentially("the lid missing.", delay=5)
        await expect(said).to_have_value("The box was open,\nthe lid missing.")
        # The Enter that ends an input method's composition (typing Vietnamese with Telex,
        # say) belongs to the input method: it neither sends nor is taken from it.
        submits_and_taken = await said.evaluate("""box => {
            let submits = 0;
            box.form.addEventListener("submit", () => { submits += 1; });
            const enter = new KeyboardEvent("keydown", {key: "Enter", isComposing: true, bubbles: true,
                                                        cancelable: true});
            box.dispatchEvent(enter);
            return [submits, enter.defaultPrevented];
        }""")
        assert submits_and_taken == [0, False]
        await said.press("Enter")
        await visitor.shows(("customer", "My parcel came damaged."), ("customer", "The box was open,\nthe lid missing."))
        await expect(said).to_have_value("")

    ticket = await the_chat_ticket(server, agent)
    thread = await server.call("GET", f"/api/v1/tickets/{ticket['id']}/messages", agent, params={"limit": 100})
    assert [m["body_text"] for m in thread["items"] if m["author_kind"] == "customer"] == [
        "My parcel came damaged.", "The box was open,\nthe lid missing."]


VIETNAMESE = {"launch": "Trò chuyện với chúng tôi", "title": "Trò chuyện với chúng tôi",
              "name": "Tên của bạn", "email": "Email của bạn", "message": "Chúng tôi có thể giúp gì cho bạn?",
              "start": "Bắt đầu trò chuyện", "status": "Chúng tôi đang trực tuyến — sẽ trả lời bạn ngay tại đây."}
ENGLISH = {"launch": "Chat with us", "title": "Chat with us", "name": "Your name", "email": "Your email",
           "message": "How can we help?", "start": "Start chat", "status": "We're online — we'll answer here."}
LANGUAGES = [
    ("page-lang-vi", {"html_lang": "vi"}, VIETNAMESE),
    ("browser-vi-VN", {"locale": "vi-VN"}, VIETNAMESE),
    ("data-locale-vi-VN-on-an-english-page", {"html_lang": "en", "script_attrs": 'data-locale="vi-VN"'}, VIETNAMESE),
    ("data-lang-en-on-a-vietnamese-page", {"html_lang": "vi", "locale": "vi-VN", "script_attrs": 'data-lang="en"'},
     ENGLISH),
    ("unknown-language", {"html_lang": "fr", "locale": "vi-VN"}, ENGLISH),
]


@pytest.mark.parametrize(("page", "texts"), [c[1:] for c in LANGUAGES], ids=[c[0] for c in LANGUAGES])
async def test_the_widget_speaks_the_page_s_language(browser, server, page: dict[str, str],  # noqa: ANN001
                                                     texts: dict[str, str]) -> None:
    slug, _ = await server.workspace(agent_availability="online")
    async with visitor_on_shop(browser, server, slug, **page) as visitor:
        await visitor.page.goto(f"{SHOP}/", wait_until="load")
        await expect(visitor.el("button.launch")).to_have_text(texts["launch"], timeout=WAIT_MS)
        await visitor.el("button.launch").click()
        await expect(visitor.el("header .title")).to_have_text(texts["title"])
        await expect(visitor.el("form.start input[name=name]")).to_have_attribute("placeholder", texts["name"])
        await expect(visitor.el("form.start input[name=email]")).to_have_attribute("placeholder", texts["email"])
        await expect(visitor.el("form.start textarea[name=message]")).to_have_attribute("placeholder",
                                                                                        texts["message"])
        await expect(visitor.el("form.start button[type=submit]")).to_have_text(texts["start"])
        await expect(visitor.el(".status")).to_have_text(texts["status"], timeout=WAIT_MS)

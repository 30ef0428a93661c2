"""``relaydesk seed-load``: fill a workspace with many realistic tickets, fast, for benchmarks.

Unlike the demo seed this bypasses the services and the API on purpose: rows are made in
Python and written with SQLAlchemy Core ``insert(table)`` executemany calls, a batch of
tickets (with their tags and threads) per transaction.  The data still follows the
rules the services keep:

* ticket numbers come from ``Workspace.ticket_seq``, reserved batch by batch in the same
  transaction that writes the batch, so later tickets made through the API get fresh
  numbers and a failed run leaves no gap;
* ``Ticket.tags`` and the ``ticket_tags`` rows hold the same tags;
* every status that needs an owner has an assignee, and ``first_response_at`` /
  ``resolved_at`` / ``closed_at`` agree with the status and with the thread (the first
  public agent reply is sent at ``first_response_at``; ``updated_at`` is the last activity);
* ids are time-ordered (version 7 layout) from each row's own ``created_at``.

When the workspace does not exist it is made with an admin (whose random password is
printed once), 20 staff in three teams, seven categories and a few organisations.  Made-up
staff share one password hash (of a random password nobody is told); the benchmark signs
in through :func:`issue_access_token` instead.
"""

from __future__ import annotations

import bisect
import math
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relaydesk import migrate
from relaydesk.agents.models import AgentProfile, AgentSkill, Team, TeamMember
from relaydesk.config import Settings
from relaydesk.core.principal import STAFF_ROLES, Principal, Role
from relaydesk.core.sanitize import text_to_html
from relaydesk.customers.models import Customer, Organisation
from relaydesk.identity.models import User
from relaydesk.runtime import Runtime, build_runtime
from relaydesk.seeding.admin import CommandError
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.schemas import WorkspaceSettings
from relaydesk.tenancy.service import slugify
from relaydesk.tickets.models import Category, Message, Ticket, TicketTag

BATCH_TICKETS = 5_000  # tickets per transaction (with their tags and messages)
ROWS_PER_EXECUTE = 5_000  # rows per executemany call
HISTORY_DAYS = 90
DAY = 86_400.0
HOUR = 3_600.0

# -- made-up people and things -------------------------------------------------------------
FIRST_NAMES = [
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Ben", "Carlos", "Chen", "Chloe", "Dan", "Diego", "Elena",
    "Emma", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines", "Isaac", "Jamal", "Jana", "Jon", "Julia", "Kenji",
    "Kofi", "Lan", "Lara", "Leo", "Lina", "Lucas", "Maria", "Mateo", "Mei", "Mia", "Nadia", "Noah", "Olga", "Omar",
    "Priya", "Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Tom", "Vera", "Yusuf", "Zoe",
]
LAST_NAMES = [
    "Adeyemi", "Andersen", "Becker", "Bianchi", "Costa", "Dubois", "Fischer", "Garcia", "Gonzalez", "Haddad",
    "Ivanova", "Jensen", "Kim", "Kowalski", "Lopez", "Martin", "Meyer", "Miller", "Moreau", "Nguyen", "Novak",
    "Obi", "Okafor", "Park", "Pham", "Rossi", "Santos", "Sato", "Schmidt", "Shah", "Silva", "Singh", "Tanaka",
    "Tran", "Wagner", "Wang", "Weber", "Williams", "Yilmaz", "Zhang",
]
MAIL_DOMAINS = ["mail.example.com", "example.com", "example.org", "example.net", "inbox.example.com"]
ORG_WORDS = [
    "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme", "Tailspin",
    "Litware", "Proseware", "Woodgrove", "Adatum", "Alpine", "Blue Yonder", "Coho", "Fourth Coffee", "Lucerne",
    "Margie", "Northridge", "Southridge", "Trey", "Wide World", "Wingtip", "Vandelay", "Hooli", "Pied Piper",
]
ORG_SUFFIXES = ["Traders", "Outfitters", "Labs", "Holdings", "Logistics", "Studios", "Retail", "Group", "Partners"]
TIMEZONES = ["UTC", "Europe/London", "Europe/Berlin", "Europe/Rome", "America/New_York", "America/Chicago",
             "America/Los_Angeles", "Asia/Tokyo", "Asia/Ho_Chi_Minh", "Africa/Lagos", "Australia/Sydney"]
LANGUAGES = ["en"] * 8 + ["de", "fr", "es", "vi"]

TEAMS = [  # key, name, description, skills
    ("billing", "Billing & Accounts", "Invoices, payments, refunds and account access.",
     ["billing", "refunds", "account"]),
    ("tech", "Technical Support", "The apps, the website and integrations.", ["technical", "account"]),
    ("fulfilment", "Fulfilment", "Shipping, deliveries and returns.", ["shipping", "returns"]),
]
CATEGORIES = [  # name, parent, default priority, skills, team key
    ("Billing", None, "MEDIUM", ["billing"], "billing"),
    ("Refunds", "Billing", "HIGH", ["billing", "refunds"], "billing"),
    ("Account", None, "MEDIUM", ["account"], "billing"),
    ("Technical", None, "MEDIUM", ["technical"], "tech"),
    ("Shipping", None, "MEDIUM", ["shipping"], "fulfilment"),
    ("Returns", None, "LOW", ["returns"], "fulfilment"),
    ("General", None, "LOW", [], None),
]
STAFF_PER_TEAM = 6  # agents; plus one supervisor leading each team, plus the admin

PRODUCTS = ["hiking boots", "rain jacket", "2-person tent", "sleeping bag", "trail backpack", "fleece jacket",
            "camping stove", "headlamp", "water filter", "trekking poles", "down vest", "wool socks"]
DEVICES = ["iPhone 15", "iPhone 13", "Pixel 8", "Galaxy S23", "iPad Air", "Windows laptop", "MacBook Air"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
CITIES = ["Berlin", "Lyon", "Osaka", "Austin", "Leeds", "Porto", "Hanoi", "Lagos", "Denver", "Milan"]
PLANS = ["Explorer membership", "Summit membership", "annual warranty plan", "gift subscription"]

SUBJECTS: dict[str, list[str]] = {
    "Billing": ["Charged twice for order {order}", "Invoice {invoice} needs our VAT number",
                "Wrong amount on my card for {order}", "Coupon code was not applied to {order}",
                "Question about my {plan} renewal", "Payment failed but money was taken",
                "Need a copy of invoice {invoice}", "Why was I charged {amount}?"],
    "Refunds": ["Refund not received for {order}", "Please refund order {order}", "Partial refund for the {product}",
                "Refund went to the wrong card", "Cancel and refund {order} before it ships",
                "Chargeback warning for {order}"],
    "Account": ["Can't reset my password", "Locked out of my account", "Please change my email address",
                "Delete my account and data", "Two-factor codes are rejected", "Merge my two accounts",
                "Can't sign in on the {device}"],
    "Technical": ["App crashes when I open my orders", "Checkout page shows an error", "Website is very slow today",
                  "Can't upload photos to my review", "Order confirmation email missing",
                  "The {device} app logs me out", "Search returns nothing in {browser}",
                  "Error 500 when I save my address", "Size guide page is broken on the {device}"],
    "Shipping": ["Where is my parcel? ({order})", "Tracking hasn't moved for {days} days",
                 "Parcel marked delivered but not here", "Can I change the delivery address for {order}?",
                 "Express shipping upgrade for {order}", "Do you ship to {city}?", "Customs fees for {order}",
                 "Delivery is {days} days late"],
    "Returns": ["Return label please", "Wrong size {product}, want to exchange", "Wrong colour delivered ({order})",
                "When will my return for {order} be processed?", "Return window for a gift",
                "The {product} arrived damaged", "Exchange the {product} for a bigger size"],
    "General": ["Do you have a store in {city}?", "Gift wrapping?", "Bulk order for our team",
                "Question about the {product}", "Feedback on my last order", "Is the {product} waterproof?",
                "Do you offer student discounts?", "Partnership enquiry"],
}
DESCRIPTIONS: dict[str, list[str]] = {
    "Billing": ["Hi, my card statement shows two charges of {amount} for order {order}. Please refund one of them.",
                "Please reissue invoice {invoice} with our company VAT number; our accountant needs it this week.",
                "I used a discount code at checkout for {order} but the full price of {amount} was charged.",
                "My {plan} renewed automatically for {amount}. I thought I had switched that off. Can you check?"],
    "Refunds": ["You told me the refund for {order} was sent {days} days ago, but nothing has arrived on my card.",
                "I returned the {product} and the parcel was delivered to you, but I haven't had my {amount} back.",
                "Please cancel {order} and refund me; I ordered the wrong {product}.",
                "If I don't hear back about {order} soon I will have to file a chargeback with my bank."],
    "Account": ["The password reset email never arrives. I've checked spam and tried twice today.",
                "I'd like to use a different email address for my account. Can you change it for me?",
                "My authenticator codes are always rejected as invalid since I moved to a new {device}.",
                "Please delete my account and all my data, as allowed under GDPR."],
    "Technical": ["The app closes as soon as I tap 'My orders'. I'm on a {device} with the latest update.",
                  "Every time I try to pay I get an error page. I tried {browser} and the app, same result.",
                  "Pages take around {days}0 seconds to load since yesterday. Is something wrong on your side?",
                  "The upload button does nothing in {browser}. I wanted to add photos of my {product}."],
    "Shipping": ["Tracking for {order} hasn't moved in {days} days. Can you find out where it is?",
                 "The courier says my parcel was delivered but there is nothing at my door or with neighbours.",
                 "I'm moving next week; could {order} go to my new address in {city} instead?",
                 "I need the {product} before my trip on Friday. Can I upgrade {order} to express shipping?"],
    "Returns": ["The {product} I received is too small. I'd like to return it for a bigger size.",
                "I ordered the green {product} but got a blue one in {order}. Please send the right one.",
                "You received my return for {order} last week; when will the refund be processed?",
                "The {product} arrived with a torn seam. I'd like a replacement, photos attached."],
    "General": ["Do you have a shop in {city}? I'd love to try the {product} on before buying.",
                "We need about {days}0 fleece jackets for a company event. Do you do bulk discounts?",
                "Just wanted to say the {product} was great on our last trip. One suggestion though...",
                "Is the {product} suitable for winter camping? The product page doesn't say."],
}
AGENT_REPLIES = [
    "Hi {first}, thanks for reaching out. I've looked into {order} and I'm on it now.",
    "Sorry about the trouble, {first}. I've passed this to the right team and will update you within a day.",
    "Thanks for your patience. Could you send me a photo and the order number so I can check this?",
    "I've issued a refund of {amount}; it usually shows on your statement within 5 to 10 business days.",
    "Good news: a replacement {product} is on its way. You'll get a tracking link by email.",
    "I've reset that on our side. Could you try again and let me know if it works now?",
    "I can confirm this is a known issue and a fix is being rolled out today. Apologies for the hassle!",
    "I've updated the details on {order} as requested. Is there anything else I can help with?",
    "Here is your prepaid return label. Drop the parcel at any post office within 30 days.",
    "Thanks {first}, that's all sorted now. I'll mark this as resolved, just reply if anything comes up.",
]
CUSTOMER_REPLIES = [
    "Thanks for the quick answer!", "Any update on this? It's been a couple of days.",
    "I tried that and it still doesn't work.", "Here is the photo you asked for.",
    "That worked, thank you so much!", "The order number is {order}.",
    "Can you confirm when it will arrive? I need it by the weekend.", "Still nothing on my side, sorry.",
    "Great, thanks. One more question about the {product}: does it come with a warranty?",
]
INTERNAL_NOTES = [
    "Checked the payment provider: duplicate capture confirmed.", "Courier claim opened, waiting on their reply.",
    "Reproduced on staging; filed a bug for engineering.", "VIP customer, please prioritise.",
    "Asked finance to approve the refund above the usual limit.", "Looks like the same issue as last week's outage.",
    "Customer called as well; summarised the call here.", "Warehouse confirms the wrong item was picked.",
]
TAGS: dict[str, list[str]] = {
    "Billing": ["billing", "invoice", "vat", "double-charge", "coupon"],
    "Refunds": ["refund", "chargeback", "billing", "cancellation"],
    "Account": ["login", "password", "2fa", "gdpr", "account"],
    "Technical": ["bug", "mobile", "checkout", "performance", "ios", "android", "web"],
    "Shipping": ["shipping", "delayed", "lost-parcel", "express", "customs", "address-change"],
    "Returns": ["returns", "exchange", "damaged", "wrong-item", "sizing"],
    "General": ["question", "feedback", "b2b", "store", "product-info"],
}
COMMON_TAGS = ["vip", "follow-up", "repeat-contact", "social-media", "angry-customer", "needs-manager"]

STATUSES = ["OPEN", "ASSIGNED", "IN_PROGRESS", "WAITING_ON_CUSTOMER", "WAITING_INTERNAL", "ESCALATED", "RESOLVED",
            "CLOSED"]
# Status weights by ticket age: the older a ticket, the likelier it is done.
STATUS_WEIGHTS_BY_AGE = [  # (max age in days, weights in STATUSES order)
    (2.0, [25, 18, 24, 10, 5, 5, 11, 2]),
    (14.0, [5, 6, 14, 12, 5, 3, 30, 25]),
    (math.inf, [0.5, 0.5, 2, 2, 1, 0.5, 13.5, 80]),
]
NEEDS_ASSIGNEE = {"ASSIGNED", "IN_PROGRESS", "WAITING_ON_CUSTOMER", "WAITING_INTERNAL", "ESCALATED"}
NO_RESPONSE_YET = {"OPEN", "ASSIGNED"}  # an agent's public reply would have moved these to IN_PROGRESS
PRIORITIES = ["LOW", "MEDIUM", "HIGH", "URGENT"]
PRIORITY_WEIGHTS = {"LOW": [55, 30, 12, 3], "MEDIUM": [20, 55, 20, 5], "HIGH": [5, 30, 50, 15]}
# How long the first reply takes, in hours (low, high), by priority.
FIRST_RESPONSE_HOURS = {"LOW": (1.0, 30.0), "MEDIUM": (0.5, 12.0), "HIGH": (0.2, 4.0), "URGENT": (0.05, 1.0)}
CHANNELS = ["email", "web", "chat", "api", "phone", "sms", "social"]
CHANNEL_WEIGHTS = [45, 25, 12, 4, 8, 2, 4]
# Busier in office hours (UTC-ish, it's a made-up shop) and on weekdays.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 8, 9, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
WEEKDAY_WEIGHTS = [10, 10, 9, 9, 8, 5, 4]


# -- the rows this run works with --------------------------------------------------------------
@dataclass
class CategoryInfo:
    id: uuid.UUID
    name: str
    team_id: uuid.UUID | None
    default_priority: str
    kind: str  # which templates to use


@dataclass
class Cast:
    """Who and what the generated tickets refer to."""

    workspace_id: uuid.UUID
    workspace_created: bool
    staff: list[uuid.UUID] = field(default_factory=list)
    team_members: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    categories: list[CategoryInfo] = field(default_factory=list)
    customers: list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None, str]] = field(default_factory=list)
    # (customer id, organisation id, portal user id, first name)
    existing_customers: int = 0
    auto_close_hours: float = 48.0
    rows_written: int = 0
    admin_email: str | None = None
    admin_password: str | None = None


@dataclass
class LoadReport:
    workspace_slug: str
    workspace_created: bool
    tickets: int
    messages: int
    tags: int
    customers: int
    other_rows: int
    first_number: int
    last_number: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.tickets + self.messages + self.tags + self.customers + self.other_rows

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


class _Ids:
    """Version-7-layout UUIDs for a given moment, like ``core.db.new_id`` but back-dated."""

    def __init__(self, rng: random.Random) -> None:
        self._bits = rng.getrandbits

    def at(self, ts: float) -> uuid.UUID:
        ms = int(ts * 1000) & ((1 << 48) - 1)
        return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (self._bits(12) << 64) | (0x2 << 62) | self._bits(62))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- entry points --------------------------------------------------------------------------------
async def run_seed_load(
    settings: Settings, workspace_slug: str, tickets: int, messages_per_ticket: int, *, console: Console,
    fill_any_workspace: bool = False,
) -> None:
    """The ``relaydesk seed-load`` command: seed, show progress, print a summary."""
    report = await seed_load(settings, workspace_slug, tickets, messages_per_ticket, console=console,
                             fill_any_workspace=fill_any_workspace)
    table = Table(title=f"seed-load into workspace '{report.workspace_slug}'", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("tickets", f"{report.tickets:,} (T-{report.first_number:06d} to T-{report.last_number:06d})")
    table.add_row("messages", f"{report.messages:,}")
    table.add_row("tags", f"{report.tags:,}")
    table.add_row("new customers", f"{report.customers:,}")
    table.add_row("rows in total", f"{report.rows:,}")
    table.add_row("seconds", f"{report.seconds:.1f}")
    table.add_row("rows/s", f"{report.rows_per_second:,.0f}")
    table.add_row("tickets/s", f"{report.tickets / report.seconds:,.0f}" if report.seconds else "-")
    console.print(table)


async def seed_load(
    settings: Settings, workspace_slug: str, tickets: int, messages_per_ticket: int, *,
    console: Console | None = None, seed: int | None = None, batch_tickets: int = BATCH_TICKETS,
    fill_any_workspace: bool = False,
) -> LoadReport:
    """Add ``tickets`` tickets with about ``messages_per_ticket`` messages each; returns what was written.
    An existing workspace seed-load did not make is refused (:class:`CommandError`) unless
    ``fill_any_workspace``."""
    if tickets < 1:
        raise ValueError("tickets must be at least 1")
    if messages_per_ticket < 1:
        raise ValueError("messages_per_ticket must be at least 1")
    console = console or Console(stderr=True, quiet=True)
    slug = slugify(workspace_slug)
    if slug != workspace_slug:
        console.print(f"Using the workspace slug '{slug}' for '{workspace_slug}'.", highlight=False)
    rng = random.Random(seed)
    started = time.perf_counter()
    runtime = build_runtime(settings)
    try:
        await migrate.upgrade(runtime.db)
        now = runtime.clock.now().timestamp()
        cast = await _prepare_cast(runtime, slug, tickets, rng, now, console, fill_any_workspace)
        if cast.admin_password is not None:
            console.print(f"Created workspace '{slug}'. Admin login: {cast.admin_email}  password: "
                          f"{cast.admin_password}", highlight=False, soft_wrap=True)
        new_customers = len(cast.customers) - cast.existing_customers
        report = await _write_tickets(runtime, cast, tickets, messages_per_ticket, rng, now, console, batch_tickets)
        await _refresh_statistics(runtime)
    finally:
        await runtime.close()
    elapsed = time.perf_counter() - started
    return LoadReport(
        workspace_slug=slug, workspace_created=cast.workspace_created, tickets=tickets, messages=report[0],
        tags=report[1], customers=new_customers, other_rows=cast.rows_written - new_customers,
        first_number=report[2], last_number=report[3], seconds=elapsed,
    )


async def _refresh_statistics(runtime: Runtime) -> None:
    """After a bulk load PostgreSQL's planner still believes the tables are tiny until
    autovacuum gets round to them, and picks a bitmap scan plus sort over the whole workspace
    for a first page (~70 ms at 100,000 tickets instead of <1 ms).  ANALYZE fixes that now.
    SQLite is left as the app runs it (no sqlite_stat1), so the benchmark measures that."""
    if runtime.db.is_sqlite:
        return
    async with runtime.db.write_engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in (Ticket, TicketTag, Message, Customer, Organisation, User):
            await conn.execute(text(f"ANALYZE {table.__tablename__}"))


async def issue_access_token(settings: Settings, workspace_slug: str, *, role: str = "admin") -> str:
    """A signed access token for the workspace's first active user with ``role``.

    For benchmarks and scripts on the server's own machine: it needs the same settings (data
    dir or ``RELAYDESK_SECRET_KEY``) as the server, and lasts ``access_token_ttl_seconds``."""
    runtime = build_runtime(settings)
    try:
        async with runtime.db.read_session() as session:
            ws = await session.scalar(select(Workspace).where(Workspace.slug == slugify(workspace_slug)))
            if ws is None:
                raise LookupError(f"No workspace '{workspace_slug}'.")
            user = await session.scalar(
                select(User).where(User.workspace_id == ws.id, User.role == role, User.is_active.is_(True))
                .order_by(User.created_at, User.id).limit(1)
            )
            if user is None:
                raise LookupError(f"Workspace '{workspace_slug}' has no active {role}.")
            return runtime.signer.issue(Principal(user.id, ws.id, Role(role)), runtime.clock.now())
    finally:
        await runtime.close()


# -- the workspace and its people -------------------------------------------------------------
async def _insert(conn: AsyncConnection, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), ROWS_PER_EXECUTE):
        await conn.execute(insert(table), list(rows[start:start + ROWS_PER_EXECUTE]))


async def _prepare_cast(
    runtime: Runtime, slug: str, tickets: int, rng: random.Random, now: float, console: Console,
    fill_any_workspace: bool,
) -> Cast:
    ids = _Ids(rng)
    founded = now - (HISTORY_DAYS + 30) * DAY
    async with runtime.db.write_engine.begin() as conn:
        found = (await conn.execute(select(Workspace.id, Workspace.settings).where(Workspace.slug == slug))).first()
        ws_id = found[0] if found else None
        if ws_id is not None and not fill_any_workspace and not await _made_by_seed_load(conn, ws_id):
            raise CommandError(
                f"Workspace '{slug}' exists and was not made by seed-load: filling it would mix made-up staff, "
                "customers and tickets into its own. Name a new workspace with --workspace (seed-load makes it), "
                "or give --yes to fill this one anyway.")
        cast = Cast(workspace_id=ws_id or ids.at(founded), workspace_created=ws_id is None)
        cast.auto_close_hours = WorkspaceSettings.model_validate((found[1] if found else None) or {}).auto_close_hours
        domain = f"{slug}.example.com"
        if ws_id is None:
            await conn.execute(insert(Workspace.__table__), [{
                "id": cast.workspace_id, "name": slug.replace("-", " ").title(), "slug": slug, "ticket_seq": 0,
                "settings": {}, "created_at": _dt(founded),
            }])
            cast.admin_email = f"admin@{domain}"
            cast.admin_password = secrets.token_urlsafe(16)
            admin_hash = await runtime.hasher.hash(cast.admin_password)
            await _insert(conn, User.__table__, [_user_row(
                ids.at(founded), cast.workspace_id, cast.admin_email, "Ada Admin", "admin", admin_hash, founded)])
            cast.rows_written += 2
        await _load_or_create_staff(conn, runtime, cast, rng, ids, domain, founded)
        await _load_or_create_categories(conn, cast, ids, founded)
        await _add_customers(conn, cast, tickets, rng, ids, now)
    console.print(f"Workspace '{slug}': {len(cast.staff)} staff, {len(cast.team_members)} teams, "
                  f"{len(cast.categories)} categories, {len(cast.customers):,} customers.", highlight=False)
    return cast


async def _made_by_seed_load(conn: AsyncConnection, workspace_id: uuid.UUID) -> bool:
    """Every run adds customers marked as its own (``metadata.source``), the run that made
    the workspace among them; a workspace without any is someone's real one. (One filled
    with --yes holds some from then on, and is taken for a load-test workspace.)"""
    return await conn.scalar(select(Customer.id).where(
        Customer.workspace_id == workspace_id, Customer.attributes["source"].as_string() == "seed-load",
    ).limit(1)) is not None


def _user_row(user_id: uuid.UUID, ws: uuid.UUID, email: str, name: str, role: str, password_hash: str | None,
              at: float) -> dict[str, Any]:
    return {"id": user_id, "workspace_id": ws, "email": email, "name": name, "role": role,
            "password_hash": password_hash, "is_active": True, "last_login_at": None,
            "created_at": _dt(at), "updated_at": _dt(at)}


async def _load_or_create_staff(
    conn: AsyncConnection, runtime: Runtime, cast: Cast, rng: random.Random, ids: _Ids, domain: str, at: float,
) -> None:
    ws = cast.workspace_id
    staff = (await conn.execute(select(User.id, User.role).where(
        User.workspace_id == ws, User.role.in_([r.value for r in STAFF_ROLES]), User.is_active.is_(True),
    ).order_by(User.id))).all()
    if not any(role != Role.ADMIN.value for _, role in staff):
        await _create_staff(conn, runtime, cast, rng, ids, domain, at)
        staff = (await conn.execute(select(User.id, User.role).where(
            User.workspace_id == ws, User.role.in_([r.value for r in STAFF_ROLES]), User.is_active.is_(True),
        ).order_by(User.id))).all()
    # Admins rarely work tickets; agents and supervisors do.
    cast.staff = [uid for uid, role in staff if role != Role.ADMIN.value] or [uid for uid, _ in staff]
    active = set(cast.staff)
    for team_id, user_id in (await conn.execute(
        select(TeamMember.team_id, TeamMember.user_id).where(TeamMember.workspace_id == ws)
        .order_by(TeamMember.team_id, TeamMember.user_id)
    )).all():
        if user_id in active:
            cast.team_members.setdefault(team_id, []).append(user_id)


async def _create_staff(
    conn: AsyncConnection, runtime: Runtime, cast: Cast, rng: random.Random, ids: _Ids, domain: str, at: float,
) -> None:
    ws = cast.workspace_id
    # One hash of a password nobody is told, shared by every made-up agent: hashing is slow on purpose.
    shared_hash = runtime.hasher.hash_sync(secrets.token_urlsafe(24))
    taken = set((await conn.scalars(select(User.email).where(User.workspace_id == ws))).all())
    users, profiles, skills, teams, members = [], [], [], [], []
    names = rng.sample([(f, last) for f in FIRST_NAMES for last in LAST_NAMES], len(TEAMS) * (STAFF_PER_TEAM + 1))
    for t, (_key, team_name, description, team_skills) in enumerate(TEAMS):
        team_id = ids.at(at)
        roster = names[t * (STAFF_PER_TEAM + 1):(t + 1) * (STAFF_PER_TEAM + 1)]
        lead_id = None
        for i, (first, last) in enumerate(roster):
            email = f"{first}.{last}@{domain}".lower()
            if email in taken:
                continue
            taken.add(email)
            user_id = ids.at(at)
            role = "supervisor" if i == 0 else "agent"
            lead_id = lead_id or (user_id if role == "supervisor" else None)
            users.append(_user_row(user_id, ws, email, f"{first} {last}", role, shared_hash, at))
            profiles.append({
                "user_id": user_id, "workspace_id": ws, "max_concurrent": 8 if role == "supervisor" else 6,
                "availability": rng.choices(["online", "away", "offline"], [60, 15, 25])[0],
                "is_senior": role == "supervisor" or rng.random() < 0.3,
                "languages": ["en"] + rng.sample(["de", "fr", "es", "vi", "ja"], rng.randint(0, 1)),
                "timezone": rng.choice(TIMEZONES),
            })
            for skill in team_skills:
                skills.append({"agent_id": user_id, "skill": skill, "level": rng.randint(2, 5), "workspace_id": ws})
            members.append({"team_id": team_id, "user_id": user_id, "joined_at": _dt(at), "workspace_id": ws})
        teams.append({"id": team_id, "workspace_id": ws, "name": team_name, "description": description,
                      "lead_id": lead_id, "created_at": _dt(at), "updated_at": _dt(at)})
    existing_teams = set((await conn.scalars(select(Team.name).where(Team.workspace_id == ws))).all())
    clash = [t for t in teams if t["name"] in existing_teams]
    for t in clash:  # a workspace with teams of these names but no agents: keep its teams' names free
        t["name"] = f"{t['name']} ({secrets.token_hex(2)})"
    await _insert(conn, User.__table__, users)
    await _insert(conn, AgentProfile.__table__, profiles)
    await _insert(conn, AgentSkill.__table__, skills)
    await _insert(conn, Team.__table__, teams)
    await _insert(conn, TeamMember.__table__, members)
    cast.rows_written += len(users) + len(profiles) + len(skills) + len(teams) + len(members)


async def _load_or_create_categories(conn: AsyncConnection, cast: Cast, ids: _Ids, at: float) -> None:
    ws = cast.workspace_id
    rows = (await conn.execute(select(Category.id, Category.name, Category.team_id, Category.default_priority)
                               .where(Category.workspace_id == ws).order_by(Category.id))).all()
    if not rows:
        teams = dict((await conn.execute(select(Team.name, Team.id).where(Team.workspace_id == ws))).all())
        by_key = {key: teams.get(name) for key, name, _, _ in TEAMS}
        made: dict[str, uuid.UUID] = {}
        new_rows = []
        for name, parent, priority, skills, team_key in CATEGORIES:
            made[name] = ids.at(at)
            new_rows.append({
                "id": made[name], "workspace_id": ws, "parent_id": made[parent] if parent else None, "name": name,
                "description": f"{name} questions.", "default_priority": priority, "required_skills": skills,
                "team_id": by_key.get(team_key) if team_key else None, "sla_policy_id": None,
                "created_at": _dt(at), "updated_at": _dt(at),
            })
        await _insert(conn, Category.__table__, new_rows)
        cast.rows_written += len(new_rows)
        rows = [(r["id"], r["name"], r["team_id"], r["default_priority"]) for r in new_rows]
    for cat_id, name, team_id, priority in rows:
        kind = name if name in SUBJECTS else "General"
        cast.categories.append(CategoryInfo(cat_id, name, team_id, priority or "MEDIUM", kind))


async def _add_customers(
    conn: AsyncConnection, cast: Cast, tickets: int, rng: random.Random, ids: _Ids, now: float,
) -> None:
    """About one new customer per 20 new tickets, some in organisations; existing ones are reused too."""
    ws = cast.workspace_id
    existing = (await conn.execute(
        select(Customer.id, Customer.organisation_id, Customer.user_id, Customer.name)
        .where(Customer.workspace_id == ws, Customer.deleted_at.is_(None)).order_by(Customer.id)
    )).all()
    cast.customers = [(cid, org, uid, (name or "there").split()[0]) for cid, org, uid, name in existing]
    cast.existing_customers = len(cast.customers)
    count = max(5, math.ceil(tickets / 20))
    org_names = set((await conn.scalars(select(Organisation.name).where(Organisation.workspace_id == ws))).all())
    orgs = []
    for _ in range(max(1, min(200, count // 40))):
        name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_SUFFIXES)}"
        while name in org_names:
            name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_SUFFIXES)} {rng.randint(2, 9999)}"
        org_names.add(name)
        at = now - rng.uniform(HISTORY_DAYS, HISTORY_DAYS + 30) * DAY
        orgs.append({"id": ids.at(at), "workspace_id": ws, "name": name,
                     "domain": name.lower().replace(" ", "-") + ".example.com", "shared_tickets": rng.random() < 0.5,
                     "created_at": _dt(at), "updated_at": _dt(at)})
    tag = secrets.token_hex(3)  # keeps this run's emails apart from earlier runs'
    rows = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        org = rng.choice(orgs) if rng.random() < 0.3 else None
        domain = org["domain"] if org else rng.choice(MAIL_DOMAINS)
        at = now - rng.uniform(HISTORY_DAYS, HISTORY_DAYS + 30) * DAY
        cid = ids.at(at)
        rows.append({
            "id": cid, "workspace_id": ws, "user_id": None, "name": f"{first} {last}",
            "email": f"{first}.{last}.{tag}{i}@{domain}".lower(), "phone": None,
            "organisation_id": org["id"] if org else None, "tier": "vip" if rng.random() < 0.05 else "standard",
            "language": rng.choice(LANGUAGES), "timezone": rng.choice(TIMEZONES),
            "metadata": {"source": "seed-load"}, "created_at": _dt(at), "updated_at": _dt(at), "deleted_at": None,
        })
        cast.customers.append((cid, rows[-1]["organisation_id"], None, first))
    await _insert(conn, Organisation.__table__, orgs)
    await _insert(conn, Customer.__table__, rows)
    cast.rows_written += len(orgs) + len(rows)


# -- tickets and threads ------------------------------------------------------------------------
def _created_times(n: int, rng: random.Random, now: float) -> list[float]:
    """``n`` sorted moments over the last HISTORY_DAYS, busier on weekdays and in office hours."""
    start_day = math.floor((now - HISTORY_DAYS * DAY) / DAY)
    days = list(range(start_day, math.floor(now / DAY) + 1))
    # 1970-01-01 was a Thursday (weekday 3).
    day_weights = [WEEKDAY_WEIGHTS[(d + 3) % 7] for d in days]
    picked_days = rng.choices(days, day_weights, k=n)
    picked_hours = rng.choices(range(24), HOUR_WEIGHTS, k=n)
    rnd = rng.random
    out = []
    for d, h in zip(picked_days, picked_hours, strict=True):
        ts = d * DAY + h * HOUR + rnd() * HOUR
        out.append(ts if ts < now else now - rnd() * DAY)
    out.sort()
    return out


class _Generator:
    """Makes the rows for one ticket at a time; holds the prepared choices."""

    def __init__(self, cast: Cast, messages_per_ticket: int, rng: random.Random, now: float) -> None:
        self.cast = cast
        self.ws = cast.workspace_id
        self.rng = rng
        self.now = now
        self.ids = _Ids(rng)
        self.mpt = messages_per_ticket
        self.low = max(1, messages_per_ticket - messages_per_ticket // 2)
        self.high = messages_per_ticket + messages_per_ticket // 2
        self.staff = cast.staff
        self.auto_close = cast.auto_close_hours * HOUR
        self.team_members = {t: m for t, m in cast.team_members.items() if m}
        self.category_weights = [3 if c.kind in ("Shipping", "Technical", "Billing") else 2 for c in cast.categories]
        self.status_cum = [(age, list(_cumulative(w))) for age, w in STATUS_WEIGHTS_BY_AGE]

    def _fill(self, template: str, first: str) -> str:
        rng = self.rng
        if "{" not in template:
            return template
        return template.format(
            order=f"A-{rng.randint(10000, 99999)}", invoice=f"INV-{rng.randint(1000, 9999)}",
            amount=f"${rng.randint(9, 480)}.{rng.randint(0, 99):02d}", product=rng.choice(PRODUCTS),
            device=rng.choice(DEVICES), browser=rng.choice(BROWSERS), city=rng.choice(CITIES),
            plan=rng.choice(PLANS), days=rng.randint(2, 9), first=first,
        )

    def _status(self, age_days: float) -> str:
        for max_age, cum in self.status_cum:
            if age_days <= max_age:
                return STATUSES[bisect.bisect_right(cum, self.rng.random() * cum[-1])]
        raise AssertionError("unreachable")

    def ticket(self, number: int, created: float, tickets: list, tags: list, messages: list) -> None:
        rng, now = self.rng, self.now
        cast = self.cast
        customer_id, org_id, portal_user, first = rng.choice(cast.customers)
        category = rng.choices(cast.categories, self.category_weights)[0] if cast.categories else None
        kind = category.kind if category else "General"
        team_id = category.team_id if category else None
        if team_id is None and self.team_members and rng.random() < 0.5:
            team_id = rng.choice(list(self.team_members))
        default_priority = category.default_priority if category else "MEDIUM"
        priority = ("URGENT" if default_priority == "URGENT"
                    else rng.choices(PRIORITIES, PRIORITY_WEIGHTS.get(default_priority, PRIORITY_WEIGHTS["MEDIUM"]))[0])
        channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        status = self._status((now - created) / DAY)

        # Whoever answered publicly owns the ticket; a few closed ones never got an answer (spam, duplicates).
        responded = status not in NO_RESPONSE_YET and not (status == "CLOSED" and rng.random() < 0.04)
        assignee = None
        if status in NEEDS_ASSIGNEE or responded:
            pool = self.team_members.get(team_id) if team_id else None
            assignee = rng.choice(pool or self.staff)

        # The timeline: created -> first response -> (resolved -> closed); all before now.
        first_response = resolved = closed = auto_close = None
        if responded:
            lo, hi = FIRST_RESPONSE_HOURS[priority]
            delay = math.exp(rng.uniform(math.log(lo), math.log(hi))) * HOUR
            room = now - created
            first_response = created + (delay if delay < room * 0.8 else room * rng.uniform(0.05, 0.5))
        if status in ("RESOLVED", "CLOSED") and first_response is not None:
            room = now - first_response
            work = rng.uniform(0.5 * HOUR, 5 * DAY)
            resolved = first_response + (work if work < room * 0.7 else room * rng.uniform(0.1, 0.5))
            # A RESOLVED ticket nobody answers closes itself after the workspace's auto-close
            # window; before that the customer may confirm (or an agent close) it sooner.
            window = self.auto_close
            if status == "CLOSED":
                wait = rng.uniform(HOUR, window) if rng.random() < 0.3 else window
                closed = resolved + wait if resolved + wait < now else resolved + (now - resolved) * rng.random()
            elif resolved + window <= now:
                status, closed = "CLOSED", resolved + window
            else:
                auto_close = resolved + window
        if status == "CLOSED" and closed is None:  # closed without a reply
            closed = created + (now - created) * rng.uniform(0.01, 0.2)
        end = resolved or closed  # nothing is said after the resolution (a reply would reopen it)
        if end is None:  # still open: the last activity lies between the start and now
            start = first_response or created
            end = start + (now - start) * rng.uniform(0.05, 0.9)

        # The thread: description first, then the first public agent reply at first_response
        # (so a ticket that was answered has at least two messages, whatever the average asked).
        count = rng.randint(self.low, self.high)
        if first_response is not None:
            count = max(count, 2)
        subject = self._fill(rng.choice(SUBJECTS[kind]), first)
        description = self._fill(rng.choice(DESCRIPTIONS[kind]), first)
        agent = assignee or rng.choice(self.staff)
        staff_opened = channel in ("phone", "api")  # typed in by staff on the customer's behalf
        thread: list[tuple[float, str, bool, str]] = [  # (at, kind, internal, text)
            (created, "agent" if staff_opened else "customer", False, description)]
        if first_response is not None:
            thread.append((first_response, "agent", False, self._fill(rng.choice(AGENT_REPLIES), first)))
        rest = count - len(thread)
        if rest > 0:
            begin = thread[-1][0]
            span = max(end - begin, 1.0)
            moments = sorted(begin + span * rng.random() for _ in range(rest))
            last_public = thread[-1][1]
            for j, at in enumerate(moments):
                if rng.random() < 0.15:
                    thread.append((at, "agent", True, self._fill(rng.choice(INTERNAL_NOTES), first)))
                    continue
                if first_response is None:
                    who = "customer"  # nobody has answered publicly yet
                elif j == rest - 1 and status in ("WAITING_ON_CUSTOMER", "RESOLVED", "CLOSED"):
                    who = "agent"  # the agent spoke last: they asked, or they closed it off
                else:
                    who = "customer" if last_public == "agent" else "agent"
                last_public = who
                template = rng.choice(CUSTOMER_REPLIES if who == "customer" else AGENT_REPLIES)
                thread.append((at, who, False, self._fill(template, first)))
        last = thread[-1][0]
        updated = max(last, resolved or 0.0, closed or 0.0, created)

        ticket_id = self.ids.at(created)
        n_tags = rng.choices((0, 1, 2, 3), (25, 45, 25, 5))[0]
        picked = rng.sample(TAGS[kind], min(n_tags, len(TAGS[kind])))
        if rng.random() < 0.12:
            picked.append(rng.choice(COMMON_TAGS))
        ticket_tags = sorted(set(picked))
        tickets.append({
            "id": ticket_id, "workspace_id": self.ws, "number": number, "subject": subject,
            "description": text_to_html(description), "status": status, "priority": priority, "channel": channel,
            "category_id": category.id if category else None, "requester_id": customer_id,
            "organisation_id": org_id, "assignee_id": assignee, "team_id": team_id, "follow_up_of_id": None,
            "reopen_count": 1 if status in ("IN_PROGRESS", "RESOLVED", "CLOSED") and rng.random() < 0.04 else 0,
            "tags": ticket_tags, "first_response_at": _dt(first_response) if first_response else None,
            "resolved_at": _dt(resolved) if resolved else None, "closed_at": _dt(closed) if closed else None,
            "auto_close_at": _dt(auto_close) if auto_close else None, "sla_breached": False,
            "created_at": _dt(created), "updated_at": _dt(updated), "deleted_at": None,
        })
        for t in ticket_tags:
            tags.append({"ticket_id": ticket_id, "tag": t, "workspace_id": self.ws})
        # Customers write on the ticket's channel; agents answer by email unless it is a chat,
        # and notes are written in the web app.
        agent_channel = channel if channel in ("email", "chat") else "email"
        step = 0.0
        for i, (at, who, internal, body) in enumerate(thread):
            at = at + step  # strictly increasing, so the thread's order is never ambiguous
            step += 0.001
            messages.append({
                "id": self.ids.at(at), "workspace_id": self.ws, "ticket_id": ticket_id,
                "author_id": (portal_user if who == "customer" else agent), "author_kind": who,
                "internal": internal, "body_html": text_to_html(body), "body_text": body,
                "channel": "web" if internal else channel if who == "customer" or i == 0 else agent_channel,
                "created_at": _dt(at), "deleted_at": None,
            })


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


async def _reserve_numbers(conn: AsyncConnection, workspace_id: uuid.UUID, count: int) -> int:
    """Move ticket_seq on by ``count`` in the caller's transaction; returns the first number."""
    seq = await conn.scalar(select(Workspace.ticket_seq).where(Workspace.id == workspace_id).with_for_update())
    highest = await conn.scalar(select(func.max(Ticket.number)).where(Ticket.workspace_id == workspace_id))
    base = max(seq or 0, highest or 0)
    await conn.execute(update(Workspace).where(Workspace.id == workspace_id).values(ticket_seq=base + count))
    return base + 1


async def _write_tickets(
    runtime: Runtime, cast: Cast, total: int, messages_per_ticket: int, rng: random.Random, now: float,
    console: Console, batch_tickets: int,
) -> tuple[int, int, int, int]:
    gen = _Generator(cast, messages_per_ticket, rng, now)
    moments = _created_times(total, rng, now)
    n_messages = n_tags = 0
    first_number = last_number = 0
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("tickets", total=total, rate="")
        for start in range(0, total, batch_tickets):
            chunk = moments[start:start + batch_tickets]
            tickets: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            async with runtime.db.write_engine.begin() as conn:
                number = await _reserve_numbers(conn, cast.workspace_id, len(chunk))
                first_number = first_number or number
                for created in chunk:
                    gen.ticket(number, created, tickets, tags, messages)
                    number += 1
                last_number = number - 1
                await _insert(conn, Ticket.__table__, tickets)
                await _insert(conn, TicketTag.__table__, tags)
                await _insert(conn, Message.__table__, messages)
            n_messages += len(messages)
            n_tags += len(tags)
            done = start + len(chunk)
            rate = done / (time.perf_counter() - started)
            progress.update(task, completed=done, rate=f"{rate:,.0f} tickets/s")
    return n_messages, n_tags, first_number, last_number

"""The demo workspace that ``make run`` creates on first start.

Everything goes through the services, exactly as the API would, so the demo also shows
the audit trail and system messages.  Passwords are random per installation and kept
(readable by the owner only) in the data directory, so each start can print them again.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from relaydesk.agents.schemas import AgentIn, SkillIn, TeamIn
from relaydesk.agents.service import AgentService, TeamService
from relaydesk.config import Settings
from relaydesk.core.principal import Principal, Role
from relaydesk.customers.models import Customer
from relaydesk.customers.schemas import CustomerIn, OrganisationIn
from relaydesk.customers.service import CustomerService, OrganisationService
from relaydesk.identity.service import UserService
from relaydesk.runtime import Runtime, build_runtime
from relaydesk.tenancy.service import WorkspaceService
from relaydesk.tickets.categories import CategoryService
from relaydesk.tickets.lifecycle import Channel, Priority, Status
from relaydesk.tickets.schemas import CategoryIn, MessageIn, TicketIn, TicketPatch
from relaydesk.tickets.service import TicketService

DEMO_SLUG = "demo"
DOMAIN = "demo-outfitters.example.com"


@dataclass(frozen=True)
class Login:
    role: str
    name: str
    email: str
    password: str


def logins_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-logins.json"


def _password() -> str:
    return secrets.token_urlsafe(12)


# key, name, role, skills, languages, cap, senior, availability. The fulfilment team is
# away at start, so its new tickets show the queue and the routing explanation.
STAFF = [
    ("admin", "Ada Admin", "admin", [], ["en"], 5, True, "offline"),
    ("supervisor", "Sam Supervisor", "supervisor", [("billing", 4), ("technical", 4)], ["en"], 8, True, "away"),
    ("alice", "Alice Nguyen", "agent", [("billing", 5), ("refunds", 4)], ["en", "vi"], 6, False, "online"),
    ("bob", "Bob Schmidt", "agent", [("technical", 5), ("shipping", 3)], ["en", "de"], 6, True, "away"),
    ("chi", "Chi Tran", "agent", [("shipping", 4), ("returns", 4)], ["vi", "en"], 5, False, "offline"),
    ("dan", "Dan Okafor", "agent", [("technical", 3), ("account", 4)], ["en"], 5, False, "online"),
]

CUSTOMERS = [  # key, name, tier, language, timezone, organisation?, portal login?
    ("lan", "Lan Pham", "vip", "vi", "Asia/Ho_Chi_Minh", False, True),
    ("maria", "Maria Rossi", "standard", "en", "Europe/Rome", False, False),
    ("tom", "Tom Becker", "standard", "de", "Europe/Berlin", True, False),
    ("priya", "Priya Shah", "standard", "en", "Europe/London", True, False),
    ("jon", "Jon Miller", "standard", "en", "America/New_York", False, False),
    ("sofia", "Sofia Lopez", "vip", "en", "America/Chicago", False, False),
    ("kenji", "Kenji Sato", "standard", "en", "Asia/Tokyo", False, False),
    ("amara", "Amara Obi", "standard", "en", "Africa/Lagos", False, False),
]

CATEGORIES = [  # name, parent, default priority, skills, team
    ("Billing", None, "MEDIUM", ["billing"], "billing"),
    ("Refunds", "Billing", "HIGH", ["billing", "refunds"], "billing"),
    ("Technical", None, "MEDIUM", ["technical"], "fulfilment"),
    ("Shipping", None, "MEDIUM", ["shipping"], "fulfilment"),
    ("Returns", None, "LOW", ["returns"], "fulfilment"),
    ("Account", None, "MEDIUM", ["account"], "billing"),
    ("General", None, "LOW", [], None),
]

# customer, category, subject, description, steps; steps are
# ("assign", agent) ("reply", agent, text) ("note", agent, text) ("customer", text) ("status", agent, STATUS)
TICKETS: list[tuple[str, str, str, str, list[tuple[str, ...]]]] = [
    ("lan", "Refunds", "Charged twice for order A-1001", "Hi, my card shows two charges of $89.00 for order A-1001. Please refund one.",
     [("assign", "alice"), ("reply", "alice", "Sorry about that, Lan. I can see the duplicate and have started a refund."),
      ("status", "alice", "RESOLVED")]),
    ("maria", "Shipping", "Where is my parcel?", "Tracking hasn't moved in 5 days for order A-1002.",
     [("assign", "chi"), ("reply", "chi", "I've asked the courier for an update and will let you know."),
      ("status", "chi", "WAITING_INTERNAL")]),
    ("tom", "Technical", "App crashes when I open my orders", "The iOS app closes as soon as I tap 'My orders'. iPhone 14, iOS 18.",
     [("assign", "bob"), ("note", "bob", "Reproduced on iOS 18.1; filed ENG-4412."), ("reply", "bob", "Thanks Tom, we reproduced it and a fix is coming.")]),
    ("priya", "Returns", "Return label please", "I'd like to return the hiking boots, size 39 is too small.",
     [("assign", "chi"), ("reply", "chi", "Here is your return label. Drop it at any post office."), ("status", "chi", "WAITING_ON_CUSTOMER")]),
    ("jon", "Account", "Can't reset my password", "The reset email never arrives. I checked spam.",
     [("assign", "dan"), ("reply", "dan", "I've re-sent it from a different server; can you check again?"),
      ("customer", "Got it now, thanks!"), ("status", "dan", "RESOLVED"), ("status", "dan", "CLOSED")]),
    ("sofia", "Billing", "Invoice needs our VAT number", "Please reissue invoice INV-2231 with our VAT number ES-B12345678.",
     [("assign", "alice")]),
    ("kenji", "Shipping", "Delivery to a PO box?", "Do you ship to PO boxes in Osaka?", []),
    ("amara", "General", "Do you have a store in Lagos?", "I'd love to try the jackets on before buying.",
     [("reply", "supervisor", "Not yet, but our sizing guide and free returns should help."), ("status", "supervisor", "RESOLVED")]),
    ("lan", "Technical", "Checkout page is broken - URGENT", "I get an error 500 at checkout every time, I need this order today!",
     [("assign", "bob"), ("status", "bob", "IN_PROGRESS"), ("status", "bob", "ESCALATED"),
      ("note", "bob", "Payment gateway timeouts in the logs; escalated to on-call.")]),
    ("maria", "Refunds", "Refund not received", "You said the refund was sent a week ago but I don't see it.",
     [("assign", "alice"), ("reply", "alice", "Refunds take 5–10 business days to show. Reference RF-9912."),
      ("status", "alice", "WAITING_ON_CUSTOMER"), ("customer", "Still nothing after 10 days.")]),
    ("tom", "Returns", "Wrong colour delivered", "I ordered the green tent and got a blue one.",
     [("assign", "chi"), ("reply", "chi", "Apologies! A green one is on its way; keep the blue one."), ("status", "chi", "RESOLVED")]),
    ("priya", "Billing", "Company account billing address", "Please update the billing address for Northwind Traders.", []),
    ("jon", "Technical", "Website is very slow", "Pages take 20 seconds to load since yesterday.",
     [("assign", "dan"), ("note", "dan", "CDN incident reported upstream."), ("status", "dan", "WAITING_INTERNAL")]),
    ("sofia", "Shipping", "Express shipping upgrade", "Can I upgrade order A-1010 to express?",
     [("assign", "chi"), ("reply", "chi", "Done, it ships tomorrow with express."), ("status", "chi", "RESOLVED"),
      ("status", "chi", "CLOSED")]),
    ("kenji", "Account", "Delete my account", "Please delete my account and data.",
     [("assign", "dan"), ("reply", "dan", "Can you confirm from the email on file?"), ("status", "dan", "WAITING_ON_CUSTOMER")]),
    ("amara", "Refunds", "Chargeback warning", "If I don't hear back I will file a chargeback for order A-1015.",
     [("assign", "alice"), ("status", "alice", "IN_PROGRESS")]),
    ("lan", "Shipping", "Đơn hàng chưa tới", "Đơn hàng A-1020 của tôi đã quá hạn giao 3 ngày.",
     [("assign", "alice"), ("reply", "alice", "Chào chị Lan, em đã kiểm tra và đơn sẽ tới vào ngày mai ạ.")]),
    ("maria", "General", "Gift wrapping?", "Do you offer gift wrapping?",
     [("reply", "supervisor", "Yes, choose it at checkout for $3."), ("status", "supervisor", "RESOLVED"),
      ("status", "supervisor", "CLOSED")]),
    ("tom", "Technical", "Two-factor codes rejected", "My authenticator codes are always 'invalid'.",
     [("assign", "dan"), ("reply", "dan", "Please check your phone's clock is set automatically."),
      ("customer", "That was it, works now.")]),
    ("priya", "Returns", "Refund for returned boots", "You received my return on Monday; when is the refund?",
     [("assign", "chi")]),
    ("jon", "Billing", "Coupon didn't apply", "Code WINTER20 wasn't applied to my order.", []),
    ("sofia", "Technical", "Can't upload photos to review", "Upload button does nothing in Firefox.",
     [("assign", "bob"), ("reply", "bob", "Thanks, could you try a private window while we look?"),
      ("status", "bob", "WAITING_ON_CUSTOMER")]),
    ("kenji", "Shipping", "Customs fees", "Will I pay customs fees for delivery to Japan?",
     [("reply", "chi", "Orders to Japan ship duty-paid; no extra fees."), ("status", "chi", "RESOLVED")]),
    ("amara", "Account", "Change my email", "I want to use amara.obi@example.org instead.", []),
    ("lan", "Billing", "VIP discount missing", "My VIP 10% discount wasn't applied to A-1025.",
     [("assign", "alice"), ("note", "alice", "Pricing rule excluded sale items; checking with finance.")]),
    ("maria", "Technical", "Order confirmation email missing", "Placed A-1030 but no confirmation email.", []),
    ("tom", "Shipping", "Parcel marked delivered but not here", "Tracking says delivered, nothing at my door.",
     [("assign", "chi"), ("status", "chi", "ESCALATED"), ("note", "chi", "Courier claim opened, ref CL-221.")]),
    ("priya", "General", "Bulk order for our team", "We need 40 fleece jackets for a company event.",
     [("assign", "supervisor"), ("reply", "supervisor", "Happy to help! I'll send a quote today.")]),
    ("jon", "Refunds", "Cancel and refund order", "Please cancel A-1033 before it ships.",
     [("assign", "alice"), ("reply", "alice", "Cancelled and refunded in full."), ("status", "alice", "RESOLVED")]),
    ("sofia", "Returns", "Return window for gifts", "Can a gift recipient return without a receipt?", []),
]


async def run_seed_demo(settings: Settings, *, if_empty: bool, console: Console) -> list[Login]:
    runtime = build_runtime(settings)
    try:
        async with runtime.db.write_session() as session:
            workspaces = WorkspaceService(session)
            existing = await workspaces.find(DEMO_SLUG)
            if existing is not None or (if_empty and await workspaces.first() is not None):
                console.print("A workspace already exists; the demo data is left as it is.")
                return _load_logins(settings)
        logins = await _seed(runtime, console)
        path = logins_file(settings)
        path.write_text(json.dumps([login.__dict__ for login in logins], indent=2))
        path.chmod(0o600)
        return logins
    finally:
        await runtime.close()


def _load_logins(settings: Settings) -> list[Login]:
    path = logins_file(settings)
    if not path.exists():
        return []
    return [Login(**item) for item in json.loads(path.read_text())]


async def _seed(runtime: Runtime, console: Console) -> list[Login]:
    step = timedelta(minutes=37)
    # End the story an hour ago, so the latest resolutions are still inside their
    # auto-close window when the server starts.
    span = step * sum(7 + len(steps) for *_, steps in TICKETS)
    start = runtime.clock.now() - span - timedelta(hours=2)
    logins: list[Login] = []
    async with runtime.db.write_session() as session:
        users = UserService(session, runtime.hasher)
        ws = await WorkspaceService(session).create("Demo Outfitters", start)
        ws.slug = DEMO_SLUG
        admin_password = _password()
        admin = await users.create(workspace_id=ws.id, email=f"admin@{DOMAIN}", name="Ada Admin", role=Role.ADMIN,
                                   password=admin_password, now=start)
        logins.append(Login("admin", admin.name, admin.email, admin_password))
        as_admin = Principal(admin.id, ws.id, Role.ADMIN)
        agents = AgentService(session, users)
        teams = TeamService(session, agents)
        staff: dict[str, Principal] = {"admin": as_admin}
        for key, name, role, skills, languages, cap, senior, availability in STAFF[1:]:
            password = _password()
            created = await agents.create(as_admin, AgentIn(
                name=name, email=f"{key}@{DOMAIN}", password=password, role=role,
                skills=[SkillIn(skill=s, level=lvl) for s, lvl in skills], languages=languages, max_concurrent=cap,
                availability=availability, is_senior=senior), start)
            staff[key] = Principal(created["id"], ws.id, Role(role))
            logins.append(Login(role, name, f"{key}@{DOMAIN}", password))  # every one of them can be tried
        console.print(f"Added {len(STAFF)} staff.")
        team_ids = {}
        for key, name, members in (("billing", "Billing & Accounts", ["alice", "dan"]),
                                   ("fulfilment", "Fulfilment & Tech", ["bob", "chi"])):
            team = await teams.create(as_admin, TeamIn(
                name=name, lead_id=staff["supervisor"].user_id,
                member_ids=[staff[m].user_id for m in members] + [staff["supervisor"].user_id]), start)
            team_ids[key] = team["id"]
        categories = CategoryService(session, teams)
        category_ids: dict[str, Any] = {}
        for name, parent, priority, skills, team in CATEGORIES:
            category = await categories.create(as_admin, CategoryIn(
                name=name, parent_id=category_ids.get(parent), default_priority=priority, required_skills=skills,
                team_id=team_ids.get(team) if team else None), start)
            category_ids[name] = category.id
        org = await OrganisationService(session).create(as_admin, OrganisationIn(
            name="Northwind Traders", domain="northwind.example.com", shared_tickets=True), start)
        customer_service = CustomerService(session, users)
        customers: dict[str, Principal] = {}
        profiles: dict[str, Customer] = {}
        for key, name, tier, language, tz, in_org, portal in CUSTOMERS:
            password = _password() if portal else None
            customer = await customer_service.create(as_admin, CustomerIn(
                name=name, email=f"{key}@customers.example.com", tier=tier, language=language, timezone=tz,
                organisation_id=org.id if in_org else None, password=password,
                metadata={"orders": [f"A-{1000 + len(profiles) * 5 + 1}"]}), start)
            profiles[key] = customer
            if customer.user_id is not None:
                customers[key] = Principal(customer.user_id, ws.id, Role.CUSTOMER)
                logins.append(Login("customer", name, customer.email, password or ""))
        console.print(f"Added {len(CUSTOMERS)} customers, 2 teams and {len(CATEGORIES)} categories.")
        tickets = TicketService(session, customers=customer_service, agents=agents, teams=teams)
        at = start + timedelta(hours=1)
        for i, (cust, category, subject, description, steps) in enumerate(TICKETS, 1):
            at += step * 7
            # Customers without a portal login wrote in by email: their first message is
            # theirs, as the email channel would have stored it.
            opener = customers.get(cust) or await customer_service.principal_for(profiles[cust], at)
            body = TicketIn(subject=subject, description=description, category_id=category_ids[category])
            ticket = await tickets.create(opener, body, at, channel=Channel.WEB if cust in customers else Channel.EMAIL)
            ref = str(ticket.id)
            for action in steps:
                at += step
                match action:
                    case ("assign", agent):
                        await tickets.update(staff["supervisor"], ref, TicketPatch(assignee_id=staff[agent].user_id), at)
                    case ("reply", agent, text):
                        await tickets.post_message(staff[agent], ref, MessageIn(body=text), at)
                    case ("note", agent, text):
                        await tickets.post_message(staff[agent], ref, MessageIn(body=text, internal=True), at)
                    case ("customer", text):
                        await tickets.post_message(opener, ref, MessageIn(body=text), at)
                    case ("status", agent, status):
                        await tickets.change_status(staff[agent], ref, Status(status), None, at)
            if "URGENT" in subject:
                await tickets.update(staff["supervisor"], ref, TicketPatch(priority=Priority.URGENT), at)
            console.print(f"  ticket {i}/{len(TICKETS)}: {subject}", highlight=False)
        await session.commit()
    return logins


def print_logins(logins: list[Login], settings: Settings) -> None:
    """Plain lines on stdout, never cut to the terminal's width, so scripts can read them."""
    if not logins:
        print("No demo logins on record (the workspace was not made by seed-demo).")
        return
    host = f"[{settings.host}]" if ":" in settings.host else settings.host  # an IPv6 address, as URLs write it
    base = f"http://{host}:{settings.port}"
    print(f"Demo logins for workspace '{DEMO_SLUG}':")
    for login in logins:
        print(f"  {login.role:<11} {login.email:<40} password: {login.password}")
    print(f"Sign in with POST {base}/api/v1/auth/login "
          f'{{"workspace": "{DEMO_SLUG}", "email": "...", "password": "..."}}; API docs at {base}/api/v1/docs')

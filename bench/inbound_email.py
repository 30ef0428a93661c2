"""Inbound email: messages sent over SMTP to the built-in listener as fast as it accepts them.

One ``relaydesk serve`` (embedded mode: SQLite, in-process jobs) in a temporary data dir, with
its SMTP listener on a free port. Setup through the public API: a workspace, its admin,
``--agents`` online agents (so the new tickets get routed, as in real life), and
``--reply-tickets`` customers with one ticket each for the replies to land on.

The messages (``--messages``, made up here, a new set each run):

* 70 % open new tickets, from about ``--senders`` distinct addresses (the first message of
  each sender makes a customer, later ones reuse it); plain text or text + HTML, 5 % with a
  small PDF attached;
* 30 % are replies from the requester of one of the set-up tickets: ``Re: [T-000123] ...``,
  ``In-Reply-To``/``References`` naming a Message-ID Relaydesk never saw (so the subject
  token is what threads them), the new words on top and the quoted history below.

They go out over ``--connections`` SMTP connections at once, each sending its share back to
back on one session (a message is answered 250 only after its raw bytes are committed).
Then the bench reads ``inbound_emails`` in the SQLite file (read-only) every 0.2 s until no row
is ``received`` any more, and checks each message's outcome against what it was meant to be.

* accepted/s: messages answered 250 / time from the first MAIL FROM to the last 250;
* processed/s (stored, parsed and threaded): messages / time from the first MAIL FROM until
  the last row left ``received``;
* lost = messages answered 250 - rows stored;
* threaded right: a reply joined the ticket its token names (and made no new ticket), a new
  message made a ticket of its own.

Usage::

    .venv/bin/python bench/inbound_email.py [--messages 2000] [--connections 2] [--senders 500]
        [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sqlite3
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    CLEANUP,
    ScratchDir,
    Server,
    background_load,
    base_env,
    free_port,
    percentile,
    process_cpu_seconds,
    run_cli,
    wait_idle,
)

MAIL_DOMAIN = "relaydesk.localhost"
FIRST = ["Ada", "Ben", "Chen", "Dana", "Elena", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kenji", "Lara", "Mateo",
         "Nadia", "Omar", "Priya", "Rosa", "Sam", "Tariq", "Vera", "Yusuf", "Zoe"]
LAST = ["Berg", "Costa", "Dubois", "Fischer", "Garcia", "Haddad", "Kim", "Lopez", "Meyer", "Nguyen", "Okafor",
        "Rossi", "Santos", "Sato", "Schmidt", "Silva", "Singh", "Tanaka", "Wagner", "Zhang"]
DOMAINS = ["mail.example.com", "example.org", "example.net", "inbox.example.com", "post.example.de"]
SUBJECTS = ["Order {n} arrived damaged", "Refund for order {n} still missing", "Can't sign in since this morning",
            "Where is my parcel {n}?", "Invoice {n} needs our VAT number", "Wrong size delivered ({n})",
            "Question about the rain jacket", "Cancel order {n} please", "App crashes when I open my orders"]
BODIES = [
    "Hi,\n\nthe box for order {n} was crushed and the lamp inside is cracked. Can I get a replacement?\n\n"
    "Thanks,\n{name}",
    "Hello,\n\nI sent the boots back two weeks ago and the refund for {n} hasn't arrived yet. "
    "Could you check what happened?\n\nBest regards,\n{name}",
    "Hi there,\n\nthe password reset email never arrives; I checked my spam folder twice. "
    "I'm on an iPhone 13 with the latest app.\n\n{name}",
    "Good morning,\n\ntracking for {n} hasn't moved in five days. Could you ask the courier?\n\n"
    "Kind regards,\n{name}\n-- \n{name}\nSent from my phone",
    "Hi,\n\nplease reissue invoice {n} with our VAT number DE123456789; our accountant needs it this week.\n\n"
    "Many thanks\n{name}",
]
REPLIES = ["Thanks, that worked!", "Any news on this? It's been a few days now.",
           "I tried again and it still doesn't work, same error as before.",
           "Here is the order number you asked for: {n}.", "Great, thank you. One more question: is there a "
           "warranty on the replacement?"]
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> "
       b"endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n") + b"%" + b"x" * 8000 + b"\n"


# -- the messages -----------------------------------------------------------------------------------
def person(rng: random.Random, i: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower()


def new_message(rng: random.Random, seq: int, sender: tuple[str, str], to: str, when: datetime,
                tag: str) -> EmailMessage:
    name, address = sender
    n = f"A-{50000 + seq}"
    msg = EmailMessage()
    msg["From"] = f"{name} <{address}>"
    msg["To"] = f"Support <{to}>"
    msg["Subject"] = rng.choice(SUBJECTS).format(n=n)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<bench.{tag}.{seq}@{address.split('@')[1]}>"
    text = rng.choice(BODIES).format(n=n, name=name.split()[0])
    msg.set_content(text)
    if seq % 2:
        paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
        msg.add_alternative(f"<html><body><div dir=\"ltr\">{paragraphs}</div></body></html>", subtype="html")
    if seq % 20 == 7:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"order-{n}.pdf")
    return msg


def reply_message(rng: random.Random, seq: int, ticket: dict[str, Any], to: str, when: datetime,
                  tag: str) -> EmailMessage:
    name, address = ticket["name"], ticket["email"]
    msg = EmailMessage()
    msg["From"] = f"{name} <{address}>"
    msg["To"] = f"Support <{to}>"
    msg["Subject"] = f"Re: [{ticket['number']}] {ticket['subject']}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<bench.{tag}.{seq}@{address.split('@')[1]}>"
    earlier = make_msgid(domain="mail.example.com")
    msg["In-Reply-To"] = earlier
    msg["References"] = earlier
    new = rng.choice(REPLIES).format(n=f"A-{50000 + seq}")
    quoted = "\n".join(f"> {line}" if line else ">" for line in (
        f"Hi {name.split()[0]},", "", "thanks for getting in touch. Could you send us the order number and a photo?",
        "", "Best regards,", "Support"))
    stamp = (when - timedelta(hours=3)).strftime("%a, %d %b %Y at %H:%M")
    msg.set_content(f"{new}\n\n{name.split()[0]}\n\nOn {stamp}, Support <{to}> wrote:\n{quoted}\n")
    if seq % 2:
        msg.add_alternative(f"<html><body><div>{new}</div><div>{name.split()[0]}</div><br>"
                            f"<div class=\"gmail_quote\">On {stamp}, Support wrote:<blockquote>Hi "
                            f"{name.split()[0]},<br>thanks for getting in touch. Could you send us the order number"
                            f" and a photo?</blockquote></div></body></html>", subtype="html")
    return msg


def make_messages(count: int, senders: int, tickets: list[dict[str, Any]], to: str, tag: str,
                  ) -> list[dict[str, Any]]:
    rng = random.Random(11)
    people = [person(rng, i) for i in range(senders)]
    now = datetime.now(UTC)
    out = []
    for seq in range(count):
        when = now - timedelta(seconds=count - seq)
        if rng.random() < 0.3 and tickets:
            ticket = rng.choice(tickets)
            msg = reply_message(rng, seq, ticket, to, when, tag)
            out.append({"seq": seq, "kind": "reply", "from": ticket["email"], "ticket": ticket["number"],
                        "raw": msg.as_bytes()})
        else:
            sender = people[rng.randrange(senders)]
            msg = new_message(rng, seq, sender, to, when, tag)
            out.append({"seq": seq, "kind": "new", "from": sender[1], "ticket": None, "raw": msg.as_bytes()})
    return out


# -- set-up --------------------------------------------------------------------------------------------
def _ok(r: httpx.Response, expect: int = 201) -> dict[str, Any]:
    if r.status_code != expect:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()


async def setup(base_url: str, agents: int, reply_tickets: int) -> tuple[str, list[dict[str, Any]]]:
    tag = secrets.token_hex(3)
    password = secrets.token_urlsafe(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as c:
        email = f"admin.{tag}@example.com"
        slug = _ok(await c.post("/api/v1/workspaces", json={
            "name": f"Inbound Bench {tag}", "admin_name": "Bench Admin", "admin_email": email,
            "admin_password": password}))["workspace"]["slug"]
        token = _ok(await c.post("/api/v1/auth/login", json={"email": email, "password": password,
                                                             "workspace": slug}), 200)["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        for i in range(agents):
            _ok(await c.post("/api/v1/agents", json={
                "name": f"Agent {i}", "email": f"agent{i}.{tag}@example.com", "password": password,
                "max_concurrent": 500, "availability": "online"}))
        rng = random.Random(5)
        tickets = []
        for i in range(reply_tickets):
            name, address = person(rng, 100000 + i)
            customer = _ok(await c.post("/api/v1/customers", json={"name": name, "email": address}))
            subject = SUBJECTS[i % len(SUBJECTS)].format(n=f"A-{40000 + i}")
            ticket = _ok(await c.post("/api/v1/tickets", json={
                "subject": subject, "requester_id": customer["id"], "channel": "email",
                "description": BODIES[i % len(BODIES)].format(n=f"A-{40000 + i}", name=name.split()[0])}))
            tickets.append({"name": name, "email": address, "number": ticket["number"], "subject": subject})
    return slug, tickets


# -- sending ----------------------------------------------------------------------------------------------
async def send_all(port: int, rcpt: str, messages: list[dict[str, Any]], connections: int) -> dict[str, Any]:
    import aiosmtplib

    accepted: list[float] = []
    refused: list[str] = []
    first_send = time.perf_counter()

    async def one_connection(share: list[dict[str, Any]]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120, start_tls=False, use_tls=False)
        await smtp.connect()
        try:
            for m in share:
                try:
                    errors, reply = await smtp.sendmail(m["from"], [rcpt], m["raw"])
                except aiosmtplib.SMTPException as exc:
                    refused.append(f"{m['seq']}: {type(exc).__name__}: {exc}"[:300])
                    continue
                if errors:  # a refusal of the whole message raises; this is a refused recipient
                    refused.append(f"{m['seq']}: {errors} {reply}"[:300])
                    continue
                m["accepted_at"] = time.perf_counter()
                accepted.append(m["accepted_at"])
        finally:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()

    await asyncio.gather(*(one_connection(messages[i::connections]) for i in range(connections)))
    return {"accepted": len(accepted), "refused": refused, "first_send": first_send,
            "last_accept": max(accepted) if accepted else first_send}


def _ts(value: str | None) -> float | None:
    if value is None:
        return None
    dt = datetime.fromisoformat(value)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def db_counts(db: Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(dict(conn.execute("SELECT status, count(*) FROM inbound_emails GROUP BY status").fetchall()))
    finally:
        conn.close()


def outcomes(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT ie.header_message_id, ie.status, ie.reason, ie.message_id IS NOT NULL, t.number, "
            "ie.received_at, ie.processed_at FROM inbound_emails ie LEFT JOIN tickets t ON t.id = ie.ticket_id"
        ).fetchall()
    finally:
        conn.close()


# -- the run -------------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    idle = await background_load()
    load_before = os.getloadavg()
    print(f"machine load before: {idle:.0f}% of all cores busy; load average {load_before[0]:.2f}", flush=True)
    scratch = ScratchDir("rd_bench_mail_", keep=args.keep)
    data = scratch.path / "data"
    smtp_port = free_port()
    env = base_env(data, None, secrets.token_urlsafe(32))
    env.update({"RELAYDESK_SMTP_LISTEN_PORT": str(smtp_port), "RELAYDESK_MAIL_DOMAIN": MAIL_DOMAIN,
                "RELAYDESK_PASSWORD_HASH_TIME_COST": "1", "RELAYDESK_PASSWORD_HASH_MEMORY_KIB": "1024"})
    run_cli(["migrate"], env, scratch.path / "relaydesk.log")
    server = Server(env, scratch.path / "server.log")
    try:
        await server.start()
        await wait_idle(server.pid)
        print(f"server pid {server.pid} on {server.base_url}, SMTP on {smtp_port}; logs in {scratch.path}",
              flush=True)
        slug, tickets = await setup(server.base_url, args.agents, args.reply_tickets)
        await wait_idle(server.pid)
        rcpt = f"{slug}@{MAIL_DOMAIN}"
        tag = secrets.token_hex(4)
        messages = make_messages(args.messages, args.senders, tickets, rcpt, tag)
        kinds = Counter(m["kind"] for m in messages)
        sizes = sorted(len(m["raw"]) for m in messages)
        print(f"  {len(messages):,} messages ({kinds['new']:,} new, {kinds['reply']:,} replies to "
              f"{len(tickets)} tickets), {percentile(sizes, 50) / 1024:.1f} KiB median, "
              f"{sizes[-1] / 1024:.1f} KiB largest; sending over {args.connections} connection(s) ...", flush=True)
        db = data / "relaydesk.db"
        baseline = sum(db_counts(db).values())
        cpu0 = process_cpu_seconds(server.pid)
        sent = await send_all(smtp_port, rcpt, messages, args.connections)
        accept_s = sent["last_accept"] - sent["first_send"]
        print(f"  {sent['accepted']:,} accepted in {accept_s:.1f} s ({sent['accepted'] / accept_s:.1f}/s), "
              f"{len(sent['refused'])} refused", flush=True)
        counts: Counter[str] = Counter()
        deadline = time.perf_counter() + args.timeout
        done_at = None
        while time.perf_counter() < deadline:
            counts = db_counts(db)
            if counts["received"] == 0 and sum(counts.values()) - baseline >= sent["accepted"]:
                done_at = time.perf_counter()
                break
            await asyncio.sleep(0.2)
        cpu_processing = process_cpu_seconds(server.pid) - cpu0
        settle = await wait_idle(server.pid, timeout=300)
        cpu_all = process_cpu_seconds(server.pid) - cpu0
        load_after = os.getloadavg()
        rows = outcomes(db)
        acks = len(list((data / "mail-outbox").glob("*.eml"))) if (data / "mail-outbox").exists() else 0
    finally:
        server.stop()
        scratch.remove()

    by_id = {f"bench.{tag}.{m['seq']}@{m['from'].split('@')[1]}": m for m in messages}
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    right = wrong = 0
    wrong_samples = []
    new_tickets: Counter[str] = Counter()
    lat: list[float] = []
    stored = 0
    for mid, status, reason, is_reply, number, received_at, processed_at in rows:
        m = by_id.get(mid or "")
        if m is None:
            continue
        stored += 1
        statuses[status] += 1
        if reason:
            reasons[reason[:80]] += 1
        if processed_at:
            lat.append((_ts(processed_at) - _ts(received_at)) * 1000)
        if status != "processed":
            continue
        if m["kind"] == "reply":
            ok = bool(is_reply) and number is not None and f"T-{number:06d}" == m["ticket"]
        else:
            ok = not is_reply and number is not None
            new_tickets[number] += 1
        if ok:
            right += 1
        else:
            wrong += 1
            wrong_samples.append(f"{m['kind']} {mid}: reply={bool(is_reply)} ticket={number} want={m['ticket']}")
    duplicates = sum(n - 1 for n in new_tickets.values() if n > 1)  # two new messages in one ticket
    lat.sort()
    total_s = (done_at - sent["first_send"]) if done_at else None
    return {
        "messages": len(messages), "new": kinds["new"], "replies": kinds["reply"], "senders": args.senders,
        "connections": args.connections, "accepted": sent["accepted"], "refused": len(sent["refused"]),
        "refused_samples": sent["refused"][:5], "accept_s": round(accept_s, 2),
        "accepted_per_s": round(sent["accepted"] / accept_s, 1) if accept_s else None,
        "stored": stored, "lost": sent["accepted"] - stored, "statuses": dict(statuses), "reasons": dict(reasons),
        "all_processed_s": round(total_s, 2) if total_s else None,
        "processed_per_s": round(len(messages) / total_s, 1) if total_s else None,
        "threaded_right": right, "threaded_wrong": wrong + duplicates, "wrong_samples": wrong_samples[:5],
        "process_p50_ms": round(percentile(lat, 50)), "process_p95_ms": round(percentile(lat, 95)),
        "process_max_ms": round(lat[-1]) if lat else None,
        "server_cpu_until_processed_s": round(cpu_processing, 1), "server_cpu_all_s": round(cpu_all, 1),
        "busy_after_processed_s": round(settle, 1), "outbound_emails_written": acks,
        "load": f"{idle:.0f}% of all cores busy before; load average {load_before[0]:.2f} before, "
                f"{load_after[0]:.2f} after",
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{r['messages']:,} messages ({r['new']:,} new from ~{r['senders']} senders, {r['replies']:,} replies) "
          f"over {r['connections']} SMTP connection(s); load: {r['load']}")
    print(f"statuses {r['statuses']}; reasons {r['reasons'] or 'none'}; refused {r['refused']} "
          f"{r['refused_samples'] or ''}")
    print(f"server CPU {r['server_cpu_until_processed_s']} s until all processed, {r['server_cpu_all_s']} s "
          f"including the follow-on work (routing, acknowledgements), which went on "
          f"{r['busy_after_processed_s']} s longer; {r['outbound_emails_written']} outbound emails written")
    for s in r["wrong_samples"]:
        print(f"  wrongly threaded: {s}")
    print("\n| messages | connections | accepted (250) | accept s | accepted/s | stored | lost | processed "
          "| all processed after s | stored+parsed+threaded/s | threaded right / wrong "
          "| receive→processed p50 / p95 / max ms |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    print(f"| {r['messages']:,} | {r['connections']} | {r['accepted']:,} | {r['accept_s']} | {r['accepted_per_s']} | "
          f"{r['stored']:,} | {r['lost']} | {r['statuses'].get('processed', 0):,} | {r['all_processed_s']} | "
          f"{r['processed_per_s']} | {r['threaded_right']:,} / {r['threaded_wrong']} | {r['process_p50_ms']:,} / "
          f"{r['process_p95_ms']:,} / {r['process_max_ms']:,} |")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--connections", type=int, default=2, help="parallel SMTP sessions")
    p.add_argument("--senders", type=int, default=500, help="distinct senders of the new messages")
    p.add_argument("--reply-tickets", type=int, default=100, help="set-up tickets the replies go to")
    p.add_argument("--agents", type=int, default=4, help="online agents (the new tickets get routed)")
    p.add_argument("--timeout", type=float, default=900, help="how long to wait for the processing")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temporary dir (logs, database)")
    args = p.parse_args()
    CLEANUP.install_signal_handlers(lambda done: print("cleaned up: " + "; ".join(done), file=sys.stderr))
    try:
        result = await run(args)
    finally:
        CLEANUP.run_all()
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

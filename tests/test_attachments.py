"""Uploads: accepted by what the bytes are, stored under random names, served safely and
only to those who may see the message they belong to."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import structlog.testing
from factories import Actor, make_workspace, random_id
from relaydesk.tickets import tasks as ticket_tasks

API = "/api/v1"


# -- tiny real files -------------------------------------------------------------------
def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00\xff")  # filter byte + one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


GIF_1X1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
           b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00" + bytes(64)
RANDOM_BINARY = bytes(range(256)) * 4


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


ZIP = zip_of({"logs/app.log": "started\nstopped\n"})
DOCX = zip_of({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w:document/>"})
XLSX = zip_of({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"})
TEXT = "Grüße aus Köln — 東京 ✓\nZeile zwei\n".encode()
CSV = "order,item,qty\nA-1001,Lampe für Büro,1\nA-1002,\"Desk, oak\",2\n".encode()

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def problem(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


async def upload(client: httpx.AsyncClient, actor: Actor, name: str, data: bytes) -> httpx.Response:
    return await client.post(f"{API}/uploads", files={"file": (name, data)}, headers=actor.headers)


async def uploaded(client: httpx.AsyncClient, actor: Actor, name: str, data: bytes) -> dict[str, Any]:
    r = await upload(client, actor, name, data)
    assert r.status_code == 201, r.text
    return r.json()


def stored_files(runtime) -> set[Path]:
    root = runtime.settings.resolved_upload_dir
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# -- accepted kinds --------------------------------------------------------------------
ACCEPTED = [
    ("pixel.png", png_1x1(), "image/png", "inline"),
    ("spinner.gif", GIF_1X1, "image/gif", "inline"),
    ("invoice.pdf", PDF, "application/pdf", "attachment"),
    ("logs.zip", ZIP, "application/zip", "attachment"),
    ("letter.docx", DOCX, DOCX_TYPE, "attachment"),
    ("sheet.xlsx", XLSX, XLSX_TYPE, "attachment"),
    ("greeting.txt", TEXT, "text/plain", "attachment"),
    ("server.log", b"2026-01-31T10:00:00Z ERROR timeout\n", "text/plain", "attachment"),
    ("README.md", "# Steps\n\n1. Öffnen\n".encode(), "text/plain", "attachment"),
    ("orders.csv", CSV, "text/csv", "attachment"),
    ("excel-export.csv", b"\xef\xbb\xbf" + CSV, "text/csv", "attachment"),
    # What customers send support from their phones and older offices.
    ("IMG_4821.HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "image/heic", "inline"),
    ("broken-box.mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42" + bytes(64), "video/mp4",
     "attachment"),
    ("screen-recording.mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(64), "video/quicktime",
     "attachment"),
    ("contract.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"\xec\xa5\xc1\x00" + bytes(64),
     "application/msword", "attachment"),
    ("prices.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"\xfd\xff\xff\xff\x00\x00\x00" + bytes(64),
     "application/vnd.ms-excel", "attachment"),
    ("voice-note.m4a", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + bytes(64), "audio/mp4", "attachment"),
    # Excel's CSV export in a Western code page (cp1252), not UTF-8.
    ("umsatz.csv", "Kunde;Betrag\nMüller;12,50 €\n".encode("cp1252"), "text/csv", "attachment"),
    # A forwarded email, as mail clients save one.
    ("original.eml", b"From: Ann <ann@example.com>\r\nSubject: Order\r\n\r\nWhere is it?\r\n", "message/rfc822",
     "attachment"),
    # Logs and exports customers attach from their tools.
    ("data.json", b'{"a":1}', "application/json", "attachment"),
    ("session.har", b'{"log": {"version": "1.2", "entries": []}}\n', "application/json", "attachment"),
    ("config.yaml", "server:\n  port: 8080\n  name: Café\n".encode(), "application/yaml", "attachment"),
    ("compose.YML", b"services:\n  web:\n    image: nginx\n", "application/yaml", "attachment"),
    ("export.xml", b'<?xml version="1.0" encoding="UTF-8"?>\n<orders><order id="1"/></orders>\n', "text/plain",
     "attachment"),
    # XML can be XHTML with a script: served as plain text, never as a document a browser runs.
    ("invoice.xml", b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(document.cookie)</script></html>',
     "text/plain", "attachment"),
]


@pytest.mark.parametrize(("name", "data", "content_type", "disposition"), ACCEPTED,
                         ids=[a[0] for a in ACCEPTED])
async def test_accepted_kinds_round_trip(client: httpx.AsyncClient, name: str, data: bytes, content_type: str,
                                         disposition: str) -> None:
    ws = await make_workspace(client)
    agent = await ws.staff("agent")
    r = await upload(client, agent, name, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["filename"] == name
    assert body["content_type"] == content_type
    assert body["size"] == len(data)
    assert body["message_id"] is None
    assert body["download_url"] == f"{API}/attachments/{body['id']}"

    got = await client.get(body["download_url"], headers=agent.headers)
    assert got.status_code == 200, got.text
    assert got.content == data
    assert got.headers["content-type"].split(";")[0].strip() == content_type
    if content_type.startswith("text/"):  # a browser shows it in the code page it was written in
        charset = got.headers["content-type"].split("charset=")[1]
        assert charset == ("windows-1252" if name == "umsatz.csv" else "utf-8")
        got.content.decode(charset)  # and it reads as that
    assert got.headers["content-disposition"] == f"{disposition}; filename*=UTF-8''{quote(name)}"
    assert got.headers["x-content-type-options"] == "nosniff"
    # Opened on its own (an HTML or PDF file, a link someone follows), a file runs no script
    # and reaches nothing as the app; an <img> in the app still shows an image.
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert "private" in got.headers["cache-control"]


# Ordinary UTF-8 text whose first bytes happen to match a binary format's magic number
# ("BM" is a BMP header, "ID3" an MP3 tag, "OggS" an Ogg stream) is still text.
TEXT_LOOKING_BINARY = [
    ("health.csv", b"BMI,height_cm,weight_kg\n22.5,180,73\n", "text/csv"),
    ("fleet.txt", b"BMW 320d: service due in May\n", "text/plain"),
    ("player.log", b"ID3 tag parser: skipped 2 frames\n", "text/plain"),
    ("notes.md", b"OggS pages are 4 KiB at most\n", "text/plain"),
]


@pytest.mark.parametrize(("name", "data", "content_type"), TEXT_LOOKING_BINARY,
                         ids=[t[0] for t in TEXT_LOOKING_BINARY])
async def test_text_starting_like_a_binary_signature_is_still_text(client: httpx.AsyncClient, name: str,
                                                                    data: bytes, content_type: str) -> None:
    ws = await make_workspace(client)
    r = await upload(client, ws.admin, name, data)
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == content_type
    got = await client.get(r.json()["download_url"], headers=ws.admin.headers)
    assert got.status_code == 200 and got.content == data


# -- refused ---------------------------------------------------------------------------
REFUSED = [
    ("pdf-named-png", "photo.png", PDF, 415, "unsupported_media_type"),
    ("png-named-jpg", "photo.jpg", png_1x1(), 415, "unsupported_media_type"),
    ("exe", "setup.exe", EXE, 415, "unsupported_media_type"),
    ("exe-named-pdf", "manual.pdf", EXE, 415, "unsupported_media_type"),
    ("exe-named-txt", "readme.txt", EXE, 415, "unsupported_media_type"),
    ("random-binary", "data.bin", RANDOM_BINARY, 415, "unsupported_media_type"),
    ("random-binary-named-txt", "notes.txt", RANDOM_BINARY, 415, "unsupported_media_type"),
    ("text-named-pdf", "report.pdf", TEXT, 415, "unsupported_media_type"),
    ("html", "page.html", b"<html><script>alert(document.cookie)</script></html>", 415, "unsupported_media_type"),
    ("svg", "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', 415,
     "unsupported_media_type"),
    ("empty", "empty.txt", b"", 422, "validation_failed"),
]


@pytest.mark.parametrize(("name", "data", "status", "code"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
async def test_refused_uploads(client: httpx.AsyncClient, runtime, name: str, data: bytes, status: int,
                               code: str) -> None:
    ws = await make_workspace(client)
    before = stored_files(runtime)
    r = await upload(client, ws.admin, name, data)
    problem(r, status, code, field="file")
    assert stored_files(runtime) == before


REFUSED_WITH_REASON = [
    ("page.html", b"<html><script>alert(document.cookie)</script></html>",
     "Files of type .html are not accepted: they can carry scripts that a browser would run."),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
     "Files of type .svg are not accepted: they can carry scripts that a browser would run."),
]


@pytest.mark.parametrize(("name", "data", "detail"), REFUSED_WITH_REASON, ids=[r[0] for r in REFUSED_WITH_REASON])
async def test_active_content_is_refused_for_what_it_can_do(client: httpx.AsyncClient, name: str, data: bytes,
                                                            detail: str) -> None:
    ws = await make_workspace(client)
    body = problem(await upload(client, ws.admin, name, data), 415, "unsupported_media_type", field="file")
    assert body["detail"] == detail


@pytest.mark.parametrize(("name", "data"), [("notes.xyz", b"plain words\n"), ("setup.exe", EXE)],
                         ids=["unknown-text", "exe"])
async def test_an_extension_not_on_the_list_is_named_with_the_allowed_ones(client: httpx.AsyncClient, name: str,
                                                                          data: bytes) -> None:
    ws = await make_workspace(client)
    body = problem(await upload(client, ws.admin, name, data), 415, "unsupported_media_type", field="file")
    ext = name.rsplit(".", 1)[1]
    assert body["detail"].startswith(f"Files of type .{ext} are not accepted; allowed: ")
    allowed = body["detail"].split("allowed: ", 1)[1].rstrip(".").split(", ")
    assert {".json", ".xml", ".yaml", ".yml", ".har", ".log", ".pdf", ".png", ".txt"} <= set(allowed)
    assert not {".html", ".svg", f".{ext}"} & set(allowed)


async def test_upload_without_a_file_is_422(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    r = await client.post(f"{API}/uploads", data={"other": "x"}, headers=ws.admin.headers)
    problem(r, 422, "validation_failed", field="file")


@pytest.mark.parametrize("extra", [1, 200 * 1024], ids=["one-byte-over", "far-over"])
async def test_file_over_the_cap_is_413(client: httpx.AsyncClient, runtime, extra: int) -> None:
    ws = await make_workspace(client)
    cap = runtime.settings.max_upload_bytes
    before = stored_files(runtime)
    r = await upload(client, ws.admin, "huge.log", b"a" * (cap + extra))
    problem(r, 413, "payload_too_large")
    assert stored_files(runtime) == before


async def test_file_of_exactly_the_cap_is_accepted(client: httpx.AsyncClient, runtime) -> None:
    ws = await make_workspace(client)
    cap = runtime.settings.max_upload_bytes
    r = await upload(client, ws.admin, "big.log", b"b" * cap)
    assert r.status_code == 201, r.text[:500]
    assert r.json()["size"] == cap


# -- names -----------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "stored"), [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("/var/www/html/index.txt", "index.txt"),
    ("a<b>c:d|e?f*.txt", "abcdef.txt"),
    ("  notes.txt", "notes.txt"),
    ("übersicht résumé.txt", "übersicht résumé.txt"),
    ("re\u0301sume\u0301.txt", "r\u00e9sum\u00e9.txt"),  # decomposed accents are stored composed (NFC)
])
async def test_stored_name_is_sanitised(client: httpx.AsyncClient, runtime, given: str, stored: str) -> None:
    ws = await make_workspace(client)
    data = b"name test " + random_id().encode()
    body = await uploaded(client, ws.admin, given, data)
    assert body["filename"] == stored
    got = await client.get(body["download_url"], headers=ws.admin.headers)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-disposition"] == f"attachment; filename*=UTF-8''{quote(stored)}"
    # Nothing was written outside the upload directory.
    root = runtime.settings.resolved_upload_dir.resolve()
    holders = [p for p in stored_files(runtime) if p.read_bytes() == data]
    assert len(holders) == 1
    assert holders[0].resolve().is_relative_to(root)


async def test_files_are_stored_under_random_names(client: httpx.AsyncClient, runtime) -> None:
    ws = await make_workspace(client)
    data = b"secret plan " + random_id().encode()
    body = await uploaded(client, ws.admin, "secret-plan.txt", data)
    twin = await uploaded(client, ws.admin, "secret-plan.txt", data)
    holders = sorted(p for p in stored_files(runtime) if p.read_bytes() == data)
    assert len(holders) == 2  # each upload its own file, even with the same name and bytes
    for path in holders:
        assert re.fullmatch(r"[0-9a-f]{32,}", path.name), path.name
        assert "secret" not in str(path.relative_to(runtime.settings.resolved_upload_dir))
        assert body["id"] not in path.name
    assert holders[0].name != holders[1].name
    assert not any("secret-plan" in p.name for p in stored_files(runtime))
    assert twin["id"] != body["id"]


# -- attaching -------------------------------------------------------------------------
async def test_attach_to_a_reply(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    customer = await ws.customer()
    agent = await ws.staff("agent")
    ticket = await ws.ticket(customer)
    pdf = await uploaded(client, agent, "label.pdf", PDF)
    png = await uploaded(client, agent, "pixel.png", png_1x1())

    r = await ws.reply(agent, ticket["id"], "Return label and photo attached.", attachment_ids=[pdf["id"], png["id"]])
    assert r.status_code == 201, r.text
    reply = r.json()
    assert [a["id"] for a in reply["attachments"]] == [pdf["id"], png["id"]]
    assert all(a["message_id"] == reply["id"] for a in reply["attachments"])

    for who in (customer, agent):
        r = await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=who.headers)
        listed = {m["id"]: m for m in r.json()["items"]}
        got = listed[reply["id"]]["attachments"]
        assert [(a["id"], a["filename"], a["content_type"], a["size"], a["download_url"]) for a in got] == [
            (pdf["id"], "label.pdf", "application/pdf", len(PDF), f"{API}/attachments/{pdf['id']}"),
            (png["id"], "pixel.png", "image/png", len(png_1x1()), f"{API}/attachments/{png['id']}"),
        ]
        assert all(m["attachments"] == [] for mid, m in listed.items() if mid != reply["id"])
        download = await client.get(f"{API}/attachments/{pdf['id']}", headers=who.headers)
        assert download.status_code == 200 and download.content == PDF

    # Attaching it a second time is refused and posts nothing.
    before = (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=agent.headers)).json()
    r = await ws.reply(agent, ticket["id"], "Again", attachment_ids=[pdf["id"]])
    problem(r, 422, "validation_failed", field="attachment_ids")
    assert (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=agent.headers)).json() == before


async def test_attach_to_a_new_ticket(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    customer = await ws.customer()
    agent = await ws.staff("agent")
    photo = await uploaded(client, customer, "damage.png", png_1x1())
    r = await client.post(f"{API}/tickets", json={"subject": "Broken lamp", "description": "See the photo.",
                                                  "attachment_ids": [photo["id"]]}, headers=customer.headers)
    assert r.status_code == 201, r.text
    ticket = r.json()
    thread = (await client.get(f"{API}/tickets/{ticket['number']}/messages", headers=agent.headers)).json()["items"]
    first = thread[0]
    assert first["body_text"] == "See the photo."
    assert [(a["id"], a["filename"], a["message_id"]) for a in first["attachments"]] == [
        (photo["id"], "damage.png", first["id"])]
    got = await client.get(f"{API}/attachments/{photo['id']}", headers=agent.headers)
    assert got.status_code == 200 and got.content == png_1x1()
    assert got.headers["content-disposition"] == "inline; filename*=UTF-8''damage.png"

    # Staff opening a ticket on a customer's behalf can attach too.
    doc = await uploaded(client, agent, "call-notes.txt", TEXT)
    staff_ticket = await ws.ticket(agent, requester_id=customer.customer_id, attachment_ids=[doc["id"]])
    thread = (await client.get(f"{API}/tickets/{staff_ticket['id']}/messages",
                               headers=customer.headers)).json()["items"]
    assert [a["id"] for a in thread[0]["attachments"]] == [doc["id"]]
    got = await client.get(f"{API}/attachments/{doc['id']}", headers=customer.headers)
    assert got.status_code == 200 and got.content == TEXT


async def test_nobody_else_can_attach_your_upload(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    customer = await ws.customer()
    agent = await ws.staff("agent")
    other = await ws.staff("agent")
    ticket = await ws.ticket(customer)
    mine = await uploaded(client, agent, "mine.pdf", PDF)
    theirs = await uploaded(client, other, "theirs.txt", TEXT)
    before = (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=agent.headers)).json()

    for actor, attachment_ids in [(other, [mine["id"]]), (other, [theirs["id"], mine["id"]]),
                                  (ws.admin, [mine["id"]]), (customer, [mine["id"]]), (other, [random_id()])]:
        r = await ws.reply(actor, ticket["id"], "Stealing a file", attachment_ids=attachment_ids)
        problem(r, 422, "validation_failed", field="attachment_ids")
    r = await client.post(f"{API}/tickets", json={"subject": "x", "description": "y", "attachment_ids": [mine["id"]]},
                          headers=customer.headers)
    problem(r, 422, "validation_failed", field="attachment_ids")
    assert [t["id"] for t in (await client.get(f"{API}/tickets", headers=customer.headers)).json()["items"]] == \
        [ticket["id"]]
    assert (await client.get(f"{API}/tickets/{ticket['id']}/messages", headers=agent.headers)).json() == before

    # Both uploads are still unattached and still their owners' to use.
    assert (await ws.reply(other, ticket["id"], "Mine", attachment_ids=[theirs["id"]])).status_code == 201
    r = await ws.reply(agent, ticket["id"], "Mine too", attachment_ids=[mine["id"]])
    assert r.status_code == 201, r.text
    assert [a["id"] for a in r.json()["attachments"]] == [mine["id"]]


async def test_unattached_upload_is_visible_only_to_its_uploader(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    customer = await ws.customer()
    agent = await ws.staff("agent")
    other = await ws.staff("agent")
    ticket = await ws.ticket(customer)
    data = b"draft reply " + random_id().encode()
    draft = await uploaded(client, agent, "draft.txt", data)

    got = await client.get(f"{API}/attachments/{draft['id']}", headers=agent.headers)
    assert got.status_code == 200 and got.content == data
    for who in (other, ws.admin, customer):
        problem(await client.get(f"{API}/attachments/{draft['id']}", headers=who.headers), 404, "not_found")
    problem(await client.get(f"{API}/attachments/{random_id()}", headers=agent.headers), 404, "not_found")

    # Once it is part of a public reply, everyone who may read the ticket may download it.
    assert (await ws.reply(agent, ticket["id"], "Attached", attachment_ids=[draft["id"]])).status_code == 201
    for who in (agent, other, ws.admin, customer):
        got = await client.get(f"{API}/attachments/{draft['id']}", headers=who.headers)
        assert got.status_code == 200 and got.content == data
    stranger = await ws.customer()
    problem(await client.get(f"{API}/attachments/{draft['id']}", headers=stranger.headers), 404, "not_found")


async def test_attachments_of_a_deleted_ticket_are_not_served(client: httpx.AsyncClient) -> None:
    ws = await make_workspace(client)
    customer = await ws.customer()
    photo = await uploaded(client, customer, "receipt.png", png_1x1())
    ticket = await ws.ticket(customer, attachment_ids=[photo["id"]])
    assert (await client.get(f"{API}/attachments/{photo['id']}", headers=customer.headers)).status_code == 200
    r = await client.delete(f"{API}/tickets/{ticket['id']}", headers=ws.admin.headers)
    assert r.status_code == 204, r.text
    for who in (customer, ws.admin):
        problem(await client.get(f"{API}/attachments/{photo['id']}", headers=who.headers), 404, "not_found")


async def test_uploads_never_attached_are_deleted_after_a_day(client: httpx.AsyncClient, runtime, clock,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload is for a message about to be written: one left unattached (a reply given up,
    a script uploading at will) would fill the disk for ever."""
    async def sweep() -> None:
        await runtime.jobs.enqueue("tickets.sweep_uploads")
        await runtime.jobs.wait_idle()

    clock.advance(timedelta(hours=25))
    await sweep()  # what earlier tests left unattached: this test counts its own
    ws = await make_workspace(client)
    agent = await ws.staff("agent")
    ticket = await ws.ticket(ws.admin)
    kept = await uploaded(client, agent, "label.pdf", b"%PDF-1.4 kept")
    assert (await ws.reply(agent, ticket["id"], "Label attached.", attachment_ids=[kept["id"]])).status_code == 201
    files_before = stored_files(runtime)
    abandoned = await uploaded(client, agent, "draft.pdf", b"%PDF-1.4 abandoned")
    [abandoned_file] = stored_files(runtime) - files_before

    clock.advance(timedelta(hours=23))
    await ws.relogin(agent)
    recent = await uploaded(client, agent, "later.pdf", b"%PDF-1.4 recent")
    await sweep()
    assert (await client.get(abandoned["download_url"], headers=agent.headers)).status_code == 200
    clock.advance(timedelta(hours=1, minutes=1))
    logged = structlog.testing.CapturingLogger()  # the suite logs from WARNING up; the operator's from INFO
    monkeypatch.setattr(ticket_tasks, "log", logged)
    await sweep()
    await ws.relogin(agent)
    assert (await client.get(abandoned["download_url"], headers=agent.headers)).status_code == 404
    for still in (kept, recent):
        assert (await client.get(still["download_url"], headers=agent.headers)).status_code == 200
    assert not abandoned_file.exists() and files_before <= stored_files(runtime)
    r = await ws.reply(agent, ticket["id"], "Draft attached.", attachment_ids=[abandoned["id"]])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "attachment_ids"
    assert [(c.method_name, c.args, c.kwargs) for c in logged.calls] == [
        ("info", ("unattached_uploads_deleted",), {"deleted": 1})]

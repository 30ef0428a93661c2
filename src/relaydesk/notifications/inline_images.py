"""The images an agent's reply shows in its text, made part of the reply's email.

In the thread an image is a link to its upload (``/api/v1/attachments/<id>``): relative,
which no mail client can load, and served only to someone signed in. So the email
carries each image it may show as a part of its own, which the HTML names by Content-ID
(``src="cid:..."``), as mail clients expect. Any other link to an upload leads nowhere
from a mailbox either: it is left out and its words kept (an image's: its ``alt`` text or
its file's name). Pure: the sender decides which uploads travel.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from relaydesk.core.sanitize import html_to_text

# What mail clients show in a message's text; other images (HEIC, TIFF, BMP) are files.
SHOWN_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

_UPLOAD_PATH = re.compile(r"/api/v1/attachments/([0-9a-fA-F-]{36})")
_IMAGE = re.compile(r"(?is)<img\b[^>]*>")
_LINK = re.compile(r"(?is)(<a\b[^>]*>)(.*?)</a>")
# The HTML is sanitised: every attribute's value is in double quotes, with none inside it.
_SRC = re.compile(r'(?is)\bsrc\s*=\s*"[^"]*"')


@dataclass(frozen=True, slots=True)
class Image:
    """An upload the reply's text shows: its file's name, and the Content-ID it travels
    under in the email (None: it does not)."""

    filename: str
    content_id: str | None = None


def _attribute(tag: str, name: str) -> str:
    found = re.search(rf'(?is)\b{name}\s*=\s*"([^"]*)"', tag)
    return html.unescape(found.group(1)).strip() if found else ""


def _upload_of(url: str, origins: tuple[str, ...]) -> uuid.UUID | None:
    """The upload a link leads to: given relative, or at one of our own addresses
    (``origins``, without their final slash)."""
    for origin in origins:
        if url.lower().startswith(origin.lower() + "/"):
            url = url[len(origin):]
            break
    found = _UPLOAD_PATH.fullmatch(url)
    if found is None:
        return None
    try:
        return uuid.UUID(found.group(1))
    except ValueError:
        return None


def uploads_shown(body_html: str, origins: tuple[str, ...]) -> list[uuid.UUID]:
    """The uploads the body's images show, in order, each once."""
    return _uploads(((m.group(0), "src") for m in _IMAGE.finditer(body_html)), origins)


def uploads_linked(body_html: str, origins: tuple[str, ...]) -> list[uuid.UUID]:
    """The uploads the body's images show (those first, in order) or its links lead to,
    each once."""
    return _uploads([*((m.group(0), "src") for m in _IMAGE.finditer(body_html)),
                     *((m.group(1), "href") for m in _LINK.finditer(body_html))], origins)


def _uploads(tags: Iterable[tuple[str, str]], origins: tuple[str, ...]) -> list[uuid.UUID]:
    linked = (_upload_of(_attribute(tag, name), origins) for tag, name in tags)
    return list(dict.fromkeys(u for u in linked if u is not None))


def for_email(body_html: str, origins: tuple[str, ...], images: dict[uuid.UUID, Image]) -> tuple[str, str]:
    """The body's HTML as the email shows it, and its plain text. ``images``: the uploads
    the customer may see, whichever the email carries; any other is named by its ``alt``
    text alone (its file's name is not theirs to read)."""

    def unlinked(match: re.Match[str]) -> str:
        return match.group(2) if _upload_of(_attribute(match.group(1), "href"), origins) else match.group(0)

    def shown(match: re.Match[str], *, in_text: bool) -> str:
        tag = match.group(0)
        upload = _upload_of(_attribute(tag, "src"), origins)
        if upload is None:
            return tag  # someone else's picture on the web: the mail client loads it, or asks to
        image = images.get(upload)
        if image is not None and image.content_id is not None and not in_text:
            return _SRC.sub(lambda _: f'src="cid:{html.escape(image.content_id or "")}"', tag, count=1)
        name = _attribute(tag, "alt") or (image.filename if image is not None else "image")
        return html.escape(f"[image: {name}]")

    body_html = _LINK.sub(unlinked, body_html)
    text = html_to_text(_IMAGE.sub(lambda m: shown(m, in_text=True), body_html))
    return _IMAGE.sub(lambda m: shown(m, in_text=False), body_html), text

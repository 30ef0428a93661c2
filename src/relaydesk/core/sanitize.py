"""HTML from users and emails is cleaned before it is stored or shown."""

from __future__ import annotations

import html
import re

import nh3

_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i",
    "img", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "th", "thead", "tr", "u", "ul",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
_TAG_RE = re.compile(r"<[a-zA-Z!/][^>]*>")


def looks_like_html(text: str) -> bool:
    return bool(_TAG_RE.search(text))


def sanitize_html(value: str) -> str:
    return nh3.clean(
        value,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )


_LINK = re.compile(r'(?is)<a\b[^>]*?\bhref\s*=\s*"([^"]*)"[^>]*>(.*?)</a>')


def _link_as_text(match: re.Match[str]) -> str:
    """A link keeps its target in plain text, where nothing can be clicked: "Track (https://…)"."""
    target, words = html.unescape(match.group(1)).strip(), match.group(2)
    shown = html.unescape(re.sub(r"<[^>]+>", "", words)).strip()
    if not target.lower().startswith(("http://", "https://", "mailto:")) or target.removeprefix("mailto:") == shown:
        return words
    return f"{words} ({html.escape(target)})"


def html_to_text(value: str) -> str:
    """A plain-text rendering of sanitised HTML, for search and email text parts: link
    targets stay (in brackets) and list items get a dash."""
    text = _LINK.sub(_link_as_text, value)
    text = re.sub(r"(?i)<li\b[^>]*>", "- ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h\d>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def text_to_html(value: str) -> str:
    paragraphs = [p for p in re.split(r"\n{2,}", value.strip()) if p]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)

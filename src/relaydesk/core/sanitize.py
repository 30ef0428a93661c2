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
# Every HTML element, obsolete ones too: a pasted page or an old mail client's markup is
# HTML, while "<returns@shop.example>" or "<RMA-1234>" is someone's words.
_ELEMENTS = (
    "a abbr acronym address area article aside audio b base basefont bdi bdo big blink blockquote body br "
    "button canvas caption center cite code col colgroup data datalist dd del details dfn dialog dir div dl "
    "dt em embed fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 h5 h6 head header "
    "hgroup hr html i iframe img input ins kbd label legend li link main map mark marquee math menu meta "
    "meter nav nobr noembed noframes noscript object ol optgroup option output p param picture plaintext "
    "pre progress q rp rt ruby s samp script search section select slot small source span strike strong "
    "style sub summary sup svg table tbody td template textarea tfoot th thead time title tr track tt u ul "
    "var video wbr xml xmp"
).split()
_ELEMENT = "|".join(sorted(_ELEMENTS, key=len, reverse=True))
# A tag's attributes stop at the next "<" too: "<p <p <p …" must not be read to its end
# from every "<", which takes seconds for a long message.
_MARKUP = re.compile(rf"(?i)</?(?:{_ELEMENT})(?:[\s/][^<>]*)?>|<!--|<!doctype\b")
# A "<" that opens no element, comment or declaration is text. Office's prefixed elements
# (<o:p>, <st1:place>) are markup the sanitiser removes, not words to show.
_NOT_MARKUP = re.compile(rf"(?i)<(?!/?(?:{_ELEMENT}|[a-z][a-z0-9]*:[a-z][\w.-]*)[\s/>]|[!?])")


def looks_like_html(text: str) -> bool:
    """Whether a body given as "plain text or HTML" is HTML: it has an element HTML knows,
    a comment or a doctype."""
    return bool(_MARKUP.search(text))


def sanitize_html(value: str) -> str:
    """Safe markup from any HTML. A "<" that starts no tag ("write to <returns@shop.example>")
    stays as text rather than being taken for an unknown element and dropped."""
    return nh3.clean(
        _NOT_MARKUP.sub("&lt;", value),
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
    # Quotes need no escaping outside attributes, and "&quot;" would make a message's
    # quotes count six times against its length.
    paragraphs = [p for p in re.split(r"\n{2,}", value.strip()) if p]
    return "".join(f"<p>{html.escape(p, quote=False).replace(chr(10), '<br>')}</p>" for p in paragraphs)


_UNFINISHED_ENTITY = re.compile(r"&#?[0-9A-Za-z]*\Z")


def cut_markup(value: str, limit: int) -> str:
    """At most ``limit`` characters of (sanitised) markup, ending outside a tag and an
    entity: sanitising closes the elements left open, but it would show the rest of a
    tag cut short ("<", "</") or of an entity ("&am") as text."""
    if len(value) <= limit:
        return value
    cut = value[:limit]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    entity = _UNFINISHED_ENTITY.search(cut)
    return cut[:entity.start()] if entity else cut

"""The text an agent reads: HTML bodies made readable, and a reply's new words told from its quoted history.

Mail clients never mark where the new words end, so the boundary is found by the lines they write around it. The
thread shows only the new part; the stored raw email keeps everything (``/inbound-emails/{id}/raw``), so a wrong
cut hides words from the agent but never loses them. When in doubt the heuristics keep text rather than cut it:
answers written between quoted lines keep the quote, and a bare "--" is a signature only when it looks like one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relaydesk.core.sanitize import html_to_text, sanitize_html, text_to_html

__all__ = ["Forward", "clean_html", "html_text", "reply_markup", "split_forward", "strip_quoted"]

# An attribution line ("On <date>, <name> wrote:") in the languages our customers write in. Gmail wraps long ones
# over two or three lines, so candidates are matched against a few lines joined together.
_ATTRIBUTIONS = (
    re.compile(r"^On\s.+\swrote\s?:$", re.IGNORECASE),
    re.compile(r"^Vào\s.+\sđã viết\s?:$", re.IGNORECASE),
    re.compile(r"^Am\s.+\sschrieb\b.*:$", re.IGNORECASE),
    re.compile(r"^Le\s.+\sa écrit\s?:$", re.IGNORECASE),
    re.compile(r"^El\s.+\sescribió\s?:$", re.IGNORECASE),
    re.compile(r"^Op\s.+\sschreef\b.*:$", re.IGNORECASE),
)
_ATTRIBUTION_START = re.compile(r"^(On|Vào|Am|Le|El|Op)\s", re.IGNORECASE)
_MAX_ATTRIBUTION_LINES = 3
_MAX_ATTRIBUTION_CHARS = 400

_ORIGINAL_MESSAGE = re.compile(
    r"^-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)\s*-{2,}$",
    re.IGNORECASE,
)
_FORWARD_MARKER = re.compile(
    r"^(-{3,}\s*(Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado)\s*-{3,}"
    r"|Begin forwarded message\s?:|Anfang der weitergeleiteten Nachricht\s?:|Début du message réexpédié\s?:)$",
    re.IGNORECASE,
)
# Outlook and Gmail-rendered-Outlook history: a From line, then Sent/Date/To/Subject lines (sometimes *bold*).
_HEADER_FROM = re.compile(r"^\*?(From|De|Von|Từ|Van|Da)\s?:\*?\s*\S", re.IGNORECASE)
_HEADER_FIELD = re.compile(
    r"^\*?(Sent|Date|To|Cc|Subject|Envoyé|Enviado|Gesendet|Datum|An|Betreff|À|Objet|Para|Asunto|Đã gửi|Ngày|Đến"
    r"|Tới|Tiêu đề|Chủ đề)\s?:",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{10,}$")
_DEVICE_LINE = re.compile(
    r"^(Sent from my (iPhone|iPad|Android.*|Samsung.*|mobile device|BlackBerry.*)"
    r"|Get Outlook for (iOS|Android)|Sent from (Mail|Outlook) for Windows( \d+)?|Sent from Yahoo Mail.*)$",
    re.IGNORECASE,
)
_SEPARATOR_ONLY = re.compile(r"^[\s_\-=*]*$")
_MAX_SIGNATURE_LINES = 10  # a corporate signature: name, role, company, address, phones, legal


def strip_quoted(text: str, *, forwarded: bool = False) -> str:
    """The new part of a reply: quoted history, device footers and the signature cut off.

    ``forwarded`` is for callers that know the message is a forward without a marker line in the body (Outlook
    forwards look exactly like Outlook replies; only the "FW:" subject tells them apart): nothing is cut then.
    """
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line.rstrip() for line in raw_lines]
    whole = "\n".join(lines).strip()
    if forwarded:
        return whole
    quote_cut = _history_start(lines)
    if quote_cut is not None and _answered_inline(lines, quote_cut):
        quote_cut = None  # the answers sit between the quoted questions: only a trailing quote goes
    forward_at = next((i for i, line in enumerate(lines) if _FORWARD_MARKER.match(line.strip())), None)
    if forward_at is not None and (quote_cut is None or forward_at < quote_cut):
        # What follows the marker is the content being handed to us; cutting at a footer above it would drop it.
        return whole
    candidates = [c for c in (quote_cut, _footer_start(raw_lines), _trailing_quote_start(lines)) if c is not None]
    if not candidates:
        return whole
    kept = lines[: min(candidates)]
    while kept and _SEPARATOR_ONLY.match(kept[-1]):
        kept.pop()
    return "\n".join(kept).strip() or whole


@dataclass(frozen=True, slots=True)
class Forward:
    """A forward taken apart: the forwarder's own words above it, the From and Subject of
    the first message it carries (as written in its header block), and that message's text
    below its header lines (with whatever older messages it carries in turn)."""

    note: str
    sender: str
    subject: str
    text: str


_MAX_HEADER_BLOCK = 12  # lines: From, Date/Sent, To and Cc (wrapped when long), Subject


def split_forward(text: str, *, subject_says_forward: bool) -> Forward | None:
    """The forward in ``text``, or None when there is none or its header block names no
    sender. A forward is known by its marker line ("Begin forwarded message:"); with a
    "Fwd:"/"FW:" subject, also by the header block Outlook puts above it, which in any other
    email is only reply history. Of a chain, the first block's message is the one forwarded
    (the older ones are part of its text). The forwarded message starts after the last header
    line of the block's first paragraph: clients end the block with a blank line, but a line
    Outlook wrapped (a long To) sits between header lines, and a client that leaves the blank
    line out must not have the message's first words taken for a header."""
    kept = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [line.strip() for line in kept]
    start = next((i for i, line in enumerate(lines) if _FORWARD_MARKER.match(line)), None)
    if start is None and subject_says_forward:
        start = _history_start(lines)
    if start is None:
        return None
    at = next((i for i in range(start, min(start + 4, len(lines))) if _HEADER_FROM.match(lines[i])), None)
    if at is None:
        return None
    sender = _header_value(lines[at])
    last_header, subject = at, ""
    for i in range(at, min(at + _MAX_HEADER_BLOCK, len(lines))):
        if not lines[i]:
            break
        if _HEADER_FROM.match(lines[i]) or _HEADER_FIELD.match(lines[i]):
            last_header = i
            if not subject and _SUBJECT_FIELD.match(lines[i]):
                subject = _header_value(lines[i])
    note = kept[:start]
    while note and _SEPARATOR_ONLY.match(note[-1]):
        note.pop()
    # Outlook writes "Hannah Weber [mailto:h.weber@example.de]".
    return Forward(note="\n".join(note).strip(), sender=re.sub(r"\[mailto:([^\]]+)\]", r"<\1>", sender),
                   subject=subject, text="\n".join(kept[last_header + 1:]).strip())


_SUBJECT_FIELD = re.compile(r"^\*?(Subject|Betreff|Objet|Asunto|Tiêu đề|Chủ đề)\s?:", re.IGNORECASE)


def _header_value(line: str) -> str:
    # Gmail's rendering of an Outlook block bolds the names: "*From:* Hannah Weber".
    return line.split(":", 1)[1].strip(" *")


def _history_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(">"):
            continue
        if _is_attribution(lines, i) or _ORIGINAL_MESSAGE.match(stripped):
            return i
        if _UNDERSCORES.match(stripped) and _next_nonblank_matches(lines, i, _HEADER_FROM):
            return i
        if _HEADER_FROM.match(stripped) and _header_fields_follow(lines, i):
            return i
    return None


def _is_attribution(lines: list[str], start: int) -> bool:
    if not _ATTRIBUTION_START.match(lines[start].strip()):
        return False
    joined = ""
    for line in lines[start : start + _MAX_ATTRIBUTION_LINES]:
        stripped = line.strip()
        if not stripped or stripped.startswith(">"):
            return False
        joined = f"{joined} {stripped}".strip()
        # A date is always part of a client's attribution; requiring a digit spares "On Monday I wrote:" prose.
        if joined.endswith(":") and len(joined) <= _MAX_ATTRIBUTION_CHARS and any(c.isdigit() for c in joined):
            if any(pattern.match(joined) for pattern in _ATTRIBUTIONS):
                return True
    return False


def _next_nonblank_matches(lines: list[str], index: int, pattern: re.Pattern[str]) -> bool:
    for line in lines[index + 1 : index + 4]:
        if line.strip():
            return bool(pattern.match(line.strip()))
    return False


def _header_fields_follow(lines: list[str], index: int) -> bool:
    following = [line.strip() for line in lines[index + 1 : index + 6] if line.strip()]
    return sum(1 for line in following[:4] if _HEADER_FIELD.match(line)) >= 2


def _answered_inline(lines: list[str], attribution: int) -> bool:
    """Whether new text follows quoted lines below the attribution ("On ... wrote:", then
    "> which size?", "EU 42", ...): a reply written into the quote, where cutting at the
    attribution would drop every answer."""
    quoted = False
    for line in lines[attribution + 1:]:
        stripped = line.strip()
        if stripped.startswith(">"):
            quoted = True
        elif stripped and quoted and not _DEVICE_LINE.match(stripped) and stripped != "--":
            return True
    return False


def _footer_start(raw_lines: list[str]) -> int | None:
    """The signature or device footer. "-- " (with its space) is the standard signature
    delimiter; a bare "--" is one only when it is the message's only one and little
    follows it, since people also use it as a separator ("Items:", "--", a list, "--", ...)."""
    bare = [i for i, line in enumerate(raw_lines) if line.rstrip() == "--" and line != "-- "]
    lone_bare = bare[0] if len(bare) == 1 and sum(
        1 for line in raw_lines[bare[0] + 1:] if line.strip() and not line.lstrip().startswith(">")) \
        <= _MAX_SIGNATURE_LINES else None
    for i, line in enumerate(raw_lines):
        if line == "-- " or i == lone_bare or _DEVICE_LINE.match(line.strip()):
            return i
    return None


def _trailing_quote_start(lines: list[str]) -> int | None:
    """Start of the ">" block that ends the message; quotes followed by new text (interleaved replies) stay."""
    start = None
    for i in range(len(lines) - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped.startswith(">"):
            start = i
        elif stripped:
            break
    return start


# --- HTML bodies ------------------------------------------------------------------------------------------------

# Where clients put the quoted history in their HTML (matched before sanitising, which drops classes, ids and
# styles): Gmail's quote, Thunderbird's citation prefix, Yahoo's quoted block, Apple Mail's cited blockquote (its
# attribution is inside), Outlook on the web's reply header, and the rule desktop Outlook draws above its header.
_HTML_HISTORY = re.compile(
    r"""<div\b[^>]*\bclass\s*=\s*["']?(gmail_quote|moz-cite-prefix|yahoo_quoted)\b"""
    r"""|<div\b[^>]*\bid\s*=\s*["']?(divRplyFwdMsg|appendonsend)\b"""
    r"""|<blockquote\b[^>]*\btype\s*=\s*["']?cite\b"""
    r"""|<div\b[^>]*\bstyle\s*=\s*["'][^"'>]*\bborder-top\s*:\s*solid\s+#(E1E1E1|B5C4DF)\b""",
    re.IGNORECASE,
)


def _words(text: str) -> str:
    return " ".join(text.split())


# What a text part and html_text() write differently for the same markup: link targets (Gmail and Apple Mail put
# "<https://…>" after the link's words, Outlook glues it to them, html_text puts it in brackets, and none repeats
# a target that is the link's words), Gmail's "[image: …]" for a picture, and list bullets or numbers ("   - ",
# "  *   ", "\t• ", "1. "). Bold and italic marks (*by Friday*, _now_) are punctuation, which words leave out.
_LINK_TARGET = re.compile(r"<[^<>\s]+[:@][^<>\s]*>|\b(?:https?|ftp)://\S+|\bmailto:\S+|\[image: [^\]\n]{0,300}\]",
                          re.IGNORECASE)
# [ \t], not \s: a run of blank lines would be rescanned from each of its lines.
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(?:[-*+•·▪◦]|\d{1,3}[.)])[ \t]+")
_WORD = re.compile(r"[^\W_]+")


def _wording(text: str) -> list[str]:
    """The words a reader sees, in order, however a client wrote them into text."""
    return _WORD.findall(_LIST_MARKER.sub(" ", _LINK_TARGET.sub(" ", text)).casefold())


def reply_markup(original_html: str | None, html: str, text: str, reply_text: str) -> str:
    """The new part of a reply as sanitised HTML, keeping its formatting (links, lists,
    tables, inline images) where the cut can be made in the markup too: nothing was cut
    from the text, or the history sits in a container a known client marks and what
    precedes it has the very words of the text's new part. Those words are what proves
    the two cuts agree (a marker above answers written between the quotes, or a client
    whose HTML says something else, would otherwise show history or hide an answer); they
    are compared as a reader sees them, since no client writes its text part the way
    html_text() reads the markup. Otherwise the new words as plain paragraphs: formatting
    lost, but never a word of history shown or of the answer hidden. ``html`` is
    ``original_html`` already cleaned."""
    if not reply_text:
        return ""
    if original_html is not None:
        if _words(reply_text) == _words(text):
            return html
        if found := _HTML_HISTORY.search(original_html):
            before = clean_html(original_html[:found.start()])
            if _wording(html_text(before, original_html)) == _wording(reply_text):
                return before
    return text_to_html(reply_text)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_OUTLOOK_MARKUP = re.compile(r"urn:schemas-microsoft-com:office|class=\"?Mso", re.IGNORECASE)


def clean_html(markup: str) -> str:
    """Sanitised HTML without the parts the sanitiser would keep as visible text: <head>/<title>, Word's <xml>
    islands, and Outlook's conditional comments (hidden ones wholly; "downlevel-revealed" ones only their markers,
    their content is meant for clients like us)."""
    markup = re.sub(r"<!--\[if[^\]]*\]><!-->|<!--<!\[endif\]-->|<!\[if[^\]]*\]>|<!\[endif\]>", "", markup)
    markup = _drop_between(markup, "<!--[if", "<![endif]-->")
    for tag in ("head", "title", "style", "script", "xml"):
        markup = _drop_between(markup, f"<{tag}", f"</{tag}>")
    return sanitize_html(markup).strip()


def html_text(clean: str, original: str) -> str:
    """Readable text from sanitised HTML. Source line breaks are layout, not content, so they are collapsed first;
    Outlook (recognised in the ``original`` markup) writes one <p> per line, other clients one per paragraph."""
    pieces = re.split(r"(?is)(<pre\b.*?</pre>)", clean)
    markup = "".join(p if p[:4].lower() == "<pre" else re.sub(r"\s+", " ", p) for p in pieces)
    markup = re.sub(r"(?i)</p>", "\n" if _OUTLOOK_MARKUP.search(original) else "\n\n", markup)
    markup = re.sub(r"(?i)<hr\s*/?>|</?blockquote>|</table>|</[ou]l>", "\n", markup)
    markup = re.sub(r"(?i)</t[dh]>", " ", markup)
    lines = [line.replace("\xa0", " ").strip() for line in html_to_text(markup).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _drop_between(markup: str, opener: str, closer: str) -> str:
    """Cut every opener...closer span, ASCII-case-insensitively, in one linear pass (a regex with .*? goes
    quadratic on a message full of unclosed openers). ASCII-only lowering keeps indexes aligned with ``markup``."""
    lowered = markup.translate(_ASCII_LOWER)
    out, position = [], 0
    is_tag = opener[1:].isalpha()
    while (start := lowered.find(opener, position)) != -1:
        after = lowered[start + len(opener): start + len(opener) + 1]
        if is_tag and after not in (">", " ", "\t", "\n", "\r", "/"):  # <header> is not <head>
            out.append(markup[position:start + len(opener)])
            position = start + len(opener)
            continue
        end = lowered.find(closer, start)
        if end == -1:
            break
        out.append(markup[position:start])
        position = end + len(closer)
    out.append(markup[position:])
    return "".join(out)

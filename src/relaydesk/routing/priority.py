"""Ticket priority from simple, explainable rules.  Pure: no I/O, no Relaydesk imports.

Every rule that fires proposes a priority; the **highest** proposal wins, so a rule can
only ever raise a ticket above its category's default, never lower it.

The rules
---------
* **category default** — always fires with ``category_default`` (MEDIUM unless the
  ticket's category says otherwise).
* **keywords** — each keyword or phrase found in the subject or the description
  proposes its priority (:data:`DEFAULT_KEYWORDS` unless the caller passes its own).
* **VIP customer** — a customer whose tier is in :data:`VIP_TIERS` proposes
  ``vip_priority`` (HIGH).
* **very negative tone** — a VADER compound sentiment of the subject and description
  at or below ``negative_threshold`` (-0.6) proposes ``negative_priority`` (HIGH).

How keywords match
------------------
Matching is on whole words, case-insensitively, and ignores punctuation:

* text and keyword are both cut into words (runs of letters, digits and underscores, so
  "asap_fan" is one word); apostrophes are dropped first, so ``"can't log in"`` matches
  "can't log in", "CANT LOG IN" and "can’t log in";
* a keyword matches when its words appear consecutively in the subject or in the
  description (a phrase never spans the two): ``"legal action"`` matches
  "LEGAL-ACTION!!" and "legal action," but ``"charge"`` does not match "undercharged"
  or "charges" — list every form you mean (the defaults list "chargeback" and
  "chargebacks" separately);
* a keyword directly preceded by a negation (:data:`NEGATIONS`: "not", "no", "non",
  "never", "isn't", "nothing", and "not really" or "not that") does not fire there:
  "not urgent", "No emergency", "non-urgent" and "not that critical" raise nothing,
  while "urgent, not a question" does;
* capitals do not matter, so "THE SITE IS DOWN" fires ``"site is down"``.  The bare word
  "down" is deliberately *not* a default keyword: it would fire on "down jacket", "down
  payment", "calm down" and "the price went down"; the defaults use phrases such as
  "site down", "app is down" and "servers are down" instead.

The defaults (:data:`DEFAULT_KEYWORDS`) raise to URGENT for outages ("site down", "not
working at all"), fraud and security ("fraud", "chargeback", "hacked", "unauthorised
charge"), legal threats ("legal action", "lawyer", "sue you") and explicit emergencies
("urgent", "emergency", "critical"); to HIGH for time pressure ("asap", "immediately"),
double charges, lock-outs ("locked out", "can't log in"), repeated contact ("third time",
"escalate", "unacceptable") and lost goods ("never arrived", "lost parcel").  Everyday
words such as "broken", "damaged" or "not working" are left to the category default.
Vietnamese has the same kinds of defaults ("khẩn cấp", "lừa đảo", "luật sư"; "ngay lập
tức", "trừ tiền hai lần", "không đăng nhập được", "chưa nhận được hàng"), and "không" and
"chẳng" take a keyword back as "not" does ("không khẩn cấp").
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_KEYWORDS", "NEGATIONS", "PRIORITIES", "VIP_TIERS", "PriorityDecision", "decide_priority",
    "keywords_in_effect", "matched_keywords", "sentiment",
]

PRIORITIES: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH", "URGENT")
_RANK = {p: i for i, p in enumerate(PRIORITIES)}

#: Customer tiers (compared case-insensitively, surrounding spaces ignored) that count as VIP.
VIP_TIERS: frozenset[str] = frozenset({"vip"})

_URGENT = (
    # the service itself is down for the customer
    "outage", "site down", "website down", "app down", "site is down", "website is down",
    "app is down", "service is down", "system is down", "server is down", "servers are down",
    "site went down", "website went down", "everything is down", "not working at all",
    # money taken without consent, fraud, account security
    "fraud", "fraudulent", "chargeback", "chargebacks", "stolen card", "unauthorised charge",
    "unauthorized charge", "unauthorised payment", "unauthorized payment", "unauthorised transaction",
    "unauthorized transaction", "identity theft", "hacked", "data breach",
    # legal escalation
    "legal action", "lawyer", "solicitor", "lawsuit", "sue you", "small claims court",
    "trading standards",
    # the customer says it is an emergency
    "urgent", "urgently", "emergency", "critical",
    # Vietnamese: the same kinds of words. "gấp" alone also means "to fold" and "kiện"
    # "a parcel" (kiện hàng), so only the phrases that cannot mean those.
    "khẩn cấp", "khẩn", "cần gấp", "rất gấp", "gấp lắm", "hoàn tiền gấp",
    "lừa đảo", "gian lận", "bị hack", "bị đánh cắp", "rò rỉ dữ liệu", "giao dịch trái phép",
    "trừ tiền trái phép", "luật sư", "khởi kiện", "kiện ra tòa", "kiện ra toà", "ra tòa", "ra toà",
    "web bị sập", "trang web bị sập", "hệ thống bị sập", "ứng dụng bị sập", "app bị sập",
)
_HIGH = (
    # time pressure ("asap" is routine in support mail, so it raises to HIGH, not URGENT)
    "asap", "as soon as possible", "immediately",
    # money taken twice
    "double charged", "charged twice", "charged me twice", "billed twice",
    # the customer cannot get in
    "locked out", "cant log in", "cannot log in", "cant sign in", "cannot sign in",
    # repeated contact and escalation
    "third time", "escalate", "unacceptable",
    # lost goods, time-critical requests
    "never arrived", "lost parcel", "lost package", "cancel my order", "nothing works",
    # Vietnamese. Words spelt with either tone placement ("khóa" and "khoá") are listed both ways.
    "càng sớm càng tốt", "ngay lập tức", "ngay bây giờ",
    "trừ tiền hai lần", "trừ tiền 2 lần", "thanh toán hai lần", "thanh toán 2 lần",
    "không đăng nhập được", "không thể đăng nhập", "bị khóa tài khoản", "bị khoá tài khoản",
    "tài khoản bị khóa", "tài khoản bị khoá",
    "lần thứ ba", "không chấp nhận được",
    "chưa nhận được hàng", "không nhận được hàng", "mất hàng", "thất lạc", "hủy đơn", "huỷ đơn",
)

#: Keyword or phrase -> the priority it proposes.  Case-insensitive, whole words,
#: punctuation and apostrophes ignored (see the module docstring).
DEFAULT_KEYWORDS: dict[str, str] = {**{k: "HIGH" for k in _HIGH}, **{k: "URGENT" for k in _URGENT}}

#: Words that, directly before a keyword, take it back ("not urgent"), as its words
#: (apostrophes dropped); "really" and "that" only after "not" ("not really urgent").
NEGATIONS: frozenset[str] = frozenset({"not", "no", "non", "never", "isnt", "nothing", "không", "chẳng"})
_SOFTENERS_AFTER_NOT: frozenset[str] = frozenset({"really", "that"})

_APOSTROPHES = re.compile(r"['\u2019\u2018`´]")
_WORD = re.compile(r"\w+")


def _words(text: str) -> str:
    """``text`` as its words, casefolded and joined by single spaces, padded with spaces.
    Composed first (NFC): a Vietnamese "ấ" may come as one character or as "a" and two
    combining marks (macOS sends the latter), and only the composed form is a whole word."""
    text = unicodedata.normalize("NFC", text)
    return " " + " ".join(_WORD.findall(_APOSTROPHES.sub("", text.casefold()))) + " "


def _check_priority(value: str, what: str) -> str:
    if not isinstance(value, str) or value.strip().upper() not in _RANK:
        raise ValueError(f"{what} must be one of {', '.join(PRIORITIES)}, got {value!r}")
    return value.strip().upper()


def _compile_keywords(keywords: Mapping[str, str]) -> list[tuple[str, str, str]]:
    compiled = []
    for keyword, priority in keywords.items():
        words = _words(keyword)
        if not words.strip():
            raise ValueError(f"keyword {keyword!r} has no letters or digits to match")
        compiled.append((keyword, words, _check_priority(priority, f"priority of keyword {keyword!r}")))
    return compiled


_DEFAULT_COMPILED = _compile_keywords(DEFAULT_KEYWORDS)


def keywords_in_effect(changes: Mapping[str, str | None] | None) -> dict[str, str]:
    """:data:`DEFAULT_KEYWORDS` with a workspace's changes: a keyword given a priority
    takes it (over a default of the same words), a default mapped to ``None`` is dropped.
    Keywords are the same when their words are (``"Can't log in"`` is ``"cant log in"``)."""
    by_words = {_words(keyword): (keyword, priority) for keyword, priority in DEFAULT_KEYWORDS.items()}
    for keyword, priority in (changes or {}).items():
        if priority is None:
            by_words.pop(_words(keyword), None)
        else:
            by_words[_words(keyword)] = (keyword, priority)
    return dict(by_words.values())


def matched_keywords(subject: str, description: str,
                     keywords: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Every ``(keyword, priority)`` of ``keywords`` found in the subject or the description.

    In the mapping's order; each keyword at most once.
    """
    compiled = _DEFAULT_COMPILED if keywords is None else _compile_keywords(keywords)
    fields = (_words(subject or ""), _words(description or ""))
    return [(keyword, priority) for keyword, words, priority in compiled
            if any(_said(words, field) for field in fields)]


def _said(words: str, field: str) -> bool:
    """Whether ``words`` occur in ``field`` at least once without a negation just before."""
    at = field.find(words)
    while at != -1:
        last_start = field.rfind(" ", 0, at) + 1  # the field is words between single spaces
        last = field[last_start:at]
        negated = last in NEGATIONS or (
            last in _SOFTENERS_AFTER_NOT and field[field.rfind(" ", 0, last_start - 1) + 1:last_start - 1] == "not")
        if not negated:
            return True
        at = field.find(words, at + 1)
    return False


_analyzer = None
_analyzer_lock = threading.Lock()
# VADER's cost grows with the square of the words it sees, and it reads each emoji as a
# few words: 8,000 emoji took 18 s, all of it on the event loop every workspace shares.
# The tone of a request shows in its opening, so only that much is read.
SENTIMENT_CHARS = 1_000
SENTIMENT_SYMBOLS = 40
_SYMBOL = re.compile("[\u2190-\u2bff\U0001f000-\U0001faff]")


def sentiment(text: str) -> float:
    """VADER compound sentiment of ``text``, in [-1, 1] (0 for empty text).

    The analyzer (and its lexicon) is loaded once per process, on first use.
    """
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _analyzer = SentimentIntensityAnalyzer()
    if not text or not text.strip():
        return 0.0
    return float(_analyzer.polarity_scores(opening(text))["compound"])


def opening(text: str) -> str:
    """What the tone is read from: the first ``SENTIMENT_CHARS`` characters, with at most
    ``SENTIMENT_SYMBOLS`` of the emoji and symbols among them."""
    head = text[:SENTIMENT_CHARS]
    symbols = _SYMBOL.findall(head)
    if len(symbols) <= SENTIMENT_SYMBOLS:
        return head
    kept = iter(range(SENTIMENT_SYMBOLS))
    return _SYMBOL.sub(lambda m: m.group(0) if next(kept, None) is not None else "", head)


@dataclass(frozen=True)
class PriorityDecision:
    """The winning priority and every rule that fired, the winner(s) first.

    Reasons with equal priority keep the rule order: keywords, VIP, tone, category default.
    """

    priority: str
    reasons: list[str]


def decide_priority(subject: str, description: str, *, category_default: str = "MEDIUM",
                    customer_tier: str = "standard", keywords: Mapping[str, str] | None = None,
                    negative_threshold: float = -0.6, vip_priority: str = "HIGH",
                    negative_priority: str = "HIGH") -> PriorityDecision:
    """Decide a ticket's priority; the highest priority proposed by any rule wins.

    ``keywords`` replaces :data:`DEFAULT_KEYWORDS` when given (pass
    ``{**DEFAULT_KEYWORDS, ...}`` to extend them; ``{}`` turns keyword rules off).
    The tone rule fires when the compound sentiment is *at or below*
    ``negative_threshold``.  Priority names are accepted in any case.  Raises
    ``ValueError`` for an unknown priority, an empty keyword, or a threshold outside [-1, 1].
    """
    category_default = _check_priority(category_default, "category_default")
    vip_priority = _check_priority(vip_priority, "vip_priority")
    negative_priority = _check_priority(negative_priority, "negative_priority")
    if not -1.0 <= negative_threshold <= 1.0:
        raise ValueError(f"negative_threshold must be between -1 and 1, got {negative_threshold}")
    subject, description = subject or "", description or ""

    fired: list[tuple[str, str]] = []  # (priority, reason) in rule order
    for keyword, priority in matched_keywords(subject, description, keywords):
        fired.append((priority, f"keyword '{keyword}' → {priority}"))
    if (customer_tier or "").strip().casefold() in VIP_TIERS:
        fired.append((vip_priority, f"VIP customer → {vip_priority}"))
    tone = sentiment(f"{subject}. {description}" if subject.strip() else description)
    if tone <= negative_threshold:
        fired.append((negative_priority, f"very negative tone (compound {tone:.2f}) → {negative_priority}"))
    fired.append((category_default, f"category default → {category_default}"))

    fired.sort(key=lambda item: -_RANK[item[0]])  # stable: equal priorities keep rule order
    return PriorityDecision(priority=fired[0][0], reasons=[reason for _, reason in fired])

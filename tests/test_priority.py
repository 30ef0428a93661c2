"""Rule-based ticket priority (relaydesk.routing.priority): pure, no database."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydesk.routing import priority as prio
from relaydesk.routing.priority import (
    DEFAULT_KEYWORDS,
    PRIORITIES,
    PriorityDecision,
    decide_priority,
    matched_keywords,
    sentiment,
)

RANK = {p: i for i, p in enumerate(PRIORITIES)}
CALM = "Hello, could you tell me when my order will ship? Thanks"


# --------------------------------------------------------------------------- sentiment


def test_sentiment_is_vader_compound() -> None:
    assert sentiment("I love this shop, great service!") > 0.5
    assert sentiment("This is awful, the worst service, I hate it") < -0.6
    assert sentiment("") == 0.0 and sentiment("   ") == 0.0
    assert -1.0 <= sentiment("terrible horrible disgusting awful " * 20) <= 1.0


def test_the_tone_is_read_from_a_bounded_opening() -> None:
    """Whatever a customer sends, the analyzer sees a bounded text (its cost grows with the
    square of what it reads, and it ran on the shared event loop: 100,000 emoji in one
    description stalled the server for minutes)."""
    flood = "😀" * 100_000
    assert len(prio.opening(flood)) == prio.SENTIMENT_SYMBOLS
    long_angry = "This is the worst, most useless service ever. " + "Filler words here. " * 5_000
    assert len(prio.opening(long_angry)) == prio.SENTIMENT_CHARS
    assert prio.sentiment(long_angry) < -0.6  # what the opening says still counts
    mixed = "Terrible 😡 " * 200
    kept = prio.opening(mixed)
    assert kept.count("😡") == prio.SENTIMENT_SYMBOLS and kept.startswith("Terrible 😡 Terrible")
    assert prio.opening("A short question.") == "A short question."


def test_sentiment_analyzer_is_built_once() -> None:
    sentiment("warm up")
    analyzer = prio._analyzer
    sentiment("again")
    assert analyzer is not None and prio._analyzer is analyzer


# --------------------------------------------------------------------------- single rules


def test_only_the_category_default_fires_for_a_calm_ticket() -> None:
    decision = decide_priority("Shipping date", CALM)
    assert decision == PriorityDecision("MEDIUM", ["category default → MEDIUM"])
    assert decide_priority("Shipping date", CALM, category_default="low").priority == "LOW"


@pytest.mark.parametrize("subject, description, keyword, expected", [
    ("Chargeback", CALM, "chargeback", "URGENT"),
    ("", "THE WEBSITE IS DOWN AGAIN", "website is down", "URGENT"),
    ("", "the app is not working... at all!", "not working at all", "URGENT"),
    ("", "I'll be taking LEGAL-ACTION!!", "legal action", "URGENT"),
    ("", "Someone HACKED my account", "hacked", "URGENT"),
    ("", "reply asap please", "asap", "HIGH"),
    ("", "I can’t log in since Monday", "cant log in", "HIGH"),
    ("", "you CHARGED ME TWICE", "charged me twice", "HIGH"),
    ("urgent!!", CALM, "urgent", "URGENT"),
])
def test_each_keyword_rule(subject: str, description: str, keyword: str, expected: str) -> None:
    decision = decide_priority(subject, description)
    assert decision.priority == expected
    assert f"keyword '{keyword}' → {expected}" in decision.reasons
    assert decision.reasons[-1] == "category default → MEDIUM"


@pytest.mark.parametrize("text", [
    "I'd like to return my down jacket",          # the bare word "down" is not a keyword
    "the price went down, can I have the difference?",
    "Hi, Sue here - quick question about sizes",   # "sue you" is, "Sue" is not
    "my order was undercharged, happy to pay the rest",
    "my username is asap_rocky_fan",              # "_" joins a word, so no "asap"
    "this item is critically acclaimed",           # "critical" is not "critically"
])
def test_keywords_match_whole_words_only(text: str) -> None:
    assert matched_keywords("", text) == []


@pytest.mark.parametrize("subject, description", [
    ("Newsletter email change - not urgent", CALM),
    ("Question", "No emergency, just wondering when the sale starts"),
    ("not critical", CALM),
    ("A non-urgent question", CALM),
    ("", "It isn't urgent, but I was never hacked before either... nothing fraudulent, I think"),
    ("", "Not really urgent. Not that urgent, honestly; NEVER charged twice"),
])
def test_a_negated_keyword_does_not_fire(subject: str, description: str) -> None:
    """A customer who says it is not urgent is not made URGENT ("not urgent" fired "urgent")."""
    decision = decide_priority(subject, description)
    assert decision == PriorityDecision("MEDIUM", ["category default → MEDIUM"])


@pytest.mark.parametrize("text, fired", [
    ("urgent, not a question", ["urgent"]),           # the negation must come directly before
    ("not urgent - well, actually urgent", ["urgent"]),  # one plain mention is enough
    ("never been hacked until today", ["hacked"]),
    ("really urgent", ["urgent"]),                     # "really" takes back only after "not"
    ("the app is not working at all", ["not working at all"]),  # a keyword may start with "not"
    ("it cannot be that urgent", ["urgent"]),          # "cannot" is not "not"
])
def test_a_keyword_fires_unless_directly_negated(text: str, fired: list[str]) -> None:
    assert [k for k, _ in matched_keywords("", text)] == fired


@pytest.mark.parametrize("subject, description, expected", [
    ("KHẨN CẤP: bị trừ tiền hai lần", "Cần hoàn tiền gấp, cảm ơn.", "URGENT"),
    ("", "Tài khoản của tôi bị hack rồi", "URGENT"),
    ("", "Tôi sẽ thuê luật sư nếu không được giải quyết", "URGENT"),
    ("Bị trừ tiền 2 lần", CALM, "HIGH"),
    ("", "Tôi không đăng nhập được từ hôm qua", "HIGH"),
    ("", "Tài khoản bị khoá", "HIGH"),   # the older tone placement, "khoá" for "khóa"
    ("", "Tài khoản bị khóa", "HIGH"),
    ("", "Đã 2 tuần mà tôi chưa nhận được hàng", "HIGH"),
])
def test_vietnamese_requests_are_triaged_too(subject: str, description: str, expected: str) -> None:
    assert decide_priority(subject, description).priority == expected


def test_vietnamese_matches_whatever_the_unicode_form_and_knows_its_negation() -> None:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Việc này rất khẩn cấp")  # as macOS may send it
    assert decide_priority("", decomposed).priority == "URGENT"
    assert decide_priority("Không khẩn cấp", "Chỉ hỏi về kích cỡ áo.").priority == "MEDIUM"
    assert decide_priority("", "Gấp quần áo thế nào cho gọn?").priority == "MEDIUM"  # "gấp": to fold
    assert decide_priority("", "Kiện hàng của tôi đẹp lắm").priority == "MEDIUM"    # "kiện hàng": a parcel


def test_word_boundaries_with_a_custom_keyword() -> None:
    keywords = {"charge": "HIGH"}
    assert decide_priority("", "I was undercharged", keywords=keywords).priority == "MEDIUM"
    assert decide_priority("", "several charges appeared", keywords=keywords).priority == "MEDIUM"
    assert decide_priority("", "Why this CHARGE?", keywords=keywords).reasons[0] == "keyword 'charge' → HIGH"


def test_a_phrase_never_spans_subject_and_description() -> None:
    assert matched_keywords("legal", "action figures are out of stock") == []
    assert matched_keywords("legal action", "") == [("legal action", "URGENT")]


def test_custom_keywords_replace_the_defaults() -> None:
    assert decide_priority("chargeback", CALM, keywords={}).priority == "MEDIUM"
    decision = decide_priority("", "Where is my refund?", keywords={"refund": "high", "where is": "LOW"})
    assert decision.priority == "HIGH"
    assert decision.reasons == ["keyword 'refund' → HIGH", "category default → MEDIUM", "keyword 'where is' → LOW"]


@pytest.mark.parametrize("tier", ["VIP", "vip", " Vip "])
def test_vip_customers(tier: str) -> None:
    decision = decide_priority("Shipping date", CALM, customer_tier=tier)
    assert decision == PriorityDecision("HIGH", ["VIP customer → HIGH", "category default → MEDIUM"])
    assert decide_priority("Shipping date", CALM, customer_tier=tier, vip_priority="URGENT").priority == "URGENT"


@pytest.mark.parametrize("tier", ["standard", "gold", "", "vip-trial"])
def test_other_tiers_are_not_vip(tier: str) -> None:
    assert decide_priority("Shipping date", CALM, customer_tier=tier).priority == "MEDIUM"


def test_very_negative_tone() -> None:
    text = "This is disgusting, the worst company ever, I hate you and your useless staff"
    compound = sentiment(f"Fed up. {text}")
    assert compound <= -0.6
    decision = decide_priority("Fed up", text)
    assert decision.priority == "HIGH"
    assert decision.reasons[0] == f"very negative tone (compound {compound:.2f}) → HIGH"
    # the threshold and the priority are the caller's
    assert decide_priority("Fed up", text, negative_threshold=-1.0).priority == "MEDIUM"
    assert decide_priority("Fed up", text, negative_priority="URGENT").priority == "URGENT"
    # mildly unhappy is not "very negative"
    assert decide_priority("", "I'm a bit disappointed the parcel is late").priority == "MEDIUM"


# --------------------------------------------------------------------------- combining


def test_highest_rule_wins_and_every_rule_is_listed_winner_first() -> None:
    text = "Your site is down and I hate this useless, awful, disgusting company. Fix it asap"
    decision = decide_priority("Outage", text, category_default="LOW", customer_tier="vip")
    assert decision.priority == "URGENT"
    assert decision.reasons[:2] == ["keyword 'outage' → URGENT", "keyword 'site is down' → URGENT"]
    assert decision.reasons[2:5] == ["keyword 'asap' → HIGH", "VIP customer → HIGH",
                                     decision.reasons[4]]
    assert decision.reasons[4].startswith("very negative tone (compound -")
    assert decision.reasons[5] == "category default → LOW"


def test_a_high_category_default_is_never_lowered() -> None:
    decision = decide_priority("", "hello asap", category_default="URGENT", customer_tier="vip")
    assert decision.priority == "URGENT"
    assert decision.reasons == ["category default → URGENT", "keyword 'asap' → HIGH", "VIP customer → HIGH"]


@pytest.mark.parametrize("kwargs", [
    {"category_default": "CRITICAL"}, {"vip_priority": "P1"}, {"negative_priority": ""},
    {"negative_threshold": -1.5}, {"keywords": {"!!!": "HIGH"}}, {"keywords": {"refund": "SOON"}},
])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        decide_priority("s", "d", **kwargs)


def test_a_workspaces_keywords_change_the_defaults() -> None:
    in_effect = prio.keywords_in_effect({"wrong size": "HIGH", "Urgent": None, "can't log in": "URGENT"})
    assert in_effect["wrong size"] == "HIGH" and in_effect["chargeback"] == "URGENT"
    assert "urgent" not in in_effect and "Urgent" not in in_effect
    assert in_effect["can't log in"] == "URGENT" and "cant log in" not in in_effect  # the same words
    assert prio.keywords_in_effect(None) == prio.keywords_in_effect({}) == DEFAULT_KEYWORDS


def test_default_keywords_are_valid() -> None:
    assert set(DEFAULT_KEYWORDS.values()) <= set(PRIORITIES)
    assert "down" not in DEFAULT_KEYWORDS
    assert all(k == k.lower() and k.strip() == k for k in DEFAULT_KEYWORDS)


# --------------------------------------------------------------------------- property


def _reference_match(keyword: str, text: str) -> bool:
    """An independent statement of the matching rule, as a regular expression."""
    def clean(s: str) -> str:
        return re.sub(r"['\u2019\u2018`´]", "", s.casefold())
    words = re.findall(r"\w+", clean(keyword))
    pattern = r"(?<!\w)(?=" + r"\W+".join(map(re.escape, words)) + r"(?!\w))"  # overlapping, each start
    negation = re.compile(r"(?:^|\W)(?:not|no|non|never|isnt|nothing|not\W+really|not\W+that)\W+$")
    cleaned = clean(text)
    return any(not negation.search(cleaned[:m.start()]) for m in re.finditer(pattern, cleaned))


VOCAB = ["my", "order", "parcel", "refund", "the", "app", "site", "is", "down", "jacket", "chargeback",
         "urgent", "non-urgent", "ASAP", "legal", "action", "can't", "log", "in", "hate", "awful",
         "worst", "disgusting", "love", "great", "thanks", "charged", "twice", "undercharged", "fraud",
         "not", "working", "at", "all", "hacked", "Sue", "you", "3rd", "time", "lost", "package", "é",
         "no", "never", "isn't", "nothing", "really", "that", "cannot"]
SEPARATORS = [" ", "  ", ", ", "! ", "-", "... ", "\n", "'", "_"]
texts = st.lists(st.tuples(st.sampled_from(VOCAB), st.sampled_from(SEPARATORS)), max_size=25).map(
    lambda parts: "".join(w + s for w, s in parts)) | st.text(max_size=60)
priorities = st.sampled_from(PRIORITIES)
keyword_maps = st.none() | st.dictionaries(
    st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3).map(" ".join), priorities, max_size=6)


@settings(max_examples=200, deadline=None)
@given(subject=texts, description=texts, category_default=priorities,
       tier=st.sampled_from(["standard", "vip", "VIP", "gold", ""]), keywords=keyword_maps,
       threshold=st.floats(min_value=-1.0, max_value=0.0), vip=priorities, negative=priorities)
def test_decision_is_never_below_the_default_or_any_rule_that_fires(
        subject: str, description: str, category_default: str, tier: str, keywords: dict | None,
        threshold: float, vip: str, negative: str) -> None:
    decision = decide_priority(subject, description, category_default=category_default, customer_tier=tier,
                               keywords=keywords, negative_threshold=threshold, vip_priority=vip,
                               negative_priority=negative)
    mapping = DEFAULT_KEYWORDS if keywords is None else keywords
    proposals = [category_default]
    proposals += [p for k, p in mapping.items() if _reference_match(k, subject) or _reference_match(k, description)]
    if tier.lower() == "vip":
        proposals.append(vip)
    tone = sentiment(f"{subject}. {description}" if subject.strip() else description)
    if tone <= threshold:
        proposals.append(negative)

    assert all(RANK[decision.priority] >= RANK[p] for p in proposals)
    assert decision.priority == max(proposals, key=RANK.__getitem__)  # and nothing else raises it
    assert len(decision.reasons) == len(proposals)
    assert decision.reasons[0].endswith(f"→ {decision.priority}")
    ranks = [RANK[r.rsplit("→ ", 1)[1]] for r in decision.reasons]
    assert ranks == sorted(ranks, reverse=True)
    assert f"category default → {category_default}" in decision.reasons

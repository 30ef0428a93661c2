"""Inbound email parsing against tests/email_corpus/: what a support agent sees for real-world-shaped mail.

Every corpus file is parsed by the parametrised test below, so a message added to the corpus is exercised even
before anyone writes an assertion about it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaydesk.channels.mime import (
    Address,
    ParsedEmail,
    UnparseableEmail,
    extract_ticket_tokens,
    parse_email,
    strip_quoted,
)
from relaydesk.channels.threading import make_message_id, sent_to, ticket_of
from relaydesk.tickets.attachments import ALLOWED_TYPES

CORPUS = Path(__file__).parent / "email_corpus"
UNPARSEABLE = {"unparseable_no_from.eml", "unparseable_binary.eml"}


def load(name: str, **options: int) -> ParsedEmail:
    return parse_email((CORPUS / name).read_bytes(), **options)


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.eml"))


# --- the whole corpus -------------------------------------------------------------------------------------------


def test_corpus_covers_enough_messages() -> None:
    assert len(corpus_files()) >= 32
    assert UNPARSEABLE <= set(corpus_files())


@pytest.mark.parametrize("name", corpus_files())
def test_every_corpus_message_parses_or_is_refused_with_a_reason(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    if name in UNPARSEABLE:
        with pytest.raises(UnparseableEmail) as refused:
            parse_email(raw)
        assert str(refused.value)
        return
    parsed = parse_email(raw)
    assert "@" in parsed.sender.email and parsed.sender.email == parsed.sender.email.lower()
    assert parsed.date is None or parsed.date.tzinfo == UTC
    assert "<script" not in parsed.html.lower() and "<script" not in parsed.reply_html.lower()
    assert bool(parsed.reply_text) == bool(parsed.text.strip())
    assert parsed.subject == " ".join(parsed.subject.split())
    for attachment in parsed.attachments:
        assert attachment.filename and "/" not in attachment.filename and "\\" not in attachment.filename
        assert not attachment.filename.startswith(".")
        assert attachment.content_id is None or "<" not in attachment.content_id
    for message_id in (parsed.message_id, *parsed.in_reply_to, *parsed.references):
        assert message_id is None or ("<" not in message_id and ">" not in message_id)


# --- bodies and charsets ----------------------------------------------------------------------------------------


def test_plain_ascii_message() -> None:
    parsed = load("plain_ascii.eml")
    assert parsed.sender == Address("Maria Lopez", "maria.lopez@example.com")
    assert parsed.to == [Address("Acme Support", "support@acme.relaydesk.test")]
    assert parsed.subject == "Cannot log in after password reset"
    assert parsed.date == datetime(2025, 3, 3, 9, 14, 5, tzinfo=UTC)
    assert parsed.message_id == "CAF7x2q1-login-reset@mail.example.com"
    assert parsed.reply_text == parsed.text.strip()
    assert parsed.html.startswith("<p>Hello,</p>")
    assert parsed.ticket_tokens == [] and parsed.attachments == [] and parsed.bounce is None
    assert not parsed.auto_submitted and parsed.loop_marker is None


def test_vietnamese_encoded_subject_and_quoted_printable_reply() -> None:
    parsed = load("vietnamese_utf8_qp.eml")
    assert parsed.sender.name == "Trần Thị Lan"
    assert parsed.subject == "Re: [T-000117] Không nhận được hóa đơn"
    assert parsed.ticket_tokens == [117]
    assert parsed.reply_text == (
        "Chào anh/chị,\n\nTôi vẫn chưa nhận được hóa đơn tháng 2. Nhờ anh/chị gửi lại giúp tôi qua email này."
        "\n\nCảm ơn,\nLan"
    )
    assert "đã viết:" in parsed.text


def test_latin1_body_with_german_attribution() -> None:
    parsed = load("latin1_body.eml")
    assert parsed.sender.name == "Jürgen Weiß"
    assert parsed.subject == "Re: Bestellung 4711 nicht angekommen (T-000204)"
    assert parsed.ticket_tokens == [204]
    assert parsed.reply_text.endswith("Mit freundlichen Grüßen\nJürgen Weiß")
    assert "schrieb" not in parsed.reply_text and "Können Sie" in parsed.reply_text


def test_japanese_iso_2022_jp() -> None:
    parsed = load("japanese_iso2022jp.eml")
    assert parsed.sender.name == "山田太郎"
    assert parsed.subject == "請求書の宛名変更について"
    assert "「株式会社サンプル」に変更したい" in parsed.text


def test_shift_jis_decodes_with_windows_extensions() -> None:
    parsed = load("shift_jis_base64.eml")
    assert parsed.subject == "商品未着のお問い合わせ"
    assert "注文番号①の商品" in parsed.text  # ① exists only in Microsoft's Shift_JIS


def test_windows_1252_mislabelled_as_latin1_keeps_smart_quotes() -> None:
    parsed = load("cp1252_mislabelled_latin1.eml")
    assert "I clicked “Upgrade” once and was charged €29.99 twice – that’s not right…" in parsed.text
    assert not re.search("[\x80-\x9f]", parsed.text)


def test_unknown_charset_falls_back_to_utf8() -> None:
    parsed = load("unknown_charset.eml")
    assert parsed.subject == "Café crème order missing"
    assert "Olá! My café crème order from Tuesday never arrived — could you check?" in parsed.text


def test_alternative_uses_text_part_and_sanitised_html_part() -> None:
    parsed = load("alternative_text_html.eml")
    assert parsed.text.startswith("Hi,\n\nCould you change the shipping address on order #8812 to:")
    assert "<b>#8812</b>" in parsed.html
    assert "<title>" not in parsed.html and "<html" not in parsed.html


def test_html_only_message_gets_readable_text() -> None:
    parsed = load("html_only.eml")
    assert parsed.text == (
        "Hello Acme,\n\nHere is your API usage for February & the amount due.\n\nEndpoint Calls\n/tickets 120,400\n"
        "/search 8,312\n\n- Plan: Growth\n- Amount due: €49.00\n\nQuestions? Just reply to this email."
    )
    assert "Usage report" not in parsed.text  # the <title> is not content


def test_outlook_html_reply_without_css_and_without_history() -> None:
    parsed = load("outlook_html_reply.eml")
    for noise in ("MsoNormal", "mso-", "font-family", "{", "shapedefaults", "VML"):
        assert noise not in parsed.text
    assert "From: Acme Support <support@acme.relaydesk.test>\nSent: Monday, 3 March 2025 16:20" in parsed.text
    assert parsed.reply_text == (
        "Hi Sam,\n\nThe printer is still offline after the update. I restarted it twice and the status light keeps "
        "blinking orange.\n\nKind regards,\nPeter Jansen"
    )
    assert parsed.ticket_tokens == [318]
    assert parsed.in_reply_to == ["reply.T-000318.1741018800@relaydesk.test"]
    assert "<style" not in parsed.html and "o:p" not in parsed.html
    assert not parsed.auto_submitted  # X-Auto-Response-Suppress on a person's reply is not an auto-reply


def test_gmail_reply_with_attribution_wrapped_over_two_lines() -> None:
    parsed = load("gmail_reply_wrapped.eml")
    assert parsed.reply_text == (
        "Thanks, the refund arrived this morning.\n\nOne more question: will the invoice be corrected as well?"
        "\n\nJonas"
    )
    assert 'href="mailto:support@acme.relaydesk.test"' in parsed.html


def test_iphone_reply_drops_device_line_and_history() -> None:
    parsed = load("iphone_reply.eml")
    assert parsed.reply_text == "Yes, that worked. Thank you!"
    assert "\ufeff" not in parsed.text


def test_apple_mail_forward_is_kept_whole() -> None:
    parsed = load("apple_mail_forward.eml")
    assert parsed.subject == "Fwd: Lizenz läuft ab"
    assert "meine Lizenz läuft morgen ab und ich kann sie im Portal nicht verlängern." in parsed.reply_text
    assert strip_quoted(parsed.text) == parsed.text.strip()  # the marker alone keeps it, subject aside


def test_gmail_forward_chain_two_levels_is_kept_whole() -> None:
    parsed = load("gmail_forward_chain.eml")
    assert parsed.reply_text.startswith("Forwarding the thread below")
    assert parsed.reply_text.count("---------- Forwarded message ---------") == 2
    assert parsed.reply_text.endswith("down since 22:00 IST. Nobody on our team can log in.\n\nRavi")


def test_a_forward_names_whom_the_forwarded_email_is_from() -> None:
    assert load("apple_mail_forward.eml").forwarded_from == Address("Hannah Weber", "h.weber@example.de")
    # Of a chain, the message that was forwarded: the first block, not the oldest.
    assert load("gmail_forward_chain.eml").forwarded_from == Address("Ops Team", "ops@partner.example")
    outlook = (b"From: Tom <tom@shop.example>\nTo: support@acme.relaydesk.test\nSubject: FW: Refund\n\n"
               b"Please look after her.\n\n________________________________\n"
               b"From: Hannah Weber [mailto:h.weber@example.de]\nSent: Monday, 3 March 2025 18:02\n"
               b"To: Tom\nSubject: Refund\n\nWhere is my refund?\n")
    assert parse_email(outlook).forwarded_from == Address("Hannah Weber", "h.weber@example.de")
    # The same header block in a reply is history, not a forward.
    assert parse_email(outlook.replace(b"Subject: FW: Refund", b"Subject: RE: Refund")).forwarded_from is None
    for name in ("outlook_plain_original_message.eml", "iphone_reply.eml", "plain_ascii.eml"):
        assert load(name).forwarded_from is None, name


def test_a_forward_is_split_into_the_forwarders_words_and_the_forwarded_email() -> None:
    apple = load("apple_mail_forward.eml")
    assert apple.forward_note == "Can you help this customer? She wrote to me directly.\n\nTom"
    assert apple.forwarded_subject == "Lizenz läuft ab"
    assert apple.forwarded_text == ("Hallo Tom,\n\nmeine Lizenz läuft morgen ab und ich kann sie im Portal nicht "
                                    "verlängern.\n\nViele Grüße\nHannah")
    # Of a chain, the first block's message, carrying the older one in turn; its own "Fwd:" goes from the subject.
    chain = load("gmail_forward_chain.eml")
    assert chain.forward_note == "Forwarding the thread below, the customer asked us to escalate."
    assert chain.forwarded_subject == "Outage report"
    assert chain.forwarded_text.startswith("See the customer's report below.\n\n---------- Forwarded message")
    assert chain.forwarded_text.endswith("Nobody on our team can log in.\n\nRavi")
    # Outlook: underscores above the block, the sender as [mailto:], a To wrapped over two lines.
    outlook = parse_email(
        b"From: Tom <tom@shop.example>\nTo: support@acme.relaydesk.test\nSubject: FW: Refund\n\n"
        b"Please look after her.\n\n________________________________\n"
        b"From: Hannah Weber [mailto:h.weber@example.de]\nSent: Monday, 3 March 2025 18:02\n"
        b"To: Tom; Sales Team; Accounts\nPayable\nSubject: My refund\n\nWhere is my refund?\n")
    assert (outlook.forward_note, outlook.forwarded_subject, outlook.forwarded_text) == \
        ("Please look after her.", "My refund", "Where is my refund?")


def test_a_forward_without_a_subject_line_in_its_block_keeps_ours_without_the_prefixes() -> None:
    parsed = parse_email(
        b"From: Tom <tom@shop.example>\nTo: support@acme.relaydesk.test\nSubject: [EXT] Fwd: WG: Refund\n\n"
        b"Begin forwarded message:\n\nFrom: Hannah <h@example.de>\nDate: 3 March 2025\nWhere is my refund?\n")
    # No forwarder's words, and no blank line after the block: the first line that is no header is hers.
    assert (parsed.forward_note, parsed.forwarded_subject, parsed.forwarded_text) == \
        ("", "Refund", "Where is my refund?")
    # Not a forward: nothing to split.
    plain = load("plain_ascii.eml")
    assert (plain.forward_note, plain.forwarded_subject, plain.forwarded_text) == ("", "", "")


def test_interleaved_answers_survive_and_only_the_trailing_quote_goes() -> None:
    parsed = load("interleaved_reply.eml")
    assert parsed.reply_text == (
        "> Which browser are you using?\n\nFirefox 123 on Windows 11.\n\n"
        "> Does the error also appear in a private window?\n\nYes, same error."
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("french_reply.eml", "Merci, c'est bien réglé.\n\nCamille"),
        ("outlook_plain_original_message.eml", "It dropped again at 14:00. Logs are on the share.\n\nTom"),
        ("outlook_plain_underscore.eml", "Thank you, I can see the reports now."),
        ("reply_with_references.eml", "I still have not received the refund. It has been ten days now.\n\nSofia"),
        ("signature_delimiter.eml", "Hi,\n\nPlease cancel my subscription at the end of this month.\n\nRegards,\nOlu"),
    ],
)
def test_reply_text_of_common_clients(name: str, expected: str) -> None:
    assert load(name).reply_text == expected


def test_no_body_at_all() -> None:
    parsed = load("no_body.eml")
    assert parsed.subject == "Call me back please"
    assert (parsed.text, parsed.html, parsed.reply_text, parsed.reply_html) == ("", "", "", "")


def test_script_and_event_handlers_are_sanitised() -> None:
    parsed = load("script_in_html.eml")
    lowered = parsed.html.lower()
    for dangerous in ("<script", "onclick", "onerror", "onload", "onmouseover", "javascript:", "<iframe", "steal("):
        assert dangerous not in lowered
    assert "document.cookie" not in parsed.text
    assert parsed.text == "Hello, my order is here.\n\nThanks!"


# --- headers ----------------------------------------------------------------------------------------------------


def test_threading_headers_and_ticket_token() -> None:
    parsed = load("reply_with_references.eml")
    assert parsed.subject == "Re: [T-000042] Refund"
    assert parsed.in_reply_to == ["abc.T-000042@relaydesk.test"]
    assert parsed.references == ["first.T-000042@relaydesk.test", "abc.T-000042@relaydesk.test"]
    assert parsed.ticket_tokens == [42]


def test_ticket_tokens_from_subject_alone() -> None:
    parsed = load("subject_token_no_reply_headers.eml")
    assert parsed.in_reply_to == [] and parsed.references == []
    assert parsed.ticket_tokens == [78, 77]


def test_display_names_with_commas_and_encoded_words() -> None:
    parsed = load("from_encoded_comma.eml")
    assert parsed.sender == Address("Nguyễn, Văn A", "a@example.vn")
    assert parsed.to == [Address("Doe, John", "john.doe@example.com"), Address("Smith, Jane", "jane.smith@example.com")]
    assert parsed.cc == [Address("Nguyễn Văn A", "a@example.vn")]
    assert parsed.reply_to == Address("Phòng Kế toán, Công ty A", "ketoan@example.vn")
    assert parsed.subject == "Hỏi về hợp đồng"


def test_malformed_headers_degrade_instead_of_failing() -> None:
    parsed = load("malformed_headers.eml")
    assert parsed.date is None  # "Thursday, sometime after lunch"
    assert parsed.message_id is None
    assert parsed.subject == "=?utf-8?q?App_crashes_when=20opening settings"  # unterminated: shown as written
    # The colon-less line did not end the header block: the headers after it still count.
    assert parsed.text == "The app crashes every time I open the settings page.\n"


def test_raw_8bit_headers_and_missing_date() -> None:
    parsed = load("raw_8bit_headers_no_date.eml")
    assert parsed.sender == Address("Zoë Müller", "zoe@example.ch")
    assert parsed.subject == "Rückerstattung für Bestellung 5531"
    assert parsed.cc == [Address("René Dubois", "rene@example.fr")]  # that one was windows-1252
    assert parsed.date is None


def test_loop_marker_on_our_own_echoed_mail() -> None:
    parsed = load("loop_own_outbound.eml")
    assert parsed.loop_marker == "acme/ws_01HQ8Z3K2Y"
    assert parsed.message_id == "reply.T-000042.1741083300@relaydesk.test"


@pytest.mark.parametrize(
    ("name", "automatic"),
    [
        ("out_of_office_auto_submitted.eml", True),
        ("x_autoreply.eml", True),
        ("newsletter_bulk.eml", True),
        ("precedence_auto_reply.eml", True),
        ("exchange_oof_suppress.eml", True),
        ("dsn_postfix_failed.eml", True),
        ("outlook_html_reply.eml", False),
        ("plain_ascii.eml", False),
        ("gmail_reply_wrapped.eml", False),
        ("loop_own_outbound.eml", False),
        ("mailing_list_post.eml", False),
    ],
)
def test_auto_submitted(name: str, automatic: bool) -> None:
    assert load(name).auto_submitted is automatic


def test_a_post_through_a_mailing_list_is_a_person_writing_but_not_to_be_answered_automatically() -> None:
    parsed = load("mailing_list_post.eml")
    assert parsed.mailing_list and not parsed.auto_submitted
    assert not load("plain_ascii.eml").mailing_list and not load("newsletter_bulk.eml").mailing_list


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("spamassassin_flagged.eml", "X-Spam-Flag: YES"),
        ("exchange_scl9.eml", "X-MS-Exchange-Organization-SCL: 9"),
        ("spamassassin_not_spam.eml", None),
        ("plain_ascii.eml", None),
        ("newsletter_bulk.eml", None),
    ],
)
def test_an_upstream_filters_spam_verdict(name: str, verdict: str | None) -> None:
    assert load(name).spam_verdict == verdict


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        (b"X-Spam-Status: Yes, score=6.2 required=5.0 tests=BAYES_80\n",
         "X-Spam-Status: Yes, score=6.2 required=5.0 tests=BAYES_80"),
        (b"X-Spam-Flag: yes\n", "X-Spam-Flag: yes"),
        (b"X-Spam: Yes\n", "X-Spam: Yes"),  # Rspamd
        (b"X-MS-Exchange-Organization-SCL: 5\n", "X-MS-Exchange-Organization-SCL: 5"),
        (b"X-Forefront-Antispam-Report: CIP:203.0.113.9;CTRY:;LANG:en;SCL:6;SRV:;IPV:NLI;SFV:SPM;H:x;\n",
         "X-Forefront-Antispam-Report: CIP:203.0.113.9;CTRY:;LANG:en;SCL:6;SRV:;IPV:NLI;SFV:SPM;H:x;"),
        # A sender can write any header: one saying "not spam" never outweighs the filter's.
        (b"X-Spam-Flag: NO\nX-Spam-Flag: YES\n", "X-Spam-Flag: YES"),
        (b"X-Spam-Flag: NO\nX-Spam-Status: No, score=1.0\n", None),
        (b"X-Spam-Status: No, score=4.9 required=5.0 tests=YES_PLEASE\n", None),
        (b"X-MS-Exchange-Organization-SCL: 4\n", None),
        (b"X-MS-Exchange-Organization-SCL: -1\n", None),  # Exchange's "skip filtering", not a verdict
        (b"X-MS-Exchange-Organization-SCL: high\n", None),
        (b"X-Forefront-Antispam-Report: CIP:198.51.100.2;SCL:1;SFV:NSPM;\n", None),
        (b"X-Spam-Level: ***************\n", None),  # a score without a verdict
        (b"X-Spam-Flag:\n", None),
    ],
)
def test_spam_verdict_headers(headers: bytes, verdict: str | None) -> None:
    assert parse_email(_HEAD + headers + b"\nHello").spam_verdict == verdict


def test_a_spam_verdict_counts_only_in_the_messages_own_headers() -> None:
    """Not in the body, nor in the headers of a message attached to it (a customer
    forwarding the spam they got, to ask whether it was really from us)."""
    assert parse_email(_HEAD + b"\nX-Spam-Flag: YES\n").spam_verdict is None
    forwarded = _HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/plain\n\nIs this yours?\n'
        b"--m\nContent-Type: message/rfc822\n\nFrom: x@spam.example\nX-Spam-Flag: YES\nSubject: win\n\nwin\n--m--\n")
    assert parse_email(forwarded).spam_verdict is None


# --- attachments ------------------------------------------------------------------------------------------------


def test_nested_related_inline_image_and_pdf() -> None:
    parsed = load("nested_related_inline_image.eml")
    assert parsed.text.startswith("The logo on the invoice is cut off")
    assert 'src="cid:logo-1@example.at"' in parsed.html
    image, pdf = parsed.attachments
    assert (image.filename, image.content_type, image.content_id, image.inline) == (
        "image001.png", "image/png", "logo-1@example.at", True)
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n") and len(image.data) == 69
    assert (pdf.filename, pdf.content_type, pdf.inline) == ("invoice-2025-03.pdf", "application/pdf", False)
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.data.endswith(b"%%EOF\n")


def test_attached_original_message_is_an_eml_attachment() -> None:
    parsed = load("attached_rfc822.eml")
    assert parsed.reply_text == "Please see the original complaint attached."
    (original,) = parsed.attachments
    assert original.filename == "Damaged parcel on arrival.eml"
    assert original.content_type == "message/rfc822"
    inner = parse_email(original.data)
    assert inner.sender.email == "grace@example.co.ke"
    assert "screen is cracked" in inner.text


def test_encoded_attachment_names() -> None:
    parsed = load("encoded_filenames.eml")
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("Báo giá tháng 3.pdf", "application/pdf"),
        ("Bestellübersicht März.csv", "text/csv"),
        ("見積書.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("passwd", "text/plain"),  # "../../etc/passwd": the path is the sender's business, not ours
        ("attachment-5.bin", "application/octet-stream"),
    ]
    assert parsed.attachments[1].data == b"order,qty\n8812,2\n"
    assert parsed.attachments[4].data == bytes(range(6))


@pytest.mark.parametrize("content_type", sorted(ALLOWED_TYPES))
def test_an_unnamed_attachment_of_an_allowed_type_gets_a_name_the_allow_list_takes(content_type: str) -> None:
    maintype, subtype = content_type.split("/")
    raw = (f"From: kim@example.com\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
           f"--b\nContent-Type: text/plain\n\nSee attached.\n--b\nContent-Type: {maintype}/{subtype}\n"
           f"Content-Disposition: attachment\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n").encode()
    [attachment] = parse_email(raw).attachments
    assert attachment.filename.rpartition(".")[2] in ALLOWED_TYPES[content_type], attachment.filename


def test_large_attachment_is_omitted_above_the_limit() -> None:
    parsed = load("large_attachment.eml", max_attachment_bytes=16_384)
    assert [a.filename for a in parsed.attachments] == ["error.png"]
    assert parsed.omitted_attachments == ["logs.zip"]
    assert parsed.text == "Logs attached, plus a screenshot of the error.\n"  # the body is not touched

    unlimited = load("large_attachment.eml")
    assert [(a.filename, len(a.data)) for a in unlimited.attachments] == [("logs.zip", 40_000), ("error.png", 69)]
    assert unlimited.omitted_attachments == []


def test_broken_base64_attachment_is_reported_not_fatal() -> None:
    parsed = load("broken_base64.eml")
    assert parsed.omitted_attachments == ["report.pdf"]  # a length no base64 can have
    (notes,) = parsed.attachments
    assert notes.data == b"Steps to reproduce:\n1. open settings\n2. tap save\n"  # stray "!!" skipped


# --- bounces ----------------------------------------------------------------------------------------------------


def test_postfix_dsn() -> None:
    bounce = load("dsn_postfix_failed.eml").bounce
    assert bounce is not None
    assert bounce.failed_recipients == ["nobody@example.org"]
    assert bounce.permanent
    assert bounce.original_message_id == "reply.T-000042.1741083300@relaydesk.test"
    assert bounce.status == "5.1.1"
    assert bounce.diagnostic is not None and "User unknown in virtual mailbox table" in bounce.diagnostic


def test_exchange_dsn_with_returned_message() -> None:
    parsed = load("dsn_exchange.eml")
    assert parsed.bounce is not None
    assert parsed.bounce.failed_recipients == ["p.jansen@contoso.example"]
    assert parsed.bounce.permanent and parsed.bounce.status == "5.1.10"
    assert parsed.bounce.original_message_id == "reply.T-000318.1741018800@relaydesk.test"
    assert parsed.text.startswith("Your message to p.jansen@contoso.example couldn't be delivered.")
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]


def test_delayed_dsn_is_not_a_permanent_bounce() -> None:
    bounce = load("dsn_delayed.eml").bounce
    assert bounce is not None
    assert not bounce.permanent
    assert bounce.failed_recipients == []
    assert bounce.status == "4.4.1"
    assert bounce.original_message_id == "reply.T-000150.1741169698@relaydesk.test"


def test_exim_bounce_with_x_failed_recipients() -> None:
    bounce = load("bounce_nonstandard_exim.eml").bounce
    assert bounce is not None and bounce.permanent
    assert bounce.failed_recipients == ["old.address@example.net"]
    assert bounce.original_message_id == "reply.T-000090.1741083390@relaydesk.test"


def test_free_form_bounce_recipients_come_from_the_notice_text() -> None:
    bounce = load("bounce_nonstandard_qmail.eml").bounce
    assert bounce is not None and bounce.permanent
    assert bounce.failed_recipients == ["gone@example.org"]  # not our own address from the returned copy
    assert bounce.original_message_id == "reply.T-000091.1741083600@relaydesk.test"


def test_ordinary_mail_is_no_bounce() -> None:
    assert load("plain_ascii.eml").bounce is None
    assert load("out_of_office_auto_submitted.eml").bounce is None


# --- synthetic edge cases ---------------------------------------------------------------------------------------

_HEAD = b"From: Ana <ana@example.com>\nTo: support@acme.relaydesk.test\nSubject: edge\nMIME-Version: 1.0\n"


def test_empty_text_alternative_falls_back_to_the_html() -> None:
    raw = _HEAD + (
        b'Content-Type: multipart/alternative; boundary="b"\n\n--b\nContent-Type: text/plain\n\n\n'
        b"--b\nContent-Type: text/html\n\n<p>Real <b>content</b></p>\n--b--\n"
    )
    parsed = parse_email(raw)
    assert parsed.text == "Real content" and parsed.reply_text == "Real content"


def test_cid_image_in_mixed_becomes_inline_when_the_html_uses_it() -> None:
    raw = _HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/html\n\n<img src="cid:pic@x">\n'
        b"--m\nContent-Type: image/gif\nContent-ID: <pic@x>\nContent-Transfer-Encoding: base64\n\n"
        b"R0lGODlhAQABAAAAACw=\n--m\nContent-Type: image/gif\nContent-ID: <other@x>\n"
        b"Content-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n--m--\n"
    )
    used, unused = parse_email(raw).attachments
    assert (used.content_id, used.inline, used.filename) == ("pic@x", True, "attachment-1.gif")
    assert (unused.content_id, unused.inline) == ("other@x", False)


def test_attachment_names_cannot_hide_their_type_or_location() -> None:
    raw = _HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/plain\n\nsee files\n'
        b"--m\nContent-Type: application/octet-stream\nContent-Disposition: attachment;"
        b" filename*=utf-8''invoice%E2%80%AEfdp.exe\n\nMZ\n"
        b'--m\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename="..\\\\..\\\\.bashrc"'
        b"\n\nx\n--m--\n"
    )
    names = [a.filename for a in parse_email(raw).attachments]
    assert names == ["invoicefdp.exe", "bashrc"]


def test_many_parts_and_absurd_headers_stay_fast_and_complete() -> None:
    parts = b"".join(
        b"--z\nContent-Type: application/octet-stream; name=f%d.bin\nContent-Transfer-Encoding: base64\n\nAAAA\n" % i
        for i in range(300)
    )
    raw = _HEAD + b'Content-Type: multipart/mixed; boundary="z"\n\n' + parts + b"--z--\n"
    parsed = parse_email(raw)
    assert len(parsed.attachments) == 300 and parsed.attachments[299].filename == "f299.bin"
    huge = _HEAD + b"Content-Transfer-Encoding: " + b"base64 (x) " * 50_000 + b"\n\nhello\n"
    assert parse_email(huge).sender.email == "ana@example.com"


def test_missing_boundary_and_deep_nesting_do_not_crash() -> None:
    assert parse_email(_HEAD + b"Content-Type: multipart/mixed\n\nplain after all\n").text == "plain after all\n"
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(60))
    parsed = parse_email(_HEAD + nested + b"Content-Type: text/plain\n\ndeep\n")
    assert parsed.sender.email == "ana@example.com"


# --- unparseable ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n\r\n",
        b"From: \nSubject: no address\n\nbody\n",
        b"From: just a name\nSubject: no address\n\nbody\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
)
def test_unusable_input_is_refused(raw: bytes) -> None:
    with pytest.raises(UnparseableEmail):
        parse_email(raw)


def test_named_unparseable_corpus_files_give_reasons() -> None:
    with pytest.raises(UnparseableEmail, match="From"):
        load("unparseable_no_from.eml")
    with pytest.raises(UnparseableEmail):
        load("unparseable_binary.eml")


# --- helpers on their own ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "tokens"),
    [
        ("Re: [T-000123] Refund", [123]),
        ("RE: (t-7) and [T-8]", [7, 8]),
        ("Re: Fwd: [T-42] x [T-000042]", [42]),
        ("[#T-5] T-6 [T-] [T-1x] (T-2]", []),
        ("", []),
    ],
)
def test_extract_ticket_tokens(subject: str, tokens: list[int]) -> None:
    assert extract_ticket_tokens(subject) == tokens


def test_a_long_reference_folded_into_encoded_words_still_threads() -> None:
    """Python's email package, and a few mailers, fold a long Message-ID into encoded words."""
    ours = make_message_id(uuid.uuid4(), uuid.uuid4().hex, secret="s", domain="relaydesk.localhost",
                           recipient="ana@staff.example.com")
    reply = EmailMessage()
    reply["From"] = "ana@staff.example.com"
    reply["In-Reply-To"] = reply["References"] = f"<{ours}>"
    reply.set_content("Done.")
    assert b"=?utf-8?q?" in bytes(reply)  # folded as encoded words indeed
    parsed = parse_email(bytes(reply))
    assert parsed.in_reply_to == parsed.references == [ours]


def test_our_message_ids_say_whom_the_email_went_to() -> None:
    ticket = uuid.uuid4()
    sent = make_message_id(ticket, "n1", secret="s", domain="d.example", recipient="Ana@Staff.example.com")
    assert ticket_of(sent, secret="s") == ticket
    assert sent_to(f"<{sent}>", "ana@staff.example.com", secret="s") == ticket
    assert sent_to(sent, "lan@customers.example.com", secret="s") is None
    assert sent_to(sent, "ana@staff.example.com", secret="other secret") is None
    shared = make_message_id(ticket, "root", secret="s", domain="d.example")  # the thread's root: everyone's
    assert ticket_of(shared, secret="s") == ticket and sent_to(shared, "ana@staff.example.com", secret="s") is None


def test_strip_quoted_keeps_text_when_everything_would_go() -> None:
    assert strip_quoted("> only a quote\n> nothing else\n") == "> only a quote\n> nothing else"
    assert strip_quoted("") == ""


def test_strip_quoted_keeps_answers_written_into_the_quote() -> None:
    text = ("Hi Ada,\n\nOn Sat, Dec 5, 2026 at 3:40 PM Ada <ada@shop.example> wrote:\n> Which order?\nA-1234\n"
            "> Which size?\nEU 42\n\nThanks\n\n> Kind regards, Ada\n")
    assert strip_quoted(text) == ("Hi Ada,\n\nOn Sat, Dec 5, 2026 at 3:40 PM Ada <ada@shop.example> wrote:\n"
                                  "> Which order?\nA-1234\n> Which size?\nEU 42\n\nThanks")
    # A plain reply above the quote is still cut at the attribution.
    plain = "Yes please.\n\nOn Sat, Dec 5, 2026 at 3:40 PM Ada wrote:\n> Shall we refund?\n> Ada\n"
    assert strip_quoted(plain) == "Yes please."


def test_strip_quoted_dashes_used_as_separators_are_not_a_signature() -> None:
    text = "Items to return:\n--\n2x Trail Runner, EU 42\n1x Rain Jacket, M\n--\nPlease send labels.\n"
    assert strip_quoted(text) == text.strip()
    assert strip_quoted("Cancel it please.\n--\nOlu Ade\nAde Trading Ltd\n") == "Cancel it please."
    assert strip_quoted("Cancel it please.\n-- \nOlu\n--\nnot a separator here\n") == "Cancel it please."


def test_a_replys_formatting_is_kept_and_its_quoted_history_left_out() -> None:
    raw = (b"From: Jonas <jonas@example.com>\nTo: help@acme.example\nSubject: Re: [T-000009] Refund\n"
           b"Message-ID: <r1@example.com>\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
           b'<div dir="ltr">Thanks! Two things:<ul><li>the <a href="https://shop.example/o/77">order 77</a></li>'
           b"<li><b>size</b> EU 42</li></ul></div><br>"
           b'<div class="gmail_quote"><div class="gmail_attr">On Tue, Mar 4, 2025 at 10:12 AM Acme wrote:<br></div>'
           b'<blockquote class="gmail_quote">We issued a refund of EUR 49.00.</blockquote></div>')
    parsed = parse_email(raw)
    assert '<a href="https://shop.example/o/77"' in parsed.reply_html and "<li>" in parsed.reply_html
    assert "<b>size</b>" in parsed.reply_html and "EUR 49.00" not in parsed.reply_html
    assert "wrote" not in parsed.reply_html and "EUR 49.00" in parsed.html  # the whole message keeps it
    # Nothing quoted: the reply is the message, formatting and all.
    plain = raw.split(b'<div class="gmail_quote">')[0]
    assert "<li>" in parse_email(plain).reply_html
    # A quote the markup does not mark: the answer's words, as paragraphs.
    unmarked = raw.replace(b'<div class="gmail_quote">', b"<div>")
    assert "EUR 49.00" not in parse_email(unmarked).reply_html


FORMATTED_REPLIES = ["gmail_formatted_reply.eml", "apple_mail_formatted_reply.eml", "outlook_formatted_reply.eml",
                     "outlook_web_formatted_reply.eml"]


@pytest.mark.parametrize("name", FORMATTED_REPLIES)
def test_a_replys_formatting_is_kept_however_its_client_writes_the_text_part(name: str) -> None:
    # Each text part says it differently: "*by Friday*", "jacket <https://…>", "jacket<https://…>", "   - ",
    # "\t• ", "  *   ", "  1.  ".
    parsed = load(name)
    assert "<b>by Friday</b>" in parsed.reply_html
    assert '<a href="https://shop.example/jacket"' in parsed.reply_html
    assert re.search(r"<[ou]l>\s*<li>200 jackets</li><li>40 in size M</li>", parsed.reply_html)
    for history in ("how many jackets", "Acme Support", "wrote", "From:"):
        assert history not in parsed.reply_html
    assert "how many jackets" in parsed.html  # the whole message keeps it


def test_a_reply_whose_html_says_something_else_than_its_text_shows_the_texts_words() -> None:
    raw = (CORPUS / "gmail_formatted_reply.eml").read_bytes().replace(b"<b>by Friday</b>", b"<b>by Monday</b>")
    reply_html = parse_email(raw).reply_html
    assert "Monday" not in reply_html and "<b>" not in reply_html
    # Plain paragraphs, the link target escaped once: a reader sees "<https://shop.example/jacket>".
    assert reply_html.startswith(
        "<p>Also I need them *by Friday*. See this jacket &lt;https://shop.example/jacket&gt;.")
    assert "how many jackets" not in reply_html


def test_a_replys_formatting_goes_where_the_markup_would_show_what_the_text_cut() -> None:
    gmail = (CORPUS / "gmail_formatted_reply.eml").read_bytes()
    # A signature the text part sets off with "-- " and the HTML does not.
    signed = gmail.replace(b"40 in size M\n\nOn", b"40 in size M\n\n-- \nMira Lindqvist\nBuyer, Example AB\n\nOn") \
        .replace(b"</ul></div><br>", b"</ul><div>--</div><div>Mira Lindqvist<br>Buyer, Example AB</div></div><br>")
    reply_html = parse_email(signed).reply_html
    assert "40 in size M" in reply_html and "Buyer" not in reply_html
    # Apple Mail marks every quote alike: the first one is above the answers written between them.
    inline = (b"From: Mira <mira@example.se>\nTo: support@acme.relaydesk.test\nSubject: Re: [T-000311] Jackets\n"
              b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n--b\n"
              b"Content-Type: text/plain; charset=utf-8\n\nAnswers below.\n\n"
              b"> On 4 Dec 2026, at 16:30, Acme Support <support@acme.relaydesk.test> wrote:\n>\n"
              b"> How many jackets?\n\n200, by Friday.\n\n> Acme Support\n\n--b\n"
              b"Content-Type: text/html; charset=utf-8\n\n<div>Answers below.</div><blockquote type=\"cite\">"
              b"<div>On 4 Dec 2026, at 16:30, Acme Support wrote:</div><div>How many jackets?</div></blockquote>"
              b"<div>200, <b>by Friday</b>.</div><blockquote type=\"cite\">Acme Support</blockquote>\n--b--\n")
    reply_html = parse_email(inline).reply_html
    assert "How many jackets?" in reply_html and "200, by Friday." in reply_html and "<b>" not in reply_html


def test_strip_quoted_needs_a_date_in_the_attribution() -> None:
    text = "On Monday I wrote:\nthe report is attached.\n"
    assert strip_quoted(text) == text.strip()


def test_strip_quoted_a_quoted_forward_marker_is_history() -> None:
    text = (
        "Done, thanks.\n\nOn Tue, 4 Mar 2025 at 09:00, Ops <ops@x.example> wrote:\n"
        "> ---------- Forwarded message ---------\n> x"
    )
    assert strip_quoted(text) == "Done, thanks."


def test_strip_quoted_forwarded_flag_keeps_outlook_forward() -> None:
    text = "FYI\n\nFrom: A <a@x.example>\nSent: Monday\nTo: B\nSubject: S\n\nbody"
    assert strip_quoted(text) == "FYI"
    assert strip_quoted(text, forwarded=True) == text


# --- never anything but UnparseableEmail -----------------------------------------------------------------------

_BASE = (CORPUS / "nested_related_inline_image.eml").read_bytes()
_HEADER_LINE = re.compile(rb"^[A-Za-z-]+:", re.MULTILINE)
_TRICKY = [
    b"=?", b"?=", b"utf-8", b"x-unknown", b"?B?", b"?Q?", b"=C3", b"=FF", b";", b'"', b"'", b"*", b"*0*", b"filename",
    b"name", b"=", b"<", b">", b"@", b",", b":", b"(", b")", b"\\", b" ", b"\t", b"\r\n ", b"\n", b"base64",
    b"quoted-printable", b"multipart/mixed", b"boundary", b"text/html", b"message/rfc822", b"charset", b"%E2%82",
    b"\xff\xfe", b"\xc3", b"rel-7a1", b"--", b"T-1]", b"[T-", b"message/delivery-status",
]
_VALUES = st.lists(st.one_of(st.sampled_from(_TRICKY), st.binary(max_size=6)), max_size=14).map(b"".join)


def _parse_or_refuse(raw: bytes) -> None:
    try:
        parsed = parse_email(raw, max_attachment_bytes=1_000)
    except UnparseableEmail:
        return
    assert isinstance(parsed.subject, str) and isinstance(parsed.text, str) and isinstance(parsed.html, str)
    assert "@" in parsed.sender.email
    assert parsed.text.strip() == "" or parsed.reply_text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3_000))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    _parse_or_refuse(raw)
    _parse_or_refuse(b"From: a@b.example\n" + raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_headers_never_raise_anything_else(data: st.DataObject) -> None:
    raw = _BASE
    header_starts = [m.start() for m in _HEADER_LINE.finditer(raw)]
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.sampled_from(header_starts))
        end = raw.find(b"\n", start)
        end = len(raw) if end == -1 else end
        name = raw[start:end].split(b":", 1)[0]
        value = data.draw(_VALUES)
        raw = raw[:start] + name + b":" + value + raw[end:]
        header_starts = [m.start() for m in _HEADER_LINE.finditer(raw)] or [0]
    _parse_or_refuse(raw)

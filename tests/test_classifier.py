"""The ticket category classifier (relaydesk.routing.classifier): pure, no database."""

from __future__ import annotations

import ast
import json
import math
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from relaydesk.routing import classifier as clf
from relaydesk.routing.classifier import (
    CATEGORIES,
    DEFAULT_MIN_CONFIDENCE,
    CategoryClassifier,
    Prediction,
    classify,
    evaluate,
    load_shipped_samples,
)

# Measured on the English tickets with evaluate(load_shipped_samples("en"),
# train_also=load_shipped_samples("vi")) (stratified 80/20 split, seed 7, the same 445
# held-out tickets as before the Vietnamese ones were added): accuracy 0.890 (0.885 when
# it learnt from English alone).  About 7.5 % of them are deliberately ambiguous
# (labelled with a second plausible category), so ~0.92 is the ceiling.
MIN_ACCURACY = 0.86
# Measured recall per class on those English tickets: ACCOUNT 0.914, BILLING 0.854,
# GENERAL 0.842, RETURNS 0.955, SHIPPING 0.855, TECHNICAL 0.932 (0.905 from English alone).
MIN_RECALL = {"ACCOUNT": 0.88, "BILLING": 0.82, "GENERAL": 0.80, "RETURNS": 0.92,
              "SHIPPING": 0.82, "TECHNICAL": 0.87}
# Measured on the Vietnamese tickets the same way (194 held out): accuracy 0.907.
MIN_VIETNAMESE_HELD_OUT = 0.86

# Measured with the shipped model on UNSEEN_VIETNAMESE: 48 of 48 right, 46 of them with
# a confidence of at least DEFAULT_MIN_CONFIDENCE (before the data set had Vietnamese
# tickets: 20 right, 9 confidently).
MIN_VIETNAMESE_ACCURACY = 0.9
MIN_VIETNAMESE_CONFIDENT = 0.85

# Written for these tests, not taken from the data set: five per category, in varied
# tones, with the odd typo.
UNSEEN = {
    "BILLING": [
        ("bank statement", ("Hello, looking at my statement I can see you took the payment for my jacket "
                           "two times, 89.00 each. Can the second one be reversed?")),
        ("", "the voucher from your email didnt knock anything off the total, i paid full whack"),
        ("VAT receipt", ("I need a receipt with VAT shown for my employer to reimburse me, the confirmation "
                        "email doesn't have it.")),
        ("Membership", "why have I been charged 9.99 again this month, I cancelled the plus thing in January"),
        ("?", "There's a charge on my credit card from you that I don't recognise at all. What is it for?"),
    ],
    "TECHNICAL": [
        ("app", "Since yesterday's update the iPhone app shuts down every time I open the product photos"),
        ("Site broken", "your website just gives me a white screen in firefox, other sites load fine"),
        ("", "i press 'add to bag' and literally nothing happens, tried on 2 laptops"),
        ("search", "The search bar returns nothing at all whatever I type, even 'shirt'."),
        ("Android", "App takes forever to load and then freezes on my Samsung, totally unusable"),
    ],
    "RETURNS": [
        ("Doesn't fit", "The trousers are far too long for me, can I swap them for a shorter leg length?"),
        ("", ("Hi, I'd like to send back the lamp I bought, it just doesn't go with the room. "
             "How do I get a returns label?")),
        ("Wrong one sent", "I ordered the blue mug set and received a green one instead. Please advise how to swap it"),
        ("Cracked", "the mirror came in pieces, glass everywhere in the box. I want my money back"),
        ("return window", "Is it too late to send back a dress I bought 5 weeks ago? Never worn"),
    ],
    "SHIPPING": [
        ("late", "My order was due on Tuesday and it's now Friday. Nothing on the tracking since Monday. Where is it?"),
        ("", "courier says delivered, there is nothing on my doorstep or with the neighbours"),
        ("New address", ("I just moved house, please can you send my order to my new flat instead? "
                        "It hasn't been dispatched yet")),
        ("Shipping to Norway", "Do you deliver to Norway and how many days would it take?"),
        ("stuck", "Parcel has been sitting at the depot for 9 days according to tracking"),
    ],
    "ACCOUNT": [
        ("login", "I can't sign into my account, it keeps telling me my password is incorrect even after I reset it"),
        ("", "please remove all my personal details from your systems and close my profile"),
        ("email change", "How do I change the email address I use to log in? I don't use the old one anymore"),
        ("hacked??", "Got an alert that someone signed into my account from another country. It wasn't me."),
        ("Locked", "My account got locked after I typed the password wrong a few times, can you unlock it?"),
    ],
    "GENERAL": [
        ("", "What time does the Cardiff shop close on Saturdays?"),
        ("Collab", ("Hi! I'm a content creator with about 30k followers on Instagram and would love to "
                   "work with your brand.")),
        ("gift", "Can I get a gift voucher emailed to my brother for his birthday?"),
        ("Thank you", "Just a quick note to say the lady at your Leeds shop was incredibly helpful today."),
        ("jobs", "Hello, are there any part time jobs going at your warehouse? I have forklift experience."),
    ],
}

# Vietnamese tickets written for these tests, apart from the data set's generator (other
# sentences, other order numbers and amounts): eight per category, the first four with
# diacritics and the last four typed without them, as many Vietnamese customers type.
UNSEEN_VIETNAMESE = {
    "BILLING": [
        ("Bị trừ tiền 2 lần", ("Chào shop, mình thanh toán đơn 88213 bằng thẻ Vietcombank mà tài khoản bị trừ "
                               "hai lần, mỗi lần 459.000đ. Shop kiểm tra và trả lại khoản dư giúp mình nhé.")),
        ("", "Tôi chưa nhận được tiền hoàn lại cho đơn hàng 5521 đã hủy từ tuần trước."),
        ("Hóa đơn", ("Công ty em cần hóa đơn đỏ cho lần mua vừa rồi, mã số thuế 0312345678. "
                     "Shop gửi qua email giúp em ạ.")),
        ("mã giảm giá", "Mình nhập mã FREESHIP50 lúc trả tiền mà tổng không giảm đồng nào, vẫn phải trả nguyên giá."),
        ("thanh toan loi", "minh chuyen khoan qua MoMo roi ma don van bao chua thanh toan, tien da tru trong vi roi a"),
        ("", "sao thang nay toi bi tru phi goi thanh vien 99k nua vay, toi huy gia han tu thang truoc roi ma"),
        ("khoan tien la", "thay co khoan 1.250.000 tu cty ben ban tren sao ke the tin dung ma toi khong he mua gi"),
        ("tra gop", "cho minh hoi mua tra gop qua the tin dung thi lai suat bao nhieu, ky han may thang"),
    ],
    "TECHNICAL": [
        ("App bị văng", "Từ hôm cập nhật bản mới, app cứ mở lên là tự thoát ra, máy mình là iPhone 12 ạ."),
        ("", "Trang web load mãi không lên, chỉ hiện màn hình trắng, thử cả Chrome lẫn Cốc Cốc đều vậy."),
        ("Không thêm được vào giỏ", "Mình bấm 'Thêm vào giỏ hàng' mà chẳng có phản ứng gì, giỏ vẫn trống trơn."),
        ("Ảnh sản phẩm không hiện", "Trên ứng dụng Android, hình ảnh sản phẩm toàn bị lỗi, chỉ hiện ô xám."),
        ("app bi treo", "app cu bi lag roi treo luon o man hinh chinh, phai tat di mo lai hoai, may samsung a52"),
        ("", "o tim kiem tren web go gi cung ra 0 ket qua, go chu ao thun cung khong ra"),
        ("khong co thong bao", ("da bat thong bao cho app roi ma khong hien notification nao, "
                                "don cap nhat cung khong biet")),
        ("loi website", "vao trang chu thi bi bao loi 'Something went wrong' hoai, xoa cache roi van bi"),
    ],
    "RETURNS": [
        ("Đổi size", ("Áo sơ mi mình nhận được bị chật, mặc size M không vừa, cho mình đổi sang size L "
                      "được không shop?")),
        ("", "Giày nhận về bị bong keo ở mũi, mới đi thử trong nhà thôi. Mình muốn trả hàng và hoàn tiền."),
        ("Giao nhầm màu", "Mình đặt túi màu đen mà shop gửi màu nâu, giờ đổi lại thế nào ạ?"),
        ("Chính sách đổi trả", ("Mua váy được 20 ngày, chưa mặc lần nào, còn nguyên tem mác thì còn trả "
                                "lại được không?")),
        ("tra hang", "noi chien khong dau minh mua ve cam dien khong len, muon tra lai lay tien"),
        ("", "lam sao de in phieu gui tra hang vay shop, minh tim tren web khong thay"),
        ("hang bi vo", "binh hoa nhan duoc bi vo nat trong hop, minh co chup hinh, shop doi cai moi cho minh nha"),
        ("gui tra roi", "minh da gui tra cai quan jean qua buu dien tuan truoc, shop nhan duoc chua a"),
    ],
    "SHIPPING": [
        ("Đơn hàng chưa tới", ("Shop ơi đơn của mình đặt 10 ngày rồi mà vẫn chưa giao tới, mã vận đơn không "
                               "thấy cập nhật gì cả.")),
        ("", ("Bên giao hàng báo đã giao thành công mà mình có nhận được gì đâu, hỏi bảo vệ chung cư "
              "cũng không thấy.")),
        ("Đổi địa chỉ nhận hàng", ("Mình vừa chuyển nhà, nhờ shop đổi địa chỉ giao sang 25 Lê Lợi, Quận 1 giúp "
                                   "với, đơn chưa gửi đi.")),
        ("Giao hàng ra nước ngoài", ("Shop có ship hàng sang Úc không, phí vận chuyển khoảng bao nhiêu và "
                                     "mất mấy ngày?")),
        ("hang dang o dau", "don 77120 tu hom thu 2 toi gio van nam o kho Binh Duong, bao gio moi giao vay shop"),
        ("", "shipper goi cho minh luc minh di lam, gio lam sao de hen giao lai vao buoi toi"),
        ("giao cham", "dat giao hoa toc ma 5 ngay chua thay hang dau, giao nhanh kieu gi vay"),
        ("phi ship", "don tren 500k co duoc mien phi van chuyen khong shop, ship ve Can Tho mat may ngay"),
    ],
    "ACCOUNT": [
        ("Không đăng nhập được", "Không đăng nhập được tài khoản, nhập đúng mật khẩu mà cứ báo sai."),
        ("", "Mình bấm quên mật khẩu nhưng không nhận được email đặt lại, kiểm tra cả mục spam rồi."),
        ("Đổi email", "Cho mình hỏi cách đổi địa chỉ email đăng nhập, email cũ mình không dùng nữa."),
        ("Xóa tài khoản", "Tôi muốn xóa hẳn tài khoản và toàn bộ thông tin cá nhân của tôi trên hệ thống."),
        ("tai khoan bi khoa", "tai khoan cua em bi khoa sau khi nhap sai mat khau may lan, mo khoa giup em voi a"),
        ("", "co ai do dang nhap vao tai khoan cua toi tu thiet bi la, toi nghi bi hack roi"),
        ("ma OTP", "khong nhan duoc ma OTP qua tin nhan de xac thuc, bam gui lai cung khong co"),
        ("doi so dien thoai", "minh muon cap nhat so dien thoai moi trong ho so tai khoan ma khong thay cho sua"),
    ],
    "GENERAL": [
        ("Giờ mở cửa", "Cửa hàng ở Hà Nội mở cửa đến mấy giờ vào Chủ nhật vậy shop?"),
        ("", "Bên mình có tuyển nhân viên bán hàng bán thời gian không ạ? Em là sinh viên năm hai."),
        ("Hợp tác", "Chào shop, mình là KOL trên TikTok khoảng 50k follow, muốn hợp tác quảng bá sản phẩm bên bạn."),
        ("Cảm ơn", "Chỉ muốn gửi lời cảm ơn bạn nhân viên ở chi nhánh Đà Nẵng đã tư vấn rất nhiệt tình."),
        ("phieu qua tang", "shop co ban phieu qua tang (gift card) khong, minh muon tang ban sinh nhat"),
        ("", "cho minh hoi do ben shop san xuat o dau, co phai hang Viet Nam khong"),
        ("gop y", "nhan vien o cua hang quan 3 noi chuyen rat kho chiu, mong shop nhac nho"),
        ("so dien thoai", "cho minh xin so hotline de goi truc tiep, chat voi bot mai khong duoc"),
    ],
}


@pytest.fixture(scope="module")
def samples() -> list[tuple[str, str, str]]:
    return load_shipped_samples()


@pytest.fixture(scope="module")
def report(samples: list[tuple[str, str, str]]) -> dict:
    return evaluate(samples)


@pytest.fixture(scope="module")
def english_report() -> dict:
    return evaluate(load_shipped_samples("en"), train_also=load_shipped_samples("vi"))


@pytest.fixture(scope="module")
def shipped() -> CategoryClassifier:
    return CategoryClassifier.shipped()


@pytest.fixture(scope="module")
def small_model(samples: list[tuple[str, str, str]]) -> CategoryClassifier:
    return CategoryClassifier.train(samples[:400])


# --------------------------------------------------------------------------- the data set


def test_shipped_data_set_is_big_balanced_and_clean(samples: list[tuple[str, str, str]]) -> None:
    assert len(samples) >= 1800
    counts = Counter(label for _, _, label in samples)
    assert set(counts) == set(CATEGORIES)
    for label, n in counts.items():
        assert 0.12 <= n / len(samples) <= 0.22, (label, n)
    assert all(description.strip() for _, description, _ in samples)
    assert len({(s.lower(), d.lower()) for s, d, _ in samples}) == len(samples)


def test_shipped_data_set_speaks_english_and_vietnamese(samples: list[tuple[str, str, str]]) -> None:
    english, vietnamese = load_shipped_samples("en"), load_shipped_samples("vi")
    assert sorted(english + vietnamese) == sorted(samples)
    assert 0.25 <= len(vietnamese) / len(samples) <= 0.35
    counts = Counter(label for _, _, label in vietnamese)
    assert set(counts) == set(CATEGORIES) and min(counts.values()) >= 100, counts
    unaccented = [d for _, d, _ in vietnamese if d.isascii()]
    assert 0.3 <= len(unaccented) / len(vietnamese) <= 0.6  # many type without diacritics


# --------------------------------------------------------------------------- quality


def test_held_out_accuracy(english_report: dict) -> None:
    assert english_report["test_size"] >= 350 and english_report["train_size"] >= 1400
    assert english_report["accuracy"] >= MIN_ACCURACY, english_report["accuracy"]


def test_held_out_accuracy_of_both_languages_together(report: dict) -> None:
    assert report["test_size"] >= 550 and report["accuracy"] >= MIN_ACCURACY, report["accuracy"]


def test_held_out_vietnamese_accuracy() -> None:
    vietnamese = evaluate(load_shipped_samples("vi"), train_also=load_shipped_samples("en"))
    assert vietnamese["test_size"] >= 150
    assert vietnamese["accuracy"] >= MIN_VIETNAMESE_HELD_OUT, vietnamese


def test_held_out_recall_per_class(english_report: dict) -> None:
    assert set(english_report["per_class"]) == set(CATEGORIES)
    for label, floor in MIN_RECALL.items():
        stats = english_report["per_class"][label]
        assert stats["recall"] >= floor, (label, stats)
        assert set(stats) == {"precision", "recall", "f1", "support"}
        assert stats["support"] > 50


def test_evaluate_reports_a_confusion_matrix_that_adds_up(report: dict) -> None:
    confusion = report["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == report["test_size"]
    right = sum(confusion[label][label] for label in confusion)
    assert math.isclose(right / report["test_size"], report["accuracy"])


@pytest.mark.parametrize("category", CATEGORIES)
def test_unseen_messages_are_classified_right(shipped: CategoryClassifier, category: str) -> None:
    messages = UNSEEN[category]
    got = [shipped.predict(subject, description).category for subject, description in messages]
    right = sum(label == category for label in got)
    assert right >= 4, list(zip(got, (d for _, d in messages)))


def test_typos_and_shouting_do_not_confuse_it(shipped: CategoryClassifier) -> None:
    assert shipped.predict("PASWORD RESET", "I NEVR GOT THE RESET EMIAL, CANT GET INTO MY ACOUNT").category == "ACCOUNT"
    assert shipped.predict("", "where is my parcle its been 2 weeks!!!").category == "SHIPPING"
    assert shipped.predict("refnd", "i was chraged twice for the same oder").category == "BILLING"


def test_vietnamese_tickets_are_classified_right(shipped: CategoryClassifier) -> None:
    """Tickets written in Vietnamese, with or without diacritics, land in their category
    rather than in a low-confidence guess."""
    results = [(category, shipped.predict(subject, description), description)
               for category, messages in UNSEEN_VIETNAMESE.items() for subject, description in messages]
    wrong = [(category, p.category, round(p.confidence, 2), d) for category, p, d in results if p.category != category]
    assert 1 - len(wrong) / len(results) >= MIN_VIETNAMESE_ACCURACY, wrong
    confident = [p for category, p, _ in results if p.category == category and p.confidence >= DEFAULT_MIN_CONFIDENCE]
    assert len(confident) / len(results) >= MIN_VIETNAMESE_CONFIDENT, wrong


@pytest.mark.parametrize("category", CATEGORIES)
def test_vietnamese_without_diacritics_is_understood_too(shipped: CategoryClassifier, category: str) -> None:
    unaccented = UNSEEN_VIETNAMESE[category][4:]
    got = [shipped.predict(subject, description).category for subject, description in unaccented]
    assert sum(label == category for label in got) >= 3, list(zip(got, (d for _, d in unaccented)))


def test_decomposed_vietnamese_gets_the_same_answer(shipped: CategoryClassifier) -> None:
    """macOS and some keyboards send "ấ" as "a" plus two combining marks; it is the same text."""
    for messages in UNSEEN_VIETNAMESE.values():
        for subject, description in messages[:4]:
            decomposed = (unicodedata.normalize("NFD", subject), unicodedata.normalize("NFD", description))
            assert decomposed != (subject, description)
            assert shipped.predict(*decomposed) == shipped.predict(subject, description), description


# --------------------------------------------------------------------------- the API


def test_prediction_shape(shipped: CategoryClassifier) -> None:
    p = shipped.predict("Charged twice", "You took the money two times for one order.")
    assert isinstance(p, Prediction)
    assert p.category == "BILLING"
    assert set(p.scores) == set(CATEGORIES)
    assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-6)
    assert p.confidence == max(p.scores.values()) == p.scores[p.category]
    assert all(isinstance(v, float) for v in p.scores.values())


def test_labels_and_caching(shipped: CategoryClassifier) -> None:
    assert shipped.labels == tuple(sorted(CATEGORIES))
    assert CategoryClassifier.shipped() is shipped
    assert shipped.n_samples == len(load_shipped_samples())


def test_empty_text_still_gets_an_answer(shipped: CategoryClassifier) -> None:
    p = shipped.predict("", "")
    assert p.category in CATEGORIES and 0 < p.confidence < 1


def test_training_is_deterministic(samples: list[tuple[str, str, str]], small_model: CategoryClassifier) -> None:
    again = CategoryClassifier.train(samples[:400])
    for subject, description, _ in samples[400:420]:
        assert again.predict(subject, description) == small_model.predict(subject, description)


# --------------------------------------------------------------------------- classify()


def test_several_tickets_at_once_get_the_answers_each_would_alone(shipped: CategoryClassifier) -> None:
    tickets = [("Refund please", "I was charged twice for order 1001"),
               ("Where is my parcel", "Tracking has not moved for a week"),
               ("cant log in!!", "password reset email never arrives"),
               ("", "")]
    together = shipped.predict_many(tickets)
    alone = [shipped.predict(subject, description) for subject, description in tickets]
    assert [p.category for p in together] == [p.category for p in alone] == \
        ["BILLING", "SHIPPING", "ACCOUNT", alone[3].category]
    assert all(math.isclose(a.confidence, b.confidence, rel_tol=1e-6) for a, b in zip(together, alone))
    assert shipped.predict_many([]) == []


def test_classify_accepts_a_confident_prediction(shipped: CategoryClassifier) -> None:
    category, confidence, reason = classify(
        shipped, "Where is my order?", "It was due last week and the tracking hasn't moved since.",
        min_confidence=DEFAULT_MIN_CONFIDENCE, fallback="GENERAL")
    assert category == "SHIPPING" and confidence >= DEFAULT_MIN_CONFIDENCE
    assert reason == f"model: SHIPPING ({confidence:.2f})"


def test_classify_falls_back_when_unsure(shipped: CategoryClassifier) -> None:
    category, confidence, reason = classify(shipped, "Re: order", "see below",
                                            min_confidence=DEFAULT_MIN_CONFIDENCE, fallback="GENERAL")
    assert category == "GENERAL"
    assert confidence < DEFAULT_MIN_CONFIDENCE
    assert reason.startswith(f"low confidence ({confidence:.2f} < {DEFAULT_MIN_CONFIDENCE:.2f}): fell back to GENERAL")


def test_classify_threshold_is_inclusive_and_fallback_may_be_any_name(shipped: CategoryClassifier) -> None:
    p = shipped.predict("App crash", "The app closes when I open it")
    assert classify(shipped, "App crash", "The app closes when I open it",
                    min_confidence=p.confidence, fallback="Triage")[0] == p.category
    category, confidence, reason = classify(shipped, "App crash", "The app closes when I open it",
                                            min_confidence=min(1.0, p.confidence + 1e-9), fallback="Triage")
    assert (category, confidence) == ("Triage", p.confidence)
    assert "fell back to Triage" in reason and p.category in reason


@pytest.mark.parametrize("kwargs", [{"min_confidence": 1.5, "fallback": "GENERAL"},
                                    {"min_confidence": -0.1, "fallback": "GENERAL"},
                                    {"min_confidence": 0.5, "fallback": "  "}])
def test_classify_rejects_bad_arguments(shipped: CategoryClassifier, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        classify(shipped, "a", "b", **kwargs)


# --------------------------------------------------------------------------- training


def test_training_on_a_workspaces_own_labels(samples: list[tuple[str, str, str]]) -> None:
    rename = {"BILLING": "Payments", "SHIPPING": "Deliveries", "RETURNS": "Deliveries",
              "TECHNICAL": "Tech & app", "ACCOUNT": "Tech & app", "GENERAL": "Other"}
    custom = [(s, d, rename[label]) for s, d, label in samples[:700]]
    steps: list[tuple[int, int]] = []
    model = CategoryClassifier.train(custom, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert model.labels == ("Deliveries", "Other", "Payments", "Tech & app")
    assert model.predict("Refund", "I was charged twice for my order").category == "Payments"
    assert model.predict("", "my parcel never arrived, tracking stuck for a week").category == "Deliveries"
    assert model.predict("login", "the app crashes when I try to log in").category == "Tech & app"


def test_training_on_a_tiny_two_label_set() -> None:
    wholesale = [("Bulk order", f"We'd like {n} units at trade price for our shop") for n in range(10, 22)]
    press = [("Press", f"I'm a journalist at the Gazette, could we interview your founder about story {n}?")
             for n in range(12)]
    model = CategoryClassifier.train([(s, d, "Wholesale") for s, d in wholesale] +
                                     [(s, d, " Press ") for s, d in press])
    assert model.labels == ("Press", "Wholesale")  # labels are stripped
    assert model.predict("", "journalist asking for an interview").category == "Press"
    assert model.predict("", "trade price for 40 units").category == "Wholesale"


def test_predictions_are_scikit_learns_own(shipped: CategoryClassifier, samples: list[tuple[str, str, str]]) -> None:
    """Prediction skips scikit-learn's per-call machinery (classifier._Scorer); its
    probabilities must stay the fitted pipeline's, for six labels and for two."""
    two_labels = CategoryClassifier.train([(s, d, "Money" if label in {"BILLING", "RETURNS"} else "Other")
                                           for s, d, label in samples[:300]])
    texts = [(s, d) for s, d, _ in samples[::7]] + [("", ""), ("!!!", "?"), ("Ünïcødé", "ß straße 東京")]
    for model in (shipped, two_labels):
        ours = model.predict_many(texts)
        theirs = model._pipeline.predict_proba([clf._text(s, d) for s, d in texts])
        for prediction, probabilities in zip(ours, theirs, strict=True):
            assert prediction.category == model.labels[probabilities.argmax()]
            assert [prediction.scores[label] for label in model.labels] == pytest.approx(list(probabilities), abs=1e-5)


@pytest.mark.parametrize("bad, message", [
    ([("s", "d", "A")] * 10 + [("s", "d", "B")] * 9, "at least 20"),
    ([("s", f"d{i}", "ONLY") for i in range(30)], "at least 2 categories"),
    ([("s", "d", "A")] * 15 + [("s", "d", "")] * 15, "empty"),
    ([("s", "d", "A")] * 15 + [("s", "d")] * 15, "triple"),
    ([("s", "d", "A")] * 15 + [(None, 3, "B")] * 15, "strings"),
    ([], "got 0"),
])
def test_training_refuses_too_little_or_malformed_data(bad: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CategoryClassifier.train(bad)


def test_evaluate_needs_enough_of_every_label() -> None:
    rows = [("s", f"billing {i}", "A") for i in range(30)] + [("s", "lonely", "B")]
    with pytest.raises(ValueError, match="stratified"):
        evaluate(rows)


# --------------------------------------------------------------------------- storage


def test_dumps_loads_round_trip_gives_identical_predictions(samples: list[tuple[str, str, str]],
                                                            small_model: CategoryClassifier) -> None:
    data = small_model.dumps()
    assert isinstance(data, bytes)
    restored = CategoryClassifier.loads(data)
    assert restored.labels == small_model.labels
    assert restored.n_samples == small_model.n_samples
    for subject, description, _ in samples[-50:]:
        assert restored.predict(subject, description) == small_model.predict(subject, description)
    assert restored.dumps() == data


def _with_header(data: bytes, *, version: int | None = None, meta: dict | None = None) -> bytes:
    magic, old_version, meta_len = clf._HEADER.unpack_from(data)
    old_meta = data[clf._HEADER.size:clf._HEADER.size + meta_len]
    body = data[clf._HEADER.size + meta_len:]
    new_meta = json.dumps(meta).encode() if meta is not None else old_meta
    return clf._HEADER.pack(magic, old_version if version is None else version, len(new_meta)) + new_meta + body


def test_loads_refuses_another_format_version(small_model: CategoryClassifier) -> None:
    data = small_model.dumps()
    with pytest.raises(ValueError, match="format version 2 is not supported"):
        CategoryClassifier.loads(_with_header(data, version=clf.FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="format version 0"):
        CategoryClassifier.loads(_with_header(data, version=0))


def test_loads_refuses_another_scikit_learn(small_model: CategoryClassifier) -> None:
    data = small_model.dumps()
    meta = {"sklearn": "0.0.1", "labels": list(small_model.labels), "n_samples": 400}
    with pytest.raises(ValueError, match="scikit-learn 0.0.1"):
        CategoryClassifier.loads(_with_header(data, meta=meta))


@pytest.mark.parametrize("junk", [b"", b"hello", b"RDCLF", b"\x80\x04not a model at all" * 3])
def test_loads_refuses_junk(junk: bytes) -> None:
    with pytest.raises(ValueError):
        CategoryClassifier.loads(junk)


def test_loads_refuses_a_truncated_model(small_model: CategoryClassifier) -> None:
    data = small_model.dumps()
    with pytest.raises(ValueError, match="corrupted"):
        CategoryClassifier.loads(data[: len(data) // 2])


# --------------------------------------------------------------------------- purity


@pytest.mark.parametrize("module", ["classifier.py", "priority.py"])
def test_routing_core_is_pure(module: str) -> None:
    source = Path(clf.__file__).with_name(module).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"fastapi", "sqlalchemy", "relaydesk", "pydantic"}, imported

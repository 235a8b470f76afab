"""Card-number detection: Luhn, issuer prefixes, grouping, masking and JSON-like payloads."""

from __future__ import annotations

import pytest

from fincore.cards import (
    contains_card_number,
    find_card_data,
    find_card_numbers,
    is_card_key,
    is_card_number,
    luhn_valid,
    mask_card_numbers,
    mask_pan,
)

TEST_PANS = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa debit
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # Amex (15)
    "6011111111111117",  # Discover
    "3566002020360505",  # JCB
    "36227206271667",  # Diners (14)
    "6200000000000005",  # UnionPay
    "6759649826438453",  # Maestro
    "4222222222222",  # Visa 13 digits
]


@pytest.mark.parametrize("pan", TEST_PANS)
def test_published_test_cards_are_detected(pan: str) -> None:
    """Every brand's published test card is recognized as a card number."""
    assert is_card_number(pan)
    assert [m.digits for m in find_card_numbers(f"card={pan};")] == [pan]


def test_luhn_rejects_a_single_digit_change() -> None:
    """Changing one digit breaks the Luhn check."""
    assert luhn_valid("4242424242424242")
    assert not luhn_valid("4242424242424243")


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "3782 822463 10005",
        "ref 12 4242424242424242 end",
        '{"n":"5555555555554444"}',
    ],
)
def test_grouped_and_embedded_numbers_are_found(text: str) -> None:
    """Numbers typed with spaces or dashes, or embedded in text, are found."""
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "1700000000000",  # ms timestamp
        "1732700000123456789",  # ns timestamp
        "20261127000123",  # date-stamped order id
        "4242424242424243",  # Luhn-invalid
        "42424242424242424242",  # 20 digits: not a card
        "amount 1000 currency 840 qty 4242",
        "9999999999999995",  # Luhn-valid but no issuer uses 9
        "order 2026-11-27 12:00 total 4242",
    ],
)
def test_non_card_numbers_are_not_reported(text: str) -> None:
    """Timestamps, ids, amounts and Luhn-invalid runs are not card numbers."""
    assert not contains_card_number(text)


def test_masking_keeps_at_most_first_six_and_last_four() -> None:
    """Masked output shows BIN and last four only, in place in the text."""
    assert mask_pan("4242424242424242") == "424242******4242"
    masked = mask_card_numbers("paid with 4242 4242 4242 4242 today")
    assert masked == "paid with 424242******4242 today"
    assert "4242424242424242" not in masked.replace(" ", "")


@pytest.mark.parametrize(
    "key", ["number", "card_number", "cardNumber", "PAN", "cvc", "cvv2", "security_code", "CID"]
)
def test_card_keys_are_recognized(key: str) -> None:
    """Field names that carry card data are recognized in any case."""
    assert is_card_key(key)


def test_ordinary_keys_are_not_card_keys() -> None:
    """Ordinary field names are not mistaken for card fields."""
    assert not any(is_card_key(k) for k in ["amount", "order_number", "phone", "token", "last4"])


def test_find_card_data_reports_paths_not_values() -> None:
    """Nested payloads report the path of each card-like value or key, never the value."""
    payload = {
        "amount": 1000,
        "metadata": {"note": "card 4242424242424242", "ok": "fine"},
        "items": [{"x": 1}, {"cvc": "123"}],
        "raw": 5555555555554444,
    }
    hits = find_card_data(payload)
    assert sorted(hits) == ["$.items[1].cvc", "$.metadata.note", "$.raw"]
    assert all("4242" not in h and "5555" not in h for h in hits)


def test_url_encoded_groups_are_masked_in_place() -> None:
    """`+` and `%20` separators (query strings) are masked over their exact span."""
    assert mask_card_numbers("q=4242+4242+4242+4242&a=1") == "q=424242******4242&a=1"
    assert mask_card_numbers("q=4242%204242%204242%204242;") == "q=424242******4242;"


@pytest.mark.parametrize(
    "payload",
    [
        {"a": {"b": [1, 2, {"Number": "x"}]}},
        {"note": b"card 4242424242424242"},
        {"tags": {"4242424242424242"}},
        [{"x": 4242424242424242}],
        {" cvc ": "1"},
        {"pan\n": "1"},
        {"\x1ccvv\t": "1"},
        {"k": ("5555 5555 5555 4444",)},
        {1: {"2": "378282246310005"}},
    ],
)
def test_fast_path_never_hides_card_data(payload: object) -> None:
    """The JSON fast path and the full walk agree: every planted card datum is reported."""
    from fincore.cards import _walk

    assert find_card_data(payload)
    assert find_card_data(payload) == _walk(payload, "$")


def test_clean_payloads_take_the_fast_path() -> None:
    """Ordinary payloads with long non-card numbers have no findings."""
    payload = {
        "amount": 1000,
        "created": 1764249490,
        "ts_ms": 1764249490123,
        "id": "ch_4UPRjhUES7loD8Ks1hCSlq",
        "metadata": {"order": "20261127000123", "items": [1, 2, 3]},
    }
    assert find_card_data(payload) == []


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"PAN": "x"}, True),
        ({"Card_Number": "x"}, True),
        ({"meta": {"CvV2": "x"}}, True),
        ({"\u001cSecurity-Code ": "x"}, True),
        ({"note": "café", "CVC": "x"}, True),  # not ASCII: the case-insensitive pattern
        ({"note": "café", "brand": "visa"}, False),
        ({"brand": "VISA", "merchant_id": "mer_1", "cvc_held": True}, False),
        ({"amount": 1234567890123}, True),  # a 13-digit run: the walk must look
    ],
)
def test_may_hold_card_data_matches_card_keys_in_any_case(
    payload: dict[str, object], expected: bool
) -> None:
    """The pre-check over a rendering finds card keys whatever their case, in ASCII text
    (lowered, then a case-sensitive search) and in any other text (a case-insensitive one)."""
    import json

    from fincore.cards import may_hold_card_data

    for ensure_ascii in (True, False):
        assert may_hold_card_data(json.dumps(payload, ensure_ascii=ensure_ascii)) is expected


def test_the_prefilter_never_rules_out_what_the_quick_check_would_find() -> None:
    """The single-class prefilter is a necessary condition of the quick check, for both
    grammars: over random strings of digits, separators and other characters (seeded), every
    string the quick pattern matches passes the prefilter, and the prefilter does rule some
    out (it is not vacuous)."""
    import random

    from fincore.cards import _TYPED, _TYPED_OR_URL

    rng = random.Random(20261128)
    alphabet = "0123456789" * 3 + " -+%2_a\"'"
    for grammar in (_TYPED, _TYPED_OR_URL):
        matched = ruled_out = 0
        for _ in range(40_000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40)))
            if grammar.quick.search(text):
                matched += 1
                assert grammar.prefilter.search(text), text
                assert grammar.may_match(text)
            elif not grammar.prefilter.search(text):
                ruled_out += 1
        assert matched > 1_000 and ruled_out > 1_000
    for text in ("4242 4242 4242 4242", "ref 4000-0566-5566-5556.", "5555%204444%203333%204444"):
        assert _TYPED_OR_URL.may_match(text)
    assert not _TYPED.may_match('{"id":"mer_0123456789abcdef","ts":"2026-11-28T02:27:55Z"}')

"""Card validation: brands by IIN range and length, Luhn, expiry, CVC, name; errors name the
field and never repeat the submitted value."""

from __future__ import annotations

from datetime import date

import pytest

from cde.vault.domain import Brand, InvalidCard, detect_brand, validate_card

TODAY = date(2026, 6, 15)

# Published test numbers of each brand (Stripe, network test ranges).
BRANDS = [
    ("4242424242424242", Brand.VISA),
    ("4000056655665556", Brand.VISA),
    ("4222222222222", Brand.VISA),
    ("5555555555554444", Brand.MASTERCARD),
    ("2223003122003222", Brand.MASTERCARD),
    ("378282246310005", Brand.AMEX),
    ("371449635398431", Brand.AMEX),
    ("6011111111111117", Brand.DISCOVER),
    ("6445644564456445", Brand.DISCOVER),
    ("3566002020360505", Brand.JCB),
    ("30569309025904", Brand.DINERS),
    ("36227206271667", Brand.DINERS),
    ("6200000000000005", Brand.UNIONPAY),
    ("6759649826438453", Brand.MAESTRO),
]


def _card(number: object = "4242424242424242", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"number": number, "exp_month": 12, "exp_year": 2030}
    base.update(fields)
    return base


@pytest.mark.parametrize(("number", "brand"), BRANDS)
def test_brands_are_detected_by_iin_range(number: str, brand: Brand) -> None:
    """Each brand's test number validates and is given its brand."""
    card = validate_card(**_card(number), today=TODAY)
    assert card.brand is brand
    assert card.pan.reveal() == number
    assert detect_brand(number) is brand


def test_spaces_and_dashes_are_stripped() -> None:
    """Grouped input is accepted as the same digits."""
    assert validate_card(**_card("4242 4242-4242 4242"), today=TODAY).pan.reveal() == (
        "4242424242424242"
    )


def test_integer_numbers_and_two_digit_years_are_accepted() -> None:
    """A JSON number and a two-digit year work like their text forms."""
    card = validate_card(number=4242424242424242, exp_month="07", exp_year=30, today=TODAY)
    assert (card.exp_month, card.exp_year) == (7, 2030)


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4242424242424241", "incorrect_number"),  # Luhn fails
        ("424242424242424", "invalid_number"),  # Visa with 15 digits
        ("37828224631000", "invalid_number"),  # Amex with 14 digits
        ("5555555555554", "invalid_number"),  # Mastercard with 13 digits
        ("9999999999999995", "invalid_number"),  # no brand
        ("4242x42424242424", "invalid_number"),  # not digits
        ("４２４２４２４２４２４２４２４２", "invalid_number"),  # full-width digits are not ASCII
        ("", "invalid_number"),
        (None, "invalid_number"),
    ],
)
def test_bad_numbers_are_refused_without_echo(number: object, code: str) -> None:
    """A bad number names card[number] and the message never contains the digits."""
    with pytest.raises(InvalidCard) as caught:
        validate_card(**_card(number), today=TODAY)
    assert caught.value.param == "card[number]"
    assert caught.value.code == code
    if isinstance(number, str) and number:
        assert number not in str(caught.value)
        assert number[-4:] not in caught.value.message


@pytest.mark.parametrize(
    ("month", "year", "param", "code"),
    [
        (0, 2030, "card[exp_month]", "invalid_expiry_month"),
        (13, 2030, "card[exp_month]", "invalid_expiry_month"),
        ("ab", 2030, "card[exp_month]", "invalid_expiry_month"),
        (None, 2030, "card[exp_month]", "invalid_expiry_month"),
        (5, 2026, "card[exp_month]", "expired_card"),  # last month
        (12, 2025, "card[exp_year]", "expired_card"),
        (1, 2200, "card[exp_year]", "invalid_expiry_year"),
        (1, "x", "card[exp_year]", "invalid_expiry_year"),
    ],
)
def test_bad_expiry_is_refused(month: object, year: object, param: str, code: str) -> None:
    """Month 1-12, not in the past, at most 50 years ahead."""
    with pytest.raises(InvalidCard) as caught:
        validate_card(**_card(exp_month=month, exp_year=year), today=TODAY)
    assert (caught.value.param, caught.value.code) == (param, code)


def test_a_card_is_valid_through_its_expiry_month() -> None:
    """June 2026 is still valid on 15 June 2026."""
    card = validate_card(**_card(exp_month=6, exp_year=2026), today=TODAY)
    assert (card.exp_month, card.exp_year) == (6, 2026)


def test_cvc_lengths_follow_the_brand() -> None:
    """Three digits for Visa, four for Amex; anything else is refused without echo."""
    assert validate_card(**_card(cvc="123"), today=TODAY).cvc is not None
    assert validate_card(**_card("378282246310005", cvc="7391"), today=TODAY).cvc is not None
    for number, cvc in [
        ("4242424242424242", "7391"),
        ("378282246310005", "123"),
        ("4242424242424242", "12a"),
        ("4242424242424242", 123.0),
    ]:
        with pytest.raises(InvalidCard) as caught:
            validate_card(**_card(number, cvc=cvc), today=TODAY)
        assert caught.value.param == "card[cvc]"
        assert str(cvc) not in caught.value.message


def test_cvc_is_masked_and_optional() -> None:
    """The CVC is held in a masked type; a card without one has None."""
    card = validate_card(**_card(cvc="321"), today=TODAY)
    assert "321" not in repr(card)
    assert validate_card(**_card(), today=TODAY).cvc is None


def test_name_must_not_hide_a_card_number() -> None:
    """A cardholder name holding a card number (or control characters) is refused."""
    assert validate_card(**_card(name=" Ada Lovelace "), today=TODAY).name == "Ada Lovelace"
    for name in ["pay 4242 4242 4242 4242", "bad\x00name", "x" * 200, 42]:
        with pytest.raises(InvalidCard) as caught:
            validate_card(**_card(name=name), today=TODAY)
        assert caught.value.param == "card[name]"


def test_repr_of_a_card_shows_no_pan() -> None:
    """A validated card's repr shows at most six and four digits."""
    card = validate_card(**_card("4000056655665556"), today=TODAY)
    assert "4000056655665556" not in repr(card)
    assert "400005******5556" in repr(card)

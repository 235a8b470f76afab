"""cde.vault (CDE): card validation and brand detection; pure.

Validation strips spaces and dashes, requires digits only, detects the brand by IIN range with
that brand's allowed lengths, checks Luhn, the expiry (month 1-12, not in the past) and the CVC
(3 digits, 4 for Amex). Every failure names the field (`card[number]`) and never repeats the
submitted value (PCI DSS 3.3.1, 3.4.1: no card data in errors or logs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cde.vault.domain.errors import InvalidCard
from fincore.cards import find_card_numbers, luhn_valid
from fincore.sensitive import Cvc, Pan

MAX_NAME_LENGTH = 128
MAX_YEARS_AHEAD = 50
_SEPARATORS = re.compile(r"[ \-]")


class Brand(StrEnum):
    """Card brands the vault recognises (Stripe's spelling)."""

    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    DINERS = "diners"
    UNIONPAY = "unionpay"
    MAESTRO = "maestro"


@dataclass(frozen=True, slots=True)
class _IinRange:
    low: int
    high: int
    brand: Brand
    lengths: frozenset[int]

    def matches(self, digits: str) -> bool:
        width = len(str(self.low))
        if len(digits) < width:
            return False
        return self.low <= int(digits[:width]) <= self.high


def _r(low: int, high: int, brand: Brand, lengths: range | tuple[int, ...]) -> _IinRange:
    return _IinRange(low, high, brand, frozenset(lengths))


# Most specific (longest) prefixes first; the first match decides the brand. Ranges follow the
# brands' published IIN tables as Stripe and the major networks apply them.
IIN_TABLE: tuple[_IinRange, ...] = (
    _r(2221, 2720, Brand.MASTERCARD, (16,)),
    _r(3528, 3589, Brand.JCB, range(16, 20)),
    _r(3095, 3095, Brand.DINERS, range(14, 20)),
    _r(6011, 6011, Brand.DISCOVER, range(16, 20)),
    _r(6304, 6304, Brand.MAESTRO, range(12, 20)),
    _r(6390, 6390, Brand.MAESTRO, range(12, 20)),
    _r(300, 305, Brand.DINERS, range(14, 20)),
    _r(644, 649, Brand.DISCOVER, range(16, 20)),
    _r(34, 34, Brand.AMEX, (15,)),
    _r(37, 37, Brand.AMEX, (15,)),
    _r(36, 36, Brand.DINERS, range(14, 20)),
    _r(38, 39, Brand.DINERS, range(14, 20)),
    _r(51, 55, Brand.MASTERCARD, (16,)),
    _r(50, 50, Brand.MAESTRO, range(12, 20)),
    _r(56, 58, Brand.MAESTRO, range(12, 20)),
    _r(62, 62, Brand.UNIONPAY, range(16, 20)),
    _r(81, 81, Brand.UNIONPAY, range(16, 20)),
    _r(65, 65, Brand.DISCOVER, range(16, 20)),
    _r(67, 67, Brand.MAESTRO, range(12, 20)),
    _r(4, 4, Brand.VISA, (13, 16, 19)),
)


def _prefix_index() -> dict[str, _IinRange]:
    index: dict[str, _IinRange] = {}
    for entry in IIN_TABLE:
        width = len(str(entry.low))
        for value in range(entry.low, entry.high + 1):
            index.setdefault(str(value).zfill(width), entry)
    return index


# Every IIN prefix (1-4 digits) to its range: at most four dict lookups per card number.
_PREFIXES = _prefix_index()


def _iin_entry(digits: str) -> _IinRange | None:
    for width in (4, 3, 2, 1):
        entry = _PREFIXES.get(digits[:width]) if len(digits) >= width else None
        if entry is not None:
            return entry
    return None


def detect_brand(digits: str) -> Brand | None:
    """The brand whose IIN range `digits` starts with, or None."""
    entry = _iin_entry(digits)
    return entry.brand if entry is not None else None


@dataclass(frozen=True, slots=True)
class Card:
    """A validated card. The PAN and CVC stay in masked types until the vault seals them."""

    pan: Pan
    exp_month: int
    exp_year: int
    brand: Brand
    cvc: Cvc | None = None
    name: str | None = None

    @property
    def last4(self) -> str:
        return self.pan.last4

    @property
    def bin(self) -> str:
        return self.pan.bin


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def normalize_number(value: object) -> str:
    """The card number as digits only (spaces and dashes removed), or `InvalidCard`."""
    text = _as_text(value)
    if text is None or not text.strip():
        raise InvalidCard(
            "Your card number is missing.", code="invalid_number", param="card[number]"
        )
    digits = _SEPARATORS.sub("", text.strip())
    if not digits.isascii() or not digits.isdigit():
        raise InvalidCard(
            "Your card number must contain digits only.",
            code="invalid_number",
            param="card[number]",
        )
    return digits


def validate_number(value: object) -> tuple[Pan, Brand]:
    """The PAN and its brand: IIN range, the brand's lengths and Luhn."""
    digits = normalize_number(value)
    entry = _iin_entry(digits)
    if entry is None:
        raise InvalidCard(
            "Your card number is not from a supported card brand.",
            code="invalid_number",
            param="card[number]",
        )
    brand = entry.brand
    if len(digits) not in entry.lengths:
        raise InvalidCard(
            "Your card number has the wrong length for its brand.",
            code="invalid_number",
            param="card[number]",
        )
    if not luhn_valid(digits):
        raise InvalidCard(
            "Your card number is incorrect.", code="incorrect_number", param="card[number]"
        )
    return Pan(digits), brand


def _as_int(value: object, param: str, code: str, label: str) -> int:
    text = _as_text(value)
    if text is None or not text.strip():
        raise InvalidCard(f"Your card's {label} is missing.", code=code, param=param)
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise InvalidCard(f"Your card's {label} is invalid.", code=code, param=param)
    return int(text)


def validate_expiry(month: object, year: object, today: date) -> tuple[int, int]:
    """(month, four-digit year): month 1-12, not before this month, at most 50 years ahead."""
    exp_month = _as_int(month, "card[exp_month]", "invalid_expiry_month", "expiration month")
    if not 1 <= exp_month <= 12:
        raise InvalidCard(
            "Your card's expiration month is invalid.",
            code="invalid_expiry_month",
            param="card[exp_month]",
        )
    exp_year = _as_int(year, "card[exp_year]", "invalid_expiry_year", "expiration year")
    if exp_year < 100:
        exp_year += 2000
    if exp_year < 2000 or exp_year > today.year + MAX_YEARS_AHEAD:
        raise InvalidCard(
            "Your card's expiration year is invalid.",
            code="invalid_expiry_year",
            param="card[exp_year]",
        )
    # A card is valid through the last day of its expiry month.
    if (exp_year, exp_month) < (today.year, today.month):
        param = "card[exp_year]" if exp_year < today.year else "card[exp_month]"
        raise InvalidCard("Your card has expired.", code="expired_card", param=param)
    return exp_month, exp_year


def validate_cvc(value: object, brand: Brand) -> Cvc | None:
    """The CVC (3 digits; 4 for Amex) or None when not given."""
    if value is None:
        return None
    text = _as_text(value)
    expected = 4 if brand is Brand.AMEX else 3
    if text is None or not text.isascii() or not text.isdigit() or len(text) != expected:
        raise InvalidCard(
            f"Your card's security code must be {expected} digits.",
            code="invalid_cvc",
            param="card[cvc]",
        )
    return Cvc(text)


def validate_name(value: object) -> str | None:
    """The cardholder name: optional text without control characters or card numbers."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise InvalidCard(
            "The cardholder name is invalid.", code="invalid_name", param="card[name]"
        )
    name = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or find_card_numbers(name):
        raise InvalidCard(
            "The cardholder name is invalid.", code="invalid_name", param="card[name]"
        )
    return name or None


def validate_card(
    *,
    number: object,
    exp_month: object,
    exp_year: object,
    cvc: object = None,
    name: object = None,
    today: date,
) -> Card:
    """A `Card`, or `InvalidCard` naming the first bad field (number, expiry, cvc, name)."""
    pan, brand = validate_number(number)
    month, year = validate_expiry(exp_month, exp_year, today)
    return Card(
        pan=pan,
        exp_month=month,
        exp_year=year,
        brand=brand,
        cvc=validate_cvc(cvc, brand),
        name=validate_name(name),
    )

"""cde.vault (CDE): opaque random identifiers (tokens, data-key ids) and their formats; pure.

A token is `tok_` plus 130 random bits from `secrets`, in lowercase base32 (letters and the
digits 2-7). It is never derived from the card, and it is never a card-like number: a candidate
with any Luhn-valid 13-19 digit run is drawn again, so no PAN detector can mistake a token for a
card (PCI DSS 3.5.1; the non-CDE zone stores tokens freely).
"""

from __future__ import annotations

import re
import secrets

from cde.vault.domain.errors import InvalidRequest
from fincore.cards import contains_card_number

TOKEN_PREFIX = "tok_"  # noqa: S105 - an id prefix, not a secret
_RANDOM_BYTES = 17  # 136 bits drawn, 130 kept by the 26-character base32 form
_BASE32_CHARS = 26
TOKEN_PATTERN = re.compile(r"^tok_[a-z2-7]{26}$")
MERCHANT_PATTERN = re.compile(r"^mer_[A-Za-z0-9_]{1,60}$")
KEY_ID_PATTERN = re.compile(r"^(dk|kek)_[a-z2-7]{26}$")
_DIGIT_RUN = re.compile(r"[0-9]{13}")  # the shortest run a PAN detector could flag


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lowercase
_BASE32_PAIRS = [high + low for high in _BASE32 for low in _BASE32]  # 10 bits per entry


def _base32_prefix(data: bytes) -> str:
    """The first 26 characters of `data` (17 bytes) in lowercase RFC 4648 base32: the same
    text as `base64.b32encode(data).lower()[:26]`, ten bits at a time (the stdlib encoder is
    pure Python on 3.11 and three times slower)."""
    value = int.from_bytes(data, "big") >> (len(data) * 8 - 5 * _BASE32_CHARS)
    return "".join([_BASE32_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def _random_base32() -> str:
    while True:
        text = _base32_prefix(secrets.token_bytes(_RANDOM_BYTES))
        if not _DIGIT_RUN.search(text) or not contains_card_number(text):
            return text


def new_token() -> str:
    """A fresh card token: random, unguessable, never card-like."""
    return TOKEN_PREFIX + _random_base32()


def new_data_key_id() -> str:
    """A fresh data-key id (`dk_…`)."""
    return "dk_" + _random_base32()


def new_kek_id() -> str:
    """A fresh id for a locally generated key-encryption key (`kek_…`)."""
    return "kek_" + _random_base32()


def check_token(value: object) -> str:
    """`value` if it is a well-formed token, else `InvalidRequest` (the value is not echoed).

    A token holding a card-like digit run is never one the vault issued (see `new_token`), and
    as the target of an audit record it would be refused by the audit log's card-data check:
    it is malformed (found by tests/security fuzzing, where it ended in a 500)."""
    if (
        not isinstance(value, str)
        or not TOKEN_PATTERN.match(value)
        or (_DIGIT_RUN.search(value) and contains_card_number(value))
    ):
        raise InvalidRequest("The token is not a valid card token.", param="token")
    return value


def check_merchant_id(value: object, param: str = "merchant_id") -> str:
    """`value` if it is a well-formed merchant id (`mer_…`) holding no card-like number (it is
    written to audit records), else `InvalidRequest`."""
    if (
        not isinstance(value, str)
        or not MERCHANT_PATTERN.match(value)
        or (_DIGIT_RUN.search(value) and contains_card_number(value))
    ):
        raise InvalidRequest("The merchant id is missing or invalid.", param=param)
    return value

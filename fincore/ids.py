"""Shared by both zones: opaque random identifiers that can never look like a card number.

Ids are a prefix plus 128 random bits (`secrets`) in base 62. Hex ids are avoided on purpose: a
hex id can, rarely, be all digits and Luhn-valid, and the PAN sweep would then report it. In base
62 the chance of a 13-digit run is about 1e-11 per id, and `random_id` rejects even that.
"""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT_RUN = re.compile(r"[0-9]{8,}")


def random_token(nbytes: int = 16) -> str:
    """`nbytes` random bytes in base 62, with no run of 8 or more digits."""
    while True:
        value = int.from_bytes(secrets.token_bytes(nbytes), "big")
        chars = []
        while value:
            value, digit = divmod(value, 62)
            chars.append(_ALPHABET[digit])
        token = "".join(reversed(chars)) or "0"
        if not _DIGIT_RUN.search(token):
            return token


def random_id(prefix: str, nbytes: int = 16) -> str:
    """`<prefix>_<base62>`: e.g. `ch_3fZq…`. At least 128 random bits by default."""
    return f"{prefix}_{random_token(nbytes)}"

"""Shared by both zones: opaque random identifiers that can never look like a card number.

Ids are a prefix plus 128 random bits (`secrets`) in base 62. Hex ids are avoided on purpose: a
hex id can, rarely, be all digits and Luhn-valid, and the PAN sweep would then report it. In base
62 the chance of a 13-digit run is about 1e-11 per id, and `random_id` rejects even that.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT_RUN = re.compile(r"[0-9]{8,}")


def random_token(nbytes: int = 16) -> str:
    """`nbytes` random bytes in base 62 (fixed width), with no run of 8 or more digits."""
    width = math.ceil(nbytes * 8 / math.log2(62))
    while True:
        token = _base62(secrets.token_bytes(nbytes)).rjust(width, "0")
        if not _DIGIT_RUN.search(token):
            return token


def random_id(prefix: str, nbytes: int = 16) -> str:
    """`<prefix>_<base62>`: e.g. `ch_3fZq…`. At least 128 random bits by default."""
    return f"{prefix}_{random_token(nbytes)}"


# Two base-62 digits at a time (62**2 = 3844 pairs): half the big-integer divisions.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]


def _base62(data: bytes) -> str:
    value = int.from_bytes(data, "big")
    pairs = []
    while value:
        value, pair = divmod(value, 3844)
        pairs.append(_PAIRS[pair])
    return "".join(reversed(pairs)).lstrip("0") or "0"


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id from `parts` (128 bits of SHA-256, base 62): the same parts always
    name the same thing (job dedup ids, idempotent retries). Base 62, not hex, for the reason
    in the module docstring; a 13-digit run has a chance of about 1e-9 per id."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()[:16]
    return f"{prefix}_{_base62(digest)}"


def digest_text(digest: bytes) -> str:
    """A hash or MAC as text for storage: base64url without padding, never hex (see above)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

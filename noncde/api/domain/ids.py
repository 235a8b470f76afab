"""noncde.api (non-CDE), published language: opaque prefixed ids and stream names.

Ids are random (`secrets`) base62 strings behind a type prefix (`ch_`, `re_`, `ps_`, `evt_`,
`mer_`, `key_`, `we_`). A generated body never holds a card-like digit run, so no id can ever
trip the card-data guard, the platform's store guard or the PAN sweep (a hex id would, about
once in a thousand).
"""

from __future__ import annotations

import re
import string

from fincore.ids import random_token

_ALPHABET = string.ascii_letters + string.digits
ID_BODY_LENGTH = 24
_BODY = re.compile(r"^[A-Za-z0-9]{8,64}$")

CHARGE = "ch"
REFUND = "re"
PAYMENT_SESSION = "ps"
EVENT = "evt"
MERCHANT = "mer"
API_KEY = "key"
WEBHOOK_ENDPOINT = "we"

CHARGE_STREAM_PREFIX = "charge-"
SESSION_STREAM_PREFIX = "payment_session-"
MERCHANT_STREAM_PREFIX = "merchant-"


def random_body(length: int = ID_BODY_LENGTH) -> str:
    """Random base62 characters with no card-like digit run (`fincore.ids.random_token`)."""
    return random_token((length * 6 + 7) // 8)


def new_id(prefix: str) -> str:
    """A new opaque id: `<prefix>_<24 base62 characters>` (~142 bits)."""
    return f"{prefix}_{random_body()}"


def is_id(value: object, prefix: str) -> bool:
    """True when `value` has the shape of an id with this prefix (says nothing of existence)."""
    if not isinstance(value, str) or not value.startswith(prefix + "_"):
        return False
    return bool(_BODY.match(value[len(prefix) + 1 :]))


def charge_stream(charge_id: str) -> str:
    """The event stream of one charge and its refunds."""
    return CHARGE_STREAM_PREFIX + charge_id


def session_stream(session_id: str) -> str:
    """The event stream of one hosted payment session."""
    return SESSION_STREAM_PREFIX + session_id


def merchant_stream(merchant_id: str) -> str:
    return MERCHANT_STREAM_PREFIX + merchant_id

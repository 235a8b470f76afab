"""cde.vault (CDE): card records, their sealed payload and what callers see of them; pure.

A stored record holds the token, the merchant, the data-key id, the keyed fingerprint, times and
one ciphertext. Everything read from the card (PAN, expiry, name, brand) is inside the
ciphertext, so a database dump shows only ciphertext, HMACs and ids (PCI DSS 3.5.1). The CVC
is never part of a record (PCI DSS 3.3.1); it lives only in the TTL store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cde.vault.domain.cards import Brand, Card
from cde.vault.domain.errors import RecordIntegrityError
from fincore.sensitive import Cvc, Pan

PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class CardRecord:
    """One vault row as stored."""

    token: str
    merchant_id: str
    data_key_id: str
    ciphertext: bytes
    fingerprint: str
    created_at: datetime
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A row read back, with whether its data key has been destroyed."""

    record: CardRecord
    key_destroyed: bool


@dataclass(frozen=True, slots=True)
class CardDisplay:
    """What may leave the CDE: brand, BIN, last four, expiry and the keyed fingerprint."""

    brand: str
    last4: str
    bin: str
    exp_month: int
    exp_year: int
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "last4": self.last4,
            "bin": self.bin,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Tokenized:
    """The answer to a tokenization."""

    token: str
    card: CardDisplay


@dataclass(frozen=True, slots=True)
class Detokenized:
    """The card for the gateway, and the CVC if it was still held (it is deleted now)."""

    token: str
    card: Card
    cvc: Cvc | None


def encode_payload(card: Card) -> bytes:
    """The plaintext sealed into a record (never the CVC)."""
    body: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "n": card.pan.reveal(),
        "m": card.exp_month,
        "y": card.exp_year,
        "b": str(card.brand),
    }
    if card.name:
        body["h"] = card.name
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_payload(data: bytes) -> Card:
    """The card inside an opened record."""
    try:
        body = json.loads(data)
        if body.get("v") != PAYLOAD_VERSION:
            raise ValueError("unknown payload version")
        return Card(
            pan=Pan(str(body["n"])),
            exp_month=int(body["m"]),
            exp_year=int(body["y"]),
            brand=Brand(body["b"]),
            name=body.get("h"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordIntegrityError("The stored record has an unknown layout.") from exc


def display_of(card: Card, fingerprint: str) -> CardDisplay:
    return CardDisplay(
        brand=str(card.brand),
        last4=card.last4,
        bin=card.bin,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        fingerprint=fingerprint,
    )

"""noncde.api (non-CDE): the commands the API accepts, already validated at the HTTP edge;
pure values. `fingerprint()` is what an Idempotency-Key is bound to (Stripe: the same key
with different parameters is refused)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fincore.ids import digest_text
from noncde.api.domain.events import PaymentMethodRef, PaymentMethodType


def request_fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """SHA-256 of the operation and its canonical parameters (base64url, never hex)."""
    canonical = json.dumps(
        {"op": operation, "params": params}, sort_keys=True, separators=(",", ":"), default=str
    )
    return digest_text(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class CreateCharge:
    amount: int
    currency: str
    payment_method: PaymentMethodRef
    capture: bool = True
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def fingerprint_params(self, via_ingress: bool) -> dict[str, Any]:
        method = self.payment_method.to_data()
        if self.payment_method.type is PaymentMethodType.VAULT_TOKEN:
            # The ingress tokenizes the card afresh on every retry: the same card must match
            # the same request, so the vault token itself is not part of the fingerprint.
            method.pop("token", None)
        return {
            "amount": self.amount,
            "currency": self.currency,
            "capture": self.capture,
            "description": self.description,
            "metadata": dict(self.metadata),
            "payment_method": method,
            "via_ingress": via_ingress,
        }


@dataclass(frozen=True, slots=True)
class CaptureCharge:
    charge_id: str
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class CancelCharge:
    charge_id: str


@dataclass(frozen=True, slots=True)
class CreateRefund:
    charge_id: str
    amount: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CreatePaymentSession:
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    expires_in: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExpirePaymentSession:
    session_id: str


@dataclass(frozen=True, slots=True)
class RecordPspEvent:
    """A normalized, token-only PSP event relayed by the gateway (interfaces.md)."""

    id: str
    type: str
    charge_id: str | None = None
    session_id: str | None = None
    refund_id: str | None = None
    psp_reference: str | None = None
    amount: int | None = None
    currency: str | None = None
    payment_method: PaymentMethodRef | None = None
    decline_code: str | None = None
    message: str | None = None

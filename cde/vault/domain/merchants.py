"""cde.vault (CDE): who may send raw cards: the directory's answer, the CDE register; pure.

A merchant may post raw card data only when BOTH sources agree, now: the non-CDE merchant
directory says the `raw_card_data` capability is active with an unexpired attestation, and the
CDE's own attestation register (CLI-managed, audited) holds an unexpired entry. Either source
alone cannot let card data in: a compromised non-CDE directory cannot grant the capability, and
a stale CDE entry cannot outlive a revocation in the directory (PCI DSS 12.8, 3.2.1 scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Attestation:
    """The CDE register's entry: the merchant's PCI attestation is valid through `expires_on`."""

    merchant_id: str
    expires_on: date
    recorded_at: datetime
    recorded_by: str = ""


@dataclass(frozen=True, slots=True)
class MerchantAuthorization:
    """The non-CDE directory's answer for an API key."""

    merchant_id: str
    livemode: bool
    raw_card_data_active: bool
    attestation_expires_on: date | None


def raw_card_refusal(
    directory: MerchantAuthorization, register: Attestation | None, today: date
) -> str | None:
    """Why this merchant may not send raw cards today, or None when both sources agree it may."""
    if not directory.raw_card_data_active:
        return "capability_inactive"
    if directory.attestation_expires_on is None:
        return "directory_attestation_missing"
    if directory.attestation_expires_on < today:
        return "directory_attestation_expired"
    return register_refusal(register, today)


def register_refusal(register: Attestation | None, today: date) -> str | None:
    """Why the CDE register does not permit raw cards today, or None."""
    if register is None:
        return "cde_attestation_missing"
    if register.expires_on < today:
        return "cde_attestation_expired"
    return None

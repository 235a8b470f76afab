"""noncde.api (non-CDE), published language: the jobs the API enqueues for the job worker (#8).

Each job names one gateway call; handlers are idempotent (the gateway derives the PSP's
idempotency key from the charge or refund id). Every job is enqueued with `dedup_id`, so the
same logical job always has the same job id (`noncde.platform.domain.job_id_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class JobType(StrEnum):
    CHARGE_AUTHORIZE = "charge.authorize"
    CHARGE_CAPTURE = "charge.capture"
    CHARGE_CANCEL = "charge.cancel"
    REFUND_EXECUTE = "refund.execute"


@dataclass(frozen=True, slots=True)
class AuthorizeCharge:
    """POST /v1/authorizations at the gateway; `payment_method` is `{type, token}` only."""

    type: ClassVar[JobType] = JobType.CHARGE_AUTHORIZE

    charge_id: str
    merchant_id: str
    amount: int
    currency: str
    capture: bool
    payment_method: Mapping[str, str]

    @property
    def dedup_id(self) -> str:
        return f"{self.charge_id}:authorize"

    def to_payload(self) -> dict[str, Any]:
        return {
            "charge_id": self.charge_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "capture": self.capture,
            "payment_method": {
                "type": self.payment_method["type"],
                "token": self.payment_method["token"],
            },
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AuthorizeCharge:
        method = payload["payment_method"]
        return cls(
            charge_id=payload["charge_id"],
            merchant_id=payload["merchant_id"],
            amount=int(payload["amount"]),
            currency=payload["currency"],
            capture=bool(payload["capture"]),
            payment_method={"type": method["type"], "token": method["token"]},
        )


@dataclass(frozen=True, slots=True)
class CaptureCharge:
    """POST /v1/captures at the gateway."""

    type: ClassVar[JobType] = JobType.CHARGE_CAPTURE

    charge_id: str
    merchant_id: str
    amount: int

    @property
    def dedup_id(self) -> str:
        return f"{self.charge_id}:capture"

    def to_payload(self) -> dict[str, Any]:
        return {"charge_id": self.charge_id, "merchant_id": self.merchant_id, "amount": self.amount}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CaptureCharge:
        return cls(payload["charge_id"], payload["merchant_id"], int(payload["amount"]))


@dataclass(frozen=True, slots=True)
class CancelCharge:
    """POST /v1/cancellations at the gateway."""

    type: ClassVar[JobType] = JobType.CHARGE_CANCEL

    charge_id: str
    merchant_id: str

    @property
    def dedup_id(self) -> str:
        return f"{self.charge_id}:cancel"

    def to_payload(self) -> dict[str, Any]:
        return {"charge_id": self.charge_id, "merchant_id": self.merchant_id}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CancelCharge:
        return cls(payload["charge_id"], payload["merchant_id"])


@dataclass(frozen=True, slots=True)
class ExecuteRefund:
    """POST /v1/refunds at the gateway."""

    type: ClassVar[JobType] = JobType.REFUND_EXECUTE

    refund_id: str
    charge_id: str
    merchant_id: str
    amount: int

    @property
    def dedup_id(self) -> str:
        return f"{self.refund_id}:refund"

    def to_payload(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "charge_id": self.charge_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ExecuteRefund:
        return cls(
            payload["refund_id"],
            payload["charge_id"],
            payload["merchant_id"],
            int(payload["amount"]),
        )


Job = AuthorizeCharge | CaptureCharge | CancelCharge | ExecuteRefund

JOB_CLASSES: dict[str, type[Job]] = {
    cls.type: cls for cls in (AuthorizeCharge, CaptureCharge, CancelCharge, ExecuteRefund)
}


def parse_job(job_type: str, payload: Mapping[str, Any]) -> Job | None:
    """The typed job payload, or None for a job type this release does not know."""
    cls = JOB_CLASSES.get(job_type)
    return None if cls is None else cls.from_payload(payload)

"""noncde.workers (non-CDE): merchant webhooks' values: endpoints, deliveries and attempts, the
retry schedule, and the signature; pure, no I/O.

Signed like Stripe's scheme so merchants can verify with the code they know (stripe-python's
`WebhookSignature.verify_header` accepts it): header `FinCore-Signature: t=<unix>,v1=<hex>`,
where `v1` is HMAC-SHA256 keyed with the endpoint's signing secret (`whsec_…`, the whole
string as the key) over `"<t>." + body`. The timestamp is signed too, so a captured delivery
cannot be replayed later than the receiver's tolerance (default 5 minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from fincore.sensitive import SecretKey

SIGNATURE_HEADER = "FinCore-Signature"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
MAX_ERROR = 300


class DirectoryUnavailable(Exception):
    """The merchant directory (webhook endpoints) could not be read."""


class WebhookSignatureError(ValueError):
    """The header is missing, malformed, too old, or no signature matches."""


def compute_signature(secret: str, timestamp: int, payload: bytes) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, payload: bytes) -> str:
    """The `FinCore-Signature` value for `payload` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={compute_signature(secret, timestamp, payload)}"


def verify_signature(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a delivery as a merchant should; returns the signed timestamp.

    Constant-time comparison against every `v1` in the header (several during a secret
    rotation). Raises `WebhookSignatureError`.
    """
    if not header:
        raise WebhookSignatureError("no signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError("the signature header has no timestamp or no v1 signature")
    expected = compute_signature(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookSignatureError("no signature matches the payload")
    if tolerance_s > 0 and abs(now - timestamp) > tolerance_s:
        raise WebhookSignatureError("the timestamp is outside the tolerance")
    return timestamp


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A merchant's webhook endpoint and its signing secret (masked in every repr)."""

    id: str
    merchant_id: str
    url: str
    enabled_events: tuple[str, ...]
    secret: SecretKey = field(repr=False)
    disabled: bool = False

    def wants(self, event_type: str) -> bool:
        """`*` takes everything, `charge.*` a prefix, else the exact type."""
        if self.disabled:
            return False
        for pattern in self.enabled_events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the retry window


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint. `attempts` counts tries in the current series (a manual
    redelivery starts a new series); `first_attempt_at` anchors the 24-hour window."""

    id: int
    event_id: str
    event_position: int
    endpoint_id: str
    merchant_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    first_attempt_at: float | None
    series: int = 1
    last_status: int | None = None
    last_error: str | None = None
    lease_token: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt got: the status, or the error (timeout, refused connection)."""

    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @classmethod
    def failed(cls, error: str, duration_ms: float) -> AttemptResult:
        return cls(None, error[:MAX_ERROR], duration_ms)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One row of the delivery log."""

    delivery_id: int
    series: int
    number: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff with equal jitter, within a window from the first attempt.

    The n-th retry waits between c/2 and c, where c = base·2^(n-1) capped at `cap_s`: each
    wait is at least as long as the one before (until the cap). No retry is scheduled past
    `give_up_after_s` (24 h) from the first attempt; the delivery is then `failed`.
    """

    base_s: float = 30.0
    cap_s: float = 4 * 3600.0
    give_up_after_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError("need 0 < base_s <= cap_s")
        if self.give_up_after_s <= 0:
            raise ValueError("give_up_after_s must be positive")

    def delay_s(self, attempts_made: int) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts_made - 1))
        return ceiling / 2 + ceiling / 2 * (secrets.randbelow(1_000_001) / 1_000_000)

    def next_attempt(self, first_attempt_at: float, attempts_made: int, now: float) -> float | None:
        """When to try again after `attempts_made` failed tries, or None to give up."""
        due = now + self.delay_s(attempts_made)
        if due > first_attempt_at + self.give_up_after_s:
            return None
        return due

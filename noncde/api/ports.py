"""noncde.api (non-CDE): the Protocols for everything outside the API's use cases.

The platform ports (event store, job queue, idempotency store, rules store, unit of work) come
from `noncde.platform.ports`; these are the API's own: the merchant directory, the counters
behind rate limits and risk velocity, the payment read model for lists, the gateway's checkout
sessions, the secrets keyring and the audit trail. Every store refuses card data by
construction: it is only ever handed tokens, ids and display data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar

from audit.domain import Actor, EventType, Outcome
from noncde.api.domain.entities import Charge, PaymentSession, Refund
from noncde.api.domain.merchants import (
    ApiKey,
    Merchant,
    MerchantAuth,
    RawCardCapability,
    WebhookEndpoint,
)
from noncde.api.domain.risk import VelocitySeries
from noncde.platform.domain import RecordedEvent

# ---------------------------------------------------------------- merchant directory


class MerchantDirectory(Protocol):
    """Merchants, API keys (stored as keyed digests), capabilities and webhook endpoints.

    Writes are single transactions; reads see committed data (a revoked key stops working
    at the next request, in every API process). Unknown ids raise `LookupError`.
    """

    def authenticate(self, digest: str, now: datetime) -> MerchantAuth | None:
        """The merchant whose key has this digest, if the key is usable at `now` and the
        merchant is active; None otherwise (unknown, revoked, expired, disabled)."""
        ...

    def create_merchant(self, merchant: Merchant) -> None: ...

    def get_merchant(self, merchant_id: str) -> Merchant | None: ...

    def list_merchants(self) -> list[Merchant]: ...

    def set_merchant_status(self, merchant_id: str, status: str) -> None: ...

    def add_key(self, key: ApiKey, digest: str, publishable_value: str | None = None) -> None:
        """Store a key record; `digest` is unique across all keys."""
        ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, merchant_id: str) -> list[ApiKey]: ...

    def publishable_key(self, key_id: str) -> str | None:
        """The value of a publishable key (not secret); None for secret keys."""
        ...

    def expire_key(self, key_id: str, at: datetime) -> None:
        """Make the key stop working at `at` (rotation overlap); never extends an earlier expiry."""
        ...

    def revoke_key(self, key_id: str, at: datetime) -> None: ...

    def raw_card(self, merchant_id: str) -> RawCardCapability: ...

    def set_raw_card(
        self, merchant_id: str, granted: bool, expires_on: date | None, at: datetime
    ) -> None: ...

    def add_webhook_endpoint(self, endpoint: WebhookEndpoint, sealed_secret: str) -> None: ...

    def list_webhook_endpoints(
        self, merchant_id: str | None = None
    ) -> list[tuple[WebhookEndpoint, str]]:
        """Endpoints (all merchants when None) with their sealed signing secrets."""
        ...

    def disable_webhook_endpoint(self, endpoint_id: str, at: datetime) -> None: ...


class Keyring(Protocol):
    """Server-side secrets of the API: the API-key pepper and the sealing of webhook secrets."""

    def pepper(self) -> bytes:
        """The HMAC key for API-key digests (>= 256 bits)."""
        ...

    def seal(self, plaintext: str, context: str) -> str:
        """Authenticated encryption of a secret, bound to `context` (e.g. the endpoint id)."""
        ...

    def open(self, sealed: str, context: str) -> str:
        """The secret; raises `ValueError` if it was tampered with or bound to another context."""
        ...


# ---------------------------------------------------------------- counters


class Counters(Protocol):
    """Windowed counters for rate limits and risk velocity (SQL default, Redis in production).

    Counts are exact within a bucket and sliding windows are summed over buckets, so a count
    can lag by one bucket at the window's far edge. Increments are atomic (no lost updates
    between processes).
    """

    def hit(self, key: str, window_s: int, now: float) -> int:
        """Count one more event for `key` in the current fixed window; returns the count."""
        ...

    def count(self, series: Sequence[VelocitySeries], now: float) -> dict[tuple[str, int], int]:
        """Events per (key, window_s) over each sliding window ending at `now`."""
        ...

    def add(self, series: Sequence[VelocitySeries], now: float) -> None:
        """Count one event in the current bucket of each series."""
        ...

    def purge(self, now: float) -> int:
        """Delete buckets that no window can reach any more; returns how many."""
        ...


# ---------------------------------------------------------------- payment read model


@dataclass(frozen=True, slots=True)
class CreatedRange:
    """`created` filter in Unix seconds (Stripe's created[gt|gte|lt|lte])."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Cursor pagination, newest first: `starting_after` gives the page after that object,
    `ending_before` the page before it, both together the objects between them."""

    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    created: CreatedRange = CreatedRange()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    data: list[T]
    has_more: bool


class CursorNotFound(LookupError):
    """`starting_after` / `ending_before` names no object of this merchant."""

    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.param = param


class PaymentQueries(Protocol):
    """Lists of the merchant's charges, refunds, sessions and events: a read model.

    Eventually consistent: it shows what the projection has applied (`position()`), which
    trails the event store by the projection lag. Reads by id that must be fresh fold the
    event stream instead. Raises `CursorNotFound` for an unknown cursor.
    """

    def list_charges(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> Page[Charge]: ...

    def list_refunds(
        self, merchant_id: str, page: PageRequest, charge_id: str | None = None
    ) -> Page[Refund]: ...

    def list_sessions(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> Page[PaymentSession]: ...

    def list_events(
        self, merchant_id: str, page: PageRequest, types: Sequence[str] = ()
    ) -> Page[dict[str, Any]]:
        """Event objects (`event_object` form), newest first; `types` filters by type
        (a trailing `*` matches a prefix: `charge.*`)."""
        ...

    def get_event(self, merchant_id: str, event_id: str) -> dict[str, Any] | None: ...

    def refund_owner(self, refund_id: str) -> tuple[str, str | None] | None:
        """(charge id, merchant id) of a refund, or None if not projected yet."""
        ...

    def position(self) -> int:
        """The last event-store position applied."""
        ...


class PaymentProjection(PaymentQueries, Protocol):
    """The writable side of the read model (replaced by PaymentDB of noncde.readmodels)."""

    def apply(self, events: Sequence[RecordedEvent]) -> int:
        """Apply a batch (in position order) and advance the position, in one transaction.

        Idempotent and safe to race: events at or below the stored position are skipped,
        so two projector processes never apply an event twice. Returns how many were new.
        """
        ...


# ---------------------------------------------------------------- gateway


@dataclass(frozen=True, slots=True)
class CheckoutSessionRequest:
    session_id: str
    merchant_id: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CheckoutSessionCreated:
    psp_session_id: str
    url: str
    expires_at: datetime


class CheckoutGateway(Protocol):
    """The CDE gateway's checkout sessions (interfaces.md), called with the `api` identity.

    Idempotent by `session_id` at the gateway. Raises `DependencyUnavailable` when the
    gateway cannot be reached or fails, `InvalidRequest` when it refuses the request, and
    `InvalidState` when it refuses to expire a session that was already paid.
    """

    def create_checkout_session(
        self, request: CheckoutSessionRequest
    ) -> CheckoutSessionCreated: ...

    def expire_checkout_session(self, session_id: str) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- audit


class AuditTrail(Protocol):
    """The non-CDE audit log (audit.service.AuditLog): durable before `record` returns; raises
    `audit.domain.AuditUnavailable` when it cannot write (callers fail closed)."""

    def record(
        self,
        event_type: EventType | str,
        *,
        actor: Actor | str,
        outcome: Outcome | str,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> Any: ...

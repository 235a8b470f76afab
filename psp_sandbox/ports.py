"""psp_sandbox: the Protocols for everything outside the sandbox's use cases.

Outside both zones. The store keeps every object as Stripe-shaped JSON plus a private part
(never a card number: see `domain.CardFacts`); the webhook transport posts signed events; the
settlement sink writes the daily file; the clock gives business time (which admin tests may
shift) separately from real time (which signatures and retries always use).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from psp_sandbox.domain import SettlementRow


@dataclass(frozen=True, slots=True)
class StoredObject:
    id: str
    type: str
    created: int
    data: dict[str, Any]
    private: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    account: str
    key: str
    fingerprint: str
    state: str  # "in_progress" or "done"
    status: int | None
    body: bytes | None
    created: float


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    secret: str
    events: tuple[str, ...]  # ("*",) for every event type
    source: str  # "config" or "admin"

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: bytes
    state: str  # pending, held, delivered, dropped, failed
    attempts: int
    next_attempt_at: float
    created: float
    delivered_at: float | None
    last_status: int | None
    last_error: str | None


class SandboxStore(Protocol):
    """Durable state. Every method is atomic; `transaction()` groups several atomically
    (nested calls join the outer transaction). Lookups of unknown ids return None."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def insert(
        self,
        obj_type: str,
        obj_id: str,
        created: int,
        data: Mapping[str, Any],
        private: Mapping[str, Any] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        """Store a new object; `attrs` are exact-match filters (`payment_intent`,
        `metadata.reference`, `type`…) usable by `list_objects`."""

    def update(
        self,
        obj_id: str,
        data: Mapping[str, Any],
        private: Mapping[str, Any] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        """Replace an object's data (and private part and attrs when given)."""

    def get(self, obj_id: str) -> StoredObject | None: ...

    def list_objects(
        self,
        obj_type: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: Mapping[str, int] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> tuple[list[StoredObject], bool]:
        """Newest first, Stripe cursor pagination; returns (page, has_more)."""

    def objects_between(self, obj_type: str, start: int, end: int) -> list[StoredObject]:
        """Objects created in [start, end), oldest first."""

    def count(self, obj_type: str) -> int: ...

    # idempotency ---------------------------------------------------------------
    def idempotency_get(self, account: str, key: str) -> IdempotencyRecord | None: ...

    def idempotency_begin(self, account: str, key: str, fingerprint: str, now: float) -> bool:
        """Claim a key; False when it already exists (the caller then reads it)."""

    def idempotency_finish(self, account: str, key: str, status: int, body: bytes) -> None: ...

    def idempotency_forget(self, account: str, key: str) -> None: ...

    def idempotency_purge(self, older_than: float) -> int: ...

    # webhooks -----------------------------------------------------------------
    def replace_endpoints(self, source: str, endpoints: Sequence[WebhookEndpoint]) -> None: ...

    def endpoints(self) -> list[WebhookEndpoint]: ...

    def enqueue_delivery(
        self,
        event_id: str,
        endpoint: WebhookEndpoint,
        payload: bytes,
        due: float,
        state: str,
        now: float,
    ) -> int: ...

    def due_deliveries(self, now: float, limit: int, exclude: Sequence[int]) -> list[Delivery]:
        """Pending deliveries due by `now`, ordered by due time then insertion."""

    def next_due(self) -> float | None: ...

    def record_attempt(
        self,
        delivery_id: int,
        *,
        at: float,
        status: int | None,
        error: str | None,
        delivered: bool,
        next_attempt_at: float | None,
        give_up: bool,
    ) -> None: ...

    def held_deliveries(self) -> list[Delivery]: ...

    def set_delivery(self, delivery_id: int, *, state: str, next_attempt_at: float) -> None: ...

    def deliveries(self, event_id: str | None = None, limit: int = 100) -> list[Delivery]: ...

    def attempts(self, delivery_id: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class WebhookTransport(Protocol):
    """Posts one signed webhook. Returns the HTTP status; raises `OSError`-like
    `WebhookTransportError` when no answer came (refused, reset, timed out)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...

    async def aclose(self) -> None: ...


class WebhookTransportError(Exception):
    """No HTTP answer: the message says why (never the payload)."""


class SettlementSink(Protocol):
    """Writes one day's settlement file atomically (a reader never sees half a file)."""

    def write(self, day: date, rows: Sequence[SettlementRow]) -> str:
        """Returns the file's name."""

    def exists(self, day: date) -> bool: ...

    def files(self) -> Iterator[str]: ...


class Clock(Protocol):
    """Business time in unix seconds; may be shifted forward by the admin API."""

    def now(self) -> float: ...

"""noncde.workers (non-CDE): the Protocols for everything outside the job worker, the webhook
deliverer and reconciliation, with the guarantees each adapter keeps. The event store and the
job queue are the platform's (`noncde.platform.ports`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from noncde.api.domain import AuthorizeCharge, CancelCharge, CaptureCharge, ExecuteRefund
from noncde.platform.domain import RecordedEvent
from noncde.workers.domain.jobs import PaymentAnswer, RefundAnswer
from noncde.workers.domain.reconciliation import Alert, FeeLine, LedgerItem, LineType, Report
from noncde.workers.domain.webhooks import Attempt, AttemptResult, Delivery, Endpoint

# ---------------------------------------------------------------- job worker


class Gateway(Protocol):
    """The CDE gateway's payment API (interfaces.md), called with the `worker` identity.

    Every call is idempotent at the gateway by our reference (charge id, refund id): the
    gateway derives the PSP's Idempotency-Key from it, so repeating a call never moves money
    twice. Raises `GatewayUnavailable` when there is no usable answer (the call may have
    reached the PSP) and `GatewayRefused` for a 4xx refusal. Never logs or returns tokens.
    """

    def authorize(self, job: AuthorizeCharge) -> PaymentAnswer: ...

    def capture(self, job: CaptureCharge) -> PaymentAnswer: ...

    def cancel(self, job: CancelCharge) -> PaymentAnswer: ...

    def refund(self, job: ExecuteRefund, psp_reference: str | None = None) -> RefundAnswer:
        """`psp_reference` (the charge's PaymentIntent) lets the gateway link a payment made
        on the PSP's hosted page, which it knows by session, to our charge id."""
        ...

    def payment_status(self, charge_id: str) -> PaymentAnswer:
        """The PSP's current view of the charge; raises `PaymentNotFound` when the PSP has no
        payment for it (nothing was charged)."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- webhooks


class EndpointDirectory(Protocol):
    """The merchants' webhook endpoints with their signing secrets (the API's directory).

    May cache for a short time (a new or disabled endpoint takes effect within it). Raises
    `DirectoryUnavailable` when the directory cannot be read.
    """

    def endpoints(self, merchant_id: str) -> list[Endpoint]: ...

    def endpoint(self, endpoint_id: str) -> Endpoint | None: ...


class DeliveryStore(Protocol):
    """Webhook deliveries and their attempt log (WebhookDB).

    `fan_out` writes the deliveries of a batch of events and the new feed position in one
    transaction (at most one delivery per event and endpoint). `claim_due` leases due
    deliveries to one dispatcher (other processes skip them until the lease ends), so two
    dispatchers never send the same attempt. `record` appends the attempt to the log and sets
    the outcome in one transaction, only if the lease is still held.
    """

    def position(self) -> int: ...

    def fan_out(self, rows: Sequence[Mapping[str, Any]], position: int) -> int:
        """Insert deliveries (skipping existing event/endpoint pairs), move the position to
        `position`; returns how many were new."""
        ...

    def claim_due(
        self, now: float, limit: int, lease_s: float, exclude_endpoints: Sequence[str] = ()
    ) -> list[Delivery]:
        """Lease up to `limit` pending deliveries due at `now` for `lease_s` seconds, skipping
        endpoints in `exclude_endpoints` (already busy); oldest due first."""
        ...

    def release(self, delivery: Delivery, now: float) -> None:
        """Give a claimed, unsent delivery back (due again at once)."""
        ...

    def payload(self, delivery_id: int) -> str:
        """The event object (JSON) the delivery sends: fixed at fan-out, the same for every
        attempt and redelivery."""
        ...

    def record(
        self, delivery: Delivery, result: AttemptResult, now: float, next_attempt_at: float | None
    ) -> bool:
        """Log the attempt and schedule the next (or mark delivered/failed); False when the
        lease was lost (nothing written)."""
        ...

    def redeliver(self, event_id: str, endpoint_id: str | None, now: float) -> int:
        """Start a new attempt series now for the event's deliveries; returns how many."""
        ...

    def deliveries(
        self,
        *,
        event_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]: ...

    def attempts(self, delivery_id: int) -> list[Attempt]: ...

    def counts(self) -> dict[str, int]: ...


class WebhookSender(Protocol):
    """Sends one signed delivery. Never raises for the endpoint's failures: a timeout, a
    refused connection or a non-2xx status is an `AttemptResult`. Honors `timeout_s` for the
    whole attempt (connect + send + answer)."""

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> AttemptResult: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- reconciliation


class SettlementSource(Protocol):
    """Where the PSP's daily settlement files are (SFTP in production, a folder locally).

    `fetch` returns the file's bytes, or None when the day's file does not exist (yet).
    Raises `SettlementUnavailable` when the source cannot be reached or refuses us (a host key
    that does not match the pinned one is a refusal, never a prompt).
    """

    def fetch(self, day: date) -> bytes | None: ...

    def describe(self) -> str:
        """Where files come from, without credentials (for reports and logs)."""
        ...


class LedgerBook(Protocol):
    """The ledger as reconciliation sees it (LedgerDB through noncde.readmodels)."""

    def items_for(
        self, references: Sequence[tuple[LineType, str]]
    ) -> dict[tuple[LineType, str], list[LedgerItem]]:
        """Captures and refunds carrying these PSP references, net of reversals."""
        ...

    def items_between(self, start: datetime, end: datetime) -> list[LedgerItem]:
        """Captures and refunds posted in [start, end), net of reversals."""
        ...

    def record_fees(self, day: date, fees: Sequence[FeeLine]) -> int:
        """Post fee lines once (by balance transaction); returns how many were new."""
        ...

    def lag_events(self) -> int:
        """Events of the event store the ledger has not posted yet."""
        ...

    def catch_up(self) -> int:
        """Post everything the event store holds now; returns the events read."""
        ...


class ReportStore(Protocol):
    """Reconciliation reports (JSON, CSV of findings, human summary), one folder per day."""

    def write(self, report: Report) -> str:
        """Write (replace) the day's report; returns where it is."""
        ...

    def read(self, day: date) -> dict[str, Any] | None: ...

    def days(self) -> list[date]: ...


class AlertSink(Protocol):
    """Where mismatch alerts go (log + file by default; SNS in production). `raise_alert`
    is idempotent by `alert.fingerprint`: the same findings alert once."""

    def raise_alert(self, alert: Alert) -> bool:
        """Returns False when this fingerprint was alerted before (nothing sent)."""
        ...


class AuditTrail(Protocol):
    """The non-CDE audit log (audit.service.AuditLog): durable before `record` returns; raises
    `audit.domain.AuditUnavailable` when it cannot write (callers fail closed)."""

    def record(
        self,
        event_type: str,
        *,
        actor: Any,
        outcome: str,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> Any: ...


class EventFeed(Protocol):
    """What the webhook fan-out reads: the platform's `EventReader.read_all`."""

    def read_all(
        self, from_position: int = 1, limit: int = 500, *, merchant_id: str | None = None
    ) -> list[RecordedEvent]: ...

    def head_position(self) -> int: ...

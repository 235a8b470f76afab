"""noncde.dashboard (non-CDE): the Protocols for everything outside the dashboard's use cases.

Staff accounts, sessions and refund requests live in the dashboard's own store; secrets go
through a password hasher (argon2id), a TOTP factor and a sealing box; people may also sign in
through an OIDC provider. Everything else is read from the other components (PaymentDB and
LedgerDB of noncde.readmodels, the platform's event store and dead letters, the audit log)
or changed through the merchant API's commands. No port ever carries card data: tokens are
not even read into a view, and cards are brand, last four and expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from audit.domain import AuditRecord
from audit.service import ExportResult, SearchQuery, VerificationReport
from noncde.api.domain import Charge, EventLike
from noncde.dashboard.domain import (
    LockoutPolicy,
    LoginGuard,
    RefundRequest,
    RefundRequestStatus,
    Session,
    StaffUser,
)
from noncde.dashboard.domain.reconciliation import Resolution, finding_key
from noncde.dashboard.domain.views import ChargeRow, PaymentQuery

Clock = Callable[[], datetime]

# ---------------------------------------------------------------- the dashboard's own store


class StaffStore(Protocol):
    """Staff accounts, login guards, sessions, refund requests and OIDC login states.

    Every write is one transaction; reads see committed data, so a disabled account or a
    deleted session stops working at the next request in every dashboard process. The
    compare-and-set methods return False (and change nothing) when the row moved on.
    """

    # accounts
    def add_user(self, user: StaffUser) -> None:
        """Store a new account; raises `Conflict` when the user name is taken (8.2.1)."""
        ...

    def get_user(self, user_id: str) -> StaffUser | None: ...

    def find_user(self, username: str) -> StaffUser | None: ...

    def list_users(self) -> list[StaffUser]: ...

    def save_user(self, user: StaffUser) -> None:
        """Replace the account's stored fields (by id); raises `NotFound` if it is gone."""
        ...

    def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as the last TOTP step used, only if it is newer than the stored one
        (atomic: of two logins racing with one code, one wins)."""
        ...

    # lockout (PCI DSS 8.3.4)
    def guard(self, key: str) -> LoginGuard | None: ...

    def record_failure(self, key: str, now: datetime, policy: LockoutPolicy) -> LoginGuard:
        """Count one failure for `key` atomically and return the guard after it."""
        ...

    def clear_guard(self, key: str) -> None: ...

    # sessions (only token digests are stored)
    def add_session(self, session: Session) -> None: ...

    def get_session(self, key: str) -> Session | None: ...

    def touch_session(self, key: str, now: datetime) -> None: ...

    def replace_session(self, old_key: str, new: Session) -> bool:
        """Delete `old_key` and store `new` in one transaction; False if `old_key` was gone
        (the second of two racing code submissions loses)."""
        ...

    def delete_session(self, key: str) -> None: ...

    def mark_mfa(self, key: str, at: datetime) -> None:
        """Record that the session's second factor was verified at `at` (step-up)."""
        ...

    def delete_user_sessions(self, user_id: str, keep: str | None = None) -> int:
        """End every session of the account (but `keep`); returns how many ended."""
        ...

    def purge_sessions(self, last_seen_before: datetime) -> int: ...

    # refund requests (four eyes)
    def add_refund_request(self, request: RefundRequest) -> None: ...

    def get_refund_request(self, request_id: str) -> RefundRequest | None: ...

    def list_refund_requests(
        self,
        *,
        status: RefundRequestStatus | None = None,
        charge_id: str | None = None,
        limit: int = 100,
    ) -> list[RefundRequest]:
        """Newest first."""
        ...

    def update_refund_request(self, request: RefundRequest, expected: RefundRequestStatus) -> bool:
        """Store `request` only if the stored one is still in `expected` status."""
        ...

    # reconciliation resolutions (what finance recorded per mismatch)
    def set_resolution(self, resolution: Resolution) -> None:
        """Store (replace) the resolution of one mismatch of one day."""
        ...

    def resolutions(self, day: date) -> dict[str, Resolution]:
        """The day's resolutions by mismatch key."""
        ...

    # OIDC login states (one-time)
    def put_login_state(self, key: str, value: Mapping[str, str], created: datetime) -> None: ...

    def take_login_state(self, key: str, not_before: datetime) -> dict[str, str] | None:
        """The state stored under `key` (deleted by this read), if created after
        `not_before`; None otherwise."""
        ...

    def close(self) -> None: ...


class PasswordHasher(Protocol):
    """One-way password hashing (argon2id; PCI DSS 8.3.2). Never raises on a wrong password."""

    def hash(self, password: str) -> str: ...

    def verify(self, stored: str, password: str) -> bool: ...

    def needs_rehash(self, stored: str) -> bool: ...


class TotpFactor(Protocol):
    """RFC 6238 time-based one-time passwords (6 digits, 30 s, SHA-1 as authenticator apps
    implement it: an HMAC construction, not a bare hash of data)."""

    def new_secret(self) -> str: ...

    def provisioning_uri(self, secret: str, account: str, issuer: str) -> str: ...

    def matching_step(self, secret: str, code: str, steps: Sequence[int]) -> int | None:
        """The first of `steps` whose code equals `code` (constant-time compare), or None."""
        ...


class SecretBox(Protocol):
    """Authenticated encryption for stored TOTP seeds (PCI DSS 8.3.2), bound to a context."""

    def seal(self, plaintext: str, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> str:
        """The secret; raises `ValueError` when tampered with or bound to another context."""
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


# ---------------------------------------------------------------- OIDC


@dataclass(frozen=True, slots=True)
class OidcStart:
    """Where to send the browser, and what to keep until it comes back (never in a cookie)."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """A verified ID token's subject, the claim that names the staff account, and whether the
    provider says it used more than one factor (`amr`)."""

    subject: str
    username: str
    mfa: bool


class OidcProvider(Protocol):
    """An OpenID Connect provider (Cognito in production): authorization code flow with PKCE.

    `finish` exchanges the code and verifies the ID token (signature against the provider's
    keys, issuer, audience, expiry, nonce); it raises `AuthenticationFailed` otherwise.
    """

    def begin(self, redirect_uri: str) -> OidcStart: ...

    def finish(
        self, code: str, *, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity: ...


# ---------------------------------------------------------------- reads


class PaymentReads(Protocol):
    """PaymentDB of noncde.readmodels (eventually consistent: it trails the event store by the
    projection lag) and the charge streams of the platform's event store (always current)."""

    def search(self, query: PaymentQuery) -> list[ChargeRow]:
        """Charges matching every criterion, newest first, at most `query.limit`."""
        ...

    def charge(self, charge_id: str) -> Charge | None:
        """The charge folded from its event stream (current), or None."""
        ...

    def events(self, charge_id: str) -> list[EventLike]:
        """The charge stream's events in version order (the timeline)."""
        ...


@dataclass(frozen=True, slots=True)
class DayStats:
    """One day of charges in one currency for the finance charts."""

    day: date
    currency: str
    count: int
    succeeded: int
    failed: int
    volume: int  # captured amount, minor units

    @property
    def approval_rate(self) -> float | None:
        decided = self.succeeded + self.failed
        return self.succeeded / decided if decided else None


@dataclass(frozen=True, slots=True)
class BalanceRow:
    account: str
    currency: str
    debits: int
    credits: int

    @property
    def balance(self) -> int:
        return self.credits - self.debits


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    name: str
    position: int
    head: int

    @property
    def events_behind(self) -> int:
        return max(0, self.head - self.position)


@dataclass(frozen=True, slots=True)
class DeadJob:
    job_id: str
    type: str
    attempts: int
    reason: str | None
    dead_at: datetime | None
    charge_id: str | None = None
    merchant_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReconciliationMismatch:
    kind: str
    reference: str | None
    expected: str | None
    actual: str | None
    resolution: str
    details: Mapping[str, Any] = field(default_factory=dict)
    resolved_by: str | None = None
    note: str | None = None

    @property
    def key(self) -> str:
        return finding_key(self.kind, self.reference)


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    day: date
    status: str
    matched: int
    mismatches: tuple[ReconciliationMismatch, ...]
    created_at: datetime | None = None


class FinanceReads(Protocol):
    """LedgerDB balances and the charge figures behind the charts."""

    def balances(self) -> list[BalanceRow]:
        """Every (account, currency) with its debits and credits, accounts sorted."""
        ...

    def daily_stats(self, start: date, end: date) -> list[DayStats]:
        """Per day and currency in [start, end], from PaymentDB (by creation day, UTC)."""
        ...

    def reconciliation_reports(self, limit: int = 30) -> list[ReconciliationReport]:
        """The newest reports first ([] when reconciliation has not run)."""
        ...


class OperationsReads(Protocol):
    """The platform's dead letters (with their reasons), replay, and projection positions."""

    def dead_jobs(self, limit: int = 200) -> list[DeadJob]: ...

    def replay(self, job_ids: Sequence[str]) -> int:
        """Put these dead jobs back on the queue with fresh attempts; returns how many."""
        ...

    def projection_lags(self) -> list[ProjectionLag]: ...


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One webhook delivery (an event to one endpoint) and its latest attempt."""

    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    status: str
    attempts: int
    series: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None


class WebhookLog(Protocol):
    """The webhook deliverer's log (WebhookDB of noncde.workers) and its redelivery command."""

    def deliveries(self, endpoint_ids: Sequence[str], limit: int = 50) -> list[DeliveryRow]:
        """Deliveries to these endpoints, newest first."""
        ...

    def redeliver(self, event_id: str, endpoint_id: str) -> int:
        """Start a new attempt series now; returns how many deliveries it restarted."""
        ...

    def close(self) -> None: ...


class AuditViewer(Protocol):
    """Read access to the audit logs (audit.service.AuditReader). Callers record every use in
    the audit log before showing anything (PCI DSS 10.2.1.3)."""

    @property
    def zones(self) -> Sequence[str]: ...

    def search(self, query: SearchQuery) -> list[AuditRecord]: ...

    def verify(self) -> VerificationReport: ...

    def export(
        self, out: Path, *, time_from: str, time_to: str, exported_by: str
    ) -> ExportResult: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- writes (the API's commands)


class ApiCommands(Protocol):
    """The merchant API's staff commands, called with the dashboard's service identity and the
    staff member's name (the API audits each change under that name too).

    Errors: `NotFound` (unknown object), `InvalidInput`/`Conflict` (refused by the API; the
    message is the API's), `Unavailable` (no answer: the outcome is unknown, and the command
    may be sent again, since refunds carry an Idempotency-Key).
    """

    def refund(self, request: RefundRequest, *, actor: str, request_id: str | None) -> str:
        """Create the refund of an approved request; returns the refund id (`re_…`)."""
        ...

    def merchants(self) -> list[dict[str, Any]]: ...

    def merchant(self, merchant_id: str) -> dict[str, Any]:
        """Details, keys (hints only), the raw_card_data capability, webhook endpoints."""
        ...

    def rotate_key(
        self, key_id: str, *, overlap_hours: float, actor: str, request_id: str | None
    ) -> dict[str, Any]:
        """A new key replaces `key_id`, which keeps working for the overlap; the answer holds
        the new key's value once (shown to the admin once, never stored here)."""
        ...

    def revoke_key(
        self, key_id: str, *, reason: str, actor: str, request_id: str | None
    ) -> dict[str, Any]: ...

    def set_raw_card(
        self,
        merchant_id: str,
        *,
        granted: bool,
        attestation_expires_on: date | None,
        reason: str,
        actor: str,
        request_id: str | None,
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...

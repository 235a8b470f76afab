"""noncde.readmodels (non-CDE): the Protocols of the read side: a projection the projector feeds
(PaymentDB, LedgerDB), and the ledger's queries. The event store itself is the platform's
`EventReader` (noncde.platform.ports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from noncde.platform.domain import RecordedEvent
from noncde.readmodels.domain.ledger import AccountBalance, StoredTransaction


class Projection(Protocol):
    """A database built from the event store in position order.

    Guarantees: `apply` writes a batch's rows and the new position in ONE transaction, skips
    events at or below the stored position (re-delivery and concurrent projector processes
    change nothing), and given the same events always produces the same contents (no clock,
    no random ids), so a rebuild from zero is identical (`digest`). Raises
    `noncde.platform.domain.BackendUnavailable` when the database cannot be reached.
    """

    name: str

    def position(self) -> int:
        """The last event-store position applied (0: nothing yet)."""
        ...

    def apply(self, events: Sequence[RecordedEvent]) -> int:
        """Apply a batch in position order; returns how many events were new."""
        ...

    def digest(self) -> dict[str, str]:
        """A content hash per table (SHA-256 over rows in key order) to compare two builds."""
        ...

    def close(self) -> None: ...


class LedgerQueries(Protocol):
    """Reads of LedgerDB. Amounts are signed minor units; `at` is exclusive (entries posted
    strictly before it); times are the source events' recorded times (UTC)."""

    def account_balances(
        self, *, at: datetime | None = None, prefix: str | None = None
    ) -> list[AccountBalance]:
        """Debits and credits per (account, currency), accounts sorted; `prefix` filters."""
        ...

    def transaction_count(self, *, at: datetime | None = None) -> int: ...

    def transaction(self, seq: int) -> StoredTransaction | None: ...

    def transactions_for_references(self, psp_references: Sequence[str]) -> list[StoredTransaction]:
        """Capture, refund and fee transactions (and their reversals) carrying these PSP
        references."""
        ...

    def transactions_between(
        self, start: datetime, end: datetime, kinds: Sequence[str] = ()
    ) -> list[StoredTransaction]:
        """Transactions posted in [start, end), optionally of some kinds, in seq order."""
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

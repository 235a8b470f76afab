"""audit (both zones): the audit error family. Messages never carry card data or secrets."""

from __future__ import annotations

from collections.abc import Sequence


class AuditError(Exception):
    """Base of every audit error."""


class AuditUnavailable(AuditError):
    """The audit sink cannot take or give records right now.

    Raised to callers that must be audited: they refuse to proceed rather than run unaudited
    (fail closed; PCI DSS 10.2.1 and 10.7.2). Nothing is known to have been written.
    """


class InvalidAuditRecord(AuditError, ValueError):
    """The caller passed a value a record cannot hold (unknown event type, non-JSON details...)."""


class CardDataInAuditDetails(InvalidAuditRecord):
    """A record field holds card data; nothing was written (PCI DSS 3.3.1, 3.4.1, 10.2.2).

    `paths` name the offending fields (`$.details.note`); the values are never repeated.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = tuple(paths)
        super().__init__("card data in audit record fields: " + ", ".join(self.paths))


class AuditIntegrityError(AuditUnavailable):
    """The stored log is not as the writer left it (a vanished file, an unreadable last record).

    A writer raises this instead of starting a new chain over someone else's deletion; it is
    an `AuditUnavailable`, so callers fail closed until a person has looked.
    """

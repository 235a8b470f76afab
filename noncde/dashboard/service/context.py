"""noncde.dashboard (non-CDE): who is acting and from where, as every use case receives it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from audit.domain import Actor, ActorType
from fincore.cards import contains_card_number


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Origin:
    """The request behind a use case: the caller's address and the request id (for the
    audit record's origin and correlation, PCI DSS 10.2.2)."""

    ip: str | None = None
    request_id: str | None = None


CLI = Origin()


def staff_actor(username: str) -> Actor:
    """An individual staff member as the audit log's actor (PCI DSS 8.2.1: no shared ids)."""
    return Actor(username, ActorType.USER)


def anonymous_actor() -> Actor:
    return Actor("anonymous", ActorType.ANONYMOUS)


def shown_name(value: str) -> str | None:
    """A submitted user name as it may be written to the audit log: None when it could be
    anything but a name (a card number typed in the wrong field must never be recorded)."""
    name = value.strip().lower()[:64]
    if not name or contains_card_number(name) or not name.isprintable():
        return None
    return name

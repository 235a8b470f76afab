"""Stored-event stand-ins for folding tests: the shape of noncde.platform's RecordedEvent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from noncde.api.domain import DomainEvent

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    id: str
    type: str
    data: dict[str, Any]
    version: int
    recorded_at: datetime
    merchant_id: str | None = "mer_testmerchant0001"
    correlation_id: str | None = None
    position: int = 0
    stream: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def stored(events: Sequence[DomainEvent], start: int = 1) -> list[Stored]:
    """The events as a stream would hold them: versions from `start`, a second apart."""
    return [
        Stored(
            id=f"evt_test{start + i}",
            type=event.type,
            data=event.to_data(),
            version=start + i,
            recorded_at=T0 + timedelta(seconds=start + i),
            position=start + i,
        )
        for i, event in enumerate(events)
    ]

"""noncde.api (non-CDE), published language: timestamps. Events carry RFC 3339 UTC strings
(`2025-01-31T12:00:00.123456Z`); API objects carry Unix seconds, like Stripe."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """`moment` as RFC 3339 in UTC with a `Z` suffix (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: FinCore timestamps are timezone-aware UTC")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """The aware UTC datetime of an RFC 3339 string (`Z` or an offset)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without a timezone")
    return moment.astimezone(UTC)


def unix(moment: datetime) -> int:
    """Whole Unix seconds (the `created` field of API objects)."""
    return int(moment.timestamp())


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)

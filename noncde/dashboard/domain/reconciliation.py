"""noncde.dashboard (non-CDE): the resolution status finance records for each reconciliation
mismatch; pure. Reports themselves are the workers' (one per day); a mismatch is identified
by its kind and PSP reference within its day, so a re-run that finds it again keeps its
status, and one that no longer finds it shows it no more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from noncde.dashboard.domain.errors import InvalidInput

MAX_NOTE = 500


class ResolutionStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"


def finding_key(kind: str, reference: str | None) -> str:
    return f"{kind}:{reference or '-'}"[:200]


@dataclass(frozen=True, slots=True)
class Resolution:
    day: date
    key: str
    status: ResolutionStatus
    note: str
    by: str
    at: datetime

    @classmethod
    def new(cls, day: date, key: str, status: str, note: str, by: str, at: datetime) -> Resolution:
        try:
            chosen = ResolutionStatus(status)
        except ValueError:
            raise InvalidInput("Choose open, investigating or resolved.", field="status") from None
        text = note.strip()
        if chosen is ResolutionStatus.RESOLVED and not text:
            raise InvalidInput("Say how it was resolved.", field="note")
        return cls(day, key, chosen, text[:MAX_NOTE], by, at)

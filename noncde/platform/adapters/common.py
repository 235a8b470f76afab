"""Non-CDE platform adapters: pieces shared by several adapters (position-based subscriptions)."""

from __future__ import annotations

from typing import Protocol

from noncde.platform.domain import InvalidArgument, RecordedEvent, check_ref
from noncde.platform.ports import EventReader


class CheckpointStore(Protocol):
    """Where a named subscriber's position is kept (a table, a dict)."""

    def load_checkpoint(self, name: str) -> int: ...

    def save_checkpoint(self, name: str, position: int) -> None: ...


class PositionSubscription:
    """A subscription over a store that has a global position: fetch pages of `read_all`,
    commit the last fetched position. At least once: a crash before `commit` re-delivers."""

    def __init__(self, name: str, reader: EventReader, checkpoints: CheckpointStore) -> None:
        if not name or check_ref("subscriber name", name) is None:
            raise InvalidArgument("a subscription needs a name")
        self.name = name
        self._reader = reader
        self._checkpoints = checkpoints
        self._cursor: int | None = None

    def fetch(self, limit: int = 500) -> list[RecordedEvent]:
        if self._cursor is None:
            self._cursor = self._checkpoints.load_checkpoint(self.name)
        events = self._reader.read_all(self._cursor + 1, limit)
        if events:
            self._cursor = events[-1].position
        return events

    def commit(self) -> None:
        if self._cursor is not None:
            self._checkpoints.save_checkpoint(self.name, self._cursor)

    def rewind(self) -> None:
        self._cursor = None

    @property
    def position(self) -> int:
        """The position fetched so far (the stored checkpoint before the first fetch)."""
        if self._cursor is None:
            return self._checkpoints.load_checkpoint(self.name)
        return self._cursor

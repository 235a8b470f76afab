"""audit adapter: an in-process audit sink (`memory://<name>`), for tests, demos and bundles.

Not durable and not shared between processes: production refuses it (bootstrap). Several
writers and readers in one process share a store by name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from audit.domain import ChainTail, genesis_hash, line_digest
from audit.ports import LineBuilder


@dataclass
class MemoryStore:
    """The lines of every stream of one zone, kept in memory."""

    records: dict[str, list[bytes]] = field(default_factory=dict)
    checkpoints: dict[str, list[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_STORES: dict[tuple[str, str], MemoryStore] = {}
_STORES_LOCK = threading.Lock()


def named_store(name: str, zone: str) -> MemoryStore:
    """The process-wide store called `name` for `zone` (created on first use)."""
    with _STORES_LOCK:
        return _STORES.setdefault((name, zone), MemoryStore())


class MemoryAuditSink:
    """Keeps stored lines in memory; one stream per zone, like the file sink."""

    def __init__(self, zone: str, store: MemoryStore | None = None) -> None:
        self._zone = zone
        self._store = store or MemoryStore()

    @property
    def zone(self) -> str:
        return self._zone

    @property
    def writer_stream(self) -> str:
        return self._zone

    def append(self, build: LineBuilder) -> ChainTail:
        with self._store.lock:
            lines = self._store.records.setdefault(self._zone, [])
            if lines:
                last = json.loads(lines[-1])
                tail = ChainTail(int(last["seq"]), str(last["hash"]))
            else:
                tail = ChainTail(0, genesis_hash(self._zone, self._zone))
            new = list(build(tail))
            lines.extend(new)
            if not new:
                return tail
            return ChainTail(tail.seq + len(new), line_digest(new[-1]))

    def load(self, stream: str, lines: list[bytes], checkpoints: list[bytes]) -> None:
        """Put stored lines as they are (verifying an evidence bundle or a copied log)."""
        with self._store.lock:
            self._store.records[stream] = list(lines)
            self._store.checkpoints[stream] = list(checkpoints)

    def sync(self) -> None:
        return None

    def put_checkpoint(self, line: bytes) -> None:
        with self._store.lock:
            self._store.checkpoints.setdefault(self._zone, []).append(line)

    def streams(self) -> list[str]:
        with self._store.lock:
            return sorted(
                s
                for s in {*self._store.records, *self._store.checkpoints}
                if self._store.records.get(s) or self._store.checkpoints.get(s)
            )

    def read(self, stream: str) -> Iterator[bytes]:
        with self._store.lock:
            lines = list(self._store.records.get(stream, []))
        return iter(lines)

    def checkpoints(self, stream: str) -> list[bytes]:
        with self._store.lock:
            return list(self._store.checkpoints.get(stream, []))

    def close(self) -> None:
        return None

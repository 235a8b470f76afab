"""Non-CDE platform adapters, AWS Kinesis: the event feed at scale (`kinesis://<stream>`).

Kinesis cannot check an expected version, so it is not the record: events are appended to the
SQL event store (concurrency, streams, `read_all`) and that table doubles as the outbox. The
relay (`KinesisEventRelay`) publishes committed events in position order after commit; the
subscriptions fan out from Kinesis.

Partitioning: an event stream maps to one of `partitions` buckets (CRC-32 of its name), and a
bucket to one Kinesis partition key, so each event stream stays in order on one shard. The
relay packs a bucket's consecutive events into one record (up to ~900 kB), and sends a
bucket's records strictly one after another. A relay crash after a put but before it stores
its checkpoint re-sends those events; a subscriber drops any event whose position is not above
the last one it took from that bucket, so the duplicate is never delivered. With one
partition the feed is in global position order; with more, in order per event stream only.
Resharding (split/merge) is not handled by the subscriber.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from noncde.platform.adapters.aws import aws_client, aws_errors, url_name, url_query, wants_create
from noncde.platform.adapters.sql.events import SqlEventStore
from noncde.platform.domain import (
    InvalidArgument,
    NewEvent,
    RecordedEvent,
    check_ref,
    dump_json,
    load_json,
)

MAX_RECORD_BYTES = 900_000


def bucket_of(stream: str, partitions: int) -> int:
    """The feed bucket of an event stream: stable across processes (not Python's hash)."""
    return zlib.crc32(stream.encode()) % partitions


def ensure_stream(client: Any, name: str, shards: int) -> None:
    """Create the Kinesis stream if it is missing and wait until it is active (dev and tests)."""
    with aws_errors():
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_stream(StreamName=name, ShardCount=shards)
        client.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
        )


class KinesisEventStore:
    """EventStore whose record is SQL and whose subscriptions read the Kinesis feed."""

    def __init__(
        self, record: SqlEventStore, client: Any, stream_name: str, partitions: int = 1
    ) -> None:
        if partitions < 1:
            raise InvalidArgument("partitions must be >= 1")
        self.record = record
        self.client = client
        self.stream_name = stream_name
        self.partitions = partitions

    @classmethod
    def from_url(cls, url: str, record: SqlEventStore) -> KinesisEventStore:
        """`kinesis://<stream>[?partitions=1][&shards=1][&create=1][&region=…][&endpoint=…]`."""
        client = aws_client("kinesis", url)
        name = url_name(url)
        partitions = int(url_query(url, "partitions", "1") or "1")
        if wants_create(url):
            ensure_stream(client, name, int(url_query(url, "shards", "1") or "1"))
        return cls(record, client, name, partitions)

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        return self.record.append(stream, events, expected_version)

    def read_stream(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        return self.record.read_stream(stream, from_version, limit)

    def read_all(
        self, from_position: int = 1, limit: int = 500, *, merchant_id: str | None = None
    ) -> list[RecordedEvent]:
        return self.record.read_all(from_position, limit, merchant_id=merchant_id)

    def stream_version(self, stream: str) -> int:
        return self.record.stream_version(stream)

    def head_position(self) -> int:
        return self.record.head_position()

    def subscription(self, name: str) -> KinesisSubscription:
        return KinesisSubscription(self, name)

    def relay(self) -> KinesisEventRelay:
        return KinesisEventRelay(self)

    def ping(self) -> bool:
        try:
            with aws_errors():
                self.client.describe_stream_summary(StreamName=self.stream_name)
            return True
        except Exception:  # noqa: BLE001 - readiness: any failure is "not ready"
            return False


class KinesisEventRelay:
    """Publishes committed events (position order) to Kinesis; checkpoint in the SQL record."""

    def __init__(self, store: KinesisEventStore) -> None:
        self.store = store
        self.name = f"kinesis:{store.stream_name}"
        self._checkpoint = f"relay:kinesis:{store.stream_name}"
        self._last_sequence: dict[int, str] = {}

    def run_once(self, limit: int = 500) -> int:
        record = self.store.record
        after = record.load_checkpoint(self._checkpoint)
        events = record.read_all(after + 1, limit)
        if not events:
            return 0
        buckets: dict[int, list[RecordedEvent]] = {}
        for event in events:
            buckets.setdefault(bucket_of(event.stream, self.store.partitions), []).append(event)
        for bucket, bucket_events in buckets.items():
            for data in _pack(bucket, bucket_events):
                self._put(bucket, data)
        record.save_checkpoint(self._checkpoint, events[-1].position)
        return len(events)

    def _put(self, bucket: int, data: bytes) -> None:
        request: dict[str, Any] = {
            "StreamName": self.store.stream_name,
            "Data": data,
            "PartitionKey": f"fincore-events-{bucket}",
        }
        previous = self._last_sequence.get(bucket)
        if previous is not None:
            request["SequenceNumberForOrdering"] = previous
        with aws_errors():
            answer = self.store.client.put_record(**request)
        self._last_sequence[bucket] = answer["SequenceNumber"]

    def pending(self) -> int:
        """Events committed but not yet published."""
        record = self.store.record
        return record.head_position() - record.load_checkpoint(self._checkpoint)


def _pack(bucket: int, events: list[RecordedEvent]) -> list[bytes]:
    """Kinesis record payloads for one bucket's events, each under MAX_RECORD_BYTES."""
    payloads: list[bytes] = []
    chunk: list[str] = []
    size = 0
    for event in events:
        wire = dump_json(event.to_wire())
        if chunk and size + len(wire) > MAX_RECORD_BYTES:
            payloads.append(_record(bucket, chunk))
            chunk, size = [], 0
        chunk.append(wire)
        size += len(wire) + 1
    if chunk:
        payloads.append(_record(bucket, chunk))
    return payloads


def _record(bucket: int, wires: list[str]) -> bytes:
    return f'{{"v":1,"b":{bucket},"events":[{",".join(wires)}]}}'.encode()


@dataclass
class _Item:
    shard: str
    sequence: str
    event: RecordedEvent | None
    bucket: int
    last_of_record: bool


@dataclass
class _FeedState:
    shards: dict[str, str] = field(default_factory=dict)
    buckets: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return dump_json(
            {"shards": self.shards, "buckets": {str(k): v for k, v in self.buckets.items()}}
        )

    @classmethod
    def from_json(cls, text: str | None) -> _FeedState:
        if not text:
            return cls()
        raw = load_json(text)
        return cls(dict(raw["shards"]), {int(k): int(v) for k, v in raw["buckets"].items()})


class KinesisSubscription:
    """A named Kinesis reader: per-shard sequence numbers and per-bucket positions are its
    checkpoint (kept in the SQL record's checkpoint table)."""

    def __init__(self, store: KinesisEventStore, name: str) -> None:
        check_ref("subscriber name", name)
        self.name = name
        self._store = store
        self._key = f"kinesis:{store.stream_name}:{name}"
        self._committed: _FeedState | None = None
        self._delivered = _FeedState()
        self._decoded: dict[int, int] = {}
        self._iterators: dict[str, str | None] = {}
        self._pending: deque[_Item] = deque()

    def _load(self) -> _FeedState:
        if self._committed is None:
            self._committed = _FeedState.from_json(self._store.record.load_state(self._key))
            self._delivered = _FeedState(
                dict(self._committed.shards), dict(self._committed.buckets)
            )
            self._decoded = dict(self._committed.buckets)
            self._iterators = {}
            self._pending.clear()
        return self._committed

    def fetch(self, limit: int = 500) -> list[RecordedEvent]:
        self._load()
        if not self._pending:
            self._refill(limit)
        out: list[RecordedEvent] = []
        while self._pending and len(out) < limit:
            item = self._pending.popleft()
            if item.event is not None:
                out.append(item.event)
                self._delivered.buckets[item.bucket] = item.event.position
            if item.last_of_record:
                self._delivered.shards[item.shard] = item.sequence
        return out

    def _refill(self, limit: int) -> None:
        client = self._store.client
        with aws_errors():
            if not self._iterators:
                shards = client.list_shards(StreamName=self._store.stream_name)["Shards"]
                for shard in shards:
                    shard_id = shard["ShardId"]
                    self._iterators[shard_id] = self._iterator(shard_id, self._committed)
            for shard_id, iterator in list(self._iterators.items()):
                if iterator is None:
                    continue
                try:
                    answer = client.get_records(
                        ShardIterator=iterator, Limit=max(1, min(limit, 10_000))
                    )
                except client.exceptions.ExpiredIteratorException:
                    # Iterators live 5 minutes. Nothing is pending here, so what was delivered
                    # is exactly what was read: resume after the last delivered record.
                    answer = client.get_records(
                        ShardIterator=self._iterator(shard_id, self._delivered),
                        Limit=max(1, min(limit, 10_000)),
                    )
                self._iterators[shard_id] = answer.get("NextShardIterator")
                for record in answer.get("Records", []):
                    self._decode(shard_id, record)

    def _iterator(self, shard_id: str, state: _FeedState | None) -> str:
        request: dict[str, Any] = {"StreamName": self._store.stream_name, "ShardId": shard_id}
        sequence = None if state is None else state.shards.get(shard_id)
        if sequence is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=sequence
            )
        return str(self._store.client.get_shard_iterator(**request)["ShardIterator"])

    def _decode(self, shard_id: str, record: dict[str, Any]) -> None:
        payload = load_json(record["Data"])
        bucket = int(payload["b"])
        sequence = record["SequenceNumber"]
        fresh = []
        for wire in payload["events"]:
            event = RecordedEvent.from_wire(wire)
            if event.position > self._decoded.get(bucket, 0):
                self._decoded[bucket] = event.position
                fresh.append(event)
        if not fresh:
            # A relay duplicate (or an empty record): nothing to deliver, but the shard moves on.
            self._pending.append(_Item(shard_id, sequence, None, bucket, True))
            return
        for index, event in enumerate(fresh):
            self._pending.append(_Item(shard_id, sequence, event, bucket, index == len(fresh) - 1))

    def commit(self) -> None:
        self._load()
        state = _FeedState(dict(self._delivered.shards), dict(self._delivered.buckets))
        position = max(state.buckets.values(), default=0)
        self._store.record.save_checkpoint(self._key, position, state.to_json())
        self._committed = state

    def rewind(self) -> None:
        self._committed = None
        self._load()

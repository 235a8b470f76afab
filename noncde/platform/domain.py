"""Non-CDE platform: the values and errors of the durable backbone (events, jobs, idempotency
records, rule sets); pure, no I/O.

Everything here is token-only: `refuse_card_data` is the guard every store calls before it
writes, so no non-CDE store can ever hold a card number (PCI DSS 3.2.1, 3.3.1; DESIGN.md 1.2).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from fincore.cards import find_card_data, mask_card_numbers
from fincore.ids import derived_id, random_id

# Seconds since the epoch (UTC). Injected into every adapter so tests can move time.
Clock = Callable[[], float]

JSON = Mapping[str, Any]

MAX_NAME = 200
MAX_ERROR_TEXT = 2000
# SQS caps a visibility timeout (and so any lease, deferral or retry delay) at 12 hours; the
# contract is the same for every adapter so that no caller depends on a longer one.
MAX_DELAY_S = 43_200
MIN_IDEMPOTENCY_RETENTION_S = 24 * 3600

_STREAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")
_JOB_TYPE = re.compile(r"^[a-z][a-z0-9_]*(?:[.:][a-z0-9_]+)*$")
_IDEM_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_REF = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


# ---------------------------------------------------------------- errors


class PlatformError(Exception):
    """Base of every error the platform ports raise. Messages never carry stored values."""


class InvalidArgument(PlatformError, ValueError):
    """A caller passed a value the contract does not allow (bad name, delay, JSON...)."""


class CardDataRefused(InvalidArgument):
    """A value to be stored holds card data; nothing was written.

    PCI DSS 3.2.1/3.3.1 and DESIGN.md rule 2: the non-CDE zone never stores a PAN or a CVC.
    `paths` locate the offending fields (masked, so a card number used as a key is not echoed).
    """

    def __init__(self, what: str, paths: Sequence[str]) -> None:
        self.what = what
        self.paths = tuple(mask_card_numbers(p) for p in paths)
        super().__init__(
            f"{what} refused: card data at {', '.join(self.paths)}; "
            "the non-CDE zone stores tokens only"
        )


class ConcurrencyConflict(PlatformError):
    """An append (or publish) expected version `expected` but found `actual`; nothing written."""

    def __init__(self, stream: str, expected: int | None, actual: int | None) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r}: expected version {expected}, found {actual}"
            if actual is not None
            else f"stream {stream!r}: expected version {expected}, but a concurrent writer won"
        )


class LeaseLost(PlatformError):
    """The job's lease is no longer held (it expired and was leased again, or the job is gone)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: the lease is no longer held")


class ReservationLost(PlatformError):
    """An idempotency reservation was taken over or expired before `complete`/`release`."""

    def __init__(self, merchant_id: str) -> None:
        super().__init__(f"idempotency reservation of merchant {merchant_id} is no longer held")


class UnitOfWorkClosed(PlatformError):
    """A unit of work was used outside its `with` block or after commit/rollback."""


class SchemaTooNew(PlatformError):
    """The database was created by a newer FinCore; refusing to write to it."""


class BackendUnavailable(PlatformError):
    """The backend (database, Redis, AWS) could not be reached or answered with an error."""


# ---------------------------------------------------------------- guards and ids


def refuse_card_data(what: str, *values: object) -> None:
    """Raise `CardDataRefused` when any value holds a card-like number or a card field name."""
    paths: list[str] = []
    for value in values:
        paths.extend(find_card_data(value))
    if paths:
        raise CardDataRefused(what, paths)


def new_id(prefix: str) -> str:
    """An opaque random id (`evt_…`, `job_…`): 128 bits from `secrets`."""
    return random_id(prefix)


def job_id_for(dedup_id: str) -> str:
    """The job id of a deduplicated job: derived from its dedup id, so every producer and every
    retry of the same logical job names it the same (SQS dedup, consumer-side dedup)."""
    return derived_id("job", "fincore-job-dedup", dedup_id)


def check_stream(stream: str) -> str:
    if not isinstance(stream, str) or not _STREAM.match(stream):
        raise InvalidArgument(
            "stream names are 1-200 characters of letters, digits and _ . : - "
            "(starting with a letter or digit)"
        )
    return stream


def check_event_type(event_type: str) -> str:
    if (
        not isinstance(event_type, str)
        or len(event_type) > 100
        or not _EVENT_TYPE.match(event_type)
    ):
        raise InvalidArgument("event types are dotted lowercase names, e.g. 'charge.requested'")
    return event_type


def check_job_type(job_type: str) -> str:
    if not isinstance(job_type, str) or len(job_type) > 100 or not _JOB_TYPE.match(job_type):
        raise InvalidArgument("job types are lowercase names, e.g. 'charge.authorize'")
    return job_type


def check_ref(name: str, value: str | None) -> str | None:
    """Merchant, correlation, causation and worker ids: short opaque references."""
    if value is not None and (not isinstance(value, str) or not _REF.match(value)):
        raise InvalidArgument(f"{name} must be 1-64 characters of letters, digits and _ . : -")
    return value


def check_idempotency_key(key: str) -> str:
    if not isinstance(key, str) or not _IDEM_KEY.match(key):
        raise InvalidArgument("idempotency keys are 1-255 printable ASCII characters")
    return key


def check_delay(name: str, seconds: float) -> float:
    if not 0 <= seconds <= MAX_DELAY_S:
        raise InvalidArgument(f"{name} must be between 0 and {MAX_DELAY_S} seconds")
    return float(seconds)


def dump_json(value: object) -> str:
    """Compact, deterministic JSON; refuses NaN/Infinity and non-JSON types."""
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"not JSON-serializable: {type(exc).__name__}") from None


def load_json(text: str | bytes) -> Any:
    return json.loads(text)


def safe_error_text(error: str | BaseException) -> str:
    """An error text fit to store: card-like numbers masked, length capped."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return mask_card_numbers(text)[:MAX_ERROR_TEXT]


# ---------------------------------------------------------------- time


def to_micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: past-tense dotted `type` and token-only JSON `data`."""

    type: str
    data: JSON = field(default_factory=dict)
    merchant_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    id: str | None = None

    def validated(self) -> NewEvent:
        check_event_type(self.type)
        check_ref("merchant_id", self.merchant_id)
        check_ref("correlation_id", self.correlation_id)
        check_ref("causation_id", self.causation_id)
        check_ref("event id", self.id)
        if not isinstance(self.data, Mapping):
            raise InvalidArgument("event data must be a JSON object")
        return self


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An immutable stored event. `version` counts from 1 within its stream; `position` is the
    global, gap-free, strictly increasing position in commit order."""

    id: str
    type: str
    stream: str
    version: int
    position: int
    recorded_at: datetime
    data: JSON
    merchant_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON form carried by feeds (Kinesis records)."""
        return {
            "id": self.id,
            "type": self.type,
            "stream": self.stream,
            "version": self.version,
            "position": self.position,
            "recorded_at": to_micros(self.recorded_at.timestamp()),
            "data": self.data,
            "merchant_id": self.merchant_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RecordedEvent:
        return cls(
            id=wire["id"],
            type=wire["type"],
            stream=wire["stream"],
            version=int(wire["version"]),
            position=int(wire["position"]),
            recorded_at=from_micros(int(wire["recorded_at"])),
            data=wire["data"],
            merchant_id=wire.get("merchant_id"),
            correlation_id=wire.get("correlation_id"),
            causation_id=wire.get("causation_id"),
        )


def prepare_append(
    stream: str, events: Sequence[NewEvent], expected_version: int | None
) -> list[tuple[NewEvent, str, str]]:
    """Validate an append before any I/O: names, ids, JSON and the card-data guard.

    Returns (event, id, data JSON) per event. Raises InvalidArgument or CardDataRefused.
    """
    check_stream(stream)
    if expected_version is not None and expected_version < 0:
        raise InvalidArgument("expected_version must be >= 0 (0: the stream must not exist)")
    if not events:
        raise InvalidArgument("append needs at least one event")
    prepared = []
    for event in events:
        event.validated()
        refuse_card_data("event", {"stream": stream, "type": event.type}, event.data)
        prepared.append((event, event.id or new_id("evt"), dump_json(event.data)))
    return prepared


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a job is tried and how long it waits between tries."""

    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgument("max_attempts must be >= 1")
        if not 0 < self.backoff_base_s <= self.backoff_cap_s <= MAX_DELAY_S:
            raise InvalidArgument("need 0 < backoff_base_s <= backoff_cap_s <= 12 h")

    def backoff_s(self, attempt: int) -> float:
        """Delay before the retry that follows failed attempt `attempt` (1-based).

        Exponential (base·2^(attempt-1), capped) with "equal jitter": half of it fixed, half
        uniformly random, so retries of many jobs that failed together spread out but never
        come back at once (full jitter could return 0). `secrets`, as `random` is banned here.
        """
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + ceiling / 2 * (secrets.randbelow(1_000_001) / 1_000_000)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue. With `dedup_id`, its id is derived from it (see `job_id_for`)."""

    type: str
    payload: JSON = field(default_factory=dict)
    delay_s: float = 0.0
    dedup_id: str | None = None

    def prepared(self) -> tuple[str, str]:
        """Validate and guard; returns (job id, payload JSON)."""
        check_job_type(self.type)
        check_delay("delay_s", self.delay_s)
        if not isinstance(self.payload, Mapping):
            raise InvalidArgument("job payload must be a JSON object")
        if self.dedup_id is not None and not (0 < len(self.dedup_id) <= 128):
            raise InvalidArgument("dedup_id must be 1-128 characters")
        refuse_card_data("job", {"type": self.type, "dedup_id": self.dedup_id}, self.payload)
        job_id = job_id_for(self.dedup_id) if self.dedup_id else new_id("job")
        return job_id, dump_json(self.payload)


def job_message_body(
    job_id: str, job: NewJob, enqueued_at_us: int, not_before_us: int | None = None
) -> str:
    """The JSON body of a job on an external queue (direct sends and the outbox relay)."""
    body: dict[str, Any] = {
        "id": job_id,
        "type": job.type,
        "payload": dict(job.payload),
        "enqueued_at": enqueued_at_us,
    }
    if not_before_us is not None:
        body["not_before"] = not_before_us
    return dump_json(body)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A committed outbox row: `message_id` is the job id, `body` the JSON the broker carries."""

    seq: int
    message_id: str
    kind: str
    body: str


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of a lease: `handle` is adapter-specific (row + token, SQS receipt handle)."""

    worker_id: str
    handle: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    """A leased job. `attempts` counts this delivery (1 on the first)."""

    id: str
    type: str
    payload: JSON
    attempts: int
    enqueued_at: datetime
    lease: Lease
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class NackOutcome:
    """What `nack` did: scheduled a retry at `retry_at`, or moved the job to the dead letters."""

    dead_lettered: bool
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that failed `max_attempts` times, with the last error it reported."""

    job_id: str
    type: str
    payload: JSON
    attempts: int
    last_error: str | None
    dead_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Gauges for metrics. `in_flight`: leased and not yet expired; `delayed`: waiting for a
    delay or a retry backoff; `dead`: in the dead letters."""

    ready: int
    in_flight: int
    delayed: int
    dead: int


# ---------------------------------------------------------------- idempotency


class ReservationStatus(StrEnum):
    NEW = "new"
    IN_FLIGHT = "in_flight"
    FINISHED = "finished"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response replayed for a finished key: HTTP status and JSON body (token-only)."""

    status_code: int
    body: JSON

    def to_json(self) -> str:
        return dump_json({"status_code": self.status_code, "body": self.body})

    @classmethod
    def from_json(cls, text: str | bytes) -> StoredResponse:
        raw = load_json(text)
        return cls(int(raw["status_code"]), raw["body"])


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of `reserve`. NEW carries the `token` that `complete`/`release` need;
    FINISHED carries the stored `response`."""

    merchant_id: str
    key: str
    fingerprint: str
    status: ReservationStatus
    token: str | None = None
    response: StoredResponse | None = None


def check_reservation_args(merchant_id: str, key: str, fingerprint: str) -> None:
    check_ref("merchant_id", merchant_id)
    if merchant_id is None:
        raise InvalidArgument("merchant_id is required")
    check_idempotency_key(key)
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 128:
        raise InvalidArgument("fingerprint must be 1-128 characters (a hash of the request)")
    refuse_card_data("idempotency key", key, fingerprint)


def check_response(response: StoredResponse) -> None:
    if not 100 <= response.status_code <= 599:
        raise InvalidArgument("status_code must be an HTTP status")
    if not isinstance(response.body, Mapping):
        raise InvalidArgument("response body must be a JSON object")
    refuse_card_data("stored response", response.body)


def classify(
    stored_fingerprint: str, fingerprint: str, finished: StoredResponse | None
) -> ReservationStatus:
    """Status of an existing, unexpired record for a new request."""
    if not secrets.compare_digest(stored_fingerprint.encode(), fingerprint.encode()):
        return ReservationStatus.MISMATCH
    return ReservationStatus.FINISHED if finished is not None else ReservationStatus.IN_FLIGHT


# ---------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One published version of the risk rules. Version 0 is "nothing published yet"."""

    version: int
    rules: tuple[JSON, ...]
    published_at: datetime | None

    @classmethod
    def empty(cls) -> RuleSet:
        return cls(0, (), None)


def prepare_rules(rules: Sequence[JSON], expected_version: int | None) -> str:
    """Validate a rule set before publishing; returns its JSON."""
    if expected_version is not None and expected_version < 0:
        raise InvalidArgument("expected_version must be >= 0")
    if isinstance(rules, Mapping | str) or not all(isinstance(r, Mapping) for r in rules):
        raise InvalidArgument("rules must be a list of JSON objects")
    refuse_card_data("rules", list(rules))
    return dump_json(list(rules))

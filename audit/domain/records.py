"""audit (both zones): the audit record, its canonical form, the hash chain and checkpoints; pure.

A stored record is one line: `{"hash":"<sha256, base64url>",` followed by the canonical JSON of the
record body without its hash (keys sorted, no spaces, ASCII). The hash is SHA-256 over exactly
those body bytes, and each body holds the previous record's hash (`prev_hash`), so a verifier
hashes the stored bytes without re-serialising anything (PCI DSS 10.3.2, 10.3.4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from audit.domain.catalogue import EventType, Requirement, requirement_of
from audit.domain.errors import CardDataInAuditDetails, InvalidAuditRecord
from fincore.cards import find_card_data, may_hold_card_data

FORMAT_VERSION = 1
ZONE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# SHA-256 digests are stored base64url without padding: 43 characters. Hex would put a
# Luhn-valid 13-19 digit run in roughly one record in 200, and the PAN sweep would flag the log.
HASH_LENGTH = 43
LINE_PREFIX = b'{"hash":"'
# Bytes before the body's first key: the prefix, 64 hex digits and `",`.
LINE_HEAD_LENGTH = len(LINE_PREFIX) + HASH_LENGTH + 2
MAX_DETAILS_BYTES = 16 * 1024
MAX_FIELD_LENGTH = 512
_MAX_DEPTH = 8


class Outcome(StrEnum):
    """Whether the audited action succeeded (PCI DSS 10.2.2: success or failure indication)."""

    SUCCESS = "success"
    FAILURE = "failure"


class ActorType(StrEnum):
    """What kind of identity acted."""

    SERVICE = "service"
    USER = "user"
    MERCHANT = "merchant"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


# One encoder for every canonical rendering (`json.dumps` with options builds a new one per call).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(value: object) -> bytes:
    """The one serialisation hashes and signatures are taken over: sorted keys, compact, ASCII."""
    return _CANONICAL.encode(value).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_b64(data: bytes) -> str:
    """SHA-256 of `data`, base64url without padding (the form every stored hash takes)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest())[:HASH_LENGTH].decode("ascii")


def line_digest(raw: bytes) -> str:
    """The hash a stored line claims (read from its fixed position)."""
    return raw[len(LINE_PREFIX) : len(LINE_PREFIX) + HASH_LENGTH].decode("ascii")


def genesis_hash(zone: str, stream: str) -> str:
    """The `prev_hash` of a stream's first record: binds the chain to its zone and stream."""
    return digest_b64(f"fincore-audit:v{FORMAT_VERSION}:genesis:{zone}:{stream}".encode())


def format_time(moment: datetime) -> str:
    """UTC, RFC 3339 with millisecond precision and `Z` (PCI DSS 10.2.2, 10.6.1)."""
    if moment.tzinfo is None:
        raise InvalidAuditRecord("audit timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    if utc.year >= 1000:
        # isoformat is C and truncates to milliseconds as the division below does.
        return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """The datetime of a record's `time` (or any RFC 3339 / ISO 8601 time with an offset)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise InvalidAuditRecord(f"time without a timezone: {text!r}")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a service, user, merchant or the system, possibly on behalf of someone."""

    id: str
    type: str = ActorType.SERVICE
    on_behalf_of: str | None = None

    @classmethod
    def of(cls, value: Actor | str) -> Actor:
        """An `Actor` as given, or a service actor named by a plain string."""
        if isinstance(value, Actor):
            return value
        if isinstance(value, str):
            return cls(id=value)
        raise InvalidAuditRecord("actor must be an Actor or a service name")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "on_behalf_of": self.on_behalf_of, "type": str(self.type)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Actor:
        return cls(
            id=str(data.get("id", "")),
            type=str(data.get("type", "")),
            on_behalf_of=data.get("on_behalf_of"),
        )


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the event came from: the caller's IP and the writing service and process."""

    service: str
    host: str
    pid: int
    ip: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ip": self.ip, "pid": self.pid, "service": self.service}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Origin:
        pid = data.get("pid")
        return cls(
            service=str(data.get("service", "")),
            host=str(data.get("host", "")),
            pid=pid if isinstance(pid, int) else -1,
            ip=data.get("ip"),
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit record with every PCI DSS 10.2.2 field.

    `actor` (user identification), `event_type`, `time` (UTC RFC 3339 with `Z`), `outcome`
    (success or failure, plus `reason`), `origin` (IP, service, host and pid), `target`
    (identity or name of the affected data: a token id, merchant id, key id; never a PAN),
    `resource` (the component or resource acted on), plus `zone`, `component`, `stream` (the
    hash chain the record belongs to), `request_id`, `seq`, `details`, `prev_hash` and `hash`.
    """

    seq: int
    time: str
    zone: str
    stream: str
    component: str
    event_type: str
    outcome: str
    actor: Actor
    origin: Origin
    target: str | None
    resource: str | None
    request_id: str | None
    reason: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    @property
    def requirement(self) -> Requirement | None:
        return requirement_of(self.event_type)

    @property
    def timestamp(self) -> datetime:
        return parse_time(self.time)

    @property
    def origin_ip(self) -> str | None:
        return self.origin.ip

    def body(self) -> dict[str, Any]:
        """The hashed body: every field except `hash`."""
        return {
            "actor": self.actor.as_dict(),
            "component": self.component,
            "details": dict(self.details),
            "event_type": self.event_type,
            "origin": self.origin.as_dict(),
            "outcome": self.outcome,
            "prev_hash": self.prev_hash,
            "reason": self.reason,
            "request_id": self.request_id,
            "resource": self.resource,
            "seq": self.seq,
            "stream": self.stream,
            "target": self.target,
            "time": self.time,
            "v": FORMAT_VERSION,
            "zone": self.zone,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, **self.body()}

    def to_line(self) -> bytes:
        """The stored line (ends with a newline)."""
        return line_for(canonical_json(self.body()), self.hash)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        try:
            details = data.get("details") or {}
            return cls(
                seq=int(data["seq"]),
                time=str(data["time"]),
                zone=str(data["zone"]),
                stream=str(data["stream"]),
                component=str(data["component"]),
                event_type=str(data["event_type"]),
                outcome=str(data["outcome"]),
                actor=Actor.from_dict(data.get("actor") or {}),
                origin=Origin.from_dict(data.get("origin") or {}),
                target=data.get("target"),
                resource=data.get("resource"),
                request_id=data.get("request_id"),
                reason=data.get("reason"),
                details=details if isinstance(details, dict) else {},
                prev_hash=str(data["prev_hash"]),
                hash=str(data["hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidAuditRecord(f"not an audit record: {type(exc).__name__}") from exc

    @classmethod
    def from_line(cls, raw: bytes) -> AuditRecord:
        """Parse a stored line. Integrity is the verifier's job; this only reads."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidAuditRecord("not a JSON line") from exc
        if not isinstance(data, dict):
            raise InvalidAuditRecord("not a JSON object")
        return cls.from_dict(data)


def line_for(body: bytes, digest: str) -> bytes:
    """`{"hash":"<digest>",<body without its opening brace>` plus a newline."""
    return LINE_PREFIX + digest.encode("ascii") + b'",' + body[1:] + b"\n"


def split_lines(data: bytes) -> list[bytes]:
    """`data` cut into stored lines at newlines only (a carriage return never splits one).

    Each line keeps its newline; a last line without one (a torn tail) is kept as it is.
    """
    parts = data.split(b"\n")
    tail = parts.pop()
    lines = [part + b"\n" for part in parts]
    if tail:
        lines.append(tail)
    return lines


def body_of_line(raw: bytes) -> bytes:
    """The hashed body bytes of a stored line (with or without its final newline)."""
    end = len(raw) - 1 if raw.endswith(b"\n") else len(raw)
    return b"{" + raw[LINE_HEAD_LENGTH:end]


def line_hash_ok(raw: bytes, claimed: object) -> bool:
    """True when the line's stored hash is SHA-256 of its body bytes."""
    return (
        isinstance(claimed, str)
        and raw.startswith(LINE_PREFIX)
        and raw[len(LINE_PREFIX) : len(LINE_PREFIX) + HASH_LENGTH] == claimed.encode("ascii")
        and digest_b64(body_of_line(raw)) == claimed
    )


# ---------------------------------------------------------------- drafts (validated input)


_FLAT_TYPES = frozenset({str, int, bool, type(None)})


def _plain(value: object, path: str, depth: int) -> Any:
    """A JSON-only deep copy of `value`, or InvalidAuditRecord naming the first bad path."""
    if type(value) is dict and all(
        type(key) is str and type(item) in _FLAT_TYPES for key, item in value.items()
    ):
        return dict(value)  # the usual flat details: strings, integers, booleans, nulls
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidAuditRecord(f"{path} is not a finite number")
        return value
    if depth >= _MAX_DEPTH:
        raise InvalidAuditRecord(f"{path} nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditRecord(f"{path} has a non-string key")
            copy[key] = _plain(item, f"{path}.{key}", depth + 1)
        return copy
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidAuditRecord(f"{path} is a {type(value).__name__}, not a JSON value")


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAuditRecord(f"{name} must be a string")
    if len(value) > MAX_FIELD_LENGTH:
        raise InvalidAuditRecord(f"{name} is longer than {MAX_FIELD_LENGTH} characters")
    return value


def check_zone(zone: str) -> str:
    if not isinstance(zone, str) or not ZONE_PATTERN.match(zone):
        raise InvalidAuditRecord(f"invalid zone name {zone!r}")
    return zone


# Enum values by value: a dict lookup instead of the enum call (~1 µs each, four per record).
_EVENT_TYPES: dict[str, EventType] = {kind.value: kind for kind in EventType}
_OUTCOMES: dict[str, Outcome] = {outcome.value: outcome for outcome in Outcome}
_ACTOR_TYPES: dict[str, ActorType] = {kind.value: kind for kind in ActorType}


def _member(table: dict[str, Any], value: object) -> Any:
    return table.get(value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RecordDraft:
    """A validated record before it has a place in the chain (seq, time, prev_hash, hash)."""

    zone: str
    component: str
    event_type: str
    outcome: str
    actor: Actor
    origin: Origin
    target: str | None = None
    resource: str | None = None
    request_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        zone: str,
        component: str,
        event_type: EventType | str,
        outcome: Outcome | str,
        actor: Actor | str,
        origin: Origin,
        target: str | None = None,
        resource: str | None = None,
        request_id: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> RecordDraft:
        """Validate the caller's values; card data anywhere raises before anything is written.

        PCI DSS 3.3.1/3.4.1: the audit log never holds card data, so the PAN detector of
        `fincore.cards` runs over every free-text field and all of `details` (values and keys).
        """
        kind = _member(_EVENT_TYPES, event_type)
        if kind is None:
            raise InvalidAuditRecord(f"unknown event type {event_type!r}")
        result = _member(_OUTCOMES, outcome)
        if result is None:
            raise InvalidAuditRecord(f"outcome must be one of {[o.value for o in Outcome]}")
        who = Actor.of(actor)
        if not who.id:
            raise InvalidAuditRecord("actor id is required")
        actor_type = _member(_ACTOR_TYPES, who.type)
        if actor_type is None:
            raise InvalidAuditRecord(f"unknown actor type {who.type!r}")
        plain_details = _plain(details or {}, "$.details", 0)
        if not isinstance(plain_details, dict):
            raise InvalidAuditRecord("details must be an object")
        free_text = {
            "actor": {"id": who.id, "on_behalf_of": who.on_behalf_of},
            "details": plain_details,
            "origin_ip": origin.ip,
            "reason": reason,
            "request_id": request_id,
            "resource": resource,
            "target": target,
        }
        text = canonical_json(free_text)
        # The full detector walks every key and value; it only runs when the serialised
        # fields hold a 13-digit run or a card key, which every hit needs (fast path).
        if may_hold_card_data(text.decode("ascii")):
            hits = find_card_data(free_text)
            if hits:
                raise CardDataInAuditDetails(hits)
        if len(text) > MAX_DETAILS_BYTES + 4 * MAX_FIELD_LENGTH:
            raise InvalidAuditRecord(f"details are larger than {MAX_DETAILS_BYTES} bytes")
        return cls(
            zone=check_zone(zone),
            component=_text("component", component) or "",
            event_type=kind.value,
            outcome=result.value,
            actor=Actor(
                id=_text("actor.id", who.id) or "",
                type=actor_type.value,
                on_behalf_of=_text("actor.on_behalf_of", who.on_behalf_of),
            ),
            origin=Origin(
                service=origin.service,
                host=origin.host,
                pid=origin.pid,
                ip=_text("origin_ip", origin.ip),
            ),
            target=_text("target", target),
            resource=_text("resource", resource),
            request_id=_text("request_id", request_id),
            reason=_text("reason", reason),
            details=plain_details,
        )

    def seal(
        self, *, stream: str, seq: int, prev_hash: str, time: str
    ) -> tuple[AuditRecord, bytes]:
        """Give the draft its place in the chain: the record and its stored line."""
        body = canonical_json(
            {
                "actor": self.actor.as_dict(),
                "component": self.component,
                "details": self.details,
                "event_type": self.event_type,
                "origin": self.origin.as_dict(),
                "outcome": self.outcome,
                "prev_hash": prev_hash,
                "reason": self.reason,
                "request_id": self.request_id,
                "resource": self.resource,
                "seq": seq,
                "stream": stream,
                "target": self.target,
                "time": time,
                "v": FORMAT_VERSION,
                "zone": self.zone,
            }
        )
        digest = digest_b64(body)
        record = AuditRecord(
            seq=seq,
            time=time,
            zone=self.zone,
            stream=stream,
            component=self.component,
            event_type=self.event_type,
            outcome=self.outcome,
            actor=self.actor,
            origin=self.origin,
            target=self.target,
            resource=self.resource,
            request_id=self.request_id,
            reason=self.reason,
            details=self.details,
            prev_hash=prev_hash,
            hash=digest,
        )
        return record, line_for(body, digest)


# ---------------------------------------------------------------- chain tail and checkpoints


@dataclass(frozen=True, slots=True)
class SinkNotice:
    """Something a sink found and repaired at the tail, to be recorded in the chain.

    `kind` is `torn_tail` (a crash left a partial last line; it was moved aside) or
    `tail_regressed` (the log is shorter than this writer last saw it).
    """

    kind: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChainTail:
    """The last record of a stream as the sink holds it, under the sink's append lock."""

    seq: int
    hash: str
    notices: tuple[SinkNotice, ...] = ()


CHECKPOINT_KIND = "fincore-audit-checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: record `seq` of `zone`/`stream` has hash `hash`.

    Signed with Ed25519 by a key the log's storage does not hold, so whoever can rewrite the
    log cannot make a matching checkpoint (PCI DSS 10.3.4). `key_id` names the public key.
    """

    zone: str
    stream: str
    seq: int
    hash: str
    time: str
    key_id: str
    signature: str = ""

    def signing_payload(self) -> bytes:
        return canonical_json(
            {
                "hash": self.hash,
                "key_id": self.key_id,
                "kind": CHECKPOINT_KIND,
                "seq": self.seq,
                "stream": self.stream,
                "time": self.time,
                "v": FORMAT_VERSION,
                "zone": self.zone,
            }
        )

    def signed(self, signature: bytes) -> Checkpoint:
        return Checkpoint(
            self.zone,
            self.stream,
            self.seq,
            self.hash,
            self.time,
            self.key_id,
            base64.b64encode(signature).decode("ascii"),
        )

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except ValueError:
            return b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "key_id": self.key_id,
            "kind": CHECKPOINT_KIND,
            "seq": self.seq,
            "signature": self.signature,
            "stream": self.stream,
            "time": self.time,
            "v": FORMAT_VERSION,
            "zone": self.zone,
        }

    def to_line(self) -> bytes:
        return canonical_json(self.to_dict()) + b"\n"

    @classmethod
    def from_line(cls, raw: bytes) -> Checkpoint:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
                raise InvalidAuditRecord("not a checkpoint")
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise InvalidAuditRecord("checkpoint seq is not an integer")
            return cls(
                zone=str(data["zone"]),
                stream=str(data["stream"]),
                seq=seq,
                hash=str(data["hash"]),
                time=str(data["time"]),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidAuditRecord):
                raise
            raise InvalidAuditRecord(f"not a checkpoint: {type(exc).__name__}") from exc


def key_id_for(public_key_raw: bytes) -> str:
    """A short, stable name for a public key: 16 base64url characters of its SHA-256."""
    return digest_b64(public_key_raw)[:16]

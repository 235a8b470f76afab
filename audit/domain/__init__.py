"""audit (both zones): records, the event catalogue, the hash chain and checkpoints; pure.

The published names other components use: `EventType`, `Outcome`, `Actor`, `AuditRecord` and
the error family (`AuditError`, `AuditUnavailable`, `CardDataInAuditDetails`).
"""

from audit.domain.catalogue import (
    ADMIN_EVENTS,
    CARD_ACCESS_EVENTS,
    IDENTIFICATION_EVENTS,
    INVALID_ACCESS_EVENTS,
    KEY_EVENTS,
    LIFECYCLE_EVENTS,
    EventType,
    Requirement,
    requirement_of,
)
from audit.domain.errors import (
    AuditError,
    AuditIntegrityError,
    AuditUnavailable,
    CardDataInAuditDetails,
    InvalidAuditRecord,
)
from audit.domain.records import (
    Actor,
    ActorType,
    AuditRecord,
    ChainTail,
    Checkpoint,
    Origin,
    Outcome,
    RecordDraft,
    SinkNotice,
    canonical_json,
    check_zone,
    digest_b64,
    format_time,
    genesis_hash,
    key_id_for,
    line_digest,
    parse_time,
    sha256_hex,
)
from audit.domain.verification import ChainWalk, Issue, IssueKind, StreamReport

__all__ = [
    "ADMIN_EVENTS",
    "CARD_ACCESS_EVENTS",
    "IDENTIFICATION_EVENTS",
    "INVALID_ACCESS_EVENTS",
    "KEY_EVENTS",
    "LIFECYCLE_EVENTS",
    "Actor",
    "ActorType",
    "AuditError",
    "AuditIntegrityError",
    "AuditRecord",
    "AuditUnavailable",
    "CardDataInAuditDetails",
    "ChainTail",
    "ChainWalk",
    "Checkpoint",
    "EventType",
    "InvalidAuditRecord",
    "Issue",
    "IssueKind",
    "Origin",
    "Outcome",
    "RecordDraft",
    "Requirement",
    "SinkNotice",
    "StreamReport",
    "canonical_json",
    "check_zone",
    "digest_b64",
    "format_time",
    "genesis_hash",
    "key_id_for",
    "line_digest",
    "parse_time",
    "requirement_of",
    "sha256_hex",
]

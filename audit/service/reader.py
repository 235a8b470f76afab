"""audit (both zones): reading one or more zones' logs: verification and search.

`AuditReader` never writes. The auditor CLI records each use of it in the log it read
(PCI DSS 10.2.1.3); library users that show audit data to people must do the same.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.domain import (
    AuditRecord,
    ChainWalk,
    Checkpoint,
    InvalidAuditRecord,
    Issue,
    IssueKind,
    StreamReport,
)
from audit.ports import AuditSink, SignatureVerifier


@dataclass(slots=True)
class VerificationReport:
    """The verification of every stream of the zones read."""

    streams: list[StreamReport] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    time_from: str | None = None
    time_to: str | None = None

    @property
    def ok(self) -> bool:
        return all(stream.ok for stream in self.streams)

    @property
    def records(self) -> int:
        return sum(stream.records for stream in self.streams)

    @property
    def issues(self) -> list[tuple[StreamReport, Issue]]:
        return [(stream, issue) for stream in self.streams for issue in stream.issues]

    @property
    def first_bad(self) -> tuple[str, str, int | None] | None:
        """(zone, stream, seq) of the first problem, or None when everything verifies."""
        for stream in self.streams:
            if not stream.ok:
                return stream.zone, stream.stream, stream.first_bad_seq
        return None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_bad
        return {
            "ok": self.ok,
            "records": self.records,
            "zones": self.zones,
            "from": self.time_from,
            "to": self.time_to,
            "first_bad": (
                None if first is None else {"zone": first[0], "stream": first[1], "seq": first[2]}
            ),
            "streams": [stream.to_dict() for stream in self.streams],
        }


def read_checkpoints(
    lines: Sequence[bytes], verifier: SignatureVerifier, zone: str, stream: str
) -> tuple[dict[int, str], list[Issue], int]:
    """Signed seq -> hash from valid checkpoint lines, the issues of the others, their count."""
    signed: dict[int, str] = {}
    issues: list[Issue] = []
    for index, raw in enumerate(lines):
        if not raw.endswith(b"\n") and index == len(lines) - 1:
            issues.append(
                Issue(IssueKind.TORN_TAIL, None, "the last checkpoint line is incomplete (crash)")
            )
            continue
        try:
            checkpoint = Checkpoint.from_line(raw)
        except InvalidAuditRecord:
            issues.append(
                Issue(
                    IssueKind.FORGED_CHECKPOINT, None, f"checkpoint line {index + 1} is unreadable"
                )
            )
            continue
        if checkpoint.zone != zone or checkpoint.stream != stream:
            issues.append(
                Issue(
                    IssueKind.FORGED_CHECKPOINT,
                    checkpoint.seq,
                    f"checkpoint for record {checkpoint.seq} names another log "
                    f"({checkpoint.zone}/{checkpoint.stream})",
                )
            )
            continue
        if checkpoint.key_id not in verifier.key_ids():
            issues.append(
                Issue(
                    IssueKind.FORGED_CHECKPOINT,
                    checkpoint.seq,
                    f"checkpoint for record {checkpoint.seq} is signed by an unknown key "
                    f"{checkpoint.key_id!r}",
                )
            )
            continue
        if not verifier.verify(
            checkpoint.key_id, checkpoint.signing_payload(), checkpoint.signature_bytes()
        ):
            issues.append(
                Issue(
                    IssueKind.FORGED_CHECKPOINT,
                    checkpoint.seq,
                    f"checkpoint for record {checkpoint.seq} has an invalid signature",
                )
            )
            continue
        known = signed.get(checkpoint.seq)
        if known is not None and known != checkpoint.hash:
            issues.append(
                Issue(
                    IssueKind.CHECKPOINT_MISMATCH,
                    checkpoint.seq,
                    f"two validly signed checkpoints disagree about record {checkpoint.seq}",
                )
            )
            continue
        signed[checkpoint.seq] = checkpoint.hash
    return signed, issues, len(lines)


def verify_stream(
    lines: Iterable[bytes],
    checkpoint_lines: Sequence[bytes],
    verifier: SignatureVerifier,
    zone: str,
    stream: str,
    *,
    anchor: tuple[int, str] | None = None,
    time_from: str | None = None,
    time_to: str | None = None,
) -> StreamReport:
    """Verify one stream: checkpoint signatures, then the chain against them."""
    signed, checkpoint_issues, count = read_checkpoints(checkpoint_lines, verifier, zone, stream)
    walk = ChainWalk(
        zone, stream, signed=signed, anchor=anchor, time_from=time_from, time_to=time_to
    )
    report = walk.run(lines)
    report.checkpoints = count
    report.valid_checkpoints = len(signed)
    report.last_checkpoint_seq = max(signed, default=0)
    for issue in checkpoint_issues:
        report.add(issue.kind, issue.seq, issue.message)
    return report


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What the auditor looks for. Every given criterion must match (AND).

    `event_types` entries ending in `*` match by prefix (`card.*`). Times are RFC 3339 strings
    in UTC with `Z`; `time_from` is inclusive and `time_to` exclusive.
    """

    actor: str | None = None
    event_types: tuple[str, ...] = ()
    outcome: str | None = None
    target: str | None = None
    zones: tuple[str, ...] = ()
    time_from: str | None = None
    time_to: str | None = None
    request_id: str | None = None
    limit: int | None = None

    def matches(self, record: AuditRecord) -> bool:
        if self.time_from is not None and record.time < self.time_from:
            return False
        if self.time_to is not None and record.time >= self.time_to:
            return False
        if self.actor is not None and self.actor not in (
            record.actor.id,
            record.actor.on_behalf_of,
        ):
            return False
        if self.outcome is not None and record.outcome != self.outcome:
            return False
        if self.target is not None and record.target != self.target:
            return False
        if self.request_id is not None and record.request_id != self.request_id:
            return False
        if not self.event_types:
            return True
        return any(
            record.event_type.startswith(pattern[:-1])
            if pattern.endswith("*")
            else record.event_type == pattern
            for pattern in self.event_types
        )

    def to_dict(self) -> dict[str, Any]:
        """The query as recorded in the audit log (criteria only, never results)."""
        return {
            "actor": self.actor,
            "event_types": list(self.event_types),
            "outcome": self.outcome,
            "target": self.target,
            "zones": list(self.zones),
            "from": self.time_from,
            "to": self.time_to,
            "request_id": self.request_id,
            "limit": self.limit,
        }


class AuditReader:
    """Reads the logs of one or more zones: verify, search and iterate records."""

    def __init__(
        self, sinks: Mapping[str, AuditSink], verifiers: Mapping[str, SignatureVerifier]
    ) -> None:
        self._sinks = dict(sinks)
        self._verifiers = dict(verifiers)

    @property
    def zones(self) -> list[str]:
        return sorted(self._sinks)

    def sink(self, zone: str) -> AuditSink:
        return self._sinks[zone]

    def verifier(self, zone: str) -> SignatureVerifier:
        return self._verifiers[zone]

    def streams(self, zone: str) -> list[str]:
        return self._sinks[zone].streams()

    def verify(
        self,
        zones: Sequence[str] | None = None,
        *,
        time_from: str | None = None,
        time_to: str | None = None,
    ) -> VerificationReport:
        """Verify every stream of the zones (all by default).

        The whole chain is always walked (a range cannot be trusted without the records that
        link it to a signed checkpoint); `time_from`/`time_to` only select what is counted.
        """
        chosen = list(zones or self.zones)
        report = VerificationReport(zones=chosen, time_from=time_from, time_to=time_to)
        for zone in chosen:
            sink = self._sinks[zone]
            for stream in sink.streams():
                report.streams.append(
                    verify_stream(
                        sink.read(stream),
                        sink.checkpoints(stream),
                        self._verifiers[zone],
                        zone,
                        stream,
                        time_from=time_from,
                        time_to=time_to,
                    )
                )
        return report

    def records(self, zone: str, stream: str) -> Iterator[AuditRecord]:
        """The stream's readable records in storage order (unreadable lines are skipped)."""
        for raw in self._sinks[zone].read(stream):
            try:
                yield AuditRecord.from_line(raw)
            except InvalidAuditRecord:
                continue

    def all_records(self, zones: Sequence[str] | None = None) -> Iterator[AuditRecord]:
        """Every record of the zones, merged by time."""
        sources = [
            self.records(zone, stream)
            for zone in (zones or self.zones)
            for stream in self._sinks[zone].streams()
        ]
        return heapq.merge(*sources, key=lambda record: record.time)

    def search(self, query: SearchQuery) -> list[AuditRecord]:
        """Records matching `query`, oldest first, at most `query.limit`."""
        found: list[AuditRecord] = []
        for record in self.all_records(list(query.zones) or None):
            if query.time_to is not None and record.time >= query.time_to:
                # Merged by time: nothing later can match.
                break
            if query.matches(record):
                found.append(record)
                if query.limit is not None and len(found) >= query.limit:
                    break
        return found

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()

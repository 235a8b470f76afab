"""audit (both zones): walking a hash chain and naming what was done to it; pure.

The walk has a fast path (parse, hash the stored body bytes, compare the links) and, at the
first record that does not follow, a classifier that looks ahead to tell a modified record
from a deleted, inserted or reordered one, then resynchronises and carries on, so one run
names every change (PCI DSS 10.3.4: change-detection on audit logs).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from audit.domain.records import LINE_HEAD_LENGTH, LINE_PREFIX, genesis_hash, line_hash_ok

LOOKAHEAD = 4096
MAX_ISSUES = 100


class IssueKind(StrEnum):
    """Every kind of damage the verifier names."""

    MODIFIED_RECORD = "modified_record"
    DELETED_RECORD = "deleted_record"
    INSERTED_RECORD = "inserted_record"
    REORDERED_RECORDS = "reordered_records"
    TRUNCATED_TAIL = "truncated_tail"
    TORN_TAIL = "torn_tail"
    FORGED_CHECKPOINT = "forged_checkpoint"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: its kind, the first sequence number it concerns, and a sentence."""

    kind: IssueKind
    seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "seq": self.seq, "message": self.message}


@dataclass(slots=True)
class StreamReport:
    """The verification result of one stream (one hash chain)."""

    zone: str
    stream: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    last_hash: str = ""
    first_time: str | None = None
    last_time: str | None = None
    in_range: int = 0
    checkpoints: int = 0
    valid_checkpoints: int = 0
    last_checkpoint_seq: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def unsigned_tail(self) -> int:
        """Records after the last valid checkpoint: intact-looking, not yet signed."""
        return max(0, self.last_seq - self.last_checkpoint_seq)

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [issue.seq for issue in self.issues if issue.seq is not None]
        return min(seqs) if seqs else None

    def add(self, kind: IssueKind, seq: int | None, message: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(kind, seq, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "stream": self.stream,
            "ok": self.ok,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "in_range": self.in_range,
            "checkpoints": self.checkpoints,
            "valid_checkpoints": self.valid_checkpoints,
            "last_checkpoint_seq": self.last_checkpoint_seq,
            "unsigned_tail": self.unsigned_tail,
            "first_bad_seq": self.first_bad_seq,
            "issues": [issue.to_dict() for issue in sorted(self.issues, key=_issue_order)],
        }


def _issue_order(issue: Issue) -> tuple[int, str]:
    return (issue.seq if issue.seq is not None else -1, issue.kind.value)


@dataclass(slots=True)
class _Entry:
    """What the classifier needs of one stored line (never the line itself)."""

    seq: int | None
    prev_hash: str | None
    hash: str | None
    time: str | None
    hash_ok: bool
    parsed: bool
    complete: bool
    foreign: bool

    def links(self, seq: int, prev_hash: str | None) -> bool:
        return (
            self.parsed
            and self.complete
            and self.hash_ok
            and not self.foreign
            and self.seq == seq
            and (prev_hash is None or self.prev_hash == prev_hash)
        )

    @property
    def sound(self) -> bool:
        """A complete record of this stream whose own hash holds (it may sit in a wrong place)."""
        return self.parsed and self.complete and self.hash_ok and not self.foreign


def _entry(raw: bytes, zone: str, stream: str) -> _Entry:
    complete = raw.endswith(b"\n")
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _Entry(None, None, None, None, False, False, complete, False)
    seq = data.get("seq")
    claimed = data.get("hash")
    prev = data.get("prev_hash")
    time = data.get("time")
    return _Entry(
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        prev_hash=prev if isinstance(prev, str) else None,
        hash=claimed if isinstance(claimed, str) else None,
        time=time if isinstance(time, str) else None,
        hash_ok=line_hash_ok(raw, claimed),
        parsed=True,
        complete=complete,
        foreign=data.get("zone") != zone or data.get("stream") != stream,
    )


def _time_of(raw: bytes) -> str | None:
    """The top-level `time` of a canonical record line (the last `"time":` key in it)."""
    at = raw.rfind(b',"time":"')
    if at < 0:
        return None
    end = raw.find(b'"', at + 9)
    return raw[at + 9 : end].decode("ascii", "replace")


class _Lookahead:
    """A window over the remaining lines, parsed lazily, so a damaged log is not loaded whole."""

    def __init__(self, first: list[bytes], rest: Iterator[bytes], zone: str, stream: str) -> None:
        self._zone = zone
        self._stream = stream
        self._rest = rest
        self._items: list[_Entry] = [_entry(raw, zone, stream) for raw in first]
        self._base = 0  # absolute index of self._items[0]
        self._done = False

    def get(self, index: int) -> _Entry | None:
        while index - self._base >= len(self._items) and not self._done:
            raw = next(self._rest, None)
            if raw is None:
                self._done = True
            else:
                self._items.append(_entry(raw, self._zone, self._stream))
        offset = index - self._base
        return self._items[offset] if 0 <= offset < len(self._items) else None

    def is_last(self, index: int) -> bool:
        return self.get(index + 1) is None

    def sort_range(self, start: int, stop: int) -> None:
        lo, hi = start - self._base, stop - self._base
        self._items[lo:hi] = sorted(self._items[lo:hi], key=lambda e: e.seq or 0)

    def release_before(self, index: int) -> None:
        drop = index - self._base
        if drop > LOOKAHEAD:
            del self._items[:drop]
            self._base = index


@dataclass(slots=True)
class ChainWalk:
    """Walks one stream's stored lines and fills a `StreamReport`.

    `signed` maps sequence numbers to hashes from checkpoints whose signatures were verified;
    `anchor` is a trusted (seq, hash) to start after (an evidence bundle starts at a
    checkpoint); `time_from`/`time_to` (RFC 3339 strings, `Z`) only count records in range.
    """

    zone: str
    stream: str
    signed: Mapping[int, str] = field(default_factory=dict)
    anchor: tuple[int, str] | None = None
    time_from: str | None = None
    time_to: str | None = None
    report: StreamReport = field(init=False)
    _prev_seq: int = field(init=False, default=0)
    _prev_hash: str | None = field(init=False, default=None)
    _last_matching_checkpoint: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.report = StreamReport(self.zone, self.stream)
        if self.anchor is None:
            self._prev_seq, self._prev_hash = 0, genesis_hash(self.zone, self.stream)
        else:
            self._prev_seq, self._prev_hash = self.anchor
            self._last_matching_checkpoint = self.anchor[0]
        self.report.last_seq = self._prev_seq

    def run(self, lines: Iterable[bytes]) -> StreamReport:
        """Walk the lines (storage order) and return the report.

        Fast path, per line and without a JSON parse: the stored hash must be SHA-256 of the
        body bytes, and the canonical body's top-level `seq`, `prev_hash`, `stream` and
        `zone` (found from the end of the line: string values cannot hold an unescaped
        quote, so the last match is the top-level key) must continue the chain. A line that
        passes is byte for byte what the writer hashed, since the next record (and in the end
        a signed checkpoint) commits to that hash. Anything else goes to the slow path, which
        parses JSON and names what happened.
        """
        iterator = iter(lines)
        sha256 = hashlib.sha256
        b64 = base64.urlsafe_b64encode
        head = LINE_HEAD_LENGTH
        prefix = LINE_PREFIX
        signed = self.signed
        ranged = self.time_from is not None or self.time_to is not None
        prev_seq, prev_hash = self._prev_seq, self._prev_hash
        prev_bytes = (prev_hash or "").encode()
        report = self.report
        zone_tail = b',"zone":' + json.dumps(self.zone).encode() + b"}\n"
        stream_next = b',"stream":' + json.dumps(self.stream).encode() + b',"target":'
        count = 0
        raw = b""
        last = b""
        for raw in iterator:
            seq_at = raw.rfind(b',"seq":')
            stream_at = raw.find(b',"stream":', seq_at)
            prev_at = raw.rfind(b',"prev_hash":"', 0, seq_at) + 14
            if not (
                raw.startswith(prefix)
                and raw.endswith(zone_tail)
                and seq_at > 0
                and raw.startswith(stream_next, stream_at)
                and raw[seq_at + 7 : stream_at] == str(prev_seq + 1).encode()
                and raw[prev_at : prev_at + 44] == prev_bytes + b'"'
                and b64(sha256(b"{" + raw[head:-1]).digest())[:43] == raw[9:52]
            ):
                self._prev_seq = prev_seq
                self._prev_hash = prev_bytes.decode() if count else prev_hash
                report.records += count
                if last:
                    report.last_time = _time_of(last)
                self._slow(raw, iterator)
                return self.report
            prev_seq += 1
            prev_bytes = raw[9:52]
            count += 1
            last = raw
            if report.first_seq is None:
                report.first_seq = prev_seq
                report.first_time = _time_of(raw)
            if ranged:
                self._count_range(_time_of(raw))
            if prev_seq in signed:
                self._prev_seq, self._prev_hash = prev_seq, prev_bytes.decode()
                self._check_signed(prev_seq, self._prev_hash)
        report.records += count
        if last:
            report.last_time = _time_of(last)
        self._prev_seq = prev_seq
        self._prev_hash = prev_bytes.decode() if count else prev_hash
        self._finish()
        return report

    # ------------------------------------------------------------ helpers

    def _count_range(self, time: str | None) -> None:
        if time is None:
            return
        if self.time_from is not None and time < self.time_from:
            return
        if self.time_to is not None and time >= self.time_to:
            return
        self.report.in_range += 1

    def _check_signed(self, seq: int, digest: str) -> None:
        expected = self.signed.get(seq)
        if expected is None:
            return
        if expected == digest:
            self._last_matching_checkpoint = seq
            return
        start = self._last_matching_checkpoint + 1
        self.report.add(
            IssueKind.CHECKPOINT_MISMATCH,
            start,
            f"record {seq} does not match its signed checkpoint: records {start}..{seq} were "
            "rewritten with recomputed hashes",
        )

    def _accept(self, entry: _Entry) -> None:
        assert entry.seq is not None and entry.hash is not None
        self._prev_seq, self._prev_hash = entry.seq, entry.hash
        report = self.report
        report.records += 1
        if report.first_seq is None:
            report.first_seq = entry.seq
            report.first_time = entry.time
        report.last_time = entry.time or report.last_time
        if self.time_from is not None or self.time_to is not None:
            self._count_range(entry.time)
        self._check_signed(entry.seq, entry.hash)

    def _finish(self) -> None:
        report = self.report
        if self.time_from is None and self.time_to is None:
            report.in_range = report.records
        report.last_seq = self._prev_seq
        report.last_hash = self._prev_hash or ""
        covered = max(self.signed, default=0)
        if covered > self._prev_seq:
            report.add(
                IssueKind.TRUNCATED_TAIL,
                self._prev_seq + 1,
                f"a signed checkpoint covers record {covered} but the log ends at "
                f"{self._prev_seq}: records {self._prev_seq + 1}..{covered} are missing",
            )

    def _slow(self, first: bytes, rest: Iterator[bytes]) -> None:
        window = _Lookahead([first], rest, self.zone, self.stream)
        report = self.report
        i = 0
        while True:
            entry = window.get(i)
            if entry is None:
                break
            window.release_before(i)
            expected = self._prev_seq + 1
            if entry.links(expected, self._prev_hash):
                self._accept(entry)
                i += 1
                continue
            if not entry.complete and window.is_last(i):
                report.add(
                    IssueKind.TORN_TAIL,
                    expected,
                    f"the last line is incomplete (a crash while writing record {expected}); "
                    "it is not a record",
                )
                i += 1
                continue
            i = self._classify(window, i, entry, expected)
        self._finish()

    def _classify(self, window: _Lookahead, i: int, entry: _Entry, expected: int) -> int:
        """Name what happened at position `i`; return the position to carry on from."""
        report = self.report
        prev_seq, prev_hash = self._prev_seq, self._prev_hash
        # Records stored out of order: the next few positions hold exactly the next few seqs.
        region = self._reordered_region(window, i, expected)
        if region is not None:
            report.add(
                IssueKind.REORDERED_RECORDS,
                expected,
                f"records {expected}..{expected + region - i - 1} are stored out of order",
            )
            window.sort_range(i, region)
            return i
        successor = self._find(window, i + 1, lambda e: e.links(expected, prev_hash))
        if successor is not None:
            claimed = f"claims seq {entry.seq}" if entry.seq is not None else "is unreadable"
            count = successor - i
            report.add(
                IssueKind.INSERTED_RECORD,
                entry.seq if entry.seq is not None and entry.seq >= expected else expected,
                f"{count} line(s) stored after record {prev_seq} are not part of the chain "
                f"(the first {claimed})",
            )
            return successor
        if not entry.parsed:
            report.add(
                IssueKind.MODIFIED_RECORD,
                expected,
                f"record {expected} is no longer readable JSON",
            )
            self._prev_seq, self._prev_hash = expected, None
            return i + 1
        if (
            entry.seq == expected
            and not entry.foreign
            and (prev_hash is None or entry.prev_hash == prev_hash)
        ):
            report.add(
                IssueKind.MODIFIED_RECORD,
                expected,
                f"record {expected} was changed: its content no longer matches its hash",
            )
            self._prev_seq, self._prev_hash = expected, entry.hash
            report.records += 1
            return i + 1
        if entry.sound and entry.seq == expected:
            report.add(
                IssueKind.MODIFIED_RECORD,
                prev_seq,
                f"record {prev_seq} was changed and its hash recomputed: record {expected} "
                "no longer links to it",
            )
            self._accept(entry)
            return i + 1
        if entry.sound and entry.seq is not None and entry.seq > expected:
            report.add(
                IssueKind.DELETED_RECORD,
                expected,
                f"records {expected}..{entry.seq - 1} are missing (deleted)"
                if entry.seq - 1 > expected
                else f"record {expected} is missing (deleted)",
            )
            self._accept(entry)
            return i + 1
        if (
            entry.sound
            and entry.seq == prev_seq
            and prev_hash is not None
            and entry.hash != prev_hash
            and self._linked_next(window, i, entry)
        ):
            # Two records claim this seq and the chain goes on from the later one: the one
            # accepted before it was a well-made forgery.
            report.add(
                IssueKind.INSERTED_RECORD,
                prev_seq,
                f"a forged record claiming seq {prev_seq} was stored before the genuine one",
            )
            self._prev_seq, self._prev_hash = prev_seq, entry.hash
            return i + 1
        if entry.seq is not None and entry.seq <= prev_seq:
            report.add(
                IssueKind.INSERTED_RECORD,
                entry.seq,
                f"a line claiming record {entry.seq} is stored after record {prev_seq} "
                "(a copy or a forgery)",
            )
            return i + 1
        if entry.seq == expected or (prev_hash is not None and entry.prev_hash == prev_hash):
            report.add(
                IssueKind.MODIFIED_RECORD,
                expected,
                f"record {expected} was changed: its content no longer matches its hash",
            )
            self._prev_seq, self._prev_hash = expected, entry.hash if entry.hash_ok else None
            report.records += 1
            return i + 1
        report.add(
            IssueKind.INSERTED_RECORD,
            expected,
            f"a line stored after record {prev_seq} is not part of the chain (forged)",
        )
        return i + 1

    @staticmethod
    def _linked_next(window: _Lookahead, i: int, entry: _Entry) -> bool:
        after = window.get(i + 1)
        return (
            after is not None and entry.seq is not None and after.links(entry.seq + 1, entry.hash)
        )

    @staticmethod
    def _find(window: _Lookahead, start: int, match: Callable[[_Entry], bool]) -> int | None:
        for index in range(start, start + LOOKAHEAD):
            entry = window.get(index)
            if entry is None:
                return None
            if match(entry):
                return index
        return None

    def _reordered_region(self, window: _Lookahead, i: int, expected: int) -> int | None:
        """End of the shortest region from `i` holding exactly the next seqs, out of order.

        Only a region whose records, once sorted, link up from the last good record is a
        reordering; anything else (a forged record among them) is left to the other checks.
        """
        seen: dict[int, _Entry] = {}
        highest = expected - 1
        for index in range(i, i + LOOKAHEAD):
            entry = window.get(index)
            if entry is None or not entry.sound or entry.seq is None or entry.seq < expected:
                return None
            if entry.seq in seen:
                return None
            seen[entry.seq] = entry
            highest = max(highest, entry.seq)
            size = index - i + 1
            if highest == expected + size - 1:
                if size == 1:
                    return None
                prev_hash = self._prev_hash
                for seq in range(expected, expected + size):
                    candidate = seen[seq]
                    if prev_hash is not None and candidate.prev_hash != prev_hash:
                        return None
                    prev_hash = candidate.hash
                return index + 1
        return None

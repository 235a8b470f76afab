"""audit (both zones): `AuditLog`, the writer every process of a zone uses as a library.

It validates a record (card data is refused before anything is written), gives it its place in
the zone's hash chain under the sink's append lock, and signs a checkpoint every N records or
T seconds. A sink failure reaches the caller as `AuditUnavailable`: callers that must be
audited refuse to proceed (fail closed, PCI DSS 10.2.1 and 10.7.2).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from audit.domain import (
    Actor,
    ActorType,
    AuditError,
    AuditRecord,
    AuditUnavailable,
    ChainTail,
    Checkpoint,
    EventType,
    Origin,
    Outcome,
    RecordDraft,
    SinkNotice,
    format_time,
)
from audit.ports import AuditSink, CheckpointSigner
from fincore.logs import get_logger

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Appends audit records to one zone's log. Thread-safe; one instance per process.

    Open it with `audit.bootstrap.open_audit_log` (which picks the sink and the signing key)
    and `close()` it on shutdown; `close` also runs at interpreter exit. With `lifecycle` on,
    opening writes `audit.log_start` (and `audit.log_init` for a new log) and closing writes
    `audit.log_stop` (PCI DSS 10.2.1.6).
    """

    def __init__(
        self,
        sink: AuditSink,
        signer: CheckpointSigner | None,
        *,
        zone: str,
        component: str,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        lifecycle: bool = True,
        start_details: Mapping[str, Any] | None = None,
        clock: Clock = utc_now,
        host: str | None = None,
    ) -> None:
        self._sink = sink
        self._signer = signer
        self._zone = zone
        self._component = component
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_seconds = checkpoint_seconds
        self._lifecycle = lifecycle
        self._clock = clock
        self._host = host or socket.gethostname()
        self._lock = threading.RLock()
        self._closed = False
        self._unavailable_since: str | None = None
        self._failed_attempts = 0
        self._since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()
        self._last_written: ChainTail | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        # Checkpoints are written in this order; taken before `_lock` wherever both are held.
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_wanted = threading.Event()
        self._log = get_logger()
        if lifecycle:
            self.record(
                EventType.AUDIT_LOG_START,
                actor=Actor(component, ActorType.SERVICE),
                outcome=Outcome.SUCCESS,
                resource=f"audit:{zone}",
                details=dict(start_details or {}),
            )
        if signer is not None and checkpoint_seconds > 0:
            self._ticker = threading.Thread(
                target=self._tick, name=f"audit-checkpoint-{zone}", daemon=True
            )
            self._ticker.start()
        atexit.register(self.close)

    # ------------------------------------------------------------ public API

    @property
    def zone(self) -> str:
        return self._zone

    @property
    def component(self) -> str:
        return self._component

    @property
    def stream(self) -> str:
        return self._sink.writer_stream

    def record(
        self,
        event_type: EventType | str,
        *,
        actor: Actor | str,
        outcome: Outcome | str,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> AuditRecord:
        """Append one record and return it (with its seq and hash) once it is durable.

        Raises `CardDataInAuditDetails` (card data in any field; nothing written),
        `InvalidAuditRecord` (a value a record cannot hold) or `AuditUnavailable` (the sink
        is down: the caller must not proceed unaudited).
        """
        draft = self._draft(
            event_type,
            actor=actor,
            outcome=outcome,
            target=target,
            resource=resource,
            details=details,
            request_id=request_id,
            origin_ip=origin_ip,
            reason=reason,
        )
        return self._append([draft])[-1]

    def record_many(
        self, entries: Sequence[tuple[EventType | str, Mapping[str, Any]]]
    ) -> list[AuditRecord | Exception]:
        """Append several records with one sink write: one lock, one chain step, one fsync
        decision, for the records of many concurrent requests (group commit).

        `entries` are `(event_type, fields)` with the keyword arguments of `record`. The answer
        has one item per entry, in order: its record once durable, or the error that kept it
        out. A record refused on its own (card data, a bad value) fails alone and the others
        are written; when the sink is unavailable every entry gets `AuditUnavailable`.
        """
        results: list[AuditRecord | Exception] = []
        drafts: dict[int, RecordDraft] = {}
        for index, (event_type, fields) in enumerate(entries):
            try:
                drafts[index] = self._draft(event_type, **fields)
                results.append(AuditError("not written"))  # replaced below
            except Exception as exc:  # noqa: BLE001 - this entry's own error, handed back
                results.append(exc)
        if drafts:
            try:
                written: Sequence[AuditRecord | Exception] = self._append(list(drafts.values()))
            except Exception as exc:  # noqa: BLE001 - every entry of the write shares it
                written = [exc] * len(drafts)
            for index, outcome in zip(drafts, written, strict=True):
                results[index] = outcome
        return results

    def _draft(
        self,
        event_type: EventType | str,
        *,
        actor: Actor | str,
        outcome: Outcome | str,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> RecordDraft:
        return RecordDraft.create(
            zone=self._zone,
            component=self._component,
            event_type=event_type,
            outcome=outcome,
            actor=actor,
            origin=self._origin(origin_ip),
            target=target,
            resource=resource,
            request_id=request_id,
            reason=reason,
            details=details,
        )

    def checkpoint(self) -> Checkpoint | None:
        """Sign and store a checkpoint of this writer's last record now (None if nothing new)."""
        with self._checkpoint_lock, self._lock:
            return self._checkpoint_locked()

    def close(self) -> None:
        """Write `audit.log_stop`, a final checkpoint, flush and release the sink. Idempotent."""
        with self._checkpoint_lock, self._lock:
            if self._closed:
                return
            if self._lifecycle:
                try:
                    self.record(
                        EventType.AUDIT_LOG_STOP,
                        actor=Actor(self._component, ActorType.SERVICE),
                        outcome=Outcome.SUCCESS,
                        resource=f"audit:{self._zone}",
                    )
                except AuditError as exc:
                    self._log.warning("audit_stop_not_recorded", error=type(exc).__name__)
            try:
                self._checkpoint_locked()
            except AuditError as exc:
                self._log.warning("audit_final_checkpoint_failed", error=type(exc).__name__)
            self._closed = True
            self._stop.set()
            self._checkpoint_wanted.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        try:
            self._sink.close()
        finally:
            atexit.unregister(self.close)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _origin(self, ip: str | None) -> Origin:
        return Origin(service=self._component, host=self._host, pid=os.getpid(), ip=ip)

    def _system_draft(
        self, event_type: EventType, outcome: Outcome, details: Mapping[str, Any]
    ) -> RecordDraft:
        return RecordDraft.create(
            zone=self._zone,
            component=self._component,
            event_type=event_type,
            outcome=outcome,
            actor=Actor(self._component, ActorType.SYSTEM),
            origin=self._origin(None),
            resource=f"audit:{self._zone}",
            details=details,
        )

    def _notice_draft(self, notice: SinkNotice) -> RecordDraft:
        if notice.kind == "torn_tail":
            return self._system_draft(EventType.AUDIT_LOG_RECOVER, Outcome.SUCCESS, notice.details)
        return self._system_draft(
            EventType.AUDIT_INTEGRITY_ALERT,
            Outcome.FAILURE,
            {"kind": notice.kind, **notice.details},
        )

    def _append(self, drafts: Sequence[RecordDraft]) -> list[AuditRecord]:
        # A sink that can append now and make durable later (the file sink) is waited on
        # outside the lock; the others are durable when `append` returns.
        unsynced = getattr(self._sink, "append_unsynced", None)
        ticket = 0
        with self._lock:
            if self._closed:
                raise AuditError("the audit log is closed")
            resume: RecordDraft | None = None
            if self._unavailable_since is not None:
                # PCI DSS 10.7.2: the failure of the audit control is itself recorded, with
                # its start; the record is written as soon as the sink takes records again.
                resume = self._system_draft(
                    EventType.AUDIT_LOG_RESUME,
                    Outcome.SUCCESS,
                    {
                        "unavailable_since": self._unavailable_since,
                        "failed_attempts": self._failed_attempts,
                    },
                )
            written: list[AuditRecord] = []
            stream = self._sink.writer_stream

            def build(tail: ChainTail) -> list[bytes]:
                written.clear()
                extra = [self._notice_draft(n) for n in tail.notices]
                if tail.seq == 0:
                    extra.insert(
                        0,
                        self._system_draft(
                            EventType.AUDIT_LOG_INIT, Outcome.SUCCESS, {"stream": stream}
                        ),
                    )
                if resume is not None:
                    extra.append(resume)
                lines: list[bytes] = []
                seq, prev = tail.seq, tail.hash
                for draft in [*extra, *drafts]:
                    seq += 1
                    record, line = draft.seal(
                        stream=stream, seq=seq, prev_hash=prev, time=format_time(self._clock())
                    )
                    prev = record.hash
                    written.append(record)
                    lines.append(line)
                return lines

            try:
                if unsynced is None:
                    tail = self._sink.append(build)
                else:
                    tail, ticket = unsynced(build)
            except AuditUnavailable:
                self._note_unavailable()
                raise
            self._unavailable_since = None
            self._failed_attempts = 0
            self._last_written = ChainTail(tail.seq, tail.hash)
            self._since_checkpoint += len(written)
            if self._since_checkpoint >= self._checkpoint_every:
                if self._ticker is not None:
                    # Signed and stored by the checkpoint thread, off this caller's path: a
                    # checkpoint waits for two fsyncs, which every request would feel.
                    self._checkpoint_wanted.set()
                else:
                    self._checkpoint_quietly()
        if unsynced is not None:
            # Outside the writer's lock: the next callers append while this one's fsync runs,
            # and one fsync makes all of them durable (group commit). Nobody returns before
            # their records are durable; a failed fsync fails them (the lines stay in the
            # chain, as when a write lands and its fsync fails).
            try:
                self._sink.wait_durable(ticket)  # type: ignore[attr-defined]
            except AuditUnavailable:
                with self._lock:
                    self._note_unavailable()
                raise
        return written[len(written) - len(drafts) :]

    def _note_unavailable(self) -> None:
        if self._unavailable_since is None:
            self._unavailable_since = format_time(self._clock())
        self._failed_attempts += 1

    def _checkpoint_locked(self) -> Checkpoint | None:
        if self._signer is None or self._last_written is None or self._since_checkpoint == 0:
            return None
        signed = self._store_checkpoint(self._signer, self._last_written)
        self._since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()
        return signed

    def _store_checkpoint(self, signer: CheckpointSigner, last: ChainTail) -> Checkpoint:
        """Sign a checkpoint of `last` and store it (the sink first makes the records durable)."""
        checkpoint = Checkpoint(
            zone=self._zone,
            stream=self._sink.writer_stream,
            seq=last.seq,
            hash=last.hash,
            time=format_time(self._clock()),
            key_id=signer.key_id,
        )
        signed = checkpoint.signed(signer.sign(checkpoint.signing_payload()))
        self._sink.put_checkpoint(signed.to_line())
        return signed

    def _checkpoint_quietly(self) -> None:
        # The records are already durable: a failed checkpoint must not make the caller think
        # they were not (a retry would duplicate them). It is retried at the next occasion.
        try:
            self._checkpoint_locked()
        except AuditError as exc:
            self._log.warning("audit_checkpoint_failed", error=type(exc).__name__)

    def _tick(self) -> None:
        period = max(0.05, self._checkpoint_seconds / 4)
        while True:
            self._checkpoint_wanted.wait(period)
            self._checkpoint_wanted.clear()
            if self._stop.is_set():
                return
            self._checkpoint_off_path()

    def _checkpoint_off_path(self) -> None:
        """A checkpoint when one is due (N records or T seconds), signed and stored without
        holding the append lock: records go on being written meanwhile."""
        with self._checkpoint_lock:
            with self._lock:
                if self._closed or self._signer is None or self._last_written is None:
                    return
                pending = self._since_checkpoint
                by_time = time.monotonic() - self._last_checkpoint_at >= self._checkpoint_seconds
                if not pending or not (by_time or pending >= self._checkpoint_every):
                    return
                signer, last = self._signer, self._last_written
                self._since_checkpoint = 0
                self._last_checkpoint_at = time.monotonic()
            try:
                self._store_checkpoint(signer, last)
            except AuditError as exc:
                # Retried at the next occasion: the records it would cover stay counted.
                with self._lock:
                    self._since_checkpoint += pending
                self._log.warning("audit_checkpoint_failed", error=type(exc).__name__)

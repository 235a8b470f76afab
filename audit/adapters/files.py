"""audit adapter: the append-only JSON-lines file per zone (`file://<root>` -> `<root>/<zone>/`).

Files: `records.jsonl` (one stored record per line), `checkpoints.jsonl` (signed checkpoints)
and `torn/` (partial lines a crash left behind, moved aside). Many processes and threads of a
zone append safely: a thread lock plus `flock` around each append, one `write` per append on
an `O_APPEND` descriptor, and a cached tail that is re-read only when the file's size shows
another writer (or someone else) changed it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from audit.config import Durability, DurabilityPolicy
from audit.domain import (
    AuditIntegrityError,
    AuditUnavailable,
    ChainTail,
    SinkNotice,
    digest_b64,
    format_time,
    genesis_hash,
    line_digest,
    split_lines,
)
from audit.ports import LineBuilder

RECORDS = "records.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
TORN = "torn"
_TAIL_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Cached:
    size: int
    seq: int
    hash: str


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_line(fd: int, size: int) -> tuple[int, bytes | None, bytes]:
    """(offset where complete lines end, the last complete line or None, a torn fragment)."""
    window = _TAIL_CHUNK
    while True:
        start = max(0, size - window)
        data = os.pread(fd, size - start, start)
        cut = data.rfind(b"\n")
        if cut < 0 and start > 0:
            window *= 2
            continue
        fragment = data[cut + 1 :]
        end = start + cut + 1  # == start when there is no newline at all (cut == -1)
        if cut < 0:
            return 0, None, fragment
        previous = data.rfind(b"\n", 0, cut)
        if previous < 0 and start > 0:
            window *= 2
            continue
        return end, data[previous + 1 : cut + 1], fragment


def _sync_and_close(fd: int) -> OSError | None:
    """fdatasync a descriptor of the caller's own (a dup, so no lock is needed) and close it."""
    try:
        os.fdatasync(fd)
        return None
    except OSError as exc:
        return exc
    finally:
        os.close(fd)


class FileAuditSink:
    """One zone's log as an append-only JSON-lines file (see the module docstring)."""

    def __init__(self, root: Path, zone: str, durability: DurabilityPolicy) -> None:
        self._zone = zone
        self._dir = root / zone
        self._records = self._dir / RECORDS
        self._checkpoints = self._dir / CHECKPOINTS
        self._durability = durability
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._checkpoint_file_lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._pid = os.getpid()
        self._cached: _Cached | None = None
        self._known_seq = 0
        self._unsynced = 0
        self._first_unsynced = 0.0
        self._sync_error: OSError | None = None
        self._flusher: threading.Thread | None = None
        self._closing = False
        # Group commit (`always`): each append takes the next ticket; an fsync started after
        # ticket N was taken makes every ticket up to N durable.
        self._last_ticket = 0
        self._durable_ticket = 0
        self._failed_ticket = 0
        self._syncing = False
        self._synced = threading.Condition(self._lock)

    @property
    def zone(self) -> str:
        return self._zone

    @property
    def writer_stream(self) -> str:
        return self._zone

    @property
    def directory(self) -> Path:
        return self._dir

    # ------------------------------------------------------------ writing

    def append(self, build: LineBuilder) -> ChainTail:
        tail, ticket = self.append_unsynced(build)
        self.wait_durable(ticket)
        return tail

    def append_unsynced(self, build: LineBuilder) -> tuple[ChainTail, int]:
        """`append` without waiting for the `always` fsync: the new tail and a ticket for
        `wait_durable`. The writer appends under its own lock and waits outside it, so the
        records of concurrent callers share one fsync (group commit) instead of queueing for
        one fsync each; each caller still returns only once its records are durable."""
        with self._lock:
            if self._sync_error is not None:
                error, self._sync_error = self._sync_error, None
                raise AuditUnavailable(
                    f"audit file sink: a batched fsync failed ({error.strerror})"
                )
            try:
                fd, notices = self._open_locked()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    tail, size, more = self._tail_locked(fd)
                    tail = ChainTail(tail.seq, tail.hash, (*notices, *more))
                    lines = build(tail)
                    data = b"".join(lines)
                    if data:
                        _write_all(fd, data)
                        tail = ChainTail(tail.seq + len(lines), line_digest(lines[-1]))
                    self._cached = _Cached(size + len(data), tail.seq, tail.hash)
                    self._known_seq = max(self._known_seq, tail.seq)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                ticket = self._made_durable_locked(fd, len(lines))
            except OSError as exc:
                raise AuditUnavailable(f"audit file sink unavailable: {exc.strerror}") from exc
            return ChainTail(tail.seq, tail.hash), ticket

    def wait_durable(self, ticket: int) -> None:
        """Return once the append that gave `ticket` is on stable storage (`always`).

        One caller at a time runs the fdatasync, outside the append lock, on a descriptor of
        its own; it covers every append made before it started, so the callers waiting
        meanwhile need no fsync of their own. A failed fsync fails every append it was to
        cover (`AuditUnavailable`): Linux reports a write-back error once, so a later fsync
        that succeeds says nothing about them.
        """
        if ticket <= 0:
            return
        with self._lock:
            while ticket > self._durable_ticket:
                if ticket <= self._failed_ticket:
                    raise AuditUnavailable("audit file sink: fsync failed")
                if self._syncing:
                    self._synced.wait()
                    continue
                if self._fd is None or self._pid != os.getpid():
                    raise AuditUnavailable("audit file sink: closed before the record was synced")
                covered = self._last_ticket
                try:
                    fd = os.dup(self._fd)
                except OSError as exc:
                    raise AuditUnavailable(f"audit file sink: {exc.strerror}") from exc
                self._syncing = True
                self._lock.release()
                try:
                    error = _sync_and_close(fd)
                finally:
                    self._lock.acquire()
                    self._syncing = False
                    self._synced.notify_all()
                if error is not None:
                    self._failed_ticket = max(self._failed_ticket, covered)
                    raise AuditUnavailable(f"audit file sink: fsync failed ({error.strerror})")
                self._durable_ticket = max(self._durable_ticket, covered)

    def _open_locked(self) -> tuple[int, tuple[SinkNotice, ...]]:
        if self._fd is not None and self._pid != os.getpid():
            # A forked child shares its parent's open file description and so its flock:
            # it must use a descriptor of its own.
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd, self._cached, self._flusher, self._unsynced = None, None, None, 0
            self._pid = os.getpid()
        notices: tuple[SinkNotice, ...] = ()
        if self._fd is not None:
            try:
                st = os.stat(self._records)
            except FileNotFoundError:
                raise AuditIntegrityError(
                    f"the audit log {self._records} disappeared while in use; refusing to "
                    "start a new chain over it"
                ) from None
            if (st.st_dev, st.st_ino) == self._identity:
                return self._fd, notices
            # Someone replaced the file (an editor, a copy): carry on with what is there and
            # leave an integrity alert in the chain.
            os.close(self._fd)
            self._fd, self._cached = None, None
            notices = (SinkNotice("log_file_replaced", {"file": RECORDS}),)
        if not self._records.exists():
            if self._known_seq > 0:
                raise AuditIntegrityError(f"the audit log {self._records} disappeared while in use")
            if self._checkpoints.is_file() and self._checkpoints.stat().st_size > 0:
                raise AuditIntegrityError(
                    f"{self._records} is missing but its checkpoints exist: the log was deleted"
                )
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._records, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        st = os.fstat(fd)
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)
        return fd, notices

    def _tail_locked(self, fd: int) -> tuple[ChainTail, int, tuple[SinkNotice, ...]]:
        size = os.fstat(fd).st_size
        cached = self._cached
        if cached is not None and cached.size == size:
            return ChainTail(cached.seq, cached.hash), size, ()
        notices: list[SinkNotice] = []
        if size == 0:
            tail = ChainTail(0, genesis_hash(self._zone, self._zone))
        else:
            end, last, fragment = _last_line(fd, size)
            if fragment:
                notices.append(self._quarantine(fd, end, fragment, RECORDS))
                size = end
            if last is None:
                tail = ChainTail(0, genesis_hash(self._zone, self._zone))
            else:
                try:
                    data = json.loads(last)
                    tail = ChainTail(int(data["seq"]), str(data["hash"]))
                except (ValueError, KeyError, TypeError):
                    raise AuditIntegrityError(
                        "the last record of the audit log is unreadable; a person must look "
                        "(python -m audit verify)"
                    ) from None
        if tail.seq < self._known_seq:
            notices.append(
                SinkNotice(
                    "tail_regressed",
                    {"expected_at_least": self._known_seq, "found": tail.seq},
                )
            )
        return tail, size, tuple(notices)

    def _quarantine(self, fd: int, end: int, fragment: bytes, name: str) -> SinkNotice:
        """Move a crash's partial last line aside (kept, never executed) and cut it off."""
        torn_dir = self._dir / TORN
        torn_dir.mkdir(exist_ok=True, mode=0o700)
        stamp = format_time(datetime.now(UTC)).replace(":", "").replace("-", "")
        target = torn_dir / f"{name}.{stamp}.{end}.fragment"
        with open(target, "xb") as handle:
            handle.write(fragment)
            handle.flush()
            os.fsync(handle.fileno())
        os.ftruncate(fd, end)
        os.fsync(fd)
        return SinkNotice(
            "torn_tail",
            {
                "file": name,
                "offset": end,
                "bytes": len(fragment),
                "sha256": digest_b64(fragment),
                "moved_to": f"{TORN}/{target.name}",
            },
        )

    def _made_durable_locked(self, fd: int, count: int) -> int:
        """Apply the durability policy to an append of `count` lines; the `wait_durable`
        ticket (0: nothing to wait for)."""
        if self._durability.mode is Durability.ALWAYS:
            if count == 0:
                return 0
            self._last_ticket += 1
            return self._last_ticket
        if count == 0:
            return 0
        if self._unsynced == 0:
            self._first_unsynced = time.monotonic()
        self._unsynced += count
        if self._unsynced >= self._durability.batch_records:
            self._unsynced = 0
            os.fdatasync(fd)
            return 0
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"audit-fsync-{self._zone}", daemon=True
            )
            self._flusher.start()
        self._wake.notify()
        return 0

    def _flush_loop(self) -> None:
        # PCI DSS 10.5.1 needs the records kept; `batch` bounds what a machine crash can lose.
        limit = self._durability.batch_ms / 1000
        with self._wake:
            while not self._closing:
                if self._unsynced == 0:
                    self._wake.wait()
                    continue
                remaining = self._first_unsynced + limit - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                self._unsynced = 0
                if self._fd is None:
                    continue
                # The fsync runs without the sink's lock (on a descriptor of its own, so a close
                # meanwhile cannot pull it away): appends go on while the disk catches up
                # instead of queueing behind it, which was the request path's worst latency.
                try:
                    fd = os.dup(self._fd)
                except OSError as exc:
                    self._sync_error = exc
                    continue
                self._lock.release()
                try:
                    error = _sync_and_close(fd)
                finally:
                    self._lock.acquire()
                if error is not None:
                    self._sync_error = error

    def sync(self) -> None:
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._fd is None or self._pid != os.getpid():
            return
        covered = self._last_ticket
        if not self._unsynced and covered <= max(self._durable_ticket, self._failed_ticket):
            return
        self._unsynced = 0
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._failed_ticket = max(self._failed_ticket, covered)
            raise AuditUnavailable(f"audit file sink: fsync failed ({exc.strerror})") from exc
        finally:
            self._synced.notify_all()
        self._durable_ticket = max(self._durable_ticket, covered)

    def put_checkpoint(self, line: bytes) -> None:
        # The records the checkpoint covers are made durable first, then the checkpoint; both
        # fsyncs run without the append lock (records keep being appended meanwhile).
        with self._lock:
            try:
                own = (
                    os.dup(self._fd) if self._fd is not None and self._pid == os.getpid() else None
                )
            except OSError as exc:
                raise AuditUnavailable(f"audit file sink: {exc.strerror}") from exc
        error = _sync_and_close(own) if own is not None else None
        if error is not None:
            raise AuditUnavailable(f"audit file sink: fsync failed ({error.strerror})") from error
        with self._checkpoint_file_lock:
            try:
                self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(
                    self._checkpoints, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        end, _last, fragment = _last_line(fd, size)
                        self._quarantine(fd, end, fragment, CHECKPOINTS)
                    _write_all(fd, line)
                    os.fdatasync(fd)
                finally:
                    os.close(fd)  # also releases the flock
            except OSError as exc:
                raise AuditUnavailable(f"audit file sink unavailable: {exc.strerror}") from exc

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            try:
                self._sync_locked()
            finally:
                if self._fd is not None and self._pid == os.getpid():
                    with contextlib.suppress(OSError):
                        os.close(self._fd)
                self._fd = None
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=5)

    # ------------------------------------------------------------ reading

    def streams(self) -> list[str]:
        for path in (self._records, self._checkpoints):
            with contextlib.suppress(OSError):
                if path.stat().st_size > 0:
                    return [self._zone]
        return []

    def read(self, stream: str) -> Iterator[bytes]:
        if stream != self._zone:
            return iter(())
        try:
            handle = open(self._records, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            return iter(())
        except OSError as exc:
            raise AuditUnavailable(f"audit file sink unreadable: {exc.strerror}") from exc
        try:
            # A shared lock waits for an append in progress; reading stops at this size, so a
            # writer's next line is never seen half-written.
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            size = os.fstat(handle.fileno()).st_size
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            handle.close()
            raise AuditUnavailable(f"audit file sink unreadable: {exc.strerror}") from exc
        return _lines_until(handle, size)

    def checkpoints(self, stream: str) -> list[bytes]:
        if stream != self._zone:
            return []
        try:
            return split_lines(self._checkpoints.read_bytes())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AuditUnavailable(f"audit file sink unreadable: {exc.strerror}") from exc


_READ_CHUNK = 8 << 20


def _lines_until(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The lines of the first `size` bytes, read in large chunks (verification reads fast)."""
    try:
        remaining = size
        carry = b""
        while remaining > 0:
            chunk = handle.read(min(_READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()  # the bytes after the last newline
            for part in parts:
                yield part + b"\n"
        if carry:
            yield carry
    finally:
        handle.close()

"""AuditLog: ordered, thread-safe appends, checkpoints, lifecycle records and failing closed."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.files import FileAuditSink
from audit.adapters.memory import MemoryAuditSink
from audit.config import DurabilityPolicy
from audit.domain import (
    AuditError,
    AuditUnavailable,
    CardDataInAuditDetails,
    Checkpoint,
    EventType,
    Outcome,
)
from audit.service import AuditLog, verify_stream


def writer(
    sink: MemoryAuditSink | FileAuditSink, signer: Ed25519FileSigner | None, **kw: object
) -> AuditLog:
    options: dict[str, object] = {
        "checkpoint_every": 1000,
        "checkpoint_seconds": 0,
        "lifecycle": False,
    }
    options.update(kw)
    return AuditLog(sink, signer, zone="cde", component="vault", **options)  # type: ignore[arg-type]


def stored(sink: MemoryAuditSink | FileAuditSink) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.read("cde")]


def test_records_are_numbered_and_linked(signer: Ed25519FileSigner) -> None:
    """Each record gets the next seq and the previous record's hash; a new log starts with init."""
    sink = MemoryAuditSink("cde")
    log = writer(sink, signer)
    first = log.record(EventType.TOKENIZE, actor="ingress", outcome=Outcome.SUCCESS, target="tok_1")
    second = log.record(EventType.DETOKENIZE, actor="gateway", outcome="success", target="tok_1")
    log.close()
    rows = stored(sink)
    assert [r["event_type"] for r in rows] == ["audit.log_init", "card.tokenize", "card.detokenize"]
    assert (first.seq, second.seq) == (2, 3)
    assert second.prev_hash == first.hash == rows[1]["hash"]


def test_lifecycle_records_start_and_stop(signer: Ed25519FileSigner) -> None:
    """With lifecycle on, opening writes log_start and closing writes log_stop (10.2.1.6)."""
    sink = MemoryAuditSink("cde")
    writer(sink, signer, lifecycle=True, start_details={"sink": "memory"}).close()
    rows = stored(sink)
    assert [r["event_type"] for r in rows] == [
        "audit.log_init",
        "audit.log_start",
        "audit.log_stop",
    ]
    assert rows[1]["details"] == {"sink": "memory"}


def test_card_data_is_refused_before_anything_is_written(signer: Ed25519FileSigner) -> None:
    """A card number in details raises and leaves the log exactly as it was."""
    sink = MemoryAuditSink("cde")
    log = writer(sink, signer)
    log.record(EventType.TOKENIZE, actor="ingress", outcome=Outcome.SUCCESS)
    before = list(sink.read("cde"))
    with pytest.raises(CardDataInAuditDetails):
        log.record(
            EventType.TOKENIZE,
            actor="ingress",
            outcome=Outcome.FAILURE,
            details={"echo": "4111 1111 1111 1111"},
        )
    assert list(sink.read("cde")) == before
    log.close()


def test_record_many_writes_a_batch_as_one_chain_and_isolates_a_bad_entry(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """record_many: the good entries are appended in order with one sink write and chain on;
    an entry with card data gets its own error and nothing of it is written."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    appends = []
    original = sink.append_unsynced
    sink.append_unsynced = lambda build: appends.append(1) or original(build)  # type: ignore[method-assign]
    log = writer(sink, signer)
    entries = [
        (EventType.TOKENIZE, {"actor": "ingress", "outcome": "success", "target": f"tok_{i}"})
        for i in range(5)
    ]
    entries.insert(
        2,
        (
            EventType.TOKENIZE,
            {"actor": "ingress", "outcome": "failure", "details": {"n": "4111111111111111"}},
        ),
    )
    results = log.record_many(entries)
    log.close()
    assert isinstance(results[2], CardDataInAuditDetails)
    written = [r for r in results if not isinstance(r, Exception)]
    assert [r.target for r in written] == [f"tok_{i}" for i in range(5)]  # type: ignore[union-attr]
    assert [r.seq for r in written] == [2, 3, 4, 5, 6]  # type: ignore[union-attr]
    assert len(appends) == 1
    rows = stored(sink)
    assert "4111111111111111" not in json.dumps(rows)
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    report = verify_stream(sink.read("cde"), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert report.ok, report.issues


def test_record_many_on_an_unavailable_sink_fails_every_entry(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """Fail closed for the whole batch: each entry gets AuditUnavailable."""
    blocker = tmp_path / "audit"
    blocker.write_text("not a folder")
    log = writer(FileAuditSink(blocker, "cde", DurabilityPolicy()), signer)
    results = log.record_many(
        [(EventType.DETOKENIZE, {"actor": "gateway", "outcome": "success"})] * 3
    )
    assert all(isinstance(r, AuditUnavailable) for r in results)


def test_count_checkpoints_are_written_off_the_append_path(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """With the checkpoint thread running, the N-th record does not wait for the checkpoint
    (two fsyncs): the thread writes it while records go on being appended."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    gate, entered = threading.Event(), threading.Event()
    writers: list[threading.Thread] = []
    original = sink.put_checkpoint

    def held(line: bytes) -> None:
        writers.append(threading.current_thread())
        entered.set()
        gate.wait(10)
        original(line)

    sink.put_checkpoint = held  # type: ignore[method-assign]
    log = writer(sink, signer, checkpoint_every=10, checkpoint_seconds=3600)
    for n in range(10):
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success", details={"n": n})
    assert entered.wait(5)
    more = log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    assert not gate.is_set() and more.seq == 12
    gate.set()
    log.close()
    assert writers[0] is not threading.main_thread()  # the last one is close()'s own
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    report = verify_stream(sink.read("cde"), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert report.ok, report.issues
    assert report.valid_checkpoints >= 2


def test_threads_append_without_loss_or_duplication(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """8 threads x 250 records on one file: every record once, seqs contiguous, chain verifies."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    log = writer(sink, signer, checkpoint_every=100)

    def work(thread: int) -> None:
        for n in range(250):
            log.record(
                EventType.DETOKENIZE,
                actor="gateway",
                outcome="success",
                details={"t": thread, "n": n},
            )

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    rows = stored(sink)
    assert [r["seq"] for r in rows] == list(range(1, 2002))
    pairs = [(r["details"]["t"], r["details"]["n"]) for r in rows[1:]]  # type: ignore[index]
    assert sorted(pairs) == [(t, n) for t in range(8) for n in range(250)]
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    report = verify_stream(sink.read("cde"), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert report.ok, report.issues
    assert report.valid_checkpoints >= 20


def test_a_checkpoint_is_signed_every_n_records(signer: Ed25519FileSigner) -> None:
    """With checkpoint_every=25, 100 records give checkpoints at 25, 50, 75 and 100."""
    sink = MemoryAuditSink("cde")
    log = writer(sink, signer, checkpoint_every=25)
    for n in range(99):  # plus the init record: 100
        log.record(EventType.DETOKENIZE, actor="gateway", outcome="success", details={"n": n})
    assert [Checkpoint.from_line(c).seq for c in sink.checkpoints("cde")] == [25, 50, 75, 100]
    log.close()


def test_a_checkpoint_is_signed_after_t_seconds_without_new_records(
    signer: Ed25519FileSigner,
) -> None:
    """Records below the N threshold are still signed once T seconds have passed."""
    sink = MemoryAuditSink("cde")
    log = writer(sink, signer, checkpoint_every=1000, checkpoint_seconds=0.2)
    for _ in range(3):
        log.record(EventType.DETOKENIZE, actor="gateway", outcome="success")
    deadline = time.monotonic() + 10
    while not sink.checkpoints("cde") and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpoints = sink.checkpoints("cde")
    log.close()
    assert checkpoints, "no checkpoint within 10 s"
    assert Checkpoint.from_line(checkpoints[0]).seq == 4


def test_sink_failure_fails_closed_and_recovery_is_recorded(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """While the sink is down, record() raises AuditUnavailable; afterwards the outage is logged."""
    blocker = tmp_path / "audit"
    blocker.write_text("not a folder")  # the sink cannot create audit/cde/
    sink = FileAuditSink(blocker, "cde", DurabilityPolicy())
    log = writer(sink, signer)
    for _ in range(2):
        with pytest.raises(AuditUnavailable):
            log.record(EventType.DETOKENIZE, actor="gateway", outcome="success")
    blocker.unlink()
    done = log.record(EventType.DETOKENIZE, actor="gateway", outcome="success")
    log.close()
    rows = stored(sink)
    assert [r["event_type"] for r in rows] == [
        "audit.log_init",
        "audit.log_resume",
        "card.detokenize",
    ]
    assert rows[1]["details"]["failed_attempts"] == 2  # type: ignore[index]
    assert str(rows[1]["details"]["unavailable_since"]).endswith("Z")  # type: ignore[index]
    assert done.seq == 3


def test_a_failed_checkpoint_does_not_fail_the_record(
    signer: Ed25519FileSigner, tmp_path: Path
) -> None:
    """The record is durable even when its checkpoint cannot be stored; no error, no retry."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    (tmp_path / "cde" / "checkpoints.jsonl").mkdir(parents=True)  # unwritable checkpoints
    log = writer(sink, signer, checkpoint_every=1)
    record = log.record(EventType.DETOKENIZE, actor="gateway", outcome="success")
    assert record.seq == 2
    assert [r["seq"] for r in stored(sink)] == [1, 2]
    log.close()


def test_without_a_signer_no_checkpoints_are_written() -> None:
    """A reader-side writer without the private key still appends, but never signs."""
    sink = MemoryAuditSink("cde")
    log = writer(sink, None, checkpoint_every=1)
    log.record(EventType.AUDIT_LOG_SEARCH, actor="auditor", outcome="success")
    log.close()
    assert sink.checkpoints("cde") == []
    assert len(stored(sink)) == 2


def test_closed_log_refuses_records(signer: Ed25519FileSigner) -> None:
    """After close() the log raises instead of silently dropping records; close is idempotent."""
    log = writer(MemoryAuditSink("cde"), signer)
    log.close()
    log.close()
    with pytest.raises(AuditError):
        log.record(EventType.DETOKENIZE, actor="gateway", outcome="success")


def test_concurrent_records_share_fsyncs_and_none_returns_before_it_is_durable(
    signer: Ed25519FileSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`always` durability with group commit: callers of eight threads append while another
    caller's fdatasync runs, and one fsync covers them all, so there are far fewer fsyncs than
    records; yet each `record` returns only once its line lies within what an fsync that
    finished had covered."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    log = writer(sink, signer)
    records_file = tmp_path / "cde" / "records.jsonl"
    real_sync = os.fdatasync
    guard = threading.Lock()
    synced = [0]  # bytes of the records file that a finished fdatasync covered
    calls = [0]

    def slow_sync(fd: int) -> None:
        st = os.fstat(fd)
        is_records = records_file.exists() and st.st_ino == records_file.stat().st_ino
        time.sleep(0.003)  # a disk that takes its time: appends pile up meanwhile
        real_sync(fd)
        if is_records:
            with guard:
                calls[0] += 1
                synced[0] = max(synced[0], st.st_size)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    early: list[str] = []

    def client(name: str) -> None:
        for index in range(15):
            record = log.record(
                EventType.TOKENIZE, actor="ingress", outcome="success", target=f"tok_{name}{index}"
            )
            with guard:
                covered = records_file.read_bytes()[: synced[0]]
            if record.hash.encode() not in covered:
                early.append(record.target or "")

    threads = [threading.Thread(target=client, args=(f"t{n}_",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert early == []
    rows = stored(sink)
    assert sum(row["event_type"] == "card.tokenize" for row in rows) == 120
    assert 0 < calls[0] <= 60, calls[0]
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    report = verify_stream(sink.read("cde"), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert report.ok, report.issues


def test_a_failed_fsync_fails_the_records_it_was_to_cover_and_the_log_says_so(
    signer: Ed25519FileSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`always`: when the fsync for a record fails, its caller gets AuditUnavailable (it must
    not proceed); the next record that is made durable is preceded by audit.log_resume."""
    sink = FileAuditSink(tmp_path, "cde", DurabilityPolicy())
    log = writer(sink, signer)
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_before")
    real_sync = os.fdatasync
    failures = [1]

    def failing_sync(fd: int) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError(5, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    with pytest.raises(AuditUnavailable):
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_lost")
    after = log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_after")
    log.close()
    kinds = [(row["event_type"], row["target"]) for row in stored(sink)]
    resume = kinds.index(("audit.log_resume", None))
    lost, later = (
        kinds.index(("card.tokenize", "tok_lost")),
        kinds.index(("card.tokenize", "tok_after")),
    )
    assert lost < resume < later
    assert after.seq == len(kinds)

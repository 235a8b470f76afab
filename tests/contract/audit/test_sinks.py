"""The AuditSink contract, run against every sink: memory, file, PostgreSQL, CloudWatch + S3."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.files import FileAuditSink
from audit.adapters.memory import MemoryAuditSink, MemoryStore
from audit.config import Durability, DurabilityPolicy
from audit.domain import (
    Actor,
    AuditUnavailable,
    ChainTail,
    Checkpoint,
    EventType,
    Origin,
    RecordDraft,
    format_time,
    genesis_hash,
)
from audit.ports import AuditSink
from audit.service import AuditLog, verify_stream
from audit.service.writer import utc_now
from fincore.netutil import free_port
from tests.integration.audit.sweep import sweep_files, sweep_postgres, sweep_sinks

SinkFactory = Callable[[DurabilityPolicy], AuditSink]
ALWAYS = DurabilityPolicy()
BATCH = DurabilityPolicy(Durability.BATCH, batch_records=10, batch_ms=20)


def lines_after(tail: ChainTail, stream: str, count: int) -> list[bytes]:
    """`count` real record lines that follow `tail` in `stream`."""
    out: list[bytes] = []
    seq, prev = tail.seq, tail.hash
    for n in range(count):
        draft = RecordDraft.create(
            zone="cde",
            component="vault",
            event_type=EventType.TOKENIZE,
            outcome="success",
            actor=Actor("ingress"),
            origin=Origin("vault", "host", 1),
            target=f"tok_{n}",
        )
        record, line = draft.seal(
            stream=stream, seq=seq + 1, prev_hash=prev, time=format_time(utc_now())
        )
        seq, prev = record.seq, record.hash
        out.append(line)
    return out


class AuditSinkContract:
    """Guarantees of audit.ports.AuditSink; subclasses provide `make_sink` and `reader_sink`."""

    shared_stream = True  # all writers of the zone append to one chain

    @pytest.fixture
    def make_sink(self) -> SinkFactory:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @pytest.fixture
    def reader_sink(self, make_sink: SinkFactory) -> Callable[[], AuditSink]:
        return lambda: make_sink(ALWAYS)

    @pytest.fixture
    def unavailable_sink(self) -> Callable[[], AuditSink]:
        pytest.skip("this sink cannot be made unavailable")

    @pytest.fixture
    def signer(self, tmp_path: Path) -> Ed25519FileSigner:
        return Ed25519FileSigner.load(tmp_path / "keys" / "cde-checkpoint.key", create=True)

    def test_a_new_log_is_empty(self, reader_sink: Callable[[], AuditSink]) -> None:
        """Before anything is written no stream holds a line or a checkpoint."""
        sink = reader_sink()
        for stream in [*sink.streams(), "cde"]:
            assert list(sink.read(stream)) == []
            assert sink.checkpoints(stream) == []

    def test_append_sees_the_true_tail(self, make_sink: SinkFactory) -> None:
        """The builder gets the stream's tail and append returns the new one."""
        sink = make_sink(ALWAYS)
        stream = sink.writer_stream
        seen: list[ChainTail] = []

        def build(tail: ChainTail) -> list[bytes]:
            seen.append(tail)
            return lines_after(tail, stream, 2)

        first = sink.append(build)
        second = sink.append(build)
        assert seen[0] == ChainTail(0, genesis_hash("cde", stream))
        assert (seen[1].seq, seen[1].hash) == (first.seq, first.hash) == (2, seen[1].hash)
        assert second.seq == 4
        sink.close()

    def test_lines_are_read_back_byte_for_byte_in_order(
        self, make_sink: SinkFactory, reader_sink: Callable[[], AuditSink]
    ) -> None:
        """What was appended is read back exactly, in order, each line ending in a newline."""
        sink = make_sink(ALWAYS)
        written: list[bytes] = []

        def build(tail: ChainTail) -> list[bytes]:
            lines = lines_after(tail, sink.writer_stream, 3)
            written.extend(lines)
            return lines

        sink.append(build)
        sink.append(build)
        sink.close()
        reader = reader_sink()
        assert sink.writer_stream in reader.streams()
        assert list(reader.read(sink.writer_stream)) == written

    def test_a_second_writer_continues_or_owns_its_chain(self, make_sink: SinkFactory) -> None:
        """Shared logs: a second writer continues the first's chain; otherwise it starts its own."""
        one, two = make_sink(ALWAYS), make_sink(ALWAYS)
        one.append(lambda tail: lines_after(tail, one.writer_stream, 3))
        tail = two.append(lambda tail: lines_after(tail, two.writer_stream, 1))
        if self.shared_stream:
            assert two.writer_stream == one.writer_stream
            assert tail.seq == 4
        else:
            assert two.writer_stream != one.writer_stream
            assert tail.seq == 1
        one.close()
        two.close()

    def test_checkpoints_are_stored_and_read_back(
        self,
        make_sink: SinkFactory,
        reader_sink: Callable[[], AuditSink],
        signer: Ed25519FileSigner,
    ) -> None:
        """A checkpoint line put by the writer is returned for its stream."""
        sink = make_sink(ALWAYS)
        tail = sink.append(lambda t: lines_after(t, sink.writer_stream, 2))
        unsigned = Checkpoint(
            "cde", sink.writer_stream, tail.seq, tail.hash, format_time(utc_now()), signer.key_id
        )
        line = unsigned.signed(signer.sign(unsigned.signing_payload())).to_line()
        sink.put_checkpoint(line)
        sink.close()
        assert reader_sink().checkpoints(sink.writer_stream) == [line]

    def test_a_log_written_through_audit_log_verifies(
        self,
        make_sink: SinkFactory,
        reader_sink: Callable[[], AuditSink],
        signer: Ed25519FileSigner,
    ) -> None:
        """Records from AuditLog, from 4 threads, verify with every checkpoint valid."""
        sink = make_sink(ALWAYS)
        log = AuditLog(
            sink, signer, zone="cde", component="vault", checkpoint_every=10, checkpoint_seconds=0
        )

        def work(t: int) -> None:
            for n in range(15):
                log.record(
                    EventType.DETOKENIZE,
                    actor="gateway",
                    outcome="success",
                    details={"t": t, "n": n},
                )

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.close()
        reader = reader_sink()
        verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
        report = verify_stream(
            reader.read(sink.writer_stream),
            reader.checkpoints(sink.writer_stream),
            verifier,
            "cde",
            sink.writer_stream,
        )
        assert report.ok, report.issues
        assert report.records == 63  # init, start, 60 records, stop
        assert report.last_checkpoint_seq == 63
        seen = sorted(
            (json.loads(line)["details"]["t"], json.loads(line)["details"]["n"])
            for line in reader.read(sink.writer_stream)
            if json.loads(line)["event_type"] == "card.detokenize"
        )
        assert seen == [(t, n) for t in range(4) for n in range(15)]

    def test_batched_durability_keeps_every_record(
        self, make_sink: SinkFactory, reader_sink: Callable[[], AuditSink]
    ) -> None:
        """With the batch policy appends return early, and sync/close make all of them durable."""
        sink = make_sink(BATCH)
        for _ in range(25):
            sink.append(lambda t: lines_after(t, sink.writer_stream, 1))
        sink.sync()
        sink.close()
        assert len(list(reader_sink().read(sink.writer_stream))) == 25

    def test_unavailable_storage_raises_audit_unavailable(
        self, unavailable_sink: Callable[[], AuditSink]
    ) -> None:
        """A sink that cannot reach its storage fails closed with AuditUnavailable."""

        def open_and_append() -> None:
            sink = unavailable_sink()  # the AWS sink already checks its storage here
            sink.append(lambda t: lines_after(t, sink.writer_stream, 1))

        with pytest.raises(AuditUnavailable):
            open_and_append()

    def test_close_is_idempotent(self, make_sink: SinkFactory) -> None:
        """close() twice is harmless."""
        sink = make_sink(ALWAYS)
        sink.append(lambda t: lines_after(t, sink.writer_stream, 1))
        sink.close()
        sink.close()


class TestMemoryAuditSink(AuditSinkContract):
    @pytest.fixture
    def make_sink(self) -> SinkFactory:
        store = MemoryStore()
        return lambda _policy: MemoryAuditSink("cde", store)


class TestFileAuditSink(AuditSinkContract):
    @pytest.fixture
    def make_sink(self, tmp_path: Path) -> Iterator[SinkFactory]:
        root = tmp_path / "audit"
        yield lambda policy: FileAuditSink(root, "cde", policy)
        assert sweep_files(root) == []

    @pytest.fixture
    def unavailable_sink(self, tmp_path: Path) -> Callable[[], AuditSink]:
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        return lambda: FileAuditSink(blocker, "cde", ALWAYS)


@pytest.mark.postgres
class TestPostgresAuditSink(AuditSinkContract):
    @pytest.fixture
    def make_sink(self, fresh_postgres_url: Callable[[], str]) -> Iterator[SinkFactory]:
        from audit.adapters.postgres import PostgresAuditSink, psycopg_dsn

        url = fresh_postgres_url()
        yield lambda policy: PostgresAuditSink(url, "cde", policy)
        assert sweep_postgres(psycopg_dsn(url)) == []

    @pytest.fixture
    def unavailable_sink(self) -> Callable[[], AuditSink]:
        from audit.adapters.postgres import PostgresAuditSink

        url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
        return lambda: PostgresAuditSink(url, "cde", ALWAYS)


@pytest.mark.aws
class TestCloudWatchS3AuditSink(AuditSinkContract):
    shared_stream = False  # CloudWatch has no append lock: one stream (chain) per writer

    @pytest.fixture
    def make_sink(self, aws: object) -> Iterator[SinkFactory]:
        from audit.adapters.aws import CloudWatchS3AuditSink

        url = f"aws://audit-{secrets.token_hex(4)}/fincore/audit?create=1"
        yield lambda policy: CloudWatchS3AuditSink(url, "cde", "vault", policy)
        assert (
            sweep_sinks([CloudWatchS3AuditSink(url, "cde", "auditor", ALWAYS, writer=False)]) == []
        )

    @pytest.fixture
    def reader_sink(self, make_sink: SinkFactory) -> Callable[[], AuditSink]:
        from audit.adapters.aws import CloudWatchS3AuditSink

        made = make_sink(ALWAYS)  # creates the log group and the locked bucket
        url = f"aws://{made.bucket}/fincore/audit"  # type: ignore[attr-defined]
        return lambda: CloudWatchS3AuditSink(url, "cde", "auditor", ALWAYS, writer=False)

    @pytest.fixture
    def unavailable_sink(
        self, aws: object, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], AuditSink]:
        from audit.adapters.aws import CloudWatchS3AuditSink

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        return lambda: CloudWatchS3AuditSink(
            "aws://audit-down/fincore/audit?create=1", "cde", "vault", ALWAYS
        )

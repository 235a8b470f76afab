"""Audit log throughput: append records/s per durability policy and verify records/s.

Each figure sits beside a same-run baseline doing the least the same job needs: appending
plain JSON lines with the same fsync policy (no lock, no chain, no card check), and reading
the same file with one json.loads per line (no hashing, no links).
Run: python -m bench.audit [--quick] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from audit.adapters.ed25519 import Ed25519FileSigner
from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import (
    Actor,
    Checkpoint,
    EventType,
    Origin,
    RecordDraft,
    format_time,
    genesis_hash,
)
from audit.service.writer import utc_now
from bench.common import Report, percentile

BATCH_RECORDS = 64
BATCH_MS = 50


def _details(n: int) -> dict[str, object]:
    return {"merchant": "mer_7f3a9c", "purpose": "authorize", "amount": 1250 + n % 97}


def _env(root: Path, mode: str) -> dict[str, str]:
    return {
        "FINCORE_VAR_DIR": str(root),
        "FINCORE_AUDIT_FSYNC": mode,
        "FINCORE_AUDIT_FSYNC_BATCH_RECORDS": str(BATCH_RECORDS),
        "FINCORE_AUDIT_FSYNC_BATCH_MS": str(BATCH_MS),
        "FINCORE_AUDIT_CHECKPOINT_SECONDS": "0",
    }


def bench_append(
    root: Path, mode: str, count: int, rounds: int
) -> tuple[float, float, list[float]]:
    """(audit records/s, plain JSON-lines records/s, audit latencies), medians over rounds.

    The two alternate in rounds of count/rounds records: fsync latency on a shared machine
    drifts by an order of magnitude within seconds, and alternating keeps the pair comparable.
    """
    log = open_audit_log("cde", "bench", env=_env(root, mode), lifecycle=False)
    plain = os.open(root / "plain.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    actor = Actor("gateway", on_behalf_of="mer_7f3a9c")
    chunk = max(1, count // rounds)
    latencies: list[float] = []
    audit_rates: list[float] = []
    plain_rates: list[float] = []
    n = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(chunk):
            began = time.perf_counter()
            log.record(
                EventType.DETOKENIZE,
                actor=actor,
                outcome="success",
                target=f"tok_{n:010d}",
                resource="vault.card",
                request_id=f"req_{n:010d}",
                details=_details(n),
            )
            latencies.append(time.perf_counter() - began)
            n += 1
        audit_rates.append(chunk / (time.perf_counter() - start))
        plain_rates.append(_plain_append(plain, mode, chunk, n))
    log.close()
    os.close(plain)
    return statistics.median(audit_rates), statistics.median(plain_rates), latencies


def _plain_append(fd: int, mode: str, count: int, offset: int) -> float:
    start = time.perf_counter()
    for n in range(offset, offset + count):
        line = json.dumps(
            {"event_type": "card.detokenize", "target": f"tok_{n:010d}", "details": _details(n)}
        )
        os.write(fd, line.encode() + b"\n")
        if mode == "always" or n % BATCH_RECORDS == BATCH_RECORDS - 1:
            os.fdatasync(fd)
    return count / (time.perf_counter() - start)


def build_log(root: Path, count: int) -> Path:
    """A `count`-record log with a checkpoint every 1000 records, written directly."""
    signer = Ed25519FileSigner.load(root / "keys" / "audit" / "cde-checkpoint.key", create=True)
    folder = root / "audit" / "cde"
    folder.mkdir(parents=True)
    origin = Origin("vault", "bench-host", 4242, "10.0.0.7")
    prev = genesis_hash("cde", "cde")
    lines: list[bytes] = []
    checkpoints: list[bytes] = []
    for n in range(1, count + 1):
        draft = RecordDraft.create(
            zone="cde",
            component="vault",
            event_type=EventType.DETOKENIZE,
            outcome="success",
            actor=Actor("gateway", on_behalf_of="mer_7f3a9c"),
            origin=origin,
            target=f"tok_{n:010d}",
            resource="vault.card",
            request_id=f"req_{n:010d}",
            details=_details(n),
        )
        record, line = draft.seal(stream="cde", seq=n, prev_hash=prev, time=format_time(utc_now()))
        prev = record.hash
        lines.append(line)
        if n % 1000 == 0 or n == count:
            checkpoint = Checkpoint("cde", "cde", n, prev, record.time, signer.key_id)
            checkpoints.append(
                checkpoint.signed(signer.sign(checkpoint.signing_payload())).to_line()
            )
    path = folder / "records.jsonl"
    path.write_bytes(b"".join(lines))
    (folder / "checkpoints.jsonl").write_bytes(b"".join(checkpoints))
    return path


def bench_verify(root: Path, repeats: int) -> float:
    rates = []
    reader = open_audit_reader("cde", env={"FINCORE_VAR_DIR": str(root)})
    for _ in range(repeats):
        start = time.perf_counter()
        report = reader.verify()
        elapsed = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"bench log does not verify: {report.issues}")
        rates.append(report.records / elapsed)
    return statistics.median(rates)


def bench_plain_read(path: Path, repeats: int) -> float:
    rates = []
    loads = json.loads
    for _ in range(repeats):
        start = time.perf_counter()
        count = 0
        with path.open("rb", buffering=1 << 20) as handle:
            for line in handle:
                loads(line)
                count += 1
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: Sequence[str] | None = None) -> int:
    report = Report("audit log: append and verify throughput (file sink)", argv)
    appends = 1000 if report.quick else 10_000
    verifies = 20_000 if report.quick else 200_000
    repeats = 1 if report.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        for mode in ("always", "batch"):
            rate, base, latencies = bench_append(root / f"append-{mode}", mode, appends, 10)
            label = (
                "fsync per record"
                if mode == "always"
                else f"fsync <= {BATCH_RECORDS} rec/{BATCH_MS} ms"
            )
            report.add(
                f"append, {label}",
                rate,
                "records/s",
                f"plain JSON-lines append, {label}",
                base,
                p50_ms=percentile(latencies, 50) * 1000,
                p99_ms=percentile(latencies, 99) * 1000,
            )
        path = build_log(root / "verify", verifies)
        report.add(
            f"verify ({verifies:,} records, chain + signatures)",
            bench_verify(root / "verify", repeats),
            "records/s",
            "read + json.loads per line",
            bench_plain_read(path, repeats),
        )
    report.print_table()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

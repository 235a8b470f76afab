"""PAN sweep throughput (MB/s) over a folder of realistic JSON logs, beside a plain regex pass.

The folder (about 20 MB, 4 MB with --quick) holds JSON log lines full of long non-card numbers
(ms/ns timestamps, order ids, amounts), uuids, sha256 digests, base64 signatures, URL-encoded
query strings and Go-style \\u003c escapes, plus a few planted PANs in several encodings. The
baseline is `re.finditer(rb"\\d{13,19}")` over the same files, read the same way.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path

from bench.common import Report
from fincore import pan_sweep
from fincore.pan_sweep import Sweeper

# Values that never occur in the generated logs (the canary figure must find only the PANs).
CANARIES = ("873915", "tok_canary_Zx9q")
PLANT_EVERY = 2000  # lines (about 1.4 MB)
PLANTED = ["4242424242424242", "5555555555554444", "378282246310005"]
_PATHS = ["/v1/charges", "/v1/refunds", "/v1/payment_sessions", "/v1/customers/cus_123/cards"]


def log_line(rng: random.Random, index: int) -> str:
    """One realistic JSON log line without card data."""
    ms = 1764249488000 + index * 37 + rng.randrange(37)
    entry = {
        "ts": f"2026-11-27T13:{index // 3600 % 60:02d}:{index // 60 % 60:02d}.{ms % 1000:03d}Z",
        "level": rng.choice(["info", "info", "info", "warning", "error"]),
        "component": rng.choice(["noncde.api", "noncde.workers", "audit"]),
        "event": rng.choice(["request", "charge.created", "refund.created", "webhook.sent"]),
        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "trace_id": f"{rng.getrandbits(128):032x}",
        "method": rng.choice(["GET", "POST"]),
        "path": rng.choice(_PATHS),
        "query": f"limit={rng.randrange(100)}&starting_after=ch_{rng.getrandbits(128):032x}"
        f"&q=created%3E{ms // 1000}%20AND%20status%3Asucceeded",
        "status": rng.choice([200, 200, 201, 400, 402, 404]),
        "duration_ms": round(rng.random() * 90, 3),
        "amount": rng.randrange(100, 10_000_000),
        "currency": rng.choice(["usd", "eur", "gbp"]),
        "order_id": f"2026112{rng.randrange(10)}{rng.randrange(10**7):07d}",
        "ts_ms": ms,
        "ts_ns": ms * 1_000_000 + rng.randrange(1_000_000),
        "digest": sha256(index.to_bytes(8, "big")).hexdigest(),
        "signature": base64.b64encode(rng.randbytes(32)).decode(),
        "phone": f"+1-415-555-{rng.randrange(10000):04d}",
        "note": "ok \\u003cb\\u003e" if index % 50 == 0 else "ok",
    }
    return json.dumps(entry, separators=(",", ":"))


def build_folder(root: Path, megabytes: int, seed: int = 7) -> tuple[int, int]:
    """Write `megabytes` of logs in several files with a few planted PANs.

    Returns the bytes written and the number of PANs planted.
    """
    rng = random.Random(seed)
    total = 0
    files = max(2, megabytes // 2)
    per_file = megabytes * 1_000_000 // files
    index = 0
    planted = 0
    for number in range(files):
        folder = root / f"svc{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        size = 0
        while size < per_file:
            line = log_line(rng, index)
            index += 1
            if index % PLANT_EVERY == 0:
                pan = PLANTED[(index // PLANT_EVERY) % len(PLANTED)]
                line = line[:-1] + f',"leak":"{base64.b64encode(pan.encode()).decode()}"}}'
                planted += 1
            elif index % PLANT_EVERY == PLANT_EVERY // 2:
                line = line[:-1] + f',"leak":"{PLANTED[0]}"}}'
                planted += 1
            lines.append(line)
            size += len(line) + 1
        data = ("\n".join(lines) + "\n").encode()
        (folder / f"app-{number}.log").write_bytes(data)
        total += len(data)
    return total, planted


def baseline(root: Path) -> int:
    """The plain regex pass: every 13-19 digit run in every file."""
    pattern = re.compile(rb"\d{13,19}")
    found = 0
    for path in sorted(root.rglob("*.log")):
        found += sum(1 for _ in pattern.finditer(path.read_bytes()))
    return found


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best wall-clock seconds of `repeats` runs (the least disturbed by other processes)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


def main(argv: list[str]) -> int:
    report = Report("PAN sweep throughput", argv)
    megabytes = 4 if report.quick else 20
    repeats = 1 if report.quick else 3
    jobs = min(4, os.cpu_count() or 1)
    # The parallel figure measures the parallel path even on the small --quick folder.
    pan_sweep.PARALLEL_MIN_BYTES = 0
    with tempfile.TemporaryDirectory(prefix="fincore-bench-sweep-") as tmp:
        root = Path(tmp)
        size, planted = build_folder(root, megabytes)
        missed: list[str] = []

        def run(canaries: tuple[str, ...] = (), processes: int = 1) -> None:
            sweeper = Sweeper(canaries, jobs=processes)
            sweeper.path(root)
            if len(sweeper.findings) != planted:
                missed.append(f"{len(sweeper.findings)} findings for {planted} planted")

        base_s = timed(lambda: baseline(root), repeats)
        figures = [
            (f"sweep {megabytes} MB logs", timed(run, repeats)),
            (f"sweep {megabytes} MB logs + 2 canaries", timed(lambda: run(CANARIES), repeats)),
        ]
        if jobs > 1:
            parallel = timed(lambda: run(processes=jobs), repeats)
            figures.append((f"sweep {megabytes} MB logs, {jobs} processes", parallel))
        if missed:
            print(f"the sweep did not report exactly the planted PANs: {missed}", file=sys.stderr)
            return 1
        mb = size / 1e6
        for name, seconds in figures:
            report.add(name, mb / seconds, "MB/s", r"re.finditer(\d{13,19})", mb / base_s)
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

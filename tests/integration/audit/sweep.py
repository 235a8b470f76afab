"""PAN sweep of what the audit tests wrote: log files, PostgreSQL tables, AWS sinks.

Uses `fincore.cards.find_card_numbers` (the same detector as the log redaction); the shared
`fincore.pan_sweep` tool did not exist when these tests were written. Hits are reported
masked, never in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audit.ports import AuditSink
from fincore.cards import find_card_numbers


def _hits(where: str, text: str) -> list[str]:
    return [f"{where}: {match.masked}" for match in find_card_numbers(text)]


def sweep_files(root: Path) -> list[str]:
    """Card numbers in any file under `root` (every byte read as Latin-1, so nothing hides)."""
    hits: list[str] = []
    if not root.exists():
        return hits
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hits.extend(_hits(str(path), path.read_bytes().decode("latin-1")))
    return hits


def sweep_postgres(dsn: str) -> list[str]:
    """Card numbers in the audit tables of a PostgreSQL database."""
    import psycopg

    hits: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("audit_record", "audit_checkpoint"):
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if not exists or exists[0] is None:
                continue
            for (line,) in conn.execute(f"SELECT line FROM {table}"):
                hits.extend(_hits(table, line))
    return hits


def sweep_sinks(sinks: Iterable[AuditSink]) -> list[str]:
    """Card numbers in every stored line and checkpoint a sink returns (used for AWS)."""
    hits: list[str] = []
    for sink in sinks:
        for stream in sink.streams():
            for line in [*sink.read(stream), *sink.checkpoints(stream)]:
                hits.extend(_hits(f"{sink.zone}/{stream}", line.decode("latin-1")))
    return hits

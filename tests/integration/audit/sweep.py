"""PAN sweep of what the audit tests wrote: log files, PostgreSQL tables, AWS sinks.

Uses the shared `fincore.pan_sweep` (raw digits plus JSON-escaped, URL, base64, hex and
UTF-16 encodings, the same detector as log redaction). Findings are reported masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audit.ports import AuditSink
from fincore import pan_sweep


def _describe(findings: Iterable[object]) -> list[str]:
    return [str(finding) for finding in findings]


def sweep_files(root: Path) -> list[str]:
    """Card numbers in any file under `root`."""
    if not root.exists():
        return []
    return _describe(pan_sweep.sweep_path(root))


def sweep_postgres(dsn: str) -> list[str]:
    """Card numbers anywhere in a PostgreSQL database (the audit tables included)."""
    return _describe(pan_sweep.sweep_postgres(dsn))


def sweep_sinks(sinks: Iterable[AuditSink]) -> list[str]:
    """Card numbers in every stored line and checkpoint a sink returns (used for AWS)."""
    findings: list[str] = []
    for sink in sinks:
        for stream in sink.streams():
            data = b"".join([*sink.read(stream), *sink.checkpoints(stream)])
            findings.extend(_describe(pan_sweep.sweep_bytes(data, label=f"{sink.zone}/{stream}")))
    return findings

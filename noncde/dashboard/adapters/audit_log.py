"""noncde.dashboard adapters, audit log: read access to the non-CDE audit log through the
audit library's reader (`audit.bootstrap.open_audit_reader`) and its evidence export.

The reader never writes; the dashboard's use cases record every read in the log itself
(PCI DSS 10.2.1.3). It is opened per call and closed afterwards, so a long-lived dashboard
never holds a stale view of a log other processes append to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from audit.bootstrap import export_evidence, open_audit_reader
from audit.domain import AuditRecord
from audit.service import AuditReader, ExportResult, SearchQuery, VerificationReport


class AuditLogViewer:
    def __init__(
        self,
        zones: Sequence[str] = ("noncde",),
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._zones = tuple(zones)
        self._url = url
        self._env = env

    @property
    def zones(self) -> tuple[str, ...]:
        return self._zones

    def _open(self) -> AuditReader:
        return open_audit_reader(self._zones, url=self._url, env=self._env)

    def search(self, query: SearchQuery) -> list[AuditRecord]:
        reader = self._open()
        try:
            return reader.search(query)
        finally:
            reader.close()

    def verify(self) -> VerificationReport:
        reader = self._open()
        try:
            return reader.verify()
        finally:
            reader.close()

    def export(self, out: Path, *, time_from: str, time_to: str, exported_by: str) -> ExportResult:
        reader = self._open()
        try:
            return export_evidence(
                reader,
                out,
                time_from=time_from,
                time_to=time_to,
                zones=list(self._zones),
                exported_by=exported_by,
            )
        finally:
            reader.close()

    def close(self) -> None:
        return None

"""noncde.dashboard (non-CDE): the auditor's pages over the non-CDE audit log.

Every search, record view, verification and export is itself recorded in the audit log
before its result is shown (PCI DSS 10.2.1.3); when that record cannot be written, nothing is
shown. Only the non-CDE zone is read here: the CDE's log is read with the auditor CLI inside
the CDE (`python -m audit`), so this non-CDE process needs no path into the CDE (1.3, 7.2).
Evidence bundles are written by the audit library (`export_evidence`) and zipped for download.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from audit.domain import AuditRecord, EventType, Outcome, format_time
from audit.service import SearchQuery, VerificationReport
from fincore.ids import random_id
from noncde.dashboard.domain import InvalidInput, NotFound, StaffUser
from noncde.dashboard.ports import AuditTrail, AuditViewer, Clock
from noncde.dashboard.service.context import Origin, staff_actor, utc_now

RESOURCE = "dashboard.audit"
MAX_RESULTS = 500


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """A zipped evidence bundle ready for download."""

    path: Path
    name: str
    manifest_sha256: str
    records: int


class AuditPages:
    def __init__(
        self,
        viewer: AuditViewer,
        audit: AuditTrail,
        export_dir: Path,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.viewer = viewer
        self.audit = audit
        self.export_dir = export_dir
        self.clock = clock

    def _record(
        self,
        event: EventType,
        user: StaffUser,
        origin: Origin,
        details: dict[str, object],
        target: str | None = None,
    ) -> None:
        self.audit.record(
            event,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=target,
            resource=RESOURCE,
            details=details,
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def search(self, user: StaffUser, query: SearchQuery, origin: Origin) -> list[AuditRecord]:
        """Matching records, newest first (the query and the count are audited, never the
        results)."""
        bounded = SearchQuery(
            actor=query.actor,
            event_types=query.event_types,
            outcome=query.outcome,
            target=query.target,
            zones=tuple(self.viewer.zones),
            time_from=query.time_from,
            time_to=query.time_to,
            request_id=query.request_id,
        )
        found = self.viewer.search(bounded)
        shown = list(reversed(found))[:MAX_RESULTS]
        self._record(
            EventType.AUDIT_LOG_SEARCH,
            user,
            origin,
            {"query": bounded.to_dict(), "results": len(found), "shown": len(shown)},
        )
        return shown

    def record(self, user: StaffUser, stream: str, seq: int, origin: Origin) -> AuditRecord:
        """One record by stream and sequence number."""
        for zone in self.viewer.zones:
            for record in self.viewer.search(SearchQuery(zones=(zone,))):
                if record.stream == stream and record.seq == seq:
                    self._record(
                        EventType.AUDIT_LOG_READ,
                        user,
                        origin,
                        {"zone": zone, "stream": stream, "seq": seq},
                        target=f"{zone}/{stream}#{seq}",
                    )
                    return record
        raise NotFound("No such audit record.")

    def verify(self, user: StaffUser, origin: Origin) -> VerificationReport:
        """The hash chains and signed checkpoints of the zones read."""
        report = self.viewer.verify()
        first = report.first_bad
        self._record(
            EventType.AUDIT_LOG_VERIFY,
            user,
            origin,
            {
                "ok": report.ok,
                "records": report.records,
                "first_bad": None if first is None else f"{first[0]}/{first[1]}#{first[2]}",
            },
        )
        return report

    def export(
        self, user: StaffUser, time_from: datetime, time_to: datetime, origin: Origin
    ) -> EvidenceFile:
        """An evidence bundle of [time_from, time_to), zipped; the export is audited with the
        manifest's SHA-256 (which ties the bundle to the live log)."""
        if time_to <= time_from:
            raise InvalidInput("The end of the range must be after its start.", field="to")
        name = f"evidence-{time_from:%Y%m%d}-{time_to:%Y%m%d}-{random_id('exp', 8)}"
        self.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.export_dir / name
        result = self.viewer.export(
            folder,
            time_from=format_time(time_from),
            time_to=format_time(time_to),
            exported_by=user.username,
        )
        archive = self.export_dir / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    bundle.write(path, arcname=f"{name}/{path.relative_to(folder)}")
        shutil.rmtree(folder)
        archive.chmod(0o600)
        records, manifest = result.records, result.manifest_sha256
        self._record(
            EventType.AUDIT_LOG_EXPORT,
            user,
            origin,
            {
                "from": format_time(time_from),
                "to": format_time(time_to),
                "records": records,
                "manifest_sha256": manifest,
                "bundle": name,
            },
        )
        return EvidenceFile(archive, f"{name}.zip", manifest, records)

"""audit (both zones): writing, verifying, searching, reviewing and exporting audit logs.

`AuditLog` is the writer every process uses; `AuditReader` reads for verification and search;
`review_day` is the daily review (PCI DSS 10.4.1); `export_bundle`/`verify_bundle` make and
check evidence bundles. All of them talk to ports only (audit.ports).
"""

from audit.service.export import BundleReport, ExportResult, export_bundle, verify_bundle
from audit.service.reader import (
    AuditReader,
    SearchQuery,
    VerificationReport,
    read_checkpoints,
    verify_stream,
)
from audit.service.review import Finding, ReviewPolicy, ReviewReport, day_bounds, review_day
from audit.service.writer import AuditLog, utc_now

__all__ = [
    "AuditLog",
    "AuditReader",
    "BundleReport",
    "ExportResult",
    "Finding",
    "ReviewPolicy",
    "ReviewReport",
    "SearchQuery",
    "VerificationReport",
    "day_bounds",
    "export_bundle",
    "read_checkpoints",
    "review_day",
    "utc_now",
    "verify_bundle",
    "verify_stream",
]

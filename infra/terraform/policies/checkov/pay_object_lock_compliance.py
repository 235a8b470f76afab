"""Infrastructure (audit): CKV_PAY_3, Object Lock retention is COMPLIANCE for 365 days or more.

PCI DSS 10.3.2 / 10.3.4 / 10.5.1: in this project Object Lock exists for audit evidence, so every
default retention must be COMPLIANCE mode (not even root can shorten it) and last a year or more.
checkov's CKV_AWS_143 returns UNKNOWN for the separate lock-configuration resource; this fills it.
"""

from __future__ import annotations

from typing import Any

from pay_common import first, unrendered

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

MIN_DAYS = 365


def _retention_days(retention: dict[str, Any]) -> int | None:
    days, years = first(retention.get("days")), first(retention.get("years"))
    try:
        if days not in (None, ""):
            return int(days)
        if years not in (None, ""):
            return int(years) * 365
    except (TypeError, ValueError):
        return None
    return None


class ObjectLockComplianceOneYear(BaseResourceCheck):
    """CKV_PAY_3."""

    def __init__(self) -> None:
        super().__init__(
            name="S3 Object Lock default retention is COMPLIANCE mode for at least 365 days",
            id="CKV_PAY_3",
            categories=[CheckCategories.LOGGING],
            supported_resources=["aws_s3_bucket_object_lock_configuration"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        rule = first(conf.get("rule"))
        retention = first(rule.get("default_retention")) if isinstance(rule, dict) else None
        if not isinstance(retention, dict):
            self.details.append("no default retention")
            return CheckResult.FAILED
        if any(unrendered(retention.get(key)) for key in ("mode", "days", "years")):
            return CheckResult.UNKNOWN
        mode, days = first(retention.get("mode")), _retention_days(retention)
        if mode != "COMPLIANCE" or days is None or days < MIN_DAYS:
            self.details.append(f"mode={mode} days={days}")
            return CheckResult.FAILED
        return CheckResult.PASSED


check = ObjectLockComplianceOneYear()

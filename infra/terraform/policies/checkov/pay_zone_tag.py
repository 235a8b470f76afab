"""Infrastructure (both zones): CKV_PAY_4, every taggable AWS resource carries pci_zone.

PCI DSS 12.5.1 / 12.5.2: the inventory of in-scope components and the scope itself are kept
current; every resource says whether it is cde, connected or out-of-scope. Types without tags are
listed in ../untaggable-resource-types.txt (shared with the pytest policy test).
"""

from __future__ import annotations

from typing import Any

from pay_common import PCI_ZONES, tags_of, unrendered, untaggable_types

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck


class ResourceHasPciZoneTag(BaseResourceCheck):
    """CKV_PAY_4."""

    def __init__(self) -> None:
        super().__init__(
            name="Every taggable AWS resource is tagged pci_zone = cde, connected or out-of-scope",
            id="CKV_PAY_4",
            categories=[CheckCategories.CONVENTION],
            supported_resources=["aws_*"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if self.entity_type in untaggable_types():
            return CheckResult.UNKNOWN
        zone = tags_of(conf).get("pci_zone")
        if unrendered(zone):
            return CheckResult.UNKNOWN
        if zone not in PCI_ZONES:
            self.details.append(f"pci_zone={zone!r}")
            return CheckResult.FAILED
        return CheckResult.PASSED


check = ResourceHasPciZoneTag()

"""Infrastructure (CDE): CKV_PAY_1, no inline ingress from a CIDR or prefix list on a CDE group.

PCI DSS 1.3.1 / 1.4.2: traffic into the CDE comes only from named security groups, through
approved flows. An inline `ingress` block with cidr_blocks, ipv6_cidr_blocks or prefix_list_ids on
a group tagged pci_zone=cde fails. (Approved internet entry is a separate, generated rule resource,
checked by CKV2_PAY_1.)
"""

from __future__ import annotations

from typing import Any

from pay_common import first, tags_of

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

_CIDR_KEYS = ("cidr_blocks", "ipv6_cidr_blocks", "prefix_list_ids")


def _blocks(value: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            blocks.extend(_blocks(item))
        elif isinstance(item, dict):
            blocks.append(item)
    return blocks


class CdeSecurityGroupInlineCidrIngress(BaseResourceCheck):
    """CKV_PAY_1."""

    def __init__(self) -> None:
        super().__init__(
            name="CDE security groups have no inline ingress from a CIDR or prefix list",
            id="CKV_PAY_1",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["aws_security_group"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if tags_of(conf).get("pci_zone") != "cde":
            return CheckResult.PASSED
        for rule in _blocks(conf.get("ingress", [])):
            for key in _CIDR_KEYS:
                value = first(rule.get(key))
                if value not in (None, [], ""):
                    self.details.append(f"inline ingress with {key}={value}")
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = CdeSecurityGroupInlineCidrIngress()

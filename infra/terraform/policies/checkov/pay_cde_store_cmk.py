"""Infrastructure (CDE): CKV_PAY_5, CDE data stores are encrypted with a customer-managed key.

PCI DSS 3.5.1 / 3.6.1: every store tagged pci_zone=cde (databases, caches, secrets, log groups,
queues, streams, tables) encrypts at rest with a customer-managed KMS key, so access to the data is
governed by a key policy the project controls; caches also encrypt in transit (4.2.1).
"""

from __future__ import annotations

from typing import Any

from pay_common import first, tags_of

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

# resource type -> attributes that must be true, attribute that must name the key
_RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "aws_db_instance": (("storage_encrypted",), "kms_key_id"),
    "aws_rds_cluster": (("storage_encrypted",), "kms_key_id"),
    "aws_elasticache_replication_group": (
        ("at_rest_encryption_enabled", "transit_encryption_enabled"),
        "kms_key_id",
    ),
    "aws_secretsmanager_secret": ((), "kms_key_id"),
    "aws_cloudwatch_log_group": ((), "kms_key_id"),
    "aws_sqs_queue": ((), "kms_master_key_id"),
    "aws_kinesis_stream": ((), "kms_key_id"),
    "aws_sns_topic": ((), "kms_master_key_id"),
}


def _true(value: Any) -> bool:
    return first(value) in (True, "true", "True")


class CdeStoreCustomerManagedKey(BaseResourceCheck):
    """CKV_PAY_5."""

    def __init__(self) -> None:
        super().__init__(
            name="CDE data stores are encrypted at rest with a customer-managed KMS key",
            id="CKV_PAY_5",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=list(_RULES),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if tags_of(conf).get("pci_zone") != "cde":
            return CheckResult.PASSED
        flags, key_attribute = _RULES[self.entity_type]
        for flag in flags:
            if not _true(conf.get(flag)):
                self.details.append(f"{flag} is not true")
                return CheckResult.FAILED
        key = first(conf.get(key_attribute))
        if key in (None, "") or str(key).startswith("alias/aws/"):
            self.details.append(f"{key_attribute} does not name a customer-managed key")
            return CheckResult.FAILED
        return CheckResult.PASSED


check = CdeStoreCustomerManagedKey()

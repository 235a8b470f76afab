"""Infrastructure (non-CDE): CKV_PAY_6, Cognito user pools require MFA.

PCI DSS 8.4.1 / 8.4.2 / 8.5.1: staff sign-in needs a second factor; `mfa_configuration = "ON"`
makes it mandatory for every user (OPTIONAL lets users skip it).
"""

from __future__ import annotations

from typing import Any

from pay_common import first, unrendered

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck


class CognitoMfaRequired(BaseResourceCheck):
    """CKV_PAY_6."""

    def __init__(self) -> None:
        super().__init__(
            name="Cognito user pools require MFA for every user",
            id="CKV_PAY_6",
            categories=[CheckCategories.IAM],
            supported_resources=["aws_cognito_user_pool"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        mode = first(conf.get("mfa_configuration"))
        if unrendered(mode):
            return CheckResult.UNKNOWN
        if mode != "ON":
            self.details.append(f"mfa_configuration={mode!r}")
            return CheckResult.FAILED
        return CheckResult.PASSED


check = CognitoMfaRequired()

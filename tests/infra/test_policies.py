"""Policy tests over the HCL: each PCI rule holds on the real roots, fails on the known-bad one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import GOOD_ROOTS, KNOWN_BAD, model
from tests.infra.policy import CHECKS

# For each check, the violations it must report on fixtures/known_bad (substrings, all required).
KNOWN_BAD_VIOLATIONS: dict[str, tuple[str, ...]] = {
    "flows_match_approved_file": (
        "unapproved flow: ingress cde.vault <- cidr:0.0.0.0/0 tcp/0-65535",
        "unapproved flow: ingress cde.vault <- cidr:10.20.0.0/16 tcp/8101-8101",
        "unapproved flow: egress noncde.workers -> cde.vault tcp/8101-8101",
        "approved flow missing from the code: ingress cde.internal_alb <- noncde.workers "
        "tcp/8443-8443",
    ),
    "cde_cidr_sources_only_approved": (
        "CDE group cde.vault admits cidr:0.0.0.0/0 on tcp/0-65535",
        "CDE group cde.vault admits cidr:10.20.0.0/16 on tcp/8101-8101",
    ),
    "security_groups_are_flow_endpoints": (
        "aws_security_group.cde_vault: inline ingress rules",
        "aws_security_group.noncde_workers: pci_zone 'out-of-scope', the file says 'connected'",
        "aws_security_group.debug: flow_endpoint None is not in approved-flows.yaml",
        "aws_vpc.cde: its default security group is not managed",
    ),
    "security_groups_attached": ("aws_security_group.debug (None) is attached to nothing",),
    "routes_only_approved_path": (
        "aws_route.shadow_into_cde: route from tier noncde.app to 10.10.0.0/16 (cde zone) "
        "through ['transit_gateway_id'] is not on the approved path",
    ),
    "approved_routes_present": (
        "approved route missing: noncde.app -> cde.listener (10.10.12.0/22)",
    ),
    "one_private_path": (
        "0 peering connections, expected exactly 1",
        "aws_ec2_transit_gateway.shared: another path between networks",
    ),
    "isolated_tiers_stay_inside": (
        "aws_route.cde_vault_internet: tier cde.vault has a default route",
    ),
    "egress_allow_list_matches": (
        "aws_networkfirewall_rule_group.cde_egress: allows ['api.stripe.com', 'pastebin.com']",
        "aws_networkfirewall_firewall_policy.cde: traffic no rule allows is not dropped",
    ),
    "no_public_ips": (
        "aws_subnet.cde_app (cde.app): map_public_ip_on_launch is not false",
        "aws_db_instance.vault: publicly_accessible is not false",
    ),
    "encrypted_at_rest_with_customer_keys": (
        "aws_db_instance.vault: storage not encrypted with a customer key",
        "aws_cloudtrail.audit: kms_key_id does not name a customer key",
        "aws_s3_bucket.audit: no server-side encryption configuration",
    ),
    "tls_in_transit": (
        "aws_lb_listener.cards_http: HTTP listener with policy None",
        "aws_lb_target_group.cards_http: targets reached over HTTP",
        "aws_db_parameter_group.vault: rds.force_ssl is not 1",
    ),
    "cvc_never_persisted": ("aws_elasticache_replication_group.cvc: snapshot_retention_limit=7",),
    "keys_rotate": ("aws_kms_key.cde_pan: enable_key_rotation is not true",),
    "noncde_cannot_decrypt_cde_keys": (
        "aws_kms_key.cde_pan: statement WorkersDecrypt lets aws_iam_role.worker.arn (connected) "
        "decrypt",
        "aws_iam_role.worker (connected): ['kms:Decrypt'] on aws_kms_key.cde_pan.arn",
    ),
    "audit_buckets_object_locked": (
        "aws_s3_bucket.audit: audit bucket without Object Lock",
        "aws_s3_bucket.lb_logs: Object Lock GOVERNANCE for 30 days",
    ),
    "audit_buckets_private_and_logged": (
        "aws_s3_bucket.audit: public access not fully blocked",
        "aws_s3_bucket.audit: access to the audit bucket is not logged",
    ),
    "log_retention_one_year": ("aws_cloudwatch_log_group.cde_audit: retention_in_days=30",),
    "cloudtrail_multi_region_validated": (
        "aws_cloudtrail.audit: is_multi_region_trail is not true",
        "aws_cloudtrail.audit: enable_log_file_validation is not true",
    ),
    "security_events_alarm": (
        "no alarm to SNS on CdeSecurityGroupChanges",
        "no alarm to SNS on KmsKeyPolicyChanges",
        "no alarm to SNS on CloudTrailChanges",
        "no alarm to SNS on RootAccountUse",
        "no alarm to SNS on UnauthorizedApiCalls",
    ),
    "cognito_mfa_required": ("aws_cognito_user_pool.staff: mfa_configuration='OPTIONAL'",),
    "every_resource_tagged": ("aws_sqs_queue.jobs: pci_zone=None",),
    "zone_tags_follow_flows": (
        "noncde.workers is out-of-scope but exchanges traffic with the CDE",
    ),
    "variables_typed_and_described": (
        "fixtures/known_bad: variable environment has no type",
        "fixtures/known_bad: variable environment has no description",
    ),
    "outputs_described": ("fixtures/known_bad: output vault_db_endpoint has no description",),
    "local_modules_only": (
        "fixtures/known_bad: module vpc comes from terraform-aws-modules/vpc/aws",
    ),
    "skips_justified": ("skip of CKV_AWS_27 without a justification",),
}


def test_every_check_has_known_bad_expectations() -> None:
    """Each registered policy check is proven against the known-bad root, none is left untested."""
    assert set(KNOWN_BAD_VIOLATIONS) == set(CHECKS)


@pytest.mark.parametrize("root", GOOD_ROOTS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_real_roots_comply(root: str, check: str, flows: Any) -> None:
    """The check reports no violation on the production and development roots."""
    assert CHECKS[check](model(root), flows) == []


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_known_bad_root_is_caught(check: str, flows: Any) -> None:
    """The check reports each of its named defects of fixtures/known_bad."""
    found = CHECKS[check](model(KNOWN_BAD), flows)
    missing = [
        expected
        for expected in KNOWN_BAD_VIOLATIONS[check]
        if not any(expected in v for v in found)
    ]
    assert missing == [], f"not reported: {missing}\nreported: {found}"


def test_model_resolves_the_security_attributes_it_checks() -> None:
    """The HCL model resolves the prod root's rules, routes and keys to literals and references."""
    prod = model("envs/prod")
    rules = prod.of_type("aws_vpc_security_group_ingress_rule")
    assert len(rules) >= 20
    assert all(isinstance(r.get("from_port"), int) for r in rules)
    assert {str(r.get("security_group_id")).split(".")[-2] for r in rules} >= {
        "cde_vault",
        "cde_internal_alb",
    }
    keys = prod.of_type("aws_kms_key")
    assert {k.tags().get("pci_zone") for k in keys} == {"cde", "connected", "out-of-scope"}
    retention = {g.get("retention_in_days") for g in prod.of_type("aws_cloudwatch_log_group")}
    assert retention == {400}

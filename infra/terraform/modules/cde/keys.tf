# The CDE's keys (PCI DSS 3.5.1, 3.6.1, 3.7). Each protects one thing and is usable by one role:
# no non-CDE principal appears in any of these key policies (checked by the policy tests).

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  logs_arn_prefix = "arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group"
}

# Key-encryption key of the vault's envelope encryption: wraps the per-record data keys of PANs.
module "pan_kek" {
  source          = "../kms-key"
  name            = "${var.name}-cde-pan-kek"
  description     = "${var.name}: PAN key-encryption key of the card vault"
  pci_zone        = "cde"
  admin_role_arns = var.key_admin_role_arns
  user_role_arns  = [aws_iam_role.task["vault"].arn]
  user_actions    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
}

# Its own key for the CVC, so the short-lived CVC can never be decrypted with the PAN key.
module "cvc_key" {
  source          = "../kms-key"
  name            = "${var.name}-cde-cvc"
  description     = "${var.name}: CVC encryption until first use"
  pci_zone        = "cde"
  admin_role_arns = var.key_admin_role_arns
  user_role_arns  = [aws_iam_role.task["vault"].arn]
  user_actions    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
}

# The CDE's audit and log key: service logs, the CDE audit log, database and cache logs.
module "logs_key" {
  source                 = "../kms-key"
  name                   = "${var.name}-cde-logs"
  description            = "${var.name}: CDE audit log and service logs"
  pci_zone               = "cde"
  admin_role_arns        = var.key_admin_role_arns
  log_group_arn_patterns = [
    "${local.logs_arn_prefix}:/fincore/${var.name}-cde-*",
    "${local.logs_arn_prefix}:/aws/rds/instance/${var.name}-cde-*",
  ]
}

# Secrets Manager secrets of the CDE (PSP keys, the database master password). Only the gateway's
# execution role decrypts, and only through Secrets Manager.
module "secrets_key" {
  source            = "../kms-key"
  name              = "${var.name}-cde-secrets"
  description       = "${var.name}: CDE secrets (PSP API key, webhook secret, vault DB master password)"
  pci_zone          = "cde"
  admin_role_arns   = var.key_admin_role_arns
  user_role_arns    = [module.gateway.execution_role_arn]
  user_actions      = ["kms:Decrypt", "kms:DescribeKey"]
  user_via_services = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
}

# At-rest encryption of the vault database, its Performance Insights and the CVC store; used
# only by RDS and ElastiCache through grants.
module "storage_key" {
  source          = "../kms-key"
  name            = "${var.name}-cde-storage"
  description     = "${var.name}: vault database and CVC store at rest"
  pci_zone        = "cde"
  admin_role_arns = var.key_admin_role_arns
}

# Card fingerprints: HMAC-SHA-256 of the PAN under a KMS HMAC key (PCI DSS 3.5.1.1: keyed
# cryptographic hash). The key never leaves KMS; only the vault may compute or verify MACs.
resource "aws_kms_key" "fingerprint" {
  # checkov:skip=CKV_AWS_7:KMS cannot rotate HMAC keys automatically. The cryptoperiod (tag cryptoperiod_days) is enforced by the manual rotation runbook in docs/security-teams.md: new key, alias switch, re-fingerprint.
  description              = "${var.name}: card fingerprint HMAC key"
  key_usage                = "GENERATE_VERIFY_MAC"
  customer_master_key_spec = "HMAC_256"
  enable_key_rotation      = false
  deletion_window_in_days  = 30
  policy                   = data.aws_iam_policy_document.fingerprint_key.json

  tags = {
    Name              = "${var.name}-cde-fingerprint"
    pci_zone          = "cde"
    cryptoperiod_days = "365"
  }
}

resource "aws_kms_alias" "fingerprint" {
  name          = "alias/${var.name}-cde-fingerprint"
  target_key_id = aws_kms_key.fingerprint.key_id
}

data "aws_iam_policy_document" "fingerprint_key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource * means this key only; administration is limited to the named admin roles and excludes every cryptographic action.
  # checkov:skip=CKV_AWS_111:Same reason: Resource * in a key policy is the key itself.
  # checkov:skip=CKV_AWS_356:Same reason: Resource * in a key policy is the key itself.
  statement {
    sid     = "KeyAdministration"
    actions = [
      "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias", "kms:DescribeKey", "kms:EnableKey", "kms:DisableKey",
      "kms:GetKeyPolicy", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags",
      "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      "kms:TagResource", "kms:UntagResource", "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.key_admin_role_arns
    }
  }

  statement {
    sid       = "KeyUse"
    actions   = ["kms:GenerateMac", "kms:VerifyMac", "kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.task["vault"].arn]
    }
  }
}

# The non-CDE zone's own keys. None of them is a CDE key, and no non-CDE role appears in a CDE key
# policy or holds kms:Decrypt on a CDE key (PCI DSS 3.6.1.2, 7.2.1; checked by the policy tests).

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  logs_arn_prefix = "arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group"
}

# Queue, stream, rules table, databases and cache at rest. The services use it only through SQS
# and Kinesis (client-side data keys); the rest through grants for AWS resources.
module "data_key" {
  source            = "../kms-key"
  name              = "${var.name}-noncde-data"
  description       = "${var.name}: non-CDE data at rest (queue, stream, rules, PaymentDB, LedgerDB, cache)"
  pci_zone          = "out-of-scope"
  admin_role_arns   = var.key_admin_role_arns
  user_role_arns    = [for role in aws_iam_role.task : role.arn]
  user_actions      = ["kms:GenerateDataKey", "kms:Decrypt"]
  user_via_services = ["sqs.${data.aws_region.current.name}.amazonaws.com", "kinesis.${data.aws_region.current.name}.amazonaws.com"]
}

module "logs_key" {
  source                 = "../kms-key"
  name                   = "${var.name}-noncde-logs"
  description            = "${var.name}: non-CDE service and database logs"
  pci_zone               = "connected"
  admin_role_arns        = var.key_admin_role_arns
  log_group_arn_patterns = [
    "${local.logs_arn_prefix}:/fincore/${var.name}-noncde-*",
    "${local.logs_arn_prefix}:/aws/rds/instance/${var.name}-noncde-*",
  ]
}

module "secrets_key" {
  source          = "../kms-key"
  name            = "${var.name}-noncde-secrets"
  description     = "${var.name}: non-CDE database master passwords"
  pci_zone        = "out-of-scope"
  admin_role_arns = var.key_admin_role_arns
}

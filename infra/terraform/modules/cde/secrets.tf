# The gateway's PSP credentials. Values are never in code: an operator puts them with
# `aws secretsmanager put-secret-value` (docs/security-teams.md). Only the gateway reads them.

locals {
  # ECS resolves secrets by name in the same account and region, so the gateway's task definition
  # needs no reference to these resources.
  psp_api_key_secret_name = "${var.name}/cde/psp-api-key"
  psp_webhook_secret_name = "${var.name}/cde/psp-webhook-secret"
}

resource "aws_secretsmanager_secret" "psp_api_key" {
  # checkov:skip=CKV2_AWS_57:The PSP issues this key; it is rotated in the PSP's dashboard by the key-rotation runbook (docs/security-teams.md), no Lambda can rotate it.
  name                    = local.psp_api_key_secret_name
  description             = "Secret API key of the PSP account (read by the gateway only)"
  kms_key_id              = module.secrets_key.key_arn
  recovery_window_in_days = 30

  tags = {
    Name     = "${var.name}-cde-psp-api-key"
    pci_zone = "cde"
  }
}

resource "aws_secretsmanager_secret" "psp_webhook_secret" {
  # checkov:skip=CKV2_AWS_57:The PSP issues this signing secret; it is rotated in the PSP's dashboard by the key-rotation runbook (docs/security-teams.md).
  name                    = local.psp_webhook_secret_name
  description             = "Signing secret of the PSP's webhooks (read by the gateway only)"
  kms_key_id              = module.secrets_key.key_arn
  recovery_window_in_days = 30

  tags = {
    Name     = "${var.name}-cde-psp-webhook-secret"
    pci_zone = "cde"
  }
}

# PCI DSS 7.2.1: whatever IAM says, nobody but the gateway's execution role reads these values.
data "aws_iam_policy_document" "psp_secret" {
  statement {
    sid       = "OnlyTheGatewayReads"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [module.gateway.execution_role_arn]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "psp_api_key" {
  secret_arn = aws_secretsmanager_secret.psp_api_key.arn
  policy     = data.aws_iam_policy_document.psp_secret.json
}

resource "aws_secretsmanager_secret_policy" "psp_webhook_secret" {
  secret_arn = aws_secretsmanager_secret.psp_webhook_secret.arn
  policy     = data.aws_iam_policy_document.psp_secret.json
}

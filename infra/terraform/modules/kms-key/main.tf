# One customer-managed symmetric KMS key with yearly automatic rotation (PCI DSS 3.6.1, 3.7.4) and
# a least-privilege key policy (PCI DSS 3.6.1.2, 7.2.1): administrators manage the key and attach it
# to AWS resources but never use it; only the named user roles (optionally only through named AWS
# services) and the named service principals use it. No "kms:*" to the account root: IAM policies
# alone can never grant use of the key.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "this" {
  description             = var.description
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.this.json

  tags = {
    Name     = var.name
    pci_zone = var.pci_zone
  }
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "this" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource * means this key only; administration is limited to the named admin roles and excludes every cryptographic action.
  # checkov:skip=CKV_AWS_111:Same reason: Resource * in a key policy is the key itself.
  # checkov:skip=CKV_AWS_356:Same reason: Resource * in a key policy is the key itself.
  source_policy_documents = var.extra_policy_jsons

  statement {
    sid     = "KeyAdministration"
    actions = [
      "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias", "kms:DescribeKey", "kms:EnableKey", "kms:DisableKey",
      "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
      "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:PutKeyPolicy",
      "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      "kms:TagResource", "kms:UntagResource", "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.admin_role_arns
    }
  }

  statement {
    sid       = "AttachToAwsResourcesOnly"
    actions   = ["kms:CreateGrant"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.admin_role_arns
    }

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  dynamic "statement" {
    for_each = length(var.user_role_arns) > 0 ? [1] : []
    content {
      sid       = "KeyUse"
      actions   = var.user_actions
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = var.user_role_arns
      }

      dynamic "condition" {
        for_each = length(var.user_via_services) > 0 ? [1] : []
        content {
          test     = "StringEquals"
          variable = "kms:ViaService"
          values   = var.user_via_services
        }
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.log_group_arn_patterns) > 0 ? [1] : []
    content {
      sid       = "CloudWatchLogs"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = var.log_group_arn_patterns
      }
    }
  }
}

# The audit trail of both zones (PCI DSS requirement 10): a multi-region CloudTrail with log-file
# validation into an Object Lock (COMPLIANCE) archive, its CloudWatch copy kept a year, and alarms
# to SNS for the security events named in PCI DSS 10.4.1 / 10.7.2.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_elb_service_account" "current" {}

locals {
  account_id       = data.aws_caller_identity.current.account_id
  region           = data.aws_region.current.name
  trail_name       = "${var.name}-audit"
  trail_arn        = "arn:aws:cloudtrail:${local.region}:${local.account_id}:trail/${local.trail_name}"
  log_group_prefix = "/fincore/${var.name}/audit"

  bucket_names = {
    archive     = "${var.name}-audit-archive-${local.account_id}"
    lb_logs     = "${var.name}-lb-logs-${local.account_id}"
    access_logs = "${var.name}-access-logs-${local.account_id}"
  }
}

# ---- The audit key

module "key" {
  source                 = "../kms-key"
  name                   = "${var.name}-audit"
  description            = "${var.name}: CloudTrail, its CloudWatch copy, the archive and the security alerts"
  pci_zone               = "connected"
  admin_role_arns        = var.key_admin_role_arns
  user_role_arns         = var.auditor_role_arns
  user_actions           = ["kms:Decrypt", "kms:DescribeKey"]
  user_via_services      = ["s3.${local.region}.amazonaws.com"]
  log_group_arn_patterns = ["arn:aws:logs:${local.region}:${local.account_id}:log-group:${local.log_group_prefix}/*"]
  extra_policy_jsons     = [data.aws_iam_policy_document.audit_key_services.json]
}

# PCI DSS 10.3.1: CloudTrail and CloudWatch may only encrypt what they write; the auditor roles
# (module "key" users) decrypt, and only through S3.
data "aws_iam_policy_document" "audit_key_services" {
  # checkov:skip=CKV_AWS_111:Key-policy statements: Resource * is the key itself, and every statement is bound to this trail or this account.
  # checkov:skip=CKV_AWS_356:Same reason: Resource * in a key policy is the key itself.
  statement {
    sid       = "CloudTrailEncryptsThisTrail"
    actions   = ["kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:aws:cloudtrail:*:${local.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "CloudTrailDescribesTheKey"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "AlarmsPublishToTheEncryptedTopics"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ---- The archives: write-once buckets (modules/log-bucket)

# CloudTrail log files and digests, under the audit key.
module "archive" {
  source                 = "../log-bucket"
  bucket_name            = local.bucket_names.archive
  pci_zone               = "connected"
  kms_key_arn            = module.key.key_arn
  access_log_bucket_name = module.access_logs.bucket_name
  object_lock_days       = var.archive_retention_days
  reader_role_arns       = var.auditor_role_arns
  writer_policy_json     = data.aws_iam_policy_document.archive_writer.json
}

data "aws_iam_policy_document" "archive_writer" {
  statement {
    sid       = "CloudTrailChecksTheAcl"
    actions   = ["s3:GetBucketAcl"]
    resources = ["arn:aws:s3:::${local.bucket_names.archive}"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWritesThisAccountsLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:aws:s3:::${local.bucket_names.archive}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

# Load-balancer access logs. Elastic Load Balancing can only write to SSE-S3 buckets.
module "lb_logs" {
  source                 = "../log-bucket"
  bucket_name            = local.bucket_names.lb_logs
  pci_zone               = "connected"
  kms_key_arn            = null
  access_log_bucket_name = module.access_logs.bucket_name
  object_lock_days       = var.archive_retention_days
  reader_role_arns       = var.auditor_role_arns
  writer_policy_json     = data.aws_iam_policy_document.lb_logs_writer.json
}

data "aws_iam_policy_document" "lb_logs_writer" {
  statement {
    sid       = "ElasticLoadBalancingWritesAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:aws:s3:::${local.bucket_names.lb_logs}/*/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.current.arn]
    }
  }
}

# S3 server access logs of the two buckets above. S3 log delivery can only write to SSE-S3
# buckets, and a bucket cannot usefully log its own access.
module "access_logs" {
  # checkov:skip=CKV_AWS_18:This is the access-log bucket; logging its own access would loop. The policy test audit_buckets_private_and_logged checks every other log bucket.
  # checkov:skip=CKV_AWS_145:S3 server access log delivery only writes to SSE-S3 (AES256) buckets.
  source                 = "../log-bucket"
  bucket_name            = local.bucket_names.access_logs
  pci_zone               = "connected"
  kms_key_arn            = null
  access_log_bucket_name = null
  object_lock_days       = var.archive_retention_days
  reader_role_arns       = var.auditor_role_arns
  writer_policy_json     = data.aws_iam_policy_document.access_logs_writer.json
}

data "aws_iam_policy_document" "access_logs_writer" {
  statement {
    sid       = "S3LogDeliveryWritesAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:aws:s3:::${local.bucket_names.access_logs}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ---- CloudTrail

resource "aws_cloudwatch_log_group" "trail" {
  name              = "${local.log_group_prefix}/cloudtrail"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.key_arn

  tags = {
    Name     = "${var.name}-cloudtrail"
    pci_zone = "connected"
  }
}

data "aws_iam_policy_document" "trail_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

data "aws_iam_policy_document" "trail_to_cloudwatch" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trail.arn}:*"]
  }
}

resource "aws_iam_role" "trail_to_cloudwatch" {
  name               = "${var.name}-cloudtrail-to-cloudwatch"
  assume_role_policy = data.aws_iam_policy_document.trail_trust.json

  tags = {
    Name     = "${var.name}-cloudtrail-to-cloudwatch"
    pci_zone = "connected"
  }
}

resource "aws_iam_role_policy" "trail_to_cloudwatch" {
  name   = "deliver-trail"
  role   = aws_iam_role.trail_to_cloudwatch.id
  policy = data.aws_iam_policy_document.trail_to_cloudwatch.json
}

resource "aws_sns_topic" "trail_deliveries" {
  name              = "${var.name}-cloudtrail-deliveries"
  kms_master_key_id = module.key.key_arn

  tags = {
    Name     = "${var.name}-cloudtrail-deliveries"
    pci_zone = "connected"
  }
}

data "aws_iam_policy_document" "trail_deliveries" {
  statement {
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.trail_deliveries.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_sns_topic_policy" "trail_deliveries" {
  arn    = aws_sns_topic.trail_deliveries.arn
  policy = data.aws_iam_policy_document.trail_deliveries.json
}

# PCI DSS 10.2.1 (all events, every region), 10.3.2 / 10.3.4 (log-file validation: signed
# digests detect any change), 10.2.1.3 (reads of the log archives are themselves logged).
resource "aws_cloudtrail" "audit" {
  name                          = local.trail_name
  s3_bucket_name                = module.archive.bucket_name
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  enable_logging                = true
  kms_key_id                    = module.key.key_arn
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.trail_to_cloudwatch.arn
  sns_topic_name                = aws_sns_topic.trail_deliveries.arn

  advanced_event_selector {
    name = "All management events"

    field_selector {
      field  = "eventCategory"
      equals = ["Management"]
    }
  }

  advanced_event_selector {
    name = "Reads of the log archives"

    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }

    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }

    field_selector {
      field  = "readOnly"
      equals = ["true"]
    }

    field_selector {
      field       = "resources.ARN"
      starts_with = ["${module.archive.bucket_arn}/", "${module.lb_logs.bucket_arn}/", "${module.access_logs.bucket_arn}/"]
    }
  }

  tags = {
    Name     = local.trail_name
    pci_zone = "connected"
  }

  depends_on = [module.archive]
}

# ---- Security alarms (PCI DSS 10.4.1, 10.7.2)

resource "aws_sns_topic" "security_alerts" {
  name              = "${var.name}-security-alerts"
  kms_master_key_id = module.key.key_arn

  tags = {
    Name     = "${var.name}-security-alerts"
    pci_zone = "connected"
  }
}

locals {
  # One metric per security event; alarm below on each metric.
  security_filters = {
    kms-key-policy-change = {
      metric  = "KmsKeyPolicyChanges"
      pattern = "{ ($.eventSource = \"kms.amazonaws.com\") && (($.eventName = \"PutKeyPolicy\") || ($.eventName = \"DisableKey\") || ($.eventName = \"ScheduleKeyDeletion\") || ($.eventName = \"CreateGrant\")) }"
    }
    cloudtrail-stopped = {
      metric  = "CloudTrailChanges"
      pattern = "{ ($.eventName = \"StopLogging\") || ($.eventName = \"DeleteTrail\") || ($.eventName = \"UpdateTrail\") || ($.eventName = \"PutEventSelectors\") }"
    }
    root-use = {
      metric  = "RootAccountUse"
      pattern = "{ $.userIdentity.type = \"Root\" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != \"AwsServiceEvent\" }"
    }
    unauthorized-api-calls = {
      metric  = "UnauthorizedApiCalls"
      pattern = "{ ($.errorCode = \"*UnauthorizedOperation\") || ($.errorCode = \"AccessDenied*\") }"
    }
    network-path-change = {
      metric  = "NetworkPathChanges"
      pattern = "{ ($.eventName = \"CreateRoute\") || ($.eventName = \"ReplaceRoute\") || ($.eventName = \"DeleteRoute\") || ($.eventName = \"CreateVpcPeeringConnection\") || ($.eventName = \"AcceptVpcPeeringConnection\") || ($.eventName = \"AttachInternetGateway\") || ($.eventName = \"CreateTransitGatewayVpcAttachment\") }"
    }
  }

  # A CloudWatch filter pattern holds at most 1024 characters, so each CDE group gets its own
  # filter; all of them feed one metric.
  sg_change_events = "($.eventName = \"AuthorizeSecurityGroupIngress\") || ($.eventName = \"AuthorizeSecurityGroupEgress\") || ($.eventName = \"RevokeSecurityGroupIngress\") || ($.eventName = \"RevokeSecurityGroupEgress\") || ($.eventName = \"ModifySecurityGroupRules\") || ($.eventName = \"DeleteSecurityGroup\")"

  security_alarms = {
    CdeSecurityGroupChanges = "A rule of a CDE security group changed outside the approved-flows pipeline"
    KmsKeyPolicyChanges     = "A KMS key policy changed, or a key was disabled, scheduled for deletion or granted"
    CloudTrailChanges       = "CloudTrail was stopped, deleted or reconfigured"
    RootAccountUse          = "The root user was used"
    UnauthorizedApiCalls    = "API calls were refused (possible probing)"
    NetworkPathChanges      = "A route, peering, internet gateway or transit gateway attachment changed"
  }
}

resource "aws_cloudwatch_log_metric_filter" "security" {
  for_each       = local.security_filters
  name           = "${var.name}-${each.key}"
  log_group_name = aws_cloudwatch_log_group.trail.name
  pattern        = each.value.pattern

  metric_transformation {
    name      = each.value.metric
    namespace = "FinCore/${var.name}/Security"
    value     = "1"
  }
}

resource "aws_cloudwatch_log_metric_filter" "cde_security_group" {
  for_each       = var.cde_security_group_ids
  name           = "${var.name}-cde-sg-${replace(each.key, ".", "-")}"
  log_group_name = aws_cloudwatch_log_group.trail.name
  pattern        = "{ (${local.sg_change_events}) && (($.requestParameters.groupId = \"${each.value}\") || ($.requestParameters.ModifySecurityGroupRulesRequest.GroupId = \"${each.value}\")) }"

  metric_transformation {
    name      = "CdeSecurityGroupChanges"
    namespace = "FinCore/${var.name}/Security"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "security" {
  for_each            = local.security_alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value
  namespace           = "FinCore/${var.name}/Security"
  metric_name         = each.key
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.security_alerts.arn]

  tags = {
    Name     = "${var.name}-${each.key}"
    pci_zone = "connected"
  }

  depends_on = [aws_cloudwatch_log_metric_filter.security, aws_cloudwatch_log_metric_filter.cde_security_group]
}

# PCI DSS 10.2.1, 10.3.2, 10.5.1: VPC flow logs and firewall logs of both zones, in CloudWatch,
# encrypted with a customer key and kept at least a year.

locals {
  log_group_prefix = "/fincore/${var.name}/network"
}

module "key" {
  source                 = "../kms-key"
  name                   = "${var.name}-network"
  description            = "${var.name}: VPC flow logs, Network Firewall logs and configuration"
  pci_zone               = "connected"
  admin_role_arns        = var.key_admin_role_arns
  log_group_arn_patterns = ["arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${local.log_group_prefix}/*"]
  extra_policy_jsons     = [data.aws_iam_policy_document.network_firewall_key_use.json]
}

# Network Firewall encrypts its configuration with the caller's grant, only through the service.
data "aws_iam_policy_document" "network_firewall_key_use" {
  statement {
    sid       = "NetworkFirewallConfiguration"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.key_admin_role_arns
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["network-firewall.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  for_each          = { cde = "cde", noncde = "connected" }
  name              = "${local.log_group_prefix}/flow-logs/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.key_arn

  tags = {
    Name     = "${var.name}-flow-logs-${each.key}"
    pci_zone = each.value
  }
}

resource "aws_cloudwatch_log_group" "firewall_alert" {
  name              = "${local.log_group_prefix}/firewall/alert"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.key_arn

  tags = {
    Name     = "${var.name}-firewall-alert"
    pci_zone = "cde"
  }
}

resource "aws_cloudwatch_log_group" "firewall_flow" {
  name              = "${local.log_group_prefix}/firewall/flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.key_arn

  tags = {
    Name     = "${var.name}-firewall-flow"
    pci_zone = "cde"
  }
}

data "aws_iam_policy_document" "flow_logs_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "flow_logs_delivery" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [for group in aws_cloudwatch_log_group.flow_logs : "${group.arn}:*"]
  }
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_trust.json

  tags = {
    Name     = "${var.name}-flow-logs"
    pci_zone = "connected"
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "deliver-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs_delivery.json
}

resource "aws_flow_log" "cde" {
  vpc_id                   = aws_vpc.cde.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs["cde"].arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 60

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

resource "aws_flow_log" "noncde" {
  vpc_id                   = aws_vpc.noncde.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs["noncde"].arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 60

  tags = {
    Name     = "${var.name}-noncde"
    pci_zone = "connected"
  }
}

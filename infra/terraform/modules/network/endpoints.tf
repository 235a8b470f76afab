# PCI DSS 1.3.2 / 1.4.4: AWS APIs are reached through private endpoints, so the vault and data
# tiers never need a route out of the VPC. Endpoint policies only admit this account's principals
# (no data exfiltration to another account through the endpoint).

locals {
  cde_interface_services    = ["kms", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "sts"]
  noncde_interface_services = ["kms", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "sts", "sqs", "kinesis-streams"]
}

locals {
  # Endpoint service -> the IAM action prefix it carries.
  endpoint_action_prefix = {
    "kms" = "kms", "secretsmanager" = "secretsmanager", "logs" = "logs", "ecr.api" = "ecr", "ecr.dkr" = "ecr",
    "sts" = "sts", "sqs" = "sqs", "kinesis-streams" = "kinesis", "s3" = "s3", "dynamodb" = "dynamodb"
  }
}

data "aws_iam_policy_document" "endpoint" {
  # checkov:skip=CKV_AWS_111:An endpoint policy is a boundary, not a grant: it limits the endpoint to this service and this account's principals, whose own IAM policies are least-privilege.
  # checkov:skip=CKV_AWS_356:Same reason: Resource * in an endpoint policy only says which calls may pass the endpoint.
  # checkov:skip=CKV_AWS_109:Same reason: the endpoint passes calls; this account's IAM policies grant them.
  # checkov:skip=CKV_AWS_108:Same reason: reads through the endpoint still need the caller's own IAM grant.
  for_each = toset(values(local.endpoint_action_prefix))

  statement {
    sid       = "OnlyThisAccountsPrincipals"
    effect    = "Allow"
    actions   = ["${each.key}:*"]
    resources = ["*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "cde_interface" {
  for_each            = toset(local.cde_interface_services)
  vpc_id              = aws_vpc.cde.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for subnet in aws_subnet.cde_endpoints : subnet.id]
  security_group_ids  = [aws_security_group.cde_endpoints.id]
  policy              = data.aws_iam_policy_document.endpoint[local.endpoint_action_prefix[each.key]].json

  tags = {
    Name     = "${var.name}-cde-${each.key}"
    pci_zone = "cde"
  }
}

resource "aws_vpc_endpoint" "cde_s3" {
  vpc_id            = aws_vpc.cde.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat([for table in aws_route_table.cde_app : table.id], [for table in aws_route_table.cde_vault : table.id])
  policy            = data.aws_iam_policy_document.endpoint["s3"].json

  tags = {
    Name     = "${var.name}-cde-s3"
    pci_zone = "cde"
  }
}

resource "aws_vpc_endpoint" "noncde_interface" {
  for_each            = toset(local.noncde_interface_services)
  vpc_id              = aws_vpc.noncde.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for subnet in aws_subnet.noncde_endpoints : subnet.id]
  security_group_ids  = [aws_security_group.noncde_endpoints.id]
  policy              = data.aws_iam_policy_document.endpoint[local.endpoint_action_prefix[each.key]].json

  tags = {
    Name     = "${var.name}-noncde-${each.key}"
    pci_zone = "out-of-scope"
  }
}

resource "aws_vpc_endpoint" "noncde_s3" {
  vpc_id            = aws_vpc.noncde.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for table in aws_route_table.noncde_app : table.id]
  policy            = data.aws_iam_policy_document.endpoint["s3"].json

  tags = {
    Name     = "${var.name}-noncde-s3"
    pci_zone = "out-of-scope"
  }
}

resource "aws_vpc_endpoint" "noncde_dynamodb" {
  vpc_id            = aws_vpc.noncde.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for table in aws_route_table.noncde_app : table.id]
  policy            = data.aws_iam_policy_document.endpoint["dynamodb"].json

  tags = {
    Name     = "${var.name}-noncde-dynamodb"
    pci_zone = "out-of-scope"
  }
}

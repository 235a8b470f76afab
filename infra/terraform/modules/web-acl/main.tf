# A web ACL for an internet-facing entry point (PCI DSS 6.4.2: an automated technical solution that
# detects and prevents web-based attacks): AWS managed rule groups (common, known bad inputs incl.
# Log4j, SQL injection, IP reputation), a per-IP rate limit, and full request logging.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

module "key" {
  source                 = "../kms-key"
  name                   = "${var.name}-waf-logs"
  description            = "${var.name}: WAF logs"
  pci_zone               = var.pci_zone
  admin_role_arns        = var.key_admin_role_arns
  log_group_arn_patterns = ["arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:aws-waf-logs-${var.name}"]
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "aws-waf-logs-${var.name}" # WAF requires the aws-waf-logs- prefix
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.key_arn

  tags = {
    Name     = "aws-waf-logs-${var.name}"
    pci_zone = var.pci_zone
  }
}

resource "aws_wafv2_web_acl" "this" {
  name        = var.name
  description = "${var.name}: managed rule groups and a per-IP rate limit"
  scope       = var.scope

  default_action {
    allow {}
  }

  rule {
    name     = "aws-common"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 20

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet" # includes Log4JRCE
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-sqli"
    priority = 30

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesSQLiRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-sqli"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 40

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 50

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.rate_limit_per_5_minutes
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }

  tags = {
    Name     = var.name
    pci_zone = var.pci_zone
  }
}

# PCI DSS 10.2.1: every request the WAF sees is logged. Card-bearing bodies are never logged
# (WAF logs headers and URI only), and the Authorization header is redacted.
resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.this.arn]

  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}

# PCI DSS 1.3.2 / 1.4.4: the CDE may reach the internet only to the PSP's host names. The app
# tier's default route points at this firewall; its rule group allows exactly the domains of the
# approved-flows file (local.cde_egress_domains) and drops every other established flow.

resource "aws_networkfirewall_rule_group" "cde_egress" {
  name     = "${var.name}-cde-egress"
  type     = "STATEFUL"
  capacity = 100

  encryption_configuration {
    type   = "CUSTOMER_KMS"
    key_id = module.key.key_arn
  }

  rule_group {
    stateful_rule_options {
      rule_order = "STRICT_ORDER"
    }

    rules_source {
      rules_source_list {
        generated_rules_type = "ALLOWLIST"
        target_types         = ["TLS_SNI", "HTTP_HOST"]
        targets              = local.cde_egress_domains
      }
    }
  }

  tags = {
    Name     = "${var.name}-cde-egress"
    pci_zone = "cde"
  }
}

resource "aws_networkfirewall_firewall_policy" "cde" {
  name = "${var.name}-cde"

  encryption_configuration {
    type   = "CUSTOMER_KMS"
    key_id = module.key.key_arn
  }

  firewall_policy {
    stateless_default_actions          = ["aws:forward_to_sfe"]
    stateless_fragment_default_actions = ["aws:forward_to_sfe"]
    stateful_default_actions           = ["aws:drop_established", "aws:alert_established"]

    stateful_engine_options {
      rule_order = "STRICT_ORDER"
    }

    stateful_rule_group_reference {
      priority     = 100
      resource_arn = aws_networkfirewall_rule_group.cde_egress.arn
    }
  }

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

resource "aws_networkfirewall_firewall" "cde" {
  name                              = "${var.name}-cde"
  vpc_id                            = aws_vpc.cde.id
  firewall_policy_arn               = aws_networkfirewall_firewall_policy.cde.arn
  delete_protection                 = true
  firewall_policy_change_protection = true
  subnet_change_protection          = true

  encryption_configuration {
    type   = "CUSTOMER_KMS"
    key_id = module.key.key_arn
  }

  dynamic "subnet_mapping" {
    for_each = aws_subnet.cde_firewall
    content {
      subnet_id = subnet_mapping.value.id
    }
  }

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

locals {
  # One firewall endpoint per availability zone; each AZ's routes use its own.
  firewall_endpoint_ids = {
    for state in aws_networkfirewall_firewall.cde.firewall_status[0].sync_states :
    state.availability_zone => state.attachment[0].endpoint_id
  }
}

# PCI DSS 10.2.1 / 1.2.5: every allowed and dropped egress flow is logged.
resource "aws_networkfirewall_logging_configuration" "cde" {
  firewall_arn = aws_networkfirewall_firewall.cde.arn

  logging_configuration {
    log_destination_config {
      log_type             = "ALERT"
      log_destination_type = "CloudWatchLogs"
      log_destination      = {
        logGroup = aws_cloudwatch_log_group.firewall_alert.name
      }
    }

    log_destination_config {
      log_type             = "FLOW"
      log_destination_type = "CloudWatchLogs"
      log_destination      = {
        logGroup = aws_cloudwatch_log_group.firewall_flow.name
      }
    }
  }
}

# The CDE's two entry points. Public: the card ingress (and the PSP's webhooks), behind WAF, TLS
# 1.2+ only (PCI DSS 4.2.1, 6.4.2). Internal: the gateway's listener, the only CDE address the
# non-CDE zone can reach (through the peering connection, from the API and worker groups only).

locals {
  # TLS 1.3 and 1.2 with forward-secret AEAD ciphers only (PCI DSS 4.2.1).
  tls_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

resource "aws_lb" "ingress" {
  name                       = "${var.name}-cde-ingress"
  internal                   = false
  load_balancer_type         = "application"
  subnets                    = var.subnet_ids["cde.edge"]
  security_groups            = [var.security_group_ids["cde.ingress_alb"]]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "strictest"

  access_logs {
    bucket  = var.lb_logs_bucket_name
    prefix  = "cde-ingress"
    enabled = true
  }

  tags = {
    Name     = "${var.name}-cde-ingress"
    pci_zone = "cde"
  }
}

resource "aws_lb_target_group" "ingress" {
  name        = "${var.name}-cde-ingress"
  port        = 8100
  protocol    = "HTTPS"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    enabled  = true
    protocol = "HTTPS"
    path     = "/healthz"
    matcher  = "200"
  }

  tags = {
    Name     = "${var.name}-cde-ingress"
    pci_zone = "cde"
  }
}

resource "aws_lb_target_group" "gateway_webhooks" {
  name        = "${var.name}-cde-gw-hooks"
  port        = 8102
  protocol    = "HTTPS"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    enabled  = true
    protocol = "HTTPS"
    path     = "/healthz"
    matcher  = "200"
  }

  tags = {
    Name     = "${var.name}-cde-gateway-webhooks"
    pci_zone = "cde"
  }
}

resource "aws_lb_listener" "ingress_https" {
  load_balancer_arn = aws_lb.ingress.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = local.tls_policy
  certificate_arn   = var.ingress_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ingress.arn
  }

  tags = {
    Name     = "${var.name}-cde-ingress-https"
    pci_zone = "cde"
  }
}

# The PSP's signed webhooks go to the gateway, which verifies them and drops anything card-related.
resource "aws_lb_listener_rule" "psp_webhooks" {
  listener_arn = aws_lb_listener.ingress_https.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway_webhooks.arn
  }

  condition {
    path_pattern {
      values = ["/v1/psp/webhooks", "/v1/psp/webhooks/*"]
    }
  }

  tags = {
    Name     = "${var.name}-cde-psp-webhooks"
    pci_zone = "cde"
  }
}

module "ingress_waf" {
  source                   = "../web-acl"
  name                     = "${var.name}-cde-ingress"
  pci_zone                 = "cde"
  scope                    = "REGIONAL"
  rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  log_retention_days       = var.log_retention_days
  key_admin_role_arns      = var.key_admin_role_arns
}

resource "aws_wafv2_web_acl_association" "ingress" {
  resource_arn = aws_lb.ingress.arn
  web_acl_arn  = module.ingress_waf.web_acl_arn
}

# ---- The gateway's internal listener (cross-zone path, approved flows FLOW-016 and FLOW-017)

resource "aws_lb" "internal" {
  name                       = "${var.name}-cde-internal"
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.subnet_ids["cde.listener"]
  security_groups            = [var.security_group_ids["cde.internal_alb"]]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "strictest"

  access_logs {
    bucket  = var.lb_logs_bucket_name
    prefix  = "cde-internal"
    enabled = true
  }

  tags = {
    Name     = "${var.name}-cde-internal"
    pci_zone = "cde"
  }
}

resource "aws_lb_target_group" "gateway_internal" {
  name        = "${var.name}-cde-gw-internal"
  port        = 8102
  protocol    = "HTTPS"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    enabled  = true
    protocol = "HTTPS"
    path     = "/healthz"
    matcher  = "200"
  }

  tags = {
    Name     = "${var.name}-cde-gateway-internal"
    pci_zone = "cde"
  }
}

resource "aws_lb_listener" "gateway_internal" {
  load_balancer_arn = aws_lb.internal.arn
  port              = 8443
  protocol          = "HTTPS"
  ssl_policy        = local.tls_policy
  certificate_arn   = var.internal_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway_internal.arn
  }

  tags = {
    Name     = "${var.name}-cde-gateway-internal"
    pci_zone = "cde"
  }
}

resource "aws_route53_record" "gateway_internal" {
  zone_id = var.internal_zone_id
  name    = var.gateway_internal_host
  type    = "A"

  alias {
    name                   = aws_lb.internal.dns_name
    zone_id                = aws_lb.internal.zone_id
    evaluate_target_health = true
  }
}

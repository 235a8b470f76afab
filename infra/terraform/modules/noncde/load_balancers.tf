# The merchant API's two entry points: the public ALB behind WAF, and the internal listener that
# only the CDE's ingress and gateway reach (approved flows FLOW-018 and FLOW-019).

locals {
  tls_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

resource "aws_lb" "api" {
  name                       = "${var.name}-noncde-api"
  internal                   = false
  load_balancer_type         = "application"
  subnets                    = var.subnet_ids["noncde.edge"]
  security_groups            = [var.security_group_ids["noncde.api_alb"]]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "strictest"

  access_logs {
    bucket  = var.lb_logs_bucket_name
    prefix  = "noncde-api"
    enabled = true
  }

  tags = {
    Name     = "${var.name}-noncde-api"
    pci_zone = "out-of-scope"
  }
}

resource "aws_lb_target_group" "api_public" {
  name        = "${var.name}-noncde-api"
  port        = 8200
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
    Name     = "${var.name}-noncde-api-public"
    pci_zone = "out-of-scope"
  }
}

resource "aws_lb_listener" "api_https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = local.tls_policy
  certificate_arn   = var.api_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api_public.arn
  }

  tags = {
    Name     = "${var.name}-noncde-api-https"
    pci_zone = "out-of-scope"
  }
}

module "api_waf" {
  source                   = "../web-acl"
  name                     = "${var.name}-noncde-api"
  pci_zone                 = "out-of-scope"
  scope                    = "REGIONAL"
  rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  log_retention_days       = var.log_retention_days
  key_admin_role_arns      = var.key_admin_role_arns
}

resource "aws_wafv2_web_acl_association" "api" {
  resource_arn = aws_lb.api.arn
  web_acl_arn  = module.api_waf.web_acl_arn
}

# ---- The API's internal listener for the CDE

resource "aws_lb" "internal" {
  name                       = "${var.name}-noncde-internal"
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.subnet_ids["noncde.listener"]
  security_groups            = [var.security_group_ids["noncde.internal_alb"]]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "strictest"

  access_logs {
    bucket  = var.lb_logs_bucket_name
    prefix  = "noncde-internal"
    enabled = true
  }

  tags = {
    Name     = "${var.name}-noncde-internal"
    pci_zone = "connected"
  }
}

resource "aws_lb_target_group" "api_internal" {
  name        = "${var.name}-noncde-api-int"
  port        = 8200
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
    Name     = "${var.name}-noncde-api-internal"
    pci_zone = "connected"
  }
}

resource "aws_lb_listener" "api_internal" {
  load_balancer_arn = aws_lb.internal.arn
  port              = 8443
  protocol          = "HTTPS"
  ssl_policy        = local.tls_policy
  certificate_arn   = var.internal_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api_internal.arn
  }

  tags = {
    Name     = "${var.name}-noncde-api-internal"
    pci_zone = "connected"
  }
}

resource "aws_route53_record" "api_internal" {
  zone_id = var.internal_zone_id
  name    = var.api_internal_host
  type    = "A"

  alias {
    name                   = aws_lb.internal.dns_name
    zone_id                = aws_lb.internal.zone_id
    evaluate_target_health = true
  }
}

# The dev environment: one AWS account, everything in eu-west-1 (CloudFront pieces in us-east-1).
# Only this file and terraform.tfvars differ between environments.

locals {
  name     = "fincore-dev"
  ecr_base = "arn:aws:ecr:eu-west-1:${var.account_id}:repository/fincore"
  acm_base = "arn:aws:acm:eu-west-1:${var.account_id}:certificate"
}

module "platform" {
  source                 = "../../modules/platform"
  name                   = local.name
  internal_domain        = "dev.fincore.internal"
  availability_zones     = ["eu-west-1a", "eu-west-1b"]
  log_retention_days     = 365
  archive_retention_days = 365
  key_admin_role_arns    = var.key_admin_role_arns
  auditor_role_arns      = var.auditor_role_arns
  images                 = var.images
  psp_api_url            = "https://api.stripe.com"

  ecr_repository_arns = {
    vault   = "${local.ecr_base}/vault"
    gateway = "${local.ecr_base}/gateway"
    api     = "${local.ecr_base}/api"
    workers = "${local.ecr_base}/workers"
  }

  certificate_arns = {
    card_ingress     = "${local.acm_base}/card-ingress"
    merchant_api     = "${local.acm_base}/merchant-api"
    cde_internal     = "${local.acm_base}/cde-internal"
    noncde_internal  = "${local.acm_base}/noncde-internal"
    dashboard_global = "arn:aws:acm:us-east-1:${var.account_id}:certificate/dashboard"
  }

  domains = {
    card_ingress = "cards.dev.fincore.example"
    merchant_api = "api.dev.fincore.example"
    dashboard    = "dashboard.dev.fincore.example"
  }

  sizes = {
    task_count               = 2
    vault_db_instance_class  = "db.t4g.medium"
    noncde_db_instance_class = "db.t4g.medium"
    db_allocated_storage_gb  = 20
    cache_node_type          = "cache.t4g.small"
  }

  waf_rate_limit_per_5_minutes = 1000

  providers = {
    aws = aws
    aws.us_east_1 = aws.us_east_1
  }
}

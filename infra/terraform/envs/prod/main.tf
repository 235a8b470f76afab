# The prod environment: one AWS account, everything in eu-west-1 (CloudFront pieces in us-east-1).
# Only this file and terraform.tfvars differ between environments.

locals {
  name     = "fincore-prod"
  ecr_base = "arn:aws:ecr:eu-west-1:${var.account_id}:repository/fincore"
  acm_base = "arn:aws:acm:eu-west-1:${var.account_id}:certificate"
}

module "platform" {
  source                 = "../../modules/platform"
  name                   = local.name
  internal_domain        = "prod.fincore.internal"
  availability_zones     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  log_retention_days     = 400
  archive_retention_days = 2557
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
    card_ingress = "cards.fincore.example"
    merchant_api = "api.fincore.example"
    dashboard    = "dashboard.fincore.example"
  }

  sizes = {
    task_count               = 3
    vault_db_instance_class  = "db.r6g.large"
    noncde_db_instance_class = "db.r6g.large"
    db_allocated_storage_gb  = 100
    cache_node_type          = "cache.r7g.large"
  }

  waf_rate_limit_per_5_minutes = 2000

  providers = {
    aws = aws
    aws.us_east_1 = aws.us_east_1
  }
}

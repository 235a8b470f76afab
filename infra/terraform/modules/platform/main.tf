# The whole platform of one environment: the network (both zones and the one path between them),
# the audit trail, the CDE and the non-CDE zone. Each environment root calls this once.

locals {
  # The two internal listeners' private names; the CDE and non-CDE modules learn each other's
  # address only from here, never from each other's outputs.
  gateway_internal_host = "gateway.cde.${var.internal_domain}"
  api_internal_host     = "api.noncde.${var.internal_domain}"
}

module "network" {
  source              = "../network"
  name                = var.name
  internal_domain     = var.internal_domain
  availability_zones  = var.availability_zones
  log_retention_days  = var.log_retention_days
  key_admin_role_arns = var.key_admin_role_arns
}

module "audit" {
  source                 = "../audit"
  name                   = var.name
  log_retention_days     = var.log_retention_days
  archive_retention_days = var.archive_retention_days
  key_admin_role_arns    = var.key_admin_role_arns
  auditor_role_arns      = var.auditor_role_arns
  cde_security_group_ids = { for endpoint, group_id in module.network.security_group_ids : endpoint => group_id if startswith(endpoint, "cde.") }
}

module "cde" {
  source                        = "../cde"
  name                          = var.name
  vpc_id                        = module.network.cde_vpc_id
  subnet_ids                    = module.network.subnet_ids
  security_group_ids            = module.network.security_group_ids
  key_admin_role_arns           = var.key_admin_role_arns
  lb_logs_bucket_name           = module.audit.lb_logs_bucket_name
  log_retention_days            = var.log_retention_days
  vault_image                   = var.images.vault
  vault_repository_arn          = var.ecr_repository_arns.vault
  gateway_image                 = var.images.gateway
  gateway_repository_arn        = var.ecr_repository_arns.gateway
  task_count                    = var.sizes.task_count
  ingress_certificate_arn       = var.certificate_arns.card_ingress
  internal_certificate_arn      = var.certificate_arns.cde_internal
  psp_api_url                   = var.psp_api_url
  internal_zone_id              = module.network.internal_zone_id
  gateway_internal_host         = local.gateway_internal_host
  noncde_api_url                = "https://${local.api_internal_host}:8443"
  waf_rate_limit_per_5_minutes  = var.waf_rate_limit_per_5_minutes
  vault_db_instance_class       = var.sizes.vault_db_instance_class
  vault_db_allocated_storage_gb = var.sizes.db_allocated_storage_gb
  cvc_store_node_type           = var.sizes.cache_node_type
}

# The non-CDE zone gets nothing from the CDE module: no key, no role, no subnet; only the
# gateway listener's private name (checked by the policy tests).
module "noncde" {
  source                       = "../noncde"
  name                         = var.name
  vpc_id                       = module.network.noncde_vpc_id
  subnet_ids                   = module.network.subnet_ids
  security_group_ids           = module.network.security_group_ids
  key_admin_role_arns          = var.key_admin_role_arns
  lb_logs_bucket_name          = module.audit.lb_logs_bucket_name
  access_logs_bucket_name      = module.audit.access_logs_bucket_name
  log_retention_days           = var.log_retention_days
  api_image                    = var.images.api
  api_repository_arn           = var.ecr_repository_arns.api
  workers_image                = var.images.workers
  workers_repository_arn       = var.ecr_repository_arns.workers
  task_count                   = var.sizes.task_count
  api_certificate_arn          = var.certificate_arns.merchant_api
  internal_certificate_arn     = var.certificate_arns.noncde_internal
  internal_zone_id             = module.network.internal_zone_id
  api_internal_host            = local.api_internal_host
  gateway_internal_url         = "https://${local.gateway_internal_host}:8443"
  api_public_url               = "https://${var.domains.merchant_api}"
  card_ingress_url             = "https://${var.domains.card_ingress}"
  waf_rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  db_instance_class            = var.sizes.noncde_db_instance_class
  db_allocated_storage_gb      = var.sizes.db_allocated_storage_gb
  cache_node_type              = var.sizes.cache_node_type
  dashboard_domain_name        = var.domains.dashboard
  dashboard_certificate_arn    = var.certificate_arns.dashboard_global

  providers = {
    aws = aws
    aws.us_east_1 = aws.us_east_1
  }
}

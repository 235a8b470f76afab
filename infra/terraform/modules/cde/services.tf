# The CDE's three Fargate services. Each runs in its own tier with its own flow-endpoint security
# group; what it may call is the approved-flows file, what it may do in AWS is its task policy.

locals {
  base_environment = {
    FINCORE_ENV  = "production"
    FINCORE_ZONE = "cde"
  }
}

resource "aws_cloudwatch_log_group" "ecs_exec" {
  name              = "/fincore/${var.name}-cde-ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn

  tags = {
    Name     = "${var.name}-cde-ecs-exec"
    pci_zone = "cde"
  }
}

# The vault has no load balancer: ingress and gateway find its tasks through private DNS.
resource "aws_service_discovery_private_dns_namespace" "cde" {
  name        = "cde.${var.name}.internal"
  description = "Private service names of the CDE"
  vpc         = var.vpc_id

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

locals {
  vault_url = "https://vault.${aws_service_discovery_private_dns_namespace.cde.name}:8101"
}

resource "aws_ecs_cluster" "cde" {
  name = "${var.name}-cde"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  # ECS Exec is disabled on every service; should it ever be enabled, sessions are encrypted and logged.
  configuration {
    execute_command_configuration {
      kms_key_id = module.logs_key.key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.ecs_exec.name
      }
    }
  }

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

# The CDE audit log (PCI DSS 10.2): the audit library of vault, gateway and ingress writes here.
resource "aws_cloudwatch_log_group" "audit" {
  name              = "/fincore/${var.name}-cde-audit"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn

  tags = {
    Name     = "${var.name}-cde-audit"
    pci_zone = "cde"
  }
}

data "aws_iam_policy_document" "write_audit_log" {
  statement {
    sid       = "WriteTheCdeAuditLog"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.audit.arn}:*"]
  }
}

# ---- Card vault: tokenize, detokenize; the only user of the PAN, CVC and fingerprint keys.

data "aws_iam_policy_document" "vault_task" {
  source_policy_documents = [data.aws_iam_policy_document.write_audit_log.json]

  statement {
    sid       = "EnvelopeEncryptionOfPansAndCvcs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [module.pan_kek.key_arn, module.cvc_key.key_arn]
  }

  statement {
    sid       = "CardFingerprints"
    actions   = ["kms:GenerateMac", "kms:VerifyMac"]
    resources = [aws_kms_key.fingerprint.arn]
  }

  statement {
    sid       = "VaultDatabaseIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["arn:aws:rds-db:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:dbuser:${module.vault_db.resource_id}/vault"]
  }

  statement {
    sid       = "CvcStoreIamAuthentication"
    actions   = ["elasticache:Connect"]
    resources = [aws_elasticache_replication_group.cvc_store.arn, aws_elasticache_user.cvc_vault.arn]
  }
}

module "vault" {
  source             = "../fargate-service"
  name               = "${var.name}-cde-vault"
  pci_zone           = "cde"
  cluster_arn        = aws_ecs_cluster.cde.arn
  image              = var.vault_image
  repository_arn     = var.vault_repository_arn
  command            = ["vault"]
  container_port     = 8101
  environment        = merge(local.base_environment, lookup(var.service_environment, "vault", {}))
  cpu                = 1024
  memory             = 2048
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["cde.vault"]
  security_group_id  = var.security_group_ids["cde.vault"]
  discovery          = { namespace_id = aws_service_discovery_private_dns_namespace.cde.id, name = "vault" }
  task_policy_json   = data.aws_iam_policy_document.vault_task.json
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

# ---- PSP gateway: the only CDE service with a route to the internet (the PSP's domains).

module "gateway" {
  source         = "../fargate-service"
  name           = "${var.name}-cde-gateway"
  pci_zone       = "cde"
  cluster_arn    = aws_ecs_cluster.cde.arn
  image          = var.gateway_image
  repository_arn = var.gateway_repository_arn
  container_port = 8102
  environment    = merge(local.base_environment, {
    FINCORE_GATEWAY_VAULT_URL = local.vault_url
    FINCORE_GATEWAY_PSP_URL   = var.psp_api_url
    FINCORE_GATEWAY_API_URL   = var.noncde_api_url
  }, lookup(var.service_environment, "gateway", {}))
  secrets             = { FINCORE_GATEWAY_PSP_API_KEY = aws_secretsmanager_secret.psp_api_key.arn, FINCORE_GATEWAY_PSP_WEBHOOK_SECRET = aws_secretsmanager_secret.psp_webhook_secret.arn }
  secrets_kms_key_arn = module.secrets_key.key_arn
  cpu                 = 512
  memory              = 1024
  desired_count       = var.task_count
  subnet_ids          = var.subnet_ids["cde.app"]
  security_group_id   = var.security_group_ids["cde.gateway"]
  target_group_arns   = [aws_lb_target_group.gateway_internal.arn, aws_lb_target_group.gateway_webhooks.arn]
  task_policy_json    = data.aws_iam_policy_document.write_audit_log.json
  log_kms_key_arn     = module.logs_key.key_arn
  log_retention_days  = var.log_retention_days
}

# ---- Card ingress: S2S raw-card API; tokenizes in the vault, forwards the token to the API.

module "ingress" {
  source         = "../fargate-service"
  name           = "${var.name}-cde-ingress"
  pci_zone       = "cde"
  cluster_arn    = aws_ecs_cluster.cde.arn
  image          = var.vault_image
  repository_arn = var.vault_repository_arn
  command        = ["ingress"]
  container_port = 8100
  environment    = merge(local.base_environment, {
    FINCORE_INGRESS_VAULT_URL = local.vault_url
    FINCORE_INGRESS_API_URL   = var.noncde_api_url
  }, lookup(var.service_environment, "ingress", {}))
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["cde.app"]
  security_group_id  = var.security_group_ids["cde.ingress"]
  target_group_arns  = [aws_lb_target_group.ingress.arn]
  task_policy_json   = data.aws_iam_policy_document.write_audit_log.json
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

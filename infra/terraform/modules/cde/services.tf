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

# Task roles: what each application may do in AWS. They live here, not in the service module,
# because the key policies below name them.
data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each           = toset(["vault", "gateway", "ingress"])
  name               = "${var.name}-cde-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json

  tags = {
    Name     = "${var.name}-cde-${each.key}-task"
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
  task_role_arn      = aws_iam_role.task["vault"].arn
  discovery          = { namespace_id = aws_service_discovery_private_dns_namespace.cde.id, name = "vault" }
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
  secrets            = { FINCORE_GATEWAY_PSP_API_KEY = local.psp_api_key_secret_name, FINCORE_GATEWAY_PSP_WEBHOOK_SECRET = local.psp_webhook_secret_name }
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["cde.app"]
  security_group_id  = var.security_group_ids["cde.gateway"]
  task_role_arn      = aws_iam_role.task["gateway"].arn
  target_group_arns  = [aws_lb_target_group.gateway_internal.arn, aws_lb_target_group.gateway_webhooks.arn]
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
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
  task_role_arn      = aws_iam_role.task["ingress"].arn
  target_group_arns  = [aws_lb_target_group.ingress.arn]
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

# ---- What each service may do in AWS (attached here: the keys name these roles in turn)

resource "aws_iam_role_policy" "vault_task" {
  name   = "application"
  role   = aws_iam_role.task["vault"].name
  policy = data.aws_iam_policy_document.vault_task.json
}

resource "aws_iam_role_policy" "gateway_task" {
  name   = "application"
  role   = aws_iam_role.task["gateway"].name
  policy = data.aws_iam_policy_document.write_audit_log.json
}

resource "aws_iam_role_policy" "ingress_task" {
  name   = "application"
  role   = aws_iam_role.task["ingress"].name
  policy = data.aws_iam_policy_document.write_audit_log.json
}

# The gateway's execution role decrypts its two secrets at start, only through Secrets Manager.
data "aws_iam_policy_document" "gateway_secrets" {
  statement {
    sid       = "DecryptThePspSecrets"
    actions   = ["kms:Decrypt"]
    resources = [module.secrets_key.key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "gateway_secrets" {
  name   = "decrypt-psp-secrets"
  role   = module.gateway.execution_role_name
  policy = data.aws_iam_policy_document.gateway_secrets.json
}

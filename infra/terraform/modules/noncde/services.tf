# The non-CDE zone's Fargate services: the merchant API and the four worker processes. They see
# tokens only; the API and workers are "connected" systems because they call the CDE gateway.

locals {
  base_environment = {
    FINCORE_ENV  = "production"
    FINCORE_ZONE = "noncde"
  }
  workers_environment = {
    FINCORE_WORKERS_GATEWAY_URL = var.gateway_internal_url
    FINCORE_WORKERS_API_URL     = "https://${var.api_internal_host}:8443"
  }
}

resource "aws_cloudwatch_log_group" "ecs_exec" {
  name              = "/fincore/${var.name}-noncde-ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn

  tags = {
    Name     = "${var.name}-noncde-ecs-exec"
    pci_zone = "connected"
  }
}

resource "aws_ecs_cluster" "noncde" {
  name = "${var.name}-noncde"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

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
    Name     = "${var.name}-noncde"
    pci_zone = "connected"
  }
}

# The non-CDE audit log (PCI DSS 10.2): the audit library of every non-CDE service writes here.
resource "aws_cloudwatch_log_group" "audit" {
  name              = "/fincore/${var.name}-noncde-audit"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn

  tags = {
    Name     = "${var.name}-noncde-audit"
    pci_zone = "connected"
  }
}

# Task roles: what each application may do in AWS. They live here, not in the service module,
# because the data key's policy names them.
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
  for_each           = toset(["api", "worker", "webhooks", "projectionist", "ledger"])
  name               = "${var.name}-noncde-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json

  tags = {
    Name     = "${var.name}-noncde-${each.key}-task"
    pci_zone = "connected"
  }
}

data "aws_iam_policy_document" "write_audit_log" {
  statement {
    sid       = "WriteTheNonCdeAuditLog"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.audit.arn}:*"]
  }
}

locals {
  rds_db_user_prefix = "arn:aws:rds-db:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:dbuser"
}

# ---- Merchant API

data "aws_iam_policy_document" "api_task" {
  source_policy_documents = [data.aws_iam_policy_document.write_audit_log.json]

  statement {
    sid       = "EnqueueJobs"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs.arn]
  }

  statement {
    sid       = "PublishEvents"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "ReadRiskRules"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"]
    resources = [aws_dynamodb_table.risk_rules.arn]
  }

  statement {
    sid       = "PaymentDbIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["${local.rds_db_user_prefix}:${module.payment_db.resource_id}/api"]
  }

  statement {
    sid       = "IdempotencyCacheIamAuthentication"
    actions   = ["elasticache:Connect"]
    resources = [aws_elasticache_replication_group.idempotency.arn, aws_elasticache_user.idempotency_api.arn]
  }

  statement {
    sid       = "ClientSideDataKeysForQueueAndStream"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [module.data_key.key_arn]
  }
}

module "api" {
  source         = "../fargate-service"
  name           = "${var.name}-noncde-api"
  pci_zone       = "connected"
  cluster_arn    = aws_ecs_cluster.noncde.arn
  image          = var.api_image
  repository_arn = var.api_repository_arn
  container_port = 8200
  environment    = merge(local.base_environment, {
    FINCORE_API_GATEWAY_URL = var.gateway_internal_url
    FINCORE_API_PUBLIC_URL  = var.api_public_url
    FINCORE_API_INGRESS_URL = var.card_ingress_url
  }, lookup(var.service_environment, "api", {}))
  cpu                = 1024
  memory             = 2048
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["noncde.app"]
  security_group_id  = var.security_group_ids["noncde.api"]
  task_role_arn      = aws_iam_role.task["api"].arn
  target_group_arns  = [aws_lb_target_group.api_public.arn, aws_lb_target_group.api_internal.arn]
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

# ---- Workers (one security group, noncde.workers; one role each)

data "aws_iam_policy_document" "queue_consumer" {
  source_policy_documents = [data.aws_iam_policy_document.write_audit_log.json]

  statement {
    sid       = "ConsumeJobs"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs.arn]
  }

  statement {
    sid       = "ClientSideDataKeysForTheQueue"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [module.data_key.key_arn]
  }
}

data "aws_iam_policy_document" "stream_consumer" {
  source_policy_documents = [data.aws_iam_policy_document.write_audit_log.json]

  statement {
    sid       = "ConsumeEvents"
    actions   = ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStreamSummary", "kinesis:ListShards"]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "ClientSideDataKeysForTheStream"
    actions   = ["kms:Decrypt"]
    resources = [module.data_key.key_arn]
  }
}

data "aws_iam_policy_document" "worker_task" {
  source_policy_documents = [data.aws_iam_policy_document.queue_consumer.json]

  statement {
    sid       = "PaymentDbIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["${local.rds_db_user_prefix}:${module.payment_db.resource_id}/worker"]
  }
}

data "aws_iam_policy_document" "webhooks_task" {
  source_policy_documents = [data.aws_iam_policy_document.queue_consumer.json]

  statement {
    sid       = "PaymentDbIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["${local.rds_db_user_prefix}:${module.payment_db.resource_id}/webhooks"]
  }
}

data "aws_iam_policy_document" "projectionist_task" {
  source_policy_documents = [data.aws_iam_policy_document.stream_consumer.json]

  statement {
    sid       = "PaymentDbIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["${local.rds_db_user_prefix}:${module.payment_db.resource_id}/projectionist"]
  }
}

data "aws_iam_policy_document" "ledger_task" {
  source_policy_documents = [data.aws_iam_policy_document.stream_consumer.json]

  statement {
    sid       = "LedgerDbIamAuthentication"
    actions   = ["rds-db:connect"]
    resources = ["${local.rds_db_user_prefix}:${module.ledger_db.resource_id}/ledger"]
  }
}

module "worker" {
  source             = "../fargate-service"
  name               = "${var.name}-noncde-worker"
  pci_zone           = "connected"
  cluster_arn        = aws_ecs_cluster.noncde.arn
  image              = var.workers_image
  repository_arn     = var.workers_repository_arn
  command            = ["jobs"]
  container_port     = 8211
  environment        = merge(local.base_environment, local.workers_environment, lookup(var.service_environment, "worker", {}))
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["noncde.app"]
  security_group_id  = var.security_group_ids["noncde.workers"]
  task_role_arn      = aws_iam_role.task["worker"].arn
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

module "webhooks" {
  source             = "../fargate-service"
  name               = "${var.name}-noncde-webhooks"
  pci_zone           = "connected"
  cluster_arn        = aws_ecs_cluster.noncde.arn
  image              = var.workers_image
  repository_arn     = var.workers_repository_arn
  command            = ["webhooks"]
  container_port     = 8214
  environment        = merge(local.base_environment, local.workers_environment, lookup(var.service_environment, "webhooks", {}))
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["noncde.app"]
  security_group_id  = var.security_group_ids["noncde.workers"]
  task_role_arn      = aws_iam_role.task["webhooks"].arn
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

module "projectionist" {
  source             = "../fargate-service"
  name               = "${var.name}-noncde-projectionist"
  pci_zone           = "connected"
  cluster_arn        = aws_ecs_cluster.noncde.arn
  image              = var.workers_image
  repository_arn     = var.workers_repository_arn
  command            = ["projectionist"]
  container_port     = 8212
  environment        = merge(local.base_environment, local.workers_environment, lookup(var.service_environment, "projectionist", {}))
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["noncde.app"]
  security_group_id  = var.security_group_ids["noncde.workers"]
  task_role_arn      = aws_iam_role.task["projectionist"].arn
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

module "ledger" {
  source             = "../fargate-service"
  name               = "${var.name}-noncde-ledger"
  pci_zone           = "connected"
  cluster_arn        = aws_ecs_cluster.noncde.arn
  image              = var.workers_image
  repository_arn     = var.workers_repository_arn
  command            = ["ledger"]
  container_port     = 8213
  environment        = merge(local.base_environment, local.workers_environment, lookup(var.service_environment, "ledger", {}))
  cpu                = 512
  memory             = 1024
  desired_count      = var.task_count
  subnet_ids         = var.subnet_ids["noncde.app"]
  security_group_id  = var.security_group_ids["noncde.workers"]
  task_role_arn      = aws_iam_role.task["ledger"].arn
  log_kms_key_arn    = module.logs_key.key_arn
  log_retention_days = var.log_retention_days
}

# ---- What each service may do in AWS (attached here: the data key names these roles in turn)

resource "aws_iam_role_policy" "api_task" {
  name   = "application"
  role   = aws_iam_role.task["api"].name
  policy = data.aws_iam_policy_document.api_task.json
}

resource "aws_iam_role_policy" "worker_task" {
  name   = "application"
  role   = aws_iam_role.task["worker"].name
  policy = data.aws_iam_policy_document.worker_task.json
}

resource "aws_iam_role_policy" "webhooks_task" {
  name   = "application"
  role   = aws_iam_role.task["webhooks"].name
  policy = data.aws_iam_policy_document.webhooks_task.json
}

resource "aws_iam_role_policy" "projectionist_task" {
  name   = "application"
  role   = aws_iam_role.task["projectionist"].name
  policy = data.aws_iam_policy_document.projectionist_task.json
}

resource "aws_iam_role_policy" "ledger_task" {
  name   = "application"
  role   = aws_iam_role.task["ledger"].name
  policy = data.aws_iam_policy_document.ledger_task.json
}

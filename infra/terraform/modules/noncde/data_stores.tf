# Token-only data stores of the non-CDE zone: PaymentDB, LedgerDB, idempotency cache, job queue
# with its dead-letter queue, event stream and risk-rules table. All private, all encrypted with the
# zone's own key.

module "payment_db" {
  source               = "../postgres"
  identifier           = "${var.name}-noncde-payment"
  pci_zone             = "out-of-scope"
  db_name              = "payments"
  master_username      = "payments_admin"
  instance_class       = var.db_instance_class
  allocated_storage_gb = var.db_allocated_storage_gb
  subnet_ids           = var.subnet_ids["noncde.data"]
  security_group_id    = var.security_group_ids["noncde.payment_db"]
  storage_kms_key_arn  = module.data_key.key_arn
  secrets_kms_key_arn  = module.secrets_key.key_arn
  logs_kms_key_arn     = module.logs_key.key_arn
  log_retention_days   = var.log_retention_days
}

module "ledger_db" {
  source               = "../postgres"
  identifier           = "${var.name}-noncde-ledger"
  pci_zone             = "out-of-scope"
  db_name              = "ledger"
  master_username      = "ledger_admin"
  instance_class       = var.db_instance_class
  allocated_storage_gb = var.db_allocated_storage_gb
  subnet_ids           = var.subnet_ids["noncde.data"]
  security_group_id    = var.security_group_ids["noncde.ledger_db"]
  storage_kms_key_arn  = module.data_key.key_arn
  secrets_kms_key_arn  = module.secrets_key.key_arn
  logs_kms_key_arn     = module.logs_key.key_arn
  log_retention_days   = var.log_retention_days
}

# ---- Idempotency cache

resource "aws_elasticache_subnet_group" "idempotency" {
  name       = "${var.name}-noncde-idempotency"
  subnet_ids = var.subnet_ids["noncde.data"]

  tags = {
    Name     = "${var.name}-noncde-idempotency"
    pci_zone = "out-of-scope"
  }
}

resource "aws_elasticache_user" "idempotency_default" {
  user_id       = "${var.name}-idem-default"
  user_name     = "default"
  engine        = "redis"
  access_string = "off -@all"

  authentication_mode {
    type = "no-password-required"
  }

  tags = {
    Name     = "${var.name}-idempotency-default"
    pci_zone = "out-of-scope"
  }
}

resource "aws_elasticache_user" "idempotency_api" {
  user_id       = "${var.name}-idem-api"
  user_name     = "${var.name}-idem-api"
  engine        = "redis"
  access_string = "on ~idem:* ~rate:* -@all +@read +@write +@string +expire +ttl"

  authentication_mode {
    type = "iam"
  }

  tags = {
    Name     = "${var.name}-idempotency-api"
    pci_zone = "out-of-scope"
  }
}

resource "aws_elasticache_user_group" "idempotency" {
  user_group_id = "${var.name}-idempotency"
  engine        = "redis"
  user_ids      = [aws_elasticache_user.idempotency_default.user_id, aws_elasticache_user.idempotency_api.user_id]

  tags = {
    Name     = "${var.name}-idempotency"
    pci_zone = "out-of-scope"
  }
}

resource "aws_elasticache_replication_group" "idempotency" {
  # checkov:skip=CKV_AWS_31:Clients authenticate with IAM through the RBAC user group (user_group_ids), not a shared AUTH token; transit encryption is on.
  replication_group_id       = "${var.name}-noncde-idem"
  description                = "${var.name}: idempotency records and rate limits"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.cache_node_type
  num_cache_clusters         = 2
  port                       = 6379
  automatic_failover_enabled = true
  multi_az_enabled           = true
  at_rest_encryption_enabled = true
  kms_key_id                 = module.data_key.key_arn
  transit_encryption_enabled = true
  user_group_ids             = [aws_elasticache_user_group.idempotency.user_group_id]
  subnet_group_name          = aws_elasticache_subnet_group.idempotency.name
  security_group_ids         = [var.security_group_ids["noncde.idempotency_cache"]]
  snapshot_retention_limit   = 7
  auto_minor_version_upgrade = true

  tags = {
    Name     = "${var.name}-noncde-idempotency"
    pci_zone = "out-of-scope"
  }
}

# ---- Job queue and its dead-letter queue

resource "aws_sqs_queue" "jobs_dlq" {
  name                      = "${var.name}-noncde-jobs-dlq"
  kms_master_key_id         = module.data_key.key_arn
  message_retention_seconds = 1209600

  tags = {
    Name     = "${var.name}-noncde-jobs-dlq"
    pci_zone = "out-of-scope"
  }
}

resource "aws_sqs_queue" "jobs" {
  name                       = "${var.name}-noncde-jobs"
  kms_master_key_id          = module.data_key.key_arn
  visibility_timeout_seconds = 120
  message_retention_seconds  = 345600
  redrive_policy             = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.jobs_dlq.arn
    maxReceiveCount     = 5
  })

  tags = {
    Name     = "${var.name}-noncde-jobs"
    pci_zone = "out-of-scope"
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "jobs_dlq" {
  queue_url            = aws_sqs_queue.jobs_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

# ---- Event stream

resource "aws_kinesis_stream" "events" {
  name             = "${var.name}-noncde-events"
  retention_period = 168
  encryption_type  = "KMS"
  kms_key_id       = module.data_key.key_arn

  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }

  tags = {
    Name     = "${var.name}-noncde-events"
    pci_zone = "out-of-scope"
  }
}

# ---- Risk rules

resource "aws_dynamodb_table" "risk_rules" {
  name                        = "${var.name}-noncde-risk-rules"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "rule_id"
  deletion_protection_enabled = true

  attribute {
    name = "rule_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = module.data_key.key_arn
  }

  tags = {
    Name     = "${var.name}-noncde-risk-rules"
    pci_zone = "out-of-scope"
  }
}

# The vault database and the CVC store: private data tier, customer-key encryption, TLS only.

# ---- Vault database (PCI DSS 3.5.1: PANs are already envelope-encrypted by the vault; the
# storage is encrypted again with a customer key; 1.4.4: never publicly reachable)

module "vault_db" {
  source               = "../postgres"
  identifier           = "${var.name}-cde-vault"
  pci_zone             = "cde"
  db_name              = "vault"
  master_username      = "vault_admin"
  instance_class       = var.vault_db_instance_class
  allocated_storage_gb = var.vault_db_allocated_storage_gb
  subnet_ids           = var.subnet_ids["cde.data"]
  security_group_id    = var.security_group_ids["cde.vault_db"]
  storage_kms_key_arn  = module.storage_key.key_arn
  secrets_kms_key_arn  = module.secrets_key.key_arn
  logs_kms_key_arn     = module.logs_key.key_arn
  log_retention_days   = var.log_retention_days
}

# ---- CVC store (PCI DSS 3.3.1.2: the CVC lives here encrypted, with a short TTL, until first
# use, and is never backed up)

resource "aws_elasticache_subnet_group" "cvc_store" {
  name       = "${var.name}-cde-cvc"
  subnet_ids = var.subnet_ids["cde.data"]

  tags = {
    Name     = "${var.name}-cde-cvc"
    pci_zone = "cde"
  }
}

# Every user group must hold a user named "default"; this one is switched off.
resource "aws_elasticache_user" "cvc_default" {
  user_id       = "${var.name}-cvc-default"
  user_name     = "default"
  engine        = "redis"
  access_string = "off -@all"

  authentication_mode {
    type = "no-password-required"
  }

  tags = {
    Name     = "${var.name}-cvc-default"
    pci_zone = "cde"
  }
}

# The vault authenticates with its task role (IAM), no static password anywhere (PCI DSS 8.3.1).
resource "aws_elasticache_user" "cvc_vault" {
  user_id       = "${var.name}-cvc-vault"
  user_name     = "${var.name}-cvc-vault"
  engine        = "redis"
  access_string = "on ~cvc:* -@all +get +set +del +getdel +expire +ttl +exists"

  authentication_mode {
    type = "iam"
  }

  tags = {
    Name     = "${var.name}-cvc-vault"
    pci_zone = "cde"
  }
}

resource "aws_elasticache_user_group" "cvc_store" {
  user_group_id = "${var.name}-cvc-store"
  engine        = "redis"
  user_ids      = [aws_elasticache_user.cvc_default.user_id, aws_elasticache_user.cvc_vault.user_id]

  tags = {
    Name     = "${var.name}-cvc-store"
    pci_zone = "cde"
  }
}

resource "aws_cloudwatch_log_group" "cvc_store" {
  name              = "/fincore/${var.name}-cde-cvc-store/engine"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn

  tags = {
    Name     = "${var.name}-cde-cvc-store-engine"
    pci_zone = "cde"
  }
}

resource "aws_elasticache_replication_group" "cvc_store" {
  # checkov:skip=CKV_AWS_31:Clients authenticate with IAM through the RBAC user group (user_group_ids), not a shared AUTH token; transit encryption is on.
  replication_group_id       = "${var.name}-cde-cvc"
  description                = "${var.name}: encrypted CVCs until first use"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.cvc_store_node_type
  num_cache_clusters         = 2
  port                       = 6379
  automatic_failover_enabled = true
  multi_az_enabled           = true
  at_rest_encryption_enabled = true
  kms_key_id                 = module.storage_key.key_arn
  transit_encryption_enabled = true
  user_group_ids             = [aws_elasticache_user_group.cvc_store.user_group_id]
  subnet_group_name          = aws_elasticache_subnet_group.cvc_store.name
  security_group_ids         = [var.security_group_ids["cde.cvc_store"]]
  snapshot_retention_limit   = 0 # never back up CVCs (PCI DSS 3.3.1.2)
  auto_minor_version_upgrade = true

  # Engine log only: the slow log would record command arguments.
  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.cvc_store.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }

  tags = {
    Name     = "${var.name}-cde-cvc"
    pci_zone = "cde"
  }
}

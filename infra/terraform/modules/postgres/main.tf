# One PostgreSQL instance hardened the same way everywhere: private, Multi-AZ, encrypted with a
# customer key, deletion-protected, TLS-only, IAM database authentication, master password kept by
# RDS in Secrets Manager, connection and DDL logging to encrypted log groups kept a year.

data "aws_caller_identity" "current" {}

resource "aws_db_subnet_group" "this" {
  name       = "${var.identifier}"
  subnet_ids = var.subnet_ids

  tags = {
    Name     = "${var.identifier}"
    pci_zone = var.pci_zone
  }
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.identifier}"
  family = "postgres16"

  # PCI DSS 4.2.1 / 8.3.2: clients must use TLS.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # PCI DSS 10.2.1.2 / 10.2.1.4: sessions and schema changes are logged. Data statements are not:
  # their parameters are card ciphertext.
  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "-1"
  }

  tags = {
    Name     = "${var.identifier}"
    pci_zone = var.pci_zone
  }
}

# RDS would create its log groups without encryption or retention; create them first.
resource "aws_cloudwatch_log_group" "vault_db" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.identifier}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn

  tags = {
    Name     = "${var.identifier}-${each.key}"
    pci_zone = var.pci_zone
  }
}

data "aws_iam_policy_document" "monitoring_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.identifier}-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_trust.json

  tags = {
    Name     = "${var.identifier}-monitoring"
    pci_zone = var.pci_zone
  }
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  identifier                            = "${var.identifier}"
  engine                                = "postgres"
  engine_version                        = "16.4"
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage_gb
  max_allocated_storage                 = var.allocated_storage_gb * 4
  storage_type                          = "gp3"
  db_name                               = "this"
  username                              = var.master_username
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = var.secrets_kms_key_arn
  iam_database_authentication_enabled   = true
  storage_encrypted                     = true
  kms_key_id                            = var.storage_kms_key_arn
  publicly_accessible                   = false
  deletion_protection                   = true
  multi_az                              = true
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [var.security_group_id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  ca_cert_identifier                    = "rds-ca-rsa2048-g1"
  backup_retention_period               = 35
  copy_tags_to_snapshot                 = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.identifier}-final"
  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.storage_kms_key_arn
  performance_insights_retention_period = 7

  tags = {
    Name     = "${var.identifier}"
    pci_zone = var.pci_zone
  }

  depends_on = [aws_cloudwatch_log_group.this]
}

variable "identifier" {
  type        = string
  description = "RDS instance identifier, also the name of its subnet group, parameter group and log groups."
}

variable "pci_zone" {
  type        = string
  description = "pci_zone tag of everything this module creates: cde, connected or out-of-scope."

  validation {
    condition     = contains(["cde", "connected", "out-of-scope"], var.pci_zone)
    error_message = "pci_zone must be cde, connected or out-of-scope."
  }
}

variable "db_name" {
  type        = string
  description = "Name of the database created in the instance."
}

variable "master_username" {
  type        = string
  description = "Master user name; its password is generated and kept by RDS in Secrets Manager (never in code)."
}

variable "instance_class" {
  type        = string
  description = "RDS instance class, e.g. db.r6g.large."
}

variable "allocated_storage_gb" {
  type        = number
  description = "Allocated storage in GiB (autoscaling up to four times this)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private data-tier subnets (one per availability zone)."
}

variable "security_group_id" {
  type        = string
  description = "The database's flow-endpoint security group (from the network module); it gets no other."
}

variable "storage_kms_key_arn" {
  type        = string
  description = "Customer-managed key for storage and Performance Insights encryption."
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "Customer-managed key of the RDS-managed master password secret."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "Customer-managed key of the database's CloudWatch log groups."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the database's log groups, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

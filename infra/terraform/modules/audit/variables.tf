variable "name" {
  type        = string
  description = "Name prefix of every resource, e.g. fincore-prod."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the CloudTrail log group in CloudWatch, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "archive_retention_days" {
  type        = number
  description = "Object Lock (COMPLIANCE mode) default retention of the log archives, in days (PCI DSS 10.3.2, 10.5.1: at least 365)."

  validation {
    condition     = var.archive_retention_days >= 365
    error_message = "The archives must be immutable for at least 365 days (PCI DSS 10.5.1)."
  }
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "IAM roles that may administer (never use) the audit KMS key."

  validation {
    condition     = length(var.key_admin_role_arns) > 0
    error_message = "At least one key administrator role is required."
  }
}

variable "auditor_role_arns" {
  type        = list(string)
  description = "IAM roles of compliance auditors: the only principals that may read the archives (PCI DSS 10.3.1)."

  validation {
    condition     = length(var.auditor_role_arns) > 0
    error_message = "At least one auditor role is required."
  }
}

variable "cde_security_group_ids" {
  type        = map(string)
  description = "Flow endpoint name -> security group ID of every CDE group; any change to one of them raises an alarm (PCI DSS 10.4.1, 1.2.2)."
}

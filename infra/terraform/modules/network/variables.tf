variable "name" {
  type        = string
  description = "Name prefix of every resource, e.g. fincore-prod."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,24}$", var.name))
    error_message = "name must be 3-25 lowercase letters, digits or dashes."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones to spread every tier over (2 to 4; each tier has one /24 per zone)."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Use 2 to 4 availability zones."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow-log and firewall log groups, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "IAM roles that may administer (never use) the network-logs KMS key."

  validation {
    condition     = length(var.key_admin_role_arns) > 0
    error_message = "At least one key administrator role is required."
  }
}

variable "internal_domain" {
  type        = string
  description = "Private DNS domain of the two internal listeners, resolvable from both VPCs, e.g. prod.fincore.internal."
}

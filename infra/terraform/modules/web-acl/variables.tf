variable "name" {
  type        = string
  description = "Name of the web ACL, e.g. fincore-prod-card-ingress."
}

variable "pci_zone" {
  type        = string
  description = "pci_zone tag of everything this module creates: cde, connected or out-of-scope."

  validation {
    condition     = contains(["cde", "connected", "out-of-scope"], var.pci_zone)
    error_message = "pci_zone must be cde, connected or out-of-scope."
  }
}

variable "scope" {
  type        = string
  description = "REGIONAL for an ALB, CLOUDFRONT for a distribution (then pass an us-east-1 provider)."

  validation {
    condition     = contains(["REGIONAL", "CLOUDFRONT"], var.scope)
    error_message = "scope must be REGIONAL or CLOUDFRONT."
  }
}

variable "rate_limit_per_5_minutes" {
  type        = number
  description = "Requests one client IP may send in 5 minutes before it is blocked."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the WAF log group, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "IAM roles that may administer (never use) the WAF-log KMS key."
}

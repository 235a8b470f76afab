variable "bucket_name" {
  type        = string
  description = "Globally unique bucket name."
}

variable "pci_zone" {
  type        = string
  description = "pci_zone tag of everything this module creates: cde, connected or out-of-scope."

  validation {
    condition     = contains(["cde", "connected", "out-of-scope"], var.pci_zone)
    error_message = "pci_zone must be cde, connected or out-of-scope."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for SSE-KMS; null for SSE-S3 (only where the writing AWS service cannot use SSE-KMS)."
  default     = null
}

variable "access_log_bucket_name" {
  type        = string
  description = "Bucket that receives this bucket's S3 server access logs; null only for the access-log bucket itself."
  default     = null
}

variable "object_lock_days" {
  type        = number
  description = "Object Lock COMPLIANCE default retention in days (PCI DSS 10.3.2, 10.5.1: at least 365)."

  validation {
    condition     = var.object_lock_days >= 365
    error_message = "Log archives must be immutable for at least 365 days (PCI DSS 10.5.1)."
  }
}

variable "reader_role_arns" {
  type        = list(string)
  description = "The only principals that may read objects (PCI DSS 10.3.1: auditors)."

  validation {
    condition     = length(var.reader_role_arns) > 0
    error_message = "At least one reader role is required."
  }
}

variable "writer_policy_json" {
  type        = string
  description = "Bucket-policy statements that let the writing AWS service deliver its logs (an IAM policy document in JSON)."
}

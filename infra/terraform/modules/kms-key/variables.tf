variable "name" {
  type        = string
  description = "Key name; the alias is alias/<name>."
}

variable "description" {
  type        = string
  description = "What the key protects (shown in the KMS console and in CloudTrail)."
}

variable "pci_zone" {
  type        = string
  description = "pci_zone tag of the key: cde, connected or out-of-scope."

  validation {
    condition     = contains(["cde", "connected", "out-of-scope"], var.pci_zone)
    error_message = "pci_zone must be cde, connected or out-of-scope."
  }
}

variable "admin_role_arns" {
  type        = list(string)
  description = "Roles that administer the key and may attach it to AWS resources (grants only for AWS resources); they can never encrypt or decrypt."

  validation {
    condition     = length(var.admin_role_arns) > 0
    error_message = "At least one key administrator role is required."
  }
}

variable "user_role_arns" {
  type        = list(string)
  description = "Roles that may use the key, with user_actions only (PCI DSS 3.6.1.2: the fewest custodians)."
  default     = []
}

variable "user_actions" {
  type        = list(string)
  description = "Cryptographic actions the user roles get."
  default     = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]

  validation {
    condition     = alltrue([for action in var.user_actions : !can(regex("\\*", action))])
    error_message = "Name every action; no wildcards in key usage grants."
  }
}

variable "user_via_services" {
  type        = list(string)
  description = "If set, the user roles may use the key only through these AWS services (kms:ViaService, e.g. secretsmanager.eu-west-1.amazonaws.com)."
  default     = []
}

variable "log_group_arn_patterns" {
  type        = list(string)
  description = "If not empty, CloudWatch Logs may use the key for log groups whose ARN matches one of these patterns."
  default     = []
}

variable "extra_policy_jsons" {
  type        = list(string)
  description = "Further key-policy statements (IAM policy documents in JSON) for AWS service principals, e.g. CloudTrail."
  default     = []
}

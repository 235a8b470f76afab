variable "name" {
  type        = string
  description = "Service name, also the task family and log-group suffix, e.g. fincore-prod-vault."
}

variable "pci_zone" {
  type        = string
  description = "pci_zone tag of everything this module creates: cde, connected or out-of-scope."

  validation {
    condition     = contains(["cde", "connected", "out-of-scope"], var.pci_zone)
    error_message = "pci_zone must be cde, connected or out-of-scope."
  }
}

variable "cluster_arn" {
  type        = string
  description = "ARN of the ECS cluster the service runs in."
}

variable "image" {
  type        = string
  description = "Container image, pinned by digest (repository@sha256:...) so what runs is what was reviewed (PCI DSS 6.5.1)."

  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "Pin the image by digest: <repository>@sha256:<64 hex digits>."
  }
}

variable "repository_arn" {
  type        = string
  description = "ARN of the ECR repository the image is pulled from (the execution role may pull only from it)."
}

variable "command" {
  type        = list(string)
  description = "Container command (arguments to the image's entry point), e.g. [\"vault\"]."
  default     = []
}

variable "container_port" {
  type        = number
  description = "TCP port the container listens on (TLS); must match the approved flow into its security group."
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables (never secrets)."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variable name -> Secrets Manager secret name (same account and region), injected at start by the execution role. The caller grants kms:Decrypt on the secrets' key to execution_role_name."
  default     = {}
}

variable "cpu" {
  type        = number
  description = "Task CPU units (256, 512, 1024, 2048 or 4096)."
}

variable "memory" {
  type        = number
  description = "Task memory in MiB, valid for the chosen CPU."
}

variable "desired_count" {
  type        = number
  description = "Number of tasks (at least 2 spreads them over availability zones)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the service's tier (no public IPs are assigned)."
}

variable "security_group_id" {
  type        = string
  description = "The flow endpoint's security group (from the network module); the service gets no other."
}

variable "target_group_arns" {
  type        = list(string)
  description = "Load-balancer target groups that forward to the container port."
  default     = []
}

variable "task_role_arn" {
  type        = string
  description = "IAM role the application runs as. The caller creates it and attaches its least-privilege policy, because key policies name it (see README of this module's callers)."
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the service's CloudWatch log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the service's log group, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "discovery" {
  type = object({
    namespace_id = string
    name         = string
  })
  description = "If set, registers the tasks in this Cloud Map private DNS namespace under this name (A records), for callers without a load balancer."
  default     = null
}

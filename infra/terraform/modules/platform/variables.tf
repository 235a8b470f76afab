variable "name" {
  type        = string
  description = "Name prefix of every resource, e.g. fincore-prod."
}

variable "internal_domain" {
  type        = string
  description = "Private DNS domain of the internal listeners, e.g. prod.fincore.internal (names under it match the private-CA certificates)."
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones every tier is spread over (2 to 4)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every CloudWatch log group, in days: 365 or more and a value CloudWatch accepts (PCI DSS 10.5.1)."

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "Use a CloudWatch retention of at least one year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "archive_retention_days" {
  type        = number
  description = "Object Lock COMPLIANCE retention of the log archives, in days (at least 365)."
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "Roles that administer (never use) every KMS key and attach keys to AWS resources; normally the deploy role and a break-glass role."
}

variable "auditor_role_arns" {
  type        = list(string)
  description = "Compliance-auditor roles: the only principals that read the log archives."
}

variable "images" {
  type = object({
    vault   = string
    gateway = string
    api     = string
    workers = string
  })
  description = "Container images pinned by digest (<account>.dkr.ecr.<region>.amazonaws.com/fincore/<name>@sha256:...), set by the deploy pipeline."
}

variable "ecr_repository_arns" {
  type = object({
    vault   = string
    gateway = string
    api     = string
    workers = string
  })
  description = "ECR repositories of the images (each execution role may pull only from its own)."
}

variable "certificate_arns" {
  type = object({
    card_ingress     = string
    merchant_api     = string
    cde_internal     = string
    noncde_internal  = string
    dashboard_global = string
  })
  description = "ACM certificates: public card ingress and merchant API, the two internal listeners (private CA), and the dashboard's (in us-east-1, for CloudFront)."
}

variable "domains" {
  type = object({
    card_ingress = string
    merchant_api = string
    dashboard    = string
  })
  description = "Public host names of the card ingress, the merchant API and the staff dashboard."
}

variable "psp_api_url" {
  type        = string
  description = "HTTPS base URL of the PSP API; its host must be in the CDE egress allow-list (approved-flows.yaml)."
}

variable "sizes" {
  type = object({
    task_count               = number
    vault_db_instance_class  = string
    noncde_db_instance_class = string
    db_allocated_storage_gb  = number
    cache_node_type          = string
  })
  description = "Capacity: tasks per service, database instance classes and storage, cache node type."
}

variable "waf_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests one client IP may send to a public entry point in 5 minutes before the WAF blocks it."
}

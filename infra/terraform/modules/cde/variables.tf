variable "name" {
  type        = string
  description = "Name prefix of every resource, e.g. fincore-prod."
}

variable "vpc_id" {
  type        = string
  description = "ID of the CDE VPC (network module output cde_vpc_id)."
}

variable "subnet_ids" {
  type        = map(list(string))
  description = "Subnet IDs per tier (network module output subnet_ids); uses cde.edge, cde.listener, cde.app, cde.vault and cde.data."
}

variable "security_group_ids" {
  type        = map(string)
  description = "Security group per flow endpoint (network module output security_group_ids); uses the cde.* groups."
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "Roles that administer (never use) the CDE keys and attach them to AWS resources."
}

variable "lb_logs_bucket_name" {
  type        = string
  description = "Object Lock bucket for the load balancers' access logs (audit module output lb_logs_bucket_name)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every CDE log group, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "vault_image" {
  type        = string
  description = "Image of the card vault and card ingress (cde/vault), pinned by digest."
}

variable "vault_repository_arn" {
  type        = string
  description = "ECR repository of vault_image."
}

variable "gateway_image" {
  type        = string
  description = "Image of the PSP gateway (cde/gateway), pinned by digest."
}

variable "gateway_repository_arn" {
  type        = string
  description = "ECR repository of gateway_image."
}

variable "service_environment" {
  type        = map(map(string))
  description = "Extra plain settings per service (vault, gateway, ingress); never secrets."
  default     = {}
}

variable "task_count" {
  type        = number
  description = "Tasks per CDE service (at least 2, spread over the availability zones)."

  validation {
    condition     = var.task_count >= 2
    error_message = "Run at least 2 tasks per service."
  }
}

variable "ingress_certificate_arn" {
  type        = string
  description = "ACM certificate of the public card-ingress listener."
}

variable "internal_certificate_arn" {
  type        = string
  description = "ACM certificate (private CA) of the gateway's internal listener."
}

variable "psp_api_url" {
  type        = string
  description = "HTTPS base URL of the PSP API; its host must be in the CDE egress allow-list of approved-flows.yaml."

  validation {
    condition     = startswith(var.psp_api_url, "https://")
    error_message = "The PSP is reached over HTTPS only (PCI DSS 4.2.1)."
  }
}

variable "internal_zone_id" {
  type        = string
  description = "Private hosted zone (network module output internal_zone_id) that gets the gateway listener's name."
}

variable "gateway_internal_host" {
  type        = string
  description = "Private host name of the gateway's internal listener, inside the internal zone, e.g. gateway.cde.prod.fincore.internal."
}

variable "noncde_api_url" {
  type        = string
  description = "HTTPS URL of the non-CDE API's internal listener (the only non-CDE address the CDE calls)."
}

variable "waf_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests one client IP may send to the card ingress in 5 minutes."
}

variable "vault_db_instance_class" {
  type        = string
  description = "RDS instance class of the vault database, e.g. db.r6g.large."
}

variable "vault_db_allocated_storage_gb" {
  type        = number
  description = "Allocated storage of the vault database in GiB."
}

variable "cvc_store_node_type" {
  type        = string
  description = "ElastiCache node type of the CVC store, e.g. cache.r7g.large."
}

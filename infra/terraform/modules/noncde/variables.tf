variable "name" {
  type        = string
  description = "Name prefix of every resource, e.g. fincore-prod."
}

variable "vpc_id" {
  type        = string
  description = "ID of the non-CDE VPC (network module output noncde_vpc_id)."
}

variable "subnet_ids" {
  type        = map(list(string))
  description = "Subnet IDs per tier (network module output subnet_ids); uses noncde.edge, noncde.listener, noncde.app and noncde.data."
}

variable "security_group_ids" {
  type        = map(string)
  description = "Security group per flow endpoint (network module output security_group_ids); uses the noncde.* groups."
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "Roles that administer (never use) the non-CDE keys and attach them to AWS resources."
}

variable "lb_logs_bucket_name" {
  type        = string
  description = "Object Lock bucket for the load balancers' access logs (audit module output lb_logs_bucket_name)."
}

variable "access_logs_bucket_name" {
  type        = string
  description = "Bucket for S3 server access logs of the dashboard bucket (audit module's access-log bucket)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every non-CDE log group, in days (PCI DSS 10.5.1: at least 365)."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "PCI DSS 10.5.1 requires at least 365 days of log history."
  }
}

variable "api_image" {
  type        = string
  description = "Image of the merchant API (noncde/api), pinned by digest."
}

variable "api_repository_arn" {
  type        = string
  description = "ECR repository of api_image."
}

variable "workers_image" {
  type        = string
  description = "Image of the workers and read models (noncde/workers, noncde/readmodels), pinned by digest."
}

variable "workers_repository_arn" {
  type        = string
  description = "ECR repository of workers_image."
}

variable "service_environment" {
  type        = map(map(string))
  description = "Extra plain settings per service (api, worker, projectionist, ledger, webhooks); never secrets."
  default     = {}
}

variable "task_count" {
  type        = number
  description = "Tasks per non-CDE service (at least 2, spread over the availability zones)."

  validation {
    condition     = var.task_count >= 2
    error_message = "Run at least 2 tasks per service."
  }
}

variable "api_certificate_arn" {
  type        = string
  description = "ACM certificate of the public merchant-API listener."
}

variable "internal_certificate_arn" {
  type        = string
  description = "ACM certificate (private CA) of the API's internal listener for the CDE."
}

variable "internal_zone_id" {
  type        = string
  description = "Private hosted zone (network module output internal_zone_id) that gets the API listener's name."
}

variable "api_internal_host" {
  type        = string
  description = "Private host name of the API's internal listener, inside the internal zone, e.g. api.noncde.prod.fincore.internal."
}

variable "gateway_internal_url" {
  type        = string
  description = "HTTPS URL of the gateway's internal listener (its private name): the only CDE address this zone calls."
}

variable "api_public_url" {
  type        = string
  description = "Public HTTPS URL of the merchant API, e.g. https://api.fincore.example."
}

variable "card_ingress_url" {
  type        = string
  description = "Public HTTPS URL of the CDE card ingress that S2S merchants post cards to (shown to merchants, never called)."
}

variable "waf_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests one client IP may send to the merchant API or dashboard in 5 minutes."
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class of PaymentDB and LedgerDB, e.g. db.r6g.large."
}

variable "db_allocated_storage_gb" {
  type        = number
  description = "Allocated storage of PaymentDB and LedgerDB in GiB."
}

variable "cache_node_type" {
  type        = string
  description = "ElastiCache node type of the idempotency cache, e.g. cache.r7g.large."
}

variable "dashboard_domain_name" {
  type        = string
  description = "Host name of the staff dashboard, e.g. dashboard.fincore.example."
}

variable "dashboard_certificate_arn" {
  type        = string
  description = "ACM certificate in us-east-1 for dashboard_domain_name (CloudFront)."
}

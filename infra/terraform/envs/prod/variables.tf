variable "account_id" {
  type        = string
  description = "AWS account of this environment; the providers refuse to touch any other."

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id is a 12-digit AWS account ID."
  }
}

variable "key_admin_role_arns" {
  type        = list(string)
  description = "Roles that administer (never use) the KMS keys: the deploy role and a break-glass role."
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
  description = "Container images pinned by digest; the deploy pipeline sets them (-var-file)."
}

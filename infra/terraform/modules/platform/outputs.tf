output "card_ingress_dns_name" {
  description = "DNS name of the public card-ingress ALB (CNAME/alias target of domains.card_ingress)."
  value       = module.cde.ingress_dns_name
}

output "merchant_api_dns_name" {
  description = "DNS name of the public merchant-API ALB (CNAME/alias target of domains.merchant_api)."
  value       = module.noncde.api_dns_name
}

output "dashboard_distribution_domain_name" {
  description = "CloudFront domain of the staff dashboard (CNAME/alias target of domains.dashboard)."
  value       = module.noncde.dashboard_distribution_domain_name
}

output "security_group_ids" {
  description = "Security group ID per flow endpoint of approved-flows.yaml."
  value       = module.network.security_group_ids
}

output "cde_key_arns" {
  description = "ARNs of the CDE keys by purpose; only CDE roles can use them."
  value       = module.cde.key_arns
}

output "psp_secret_arns" {
  description = "Secrets Manager secrets whose values an operator puts after the first apply (PSP API key and webhook secret)."
  value       = module.cde.psp_secret_arns
}

output "trail_arn" {
  description = "ARN of the multi-region CloudTrail with log-file validation."
  value       = module.audit.trail_arn
}

output "archive_bucket_name" {
  description = "Object Lock bucket of the CloudTrail log files and digests (aws cloudtrail validate-logs reads it)."
  value       = module.audit.archive_bucket_name
}

output "security_alerts_topic_arn" {
  description = "SNS topic of the security alarms; subscribe the on-call rotation."
  value       = module.audit.security_alerts_topic_arn
}

output "staff_user_pool_id" {
  description = "Cognito user pool of the staff (MFA required)."
  value       = module.noncde.staff_user_pool_id
}

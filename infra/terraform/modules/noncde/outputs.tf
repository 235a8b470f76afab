output "api_dns_name" {
  description = "DNS name of the public merchant-API ALB (point the API host name at it)."
  value       = aws_lb.api.dns_name
}

output "internal_api_url" {
  description = "HTTPS URL of the API's internal listener (its private name), for the CDE ingress and gateway."
  value       = "https://${aws_route53_record.api_internal.fqdn}:8443"
}

output "dashboard_distribution_domain_name" {
  description = "CloudFront domain of the staff dashboard (point dashboard_domain_name at it)."
  value       = aws_cloudfront_distribution.dashboard.domain_name
}

output "staff_user_pool_id" {
  description = "Cognito user pool of the staff (MFA required)."
  value       = aws_cognito_user_pool.staff.id
}

output "jobs_queue_url" {
  description = "URL of the job queue (its dead-letter queue receives a job after 5 failed attempts)."
  value       = aws_sqs_queue.jobs.url
}

output "key_arns" {
  description = "ARNs of the non-CDE keys by purpose (data, logs, secrets, dashboard)."
  value       = {
    data      = module.data_key.key_arn
    logs      = module.logs_key.key_arn
    secrets   = module.secrets_key.key_arn
    dashboard = module.dashboard_key.key_arn
  }
}

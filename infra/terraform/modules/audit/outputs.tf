output "audit_key_arn" {
  description = "ARN of the audit KMS key (CloudTrail, its log group, the archive, the alert topics)."
  value       = module.key.key_arn
}

output "trail_arn" {
  description = "ARN of the multi-region CloudTrail."
  value       = aws_cloudtrail.audit.arn
}

output "trail_log_group_name" {
  description = "CloudWatch log group holding the CloudTrail copy the security alarms read."
  value       = aws_cloudwatch_log_group.trail.name
}

output "archive_bucket_name" {
  description = "S3 bucket (Object Lock COMPLIANCE) holding the CloudTrail log files and digests."
  value       = module.archive.bucket_name
}

output "lb_logs_bucket_name" {
  description = "S3 bucket (Object Lock COMPLIANCE) the load balancers write their access logs to."
  value       = module.lb_logs.bucket_name
}

output "security_alerts_topic_arn" {
  description = "SNS topic the security alarms publish to; subscribe the on-call rotation to it."
  value       = aws_sns_topic.security_alerts.arn
}

output "access_logs_bucket_name" {
  description = "S3 bucket (Object Lock COMPLIANCE) receiving S3 server access logs."
  value       = module.access_logs.bucket_name
}

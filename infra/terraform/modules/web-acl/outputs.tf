output "web_acl_arn" {
  description = "ARN of the web ACL, to associate with an ALB or set on a CloudFront distribution."
  value       = aws_wafv2_web_acl.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the WAF logs."
  value       = aws_cloudwatch_log_group.this.name
}

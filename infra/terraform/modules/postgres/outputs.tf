output "endpoint" {
  description = "Endpoint (host:port) of the instance."
  value       = aws_db_instance.this.endpoint
}

output "resource_id" {
  description = "RDS resource ID, for rds-db:connect IAM policies (arn:aws:rds-db:<region>:<account>:dbuser:<resource_id>/<user>)."
  value       = aws_db_instance.this.resource_id
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed master password secret."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

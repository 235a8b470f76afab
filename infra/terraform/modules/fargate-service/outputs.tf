output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "execution_role_name" {
  description = "Name of the execution role (for the caller's kms:Decrypt grant on the secrets' key)."
  value       = aws_iam_role.execution.name
}

output "execution_role_arn" {
  description = "ARN of the execution role (pulls the image, reads the start-up secrets)."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the service."
  value       = aws_cloudwatch_log_group.this.name
}

output "ingress_dns_name" {
  description = "DNS name of the public card-ingress ALB (point the merchants' card-ingress host name at it)."
  value       = aws_lb.ingress.dns_name
}

output "gateway_internal_url" {
  description = "HTTPS URL of the gateway's internal listener (its private name), for the non-CDE API and workers."
  value       = "https://${aws_route53_record.gateway_internal.fqdn}:8443"
}

output "key_arns" {
  description = "ARNs of the CDE keys by purpose (pan_kek, cvc, fingerprint, logs, secrets, storage). No non-CDE principal may use them."
  value       = {
    pan_kek     = module.pan_kek.key_arn
    cvc         = module.cvc_key.key_arn
    fingerprint = aws_kms_key.fingerprint.arn
    logs        = module.logs_key.key_arn
    secrets     = module.secrets_key.key_arn
    storage     = module.storage_key.key_arn
  }
}

output "audit_log_group_name" {
  description = "CloudWatch log group of the CDE audit log."
  value       = aws_cloudwatch_log_group.audit.name
}

output "vault_db_endpoint" {
  description = "Endpoint (host:port) of the vault database, reachable only from the vault's security group."
  value       = module.vault_db.endpoint
}

output "psp_secret_arns" {
  description = "ARNs of the PSP secrets whose values an operator must put (api_key, webhook_secret)."
  value       = {
    api_key        = aws_secretsmanager_secret.psp_api_key.arn
    webhook_secret = aws_secretsmanager_secret.psp_webhook_secret.arn
  }
}

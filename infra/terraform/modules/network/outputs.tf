output "cde_vpc_id" {
  description = "ID of the CDE VPC."
  value       = aws_vpc.cde.id
}

output "noncde_vpc_id" {
  description = "ID of the non-CDE VPC."
  value       = aws_vpc.noncde.id
}

output "cde_cidr" {
  description = "Address space of the CDE VPC (from approved-flows.yaml)."
  value       = aws_vpc.cde.cidr_block
}

output "peering_connection_id" {
  description = "ID of the VPC peering connection: the one private path between the zones."
  value       = aws_vpc_peering_connection.zones.id
}

output "cde_egress_domains" {
  description = "Host names the CDE Network Firewall allows (from approved-flows.yaml)."
  value       = local.cde_egress_domains
}

output "flow_log_group_names" {
  description = "CloudWatch log groups of the VPC flow logs, per zone (cde, noncde)."
  value       = { for zone, group in aws_cloudwatch_log_group.flow_logs : zone => group.name }
}

output "network_key_arn" {
  description = "ARN of the KMS key that encrypts the network logs."
  value       = module.key.key_arn
}

output "internal_zone_id" {
  description = "Route 53 private hosted zone of var.internal_domain (associated with both VPCs)."
  value       = aws_route53_zone.internal.zone_id
}

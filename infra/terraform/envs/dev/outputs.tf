output "platform" {
  description = "Everything an operator needs after apply: DNS targets, security groups, CDE key ARNs, PSP secrets to fill, trail, archive, alert topic, staff user pool (see modules/platform/outputs.tf)."
  value       = module.platform
}

"""Infrastructure tests: policy checks over the Terraform in infra/terraform, and checkov."""

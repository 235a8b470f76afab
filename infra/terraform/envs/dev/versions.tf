terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }

  # State lives in the environment account's state bucket (versioned, encrypted, locked); the
  # bucket is passed at init: terraform init -backend-config=bucket=<state bucket>.
  backend "s3" {
    key          = "fincore/dev/terraform.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    use_lockfile = true
  }
}

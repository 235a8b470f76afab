provider "aws" {
  region              = "eu-west-1"
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      project     = "fincore"
      environment = "dev"
      managed_by  = "terraform"
    }
  }
}

# CloudFront's WAF, certificate and log delivery live in us-east-1.
provider "aws" {
  alias               = "us_east_1"
  region              = "us-east-1"
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      project     = "fincore"
      environment = "dev"
      managed_by  = "terraform"
    }
  }
}

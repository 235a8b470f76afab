# Example values for the offline checks; real roles and digests come from the deploy pipeline.
account_id          = "111111111111"
key_admin_role_arns = ["arn:aws:iam::111111111111:role/fincore-deploy", "arn:aws:iam::111111111111:role/fincore-break-glass"]
auditor_role_arns   = ["arn:aws:iam::111111111111:role/fincore-auditor"]

images = {
  vault   = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/fincore/vault@sha256:1111111111111111111111111111111111111111111111111111111111111111"
  gateway = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/fincore/gateway@sha256:2222222222222222222222222222222222222222222222222222222222222222"
  api     = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/fincore/api@sha256:3333333333333333333333333333333333333333333333333333333333333333"
  workers = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/fincore/workers@sha256:4444444444444444444444444444444444444444444444444444444444444444"
}

# Example values for the offline checks; real roles and digests come from the deploy pipeline.
account_id          = "222222222222"
key_admin_role_arns = ["arn:aws:iam::222222222222:role/fincore-deploy", "arn:aws:iam::222222222222:role/fincore-break-glass"]
auditor_role_arns   = ["arn:aws:iam::222222222222:role/fincore-auditor"]

images = {
  vault   = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/fincore/vault@sha256:1111111111111111111111111111111111111111111111111111111111111111"
  gateway = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/fincore/gateway@sha256:2222222222222222222222222222222222222222222222222222222222222222"
  api     = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/fincore/api@sha256:3333333333333333333333333333333333333333333333333333333333333333"
  workers = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/fincore/workers@sha256:4444444444444444444444444444444444444444444444444444444444444444"
}

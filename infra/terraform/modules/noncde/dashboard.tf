# The staff dashboard: static assets in a private S3 bucket served only through CloudFront (origin
# access control), behind a CLOUDFRONT-scoped WAF, TLS 1.2+; staff sign in with Cognito, MFA
# required (PCI DSS 8.4.2 applies to the CDE; we require it for every staff account anyway).

# ---- Key of the dashboard bucket: CloudFront may decrypt objects only for this account's distributions.

module "dashboard_key" {
  source             = "../kms-key"
  name               = "${var.name}-noncde-dashboard"
  description        = "${var.name}: dashboard static assets"
  pci_zone           = "out-of-scope"
  admin_role_arns    = var.key_admin_role_arns
  extra_policy_jsons = [data.aws_iam_policy_document.dashboard_key_cloudfront.json]
}

data "aws_iam_policy_document" "dashboard_key_cloudfront" {
  # checkov:skip=CKV_AWS_111:Key-policy statement: Resource * is the key itself, bound to this account's distributions.
  # checkov:skip=CKV_AWS_356:Same reason: Resource * in a key policy is the key itself.
  statement {
    sid       = "CloudFrontReadsTheDashboard"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:SourceArn"
      values   = ["arn:aws:cloudfront::${data.aws_caller_identity.current.account_id}:distribution/*"]
    }
  }
}

# ---- Bucket

resource "aws_s3_bucket" "dashboard" {
  # checkov:skip=CKV_AWS_144:Static assets are rebuilt from source by the deploy pipeline; a replica adds nothing.
  bucket = "${var.name}-dashboard-${data.aws_caller_identity.current.account_id}"

  tags = {
    Name     = "${var.name}-dashboard"
    pci_zone = "out-of-scope"
  }
}

resource "aws_s3_bucket_ownership_controls" "dashboard" {
  bucket = aws_s3_bucket.dashboard.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "dashboard" {
  bucket                  = aws_s3_bucket.dashboard.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "dashboard" {
  bucket = aws_s3_bucket.dashboard.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dashboard" {
  bucket = aws_s3_bucket.dashboard.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.dashboard_key.key_arn
    }
  }
}

resource "aws_s3_bucket_logging" "dashboard" {
  bucket        = aws_s3_bucket.dashboard.id
  target_bucket = var.access_logs_bucket_name
  target_prefix = "dashboard/"
}

resource "aws_s3_bucket_lifecycle_configuration" "dashboard" {
  bucket = aws_s3_bucket.dashboard.id

  rule {
    id     = "old-releases"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.dashboard]
}

resource "aws_s3_bucket_notification" "dashboard" {
  bucket      = aws_s3_bucket.dashboard.id
  eventbridge = true
}

data "aws_iam_policy_document" "dashboard_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.dashboard.arn, "${aws_s3_bucket.dashboard.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CloudFrontReadsThroughOriginAccessControl"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.dashboard.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudfront_distribution.dashboard.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "dashboard" {
  bucket = aws_s3_bucket.dashboard.id
  policy = data.aws_iam_policy_document.dashboard_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.dashboard]
}

# ---- CloudFront

module "dashboard_waf" {
  source                   = "../web-acl"
  name                     = "${var.name}-dashboard"
  pci_zone                 = "out-of-scope"
  scope                    = "CLOUDFRONT"
  rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  log_retention_days       = var.log_retention_days
  key_admin_role_arns      = var.key_admin_role_arns

  providers = {
    aws = aws.us_east_1
  }
}

resource "aws_cloudfront_origin_access_control" "dashboard" {
  name                              = "${var.name}-dashboard"
  description                       = "CloudFront reads the dashboard bucket with SigV4"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_response_headers_policy" "dashboard" {
  name = "${var.name}-dashboard-security-headers"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 63072000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }

    content_security_policy {
      content_security_policy = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
      override                = true
    }

    frame_options {
      frame_option = "DENY"
      override     = true
    }

    content_type_options {
      override = true
    }

    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }
  }
}

resource "aws_cloudfront_distribution" "dashboard" {
  # checkov:skip=CKV_AWS_86:Access logs use CloudFront standard logging v2 (aws_cloudwatch_log_delivery.dashboard_cdn below), which checkov does not recognise.
  # checkov:skip=CKV_AWS_310:One S3 origin of static assets; an origin group adds a second bucket to keep in sync for no availability gain over S3's own.
  # checkov:skip=CKV_AWS_374:Staff work from changing countries; access is gated by Cognito MFA and the WAF instead of geography.
  enabled             = true
  comment             = "${var.name} staff dashboard"
  aliases             = [var.dashboard_domain_name]
  default_root_object = "index.html"
  http_version        = "http2and3"
  price_class         = "PriceClass_100"
  web_acl_id          = module.dashboard_waf.web_acl_arn

  origin {
    origin_id                = "dashboard-bucket"
    domain_name              = aws_s3_bucket.dashboard.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.dashboard.id
  }

  default_cache_behavior {
    target_origin_id           = "dashboard-bucket"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = "658327ea-f89d-4fab-a63d-7e88639e58f6" # AWS managed: CachingOptimized
    response_headers_policy_id = aws_cloudfront_response_headers_policy.dashboard.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.dashboard_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  tags = {
    Name     = "${var.name}-dashboard"
    pci_zone = "out-of-scope"
  }
}

# CloudFront access logs (standard logging v2) into an encrypted log group in us-east-1.
module "dashboard_logs_key" {
  source                 = "../kms-key"
  name                   = "${var.name}-dashboard-cdn-logs"
  description            = "${var.name}: dashboard CloudFront access logs"
  pci_zone               = "out-of-scope"
  admin_role_arns        = var.key_admin_role_arns
  log_group_arn_patterns = ["arn:aws:logs:us-east-1:${data.aws_caller_identity.current.account_id}:log-group:/fincore/${var.name}-noncde-dashboard-cdn"]

  providers = {
    aws = aws.us_east_1
  }
}

resource "aws_cloudwatch_log_group" "dashboard_cdn" {
  provider          = aws.us_east_1
  name              = "/fincore/${var.name}-noncde-dashboard-cdn"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.dashboard_logs_key.key_arn

  tags = {
    Name     = "${var.name}-dashboard-cdn"
    pci_zone = "out-of-scope"
  }
}

resource "aws_cloudwatch_log_delivery_source" "dashboard_cdn" {
  provider     = aws.us_east_1
  name         = "${var.name}-dashboard-cdn"
  log_type     = "ACCESS_LOGS"
  resource_arn = aws_cloudfront_distribution.dashboard.arn

  tags = {
    Name     = "${var.name}-dashboard-cdn"
    pci_zone = "out-of-scope"
  }
}

resource "aws_cloudwatch_log_delivery_destination" "dashboard_cdn" {
  provider      = aws.us_east_1
  name          = "${var.name}-dashboard-cdn"
  output_format = "json"

  delivery_destination_configuration {
    destination_resource_arn = aws_cloudwatch_log_group.dashboard_cdn.arn
  }

  tags = {
    Name     = "${var.name}-dashboard-cdn"
    pci_zone = "out-of-scope"
  }
}

resource "aws_cloudwatch_log_delivery" "dashboard_cdn" {
  provider                 = aws.us_east_1
  delivery_source_name     = aws_cloudwatch_log_delivery_source.dashboard_cdn.name
  delivery_destination_arn = aws_cloudwatch_log_delivery_destination.dashboard_cdn.arn

  tags = {
    Name     = "${var.name}-dashboard-cdn"
    pci_zone = "out-of-scope"
  }
}

# ---- Staff sign-in (PCI DSS 8.3.6 password rules, 8.4 MFA, 8.3.4 lockout by Cognito's
# advanced security)

resource "aws_cognito_user_pool" "staff" {
  name                     = "${var.name}-staff"
  mfa_configuration        = "ON"
  deletion_protection      = "ACTIVE"
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]

  software_token_mfa_configuration {
    enabled = true
  }

  password_policy {
    minimum_length                   = 14
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = true
    temporary_password_validity_days = 1
  }

  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  user_pool_add_ons {
    advanced_security_mode = "ENFORCED"
  }

  tags = {
    Name     = "${var.name}-staff"
    pci_zone = "out-of-scope"
  }
}

resource "aws_cognito_user_pool_client" "dashboard" {
  name                                 = "${var.name}-dashboard"
  user_pool_id                         = aws_cognito_user_pool.staff.id
  generate_secret                      = false
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = ["openid", "email"]
  callback_urls                        = ["https://${var.dashboard_domain_name}/auth/callback"]
  logout_urls                          = ["https://${var.dashboard_domain_name}/"]
  supported_identity_providers         = ["COGNITO"]
  prevent_user_existence_errors        = "ENABLED"
  enable_token_revocation              = true
  access_token_validity                = 15
  id_token_validity                    = 15
  refresh_token_validity               = 12

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "hours"
  }
}

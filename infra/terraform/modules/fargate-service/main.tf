# One Fargate service: task definition, service, log group and execution role. Shared by the CDE and
# non-CDE modules so every service is hardened the same way: no public IP, no shell (ECS Exec off),
# read-only root file system, non-root user, all Linux capabilities dropped, image pinned by digest.
# The task role (what the application may do) belongs to the caller: key policies name it, and
# checkov stops rendering a module's variables when several other modules consume its outputs.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/fincore/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn

  tags = {
    Name     = var.name
    pci_zone = var.pci_zone
  }
}

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The execution role starts the task: pull this image, write this log group, read these secrets.
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }

  statement {
    sid       = "PullThisImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.repository_arn]
  }

  statement {
    sid       = "WriteThisLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(var.secrets) > 0 ? [1] : []
    content {
      sid       = "ReadThisServicesSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [for name in values(var.secrets) : "arn:aws:secretsmanager:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:secret:${name}-??????"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json

  tags = {
    Name     = "${var.name}-execution"
    pci_zone = var.pci_zone
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = var.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "ARM64"
  }

  container_definitions = jsonencode([
    {
      name                   = "app"
      image                  = var.image
      command                = var.command
      essential              = true
      readonlyRootFilesystem = true
      privileged             = false
      user                   = "10001:10001"
      portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
      environment            = [for key, value in var.environment : { name = key, value = value }]
      secrets                = [for key, name in var.secrets : { name = key, valueFrom = name }]
      linuxParameters        = {
        initProcessEnabled = true
        capabilities       = { drop = ["ALL"] }
      }
      mountPoints      = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options   = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "app"
        }
      }
    }
  ])

  volume {
    name = "tmp"
  }

  tags = {
    Name     = var.name
    pci_zone = var.pci_zone
  }
}

resource "aws_service_discovery_service" "this" {
  count = var.discovery == null ? 0 : 1
  name  = var.discovery.name

  dns_config {
    namespace_id   = var.discovery.namespace_id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = {
    Name     = "${var.name}-discovery"
    pci_zone = var.pci_zone
  }
}

resource "aws_ecs_service" "this" {
  name                   = var.name
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.this.arn
  desired_count          = var.desired_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = false # PCI DSS 2.2.6 / 8.2.2: no interactive shell into running tasks
  propagate_tags         = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = var.target_group_arns
    content {
      target_group_arn = load_balancer.value
      container_name   = "app"
      container_port   = var.container_port
    }
  }

  dynamic "service_registries" {
    for_each = aws_service_discovery_service.this
    content {
      registry_arn = service_registries.value.arn
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = {
    Name     = var.name
    pci_zone = var.pci_zone
  }
}

# The three services on ECS Fargate: one task definition and one service each, log groups,
# least-privilege roles, security groups, and autoscaling (autoscaling.tf). What each container
# is given is in settings.tf; the gateway's own secrets in secrets.tf.

data "aws_region" "current" {}

locals {
  service_names = keys(local.ports)

  sizes = {
    "api-gateway"       = var.gateway
    "broadcast-service" = var.broadcast
    "archival-worker"   = var.worker
  }

  # Only the gateway and the broadcast service are behind the load balancer.
  target_groups = var.load_balancer.target_group_arns

  # Open sockets per broadcast instance: 50,000 viewers (MAX_CONNECTIONS) and their peers.
  nofile = {
    "api-gateway"       = 65536
    "broadcast-service" = 131072
    "archival-worker"   = 65536
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each          = local.ports
  name              = "/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# In: the load balancer, for the services behind it. Out: HTTPS (ECR, Secrets Manager,
# CloudWatch, an OIDC issuer's JWKS) and the data stores in the VPC (Redis 6379, PostgreSQL 5432,
# NATS 4222).
module "security_group" {
  for_each    = local.ports
  source      = "../security_group"
  name_prefix = "${var.name}-${each.key}-"
  description = "${each.key} tasks"
  vpc_id      = var.vpc_id
  rules = merge(
    { https = { direction = "egress", port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS" } },
    { for port in [6379, 5432, 4222] : "data-store-${port}" => { direction = "egress", port = port, cidr_ipv4 = var.vpc_cidr_block, description = "Data stores in the VPC" } },
    { for name, arn in local.target_groups : "from-alb" => { direction = "ingress", port = local.ports[name], peer_group_id = var.load_balancer.security_group_id, description = "From the load balancer" } if name == each.key },
  )
}

resource "aws_ecs_service" "service" {
  for_each                           = local.ports
  name                               = each.key
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.service[each.key].arn
  desired_count                      = local.sizes[each.key].min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  health_check_grace_period_seconds  = contains(keys(local.target_groups), each.key) ? 30 : null
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  wait_for_steady_state              = true

  # A new version that cannot become healthy is rolled back by ECS itself.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [module.security_group[each.key].id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = contains(keys(local.target_groups), each.key) ? [local.target_groups[each.key]] : []
    content {
      target_group_arn = load_balancer.value
      container_name   = each.key
      container_port   = local.ports[each.key]
    }
  }

  lifecycle {
    # Autoscaling owns the count once the service exists.
    ignore_changes = [desired_count]
  }
}

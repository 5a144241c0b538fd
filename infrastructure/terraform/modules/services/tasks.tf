# One task definition per service: the image from its ECR repository at `image_tag`, the
# settings and secrets of settings.tf, a read-only root file system, logs to CloudWatch, and
# the broadcast service's metrics collector (autoscaling on connections needs its gauge).

locals {
  collector_config = yamlencode({
    receivers = {
      prometheus = {
        config = {
          scrape_configs = [{
            job_name        = "broadcast-service"
            scrape_interval = "15s"
            static_configs  = [{ targets = ["127.0.0.1:${local.ports["broadcast-service"]}"] }]
            metric_relabel_configs = [{
              target_label = "ServiceName"
              replacement  = "broadcast-service"
            }]
          }]
        }
      }
    }
    exporters = {
      awsemf = {
        namespace               = local.metrics_namespace
        log_group_name          = aws_cloudwatch_log_group.metrics.name
        dimension_rollup_option = "NoDimensionRollup"
        metric_declarations = [{
          dimensions            = [["ServiceName"]]
          metric_name_selectors = ["^broadcast_connections$", "^broadcast_subscriptions$"]
        }]
      }
    }
    service = {
      pipelines = { metrics = { receivers = ["prometheus"], exporters = ["awsemf"] } }
    }
  })

  metrics_namespace = "Auction/${var.name}"

  collector_container = {
    name                   = "metrics-collector"
    image                  = var.collector_image
    essential              = false
    readonlyRootFilesystem = true
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["broadcast-service"].name
        awslogs-region        = data.aws_region.current.region
        awslogs-stream-prefix = "collector"
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "metrics" {
  #checkov:skip=CKV_AWS_338:Only the collector's EMF copies of metrics, which CloudWatch keeps as metrics for 15 months; a year of the copies is cost for nothing.
  name              = "/${var.name}/metrics"
  retention_in_days = 7
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "service" {
  for_each                 = local.ports
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.sizes[each.key].cpu
  memory                   = local.sizes[each.key].memory
  execution_role_arn       = module.execution_role[each.key].arn
  task_role_arn            = module.task_role[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode(concat([{
    name                   = each.key
    image                  = "${var.repositories[each.key].url}:${var.image_tag}"
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = each.value, protocol = "tcp" }]
    environment            = [for name, value in local.environment[each.key] : { name = name, value = value }]
    secrets                = [for name, arn in local.secrets[each.key] : { name = name, valueFrom = arn }]
    # SIGTERM first; the services drain within 10 s (in-flight bids, the open archive batch,
    # 1001 closes to every viewer), so 60 s is ample before SIGKILL.
    stopTimeout = 60
    ulimits     = [{ name = "nofile", softLimit = local.nofile[each.key], hardLimit = local.nofile[each.key] }]
    healthCheck = {
      command     = ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:${each.value}${local.health_path}"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 20
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
        awslogs-region        = data.aws_region.current.region
        awslogs-stream-prefix = each.key
      }
    }
  }], each.key == "broadcast-service" ? [local.collector_container] : []))
}

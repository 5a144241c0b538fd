# Target tracking per service: CPU for all three; the gateway also on ALB requests per task,
# the broadcast service on open WebSockets per task (its broadcast_connections gauge, published
# to CloudWatch by the collector in tasks.tf). Scale out fast, scale in slowly: a broadcast
# task that goes away makes its viewers reconnect.

resource "aws_appautoscaling_target" "service" {
  for_each           = local.ports
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.service[each.key].name}"
  min_capacity       = local.sizes[each.key].min_count
  max_capacity       = local.sizes[each.key].max_count
}

locals {
  # The policies by name: the service they scale, the target, how long to wait before scaling
  # in, and the metric: a predefined one (`predefined`, with its `resource_label` where it needs
  # one) or a gauge the service publishes (`gauge`).
  scaling_policies = merge(
    {
      for service in local.service_names : "${service}-cpu" => {
        service = service, target = var.cpu_target_percent, scale_in_cooldown = 300, predefined = "ECSServiceAverageCPUUtilization", resource_label = null, gauge = null
      }
    },
    {
      "api-gateway-requests"          = { service = "api-gateway", target = var.gateway_requests_per_task_per_minute, scale_in_cooldown = 300, predefined = "ALBRequestCountPerTarget", resource_label = "${var.load_balancer.arn_suffix}/${var.load_balancer.gateway_target_group_arn_suffix}", gauge = null }
      "broadcast-service-connections" = { service = "broadcast-service", target = var.broadcast_connections_per_task, scale_in_cooldown = 600, predefined = null, resource_label = null, gauge = "broadcast_connections" }
    },
  )
}

resource "aws_appautoscaling_policy" "service" {
  for_each           = local.scaling_policies
  name               = each.key
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service[each.value.service].service_namespace
  scalable_dimension = aws_appautoscaling_target.service[each.value.service].scalable_dimension
  resource_id        = aws_appautoscaling_target.service[each.value.service].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.target
    scale_out_cooldown = 60
    scale_in_cooldown  = each.value.scale_in_cooldown

    dynamic "predefined_metric_specification" {
      for_each = each.value.predefined == null ? [] : [each.value]
      content {
        predefined_metric_type = predefined_metric_specification.value.predefined
        resource_label         = predefined_metric_specification.value.resource_label
      }
    }

    dynamic "customized_metric_specification" {
      for_each = each.value.gauge == null ? [] : [each.value]
      content {
        namespace   = local.metrics_namespace
        metric_name = customized_metric_specification.value.gauge
        statistic   = "Average"
        dimensions {
          name  = "ServiceName"
          value = customized_metric_specification.value.service
        }
      }
    }
  }
}

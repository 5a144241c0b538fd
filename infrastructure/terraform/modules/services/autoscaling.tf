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

resource "aws_appautoscaling_policy" "cpu" {
  for_each           = local.ports
  name               = "${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.service[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.service[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "gateway_requests" {
  name               = "api-gateway-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service["api-gateway"].service_namespace
  scalable_dimension = aws_appautoscaling_target.service["api-gateway"].scalable_dimension
  resource_id        = aws_appautoscaling_target.service["api-gateway"].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.gateway_requests_per_task_per_minute
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.gateway_target_group_arn_suffix}"
    }
  }
}

resource "aws_appautoscaling_policy" "broadcast_connections" {
  name               = "broadcast-service-connections"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service["broadcast-service"].service_namespace
  scalable_dimension = aws_appautoscaling_target.service["broadcast-service"].scalable_dimension
  resource_id        = aws_appautoscaling_target.service["broadcast-service"].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.broadcast_connections_per_task
    scale_out_cooldown = 60
    scale_in_cooldown  = 600
    customized_metric_specification {
      namespace   = local.metrics_namespace
      metric_name = "broadcast_connections"
      statistic   = "Average"
      dimensions {
        name  = "ServiceName"
        value = "broadcast-service"
      }
    }
  }
}

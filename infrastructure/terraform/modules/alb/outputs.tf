output "dns_name" {
  value = aws_lb.this.dns_name
}

output "zone_id" {
  value = aws_lb.this.zone_id
}

output "security_group_id" {
  value = module.security_group.id
}

output "target_group_arns" {
  description = "Target group per service behind the load balancer (api-gateway, broadcast-service)."
  value       = { for name, group in aws_lb_target_group.service : name => group.arn }
}

output "arn_suffix" {
  description = "For CloudWatch metrics and ALBRequestCountPerTarget."
  value       = aws_lb.this.arn_suffix
}

output "gateway_target_group_arn_suffix" {
  value = aws_lb_target_group.service["api-gateway"].arn_suffix
}

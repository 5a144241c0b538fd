output "dns_name" {
  value = aws_lb.this.dns_name
}

output "zone_id" {
  value = aws_lb.this.zone_id
}

output "for_services" {
  description = "What modules/services takes as its load_balancer: the ALB's security group (the services open their ports to it), the target group per service behind it (api-gateway, broadcast-service), and the ALB's and the gateway target group's ARN suffixes (CloudWatch metrics and ALBRequestCountPerTarget)."
  value = {
    security_group_id               = module.security_group.id
    target_group_arns               = { for name, group in aws_lb_target_group.service : name => group.arn }
    arn_suffix                      = aws_lb.this.arn_suffix
    gateway_target_group_arn_suffix = aws_lb_target_group.service["api-gateway"].arn_suffix
  }
}

output "dns_name" {
  value = aws_lb.this.dns_name
}

output "zone_id" {
  value = aws_lb.this.zone_id
}

output "security_group_id" {
  value = aws_security_group.this.id
}

output "gateway_target_group_arn" {
  value = aws_lb_target_group.gateway.arn
}

output "broadcast_target_group_arn" {
  value = aws_lb_target_group.broadcast.arn
}

output "arn_suffix" {
  description = "For CloudWatch metrics and ALBRequestCountPerTarget."
  value       = aws_lb.this.arn_suffix
}

output "gateway_target_group_arn_suffix" {
  value = aws_lb_target_group.gateway.arn_suffix
}

output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "security_group_ids" {
  description = "Security group per service, for the data stores' ingress rules."
  value       = { for name, sg in aws_security_group.service : name => sg.id }
}

output "admin_token_secret_arn" {
  value = module.admin_token.arn
}

output "log_groups" {
  value = { for name, group in aws_cloudwatch_log_group.service : name => group.name }
}

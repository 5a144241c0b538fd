output "redis_url_secret_arn" {
  description = "Secret holding REDIS_URL (rediss://:<token>@<configuration endpoint>:6379)."
  value       = aws_secretsmanager_secret.redis_url.arn
}

output "configuration_endpoint" {
  value = aws_elasticache_replication_group.this.configuration_endpoint_address
}

output "security_group_id" {
  value = aws_security_group.this.id
}

output "redis_url_secret_arn" {
  description = "Secret holding REDIS_URL (rediss://:<token>@<configuration endpoint>:6379)."
  value       = module.redis_url.arn
}

output "configuration_endpoint" {
  value = aws_elasticache_replication_group.this.configuration_endpoint_address
}

output "security_group_id" {
  value = module.security_group.id
}

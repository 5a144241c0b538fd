output "redis_url_secret_arn" {
  description = "Secret holding REDIS_URL (rediss://:<token>@<configuration endpoint>:6379)."
  value       = module.redis_url.arn
}

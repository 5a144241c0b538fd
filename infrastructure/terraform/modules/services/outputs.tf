output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "data_store_clients" {
  description = "Per data store, the security group of each service given its URL (settings.tf), for the store's ingress rules."
  value = {
    for store, url in { redis = "REDIS_URL", postgres = "DATABASE_URL", nats = "NATS_URL" } : store => {
      for service, secrets in local.secrets : service => module.security_group[service].id if contains(keys(secrets), url)
    }
  }
}

output "log_groups" {
  value = { for name, group in aws_cloudwatch_log_group.service : name => group.name }
}

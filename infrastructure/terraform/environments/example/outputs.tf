output "api_url" {
  description = "The public API (point your DNS name at load_balancer_dns_name; the certificate is for that name)."
  value       = "https://${module.alb.dns_name}/api/v1"
}

output "websocket_url" {
  description = "Viewers connect here: /ws?item_id=X or /ws/items/X."
  value       = "wss://${module.alb.dns_name}/ws"
}

output "load_balancer_dns_name" {
  value = module.alb.dns_name
}

output "load_balancer_zone_id" {
  description = "For a Route 53 alias record to the load balancer."
  value       = module.alb.zone_id
}

output "ecr_repository_urls" {
  value = { for name, repository in module.ecr.repositories : name => repository.url }
}

output "ecs_cluster_name" {
  value = module.services.cluster_name
}

output "log_groups" {
  value = module.services.log_groups
}

output "nats_node_addresses" {
  value = module.nats.node_addresses
}
